//! The encoders' SQL functions. `embed_text`, `embed_image` and their batch forms live in the
//! extension's schema; model administration and statistics in schema `xmodal`.
//!
//! The embedding functions are STABLE (a model can be registered again, so they are not
//! IMMUTABLE; within a statement the result does not change) and PARALLEL RESTRICTED (models load
//! in the leader only, not in every worker). They are not STRICT because the model argument
//! defaults to NULL (meaning `xmodal.default_model`); a NULL input gives NULL as STRICT would.

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::datum::UnboxDatum;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::ERRCODE_ARRAY_ELEMENT_ERROR;

use super::encoders;
use super::pipeline::session::{ImageEncoder, TextEncoder};
use super::report::raise;
use crate::vector::Xvector;

#[pg_extern(stable, parallel_restricted)]
fn embed_text(input: Option<&str>, model: default!(Option<&str>, "NULL")) -> Option<Xvector> {
    let embedding = encoders::embed::<TextEncoder>(model, input?);
    Some(Xvector::from_slice(&embedding))
}

#[pg_extern(stable, parallel_restricted)]
fn embed_image(input: Option<&[u8]>, model: default!(Option<&str>, "NULL")) -> Option<Xvector> {
    let embedding = encoders::embed::<ImageEncoder>(model, input?);
    Some(Xvector::from_slice(&embedding))
}

#[pg_extern(stable, parallel_restricted)]
fn embed_texts(
    inputs: Option<Array<'_, &str>>,
    model: default!(Option<&str>, "NULL"),
) -> Option<XvectorArray> {
    let inputs = one_dimensional(inputs?);
    encoders::check_batch_size(inputs.len());
    let values: Vec<Option<&str>> = inputs.iter().collect();
    Some(XvectorArray(encoders::embed_batch::<TextEncoder>(
        model, &values,
    )))
}

#[pg_extern(stable, parallel_restricted)]
fn embed_images(
    inputs: Option<Array<'_, &[u8]>>,
    model: default!(Option<&str>, "NULL"),
) -> Option<XvectorArray> {
    let inputs = one_dimensional(inputs?);
    encoders::check_batch_size(inputs.len());
    let values: Vec<Option<&[u8]>> = inputs.iter().collect();
    Some(XvectorArray(encoders::embed_batch::<ImageEncoder>(
        model, &values,
    )))
}

/// `inputs` again, after refusing a multi-dimensional array (the result is one-dimensional, so
/// positions would be lost). Nothing is copied.
fn one_dimensional<'mcx, T: UnboxDatum>(inputs: Array<'mcx, T>) -> Array<'mcx, T> {
    let raw = inputs.into_array_type();
    // SAFETY: the Array wrapped this valid, detoasted ArrayType, which lives for the whole call.
    let ndim = unsafe { (*raw).ndim };
    if ndim > 1 {
        raise(
            ERRCODE_ARRAY_ELEMENT_ERROR,
            format!("expected a one-dimensional array, got {ndim} dimensions"),
            None,
        );
    }
    // SAFETY: the same array, wrapped again (already detoasted: no copy).
    let again = unsafe {
        Array::from_polymorphic_datum(pg_sys::Datum::from(raw), false, pg_sys::InvalidOid)
    };
    again.unwrap_or_else(|| unreachable!("the pointer is not null"))
}

/// An `xvector[]` result; None elements are NULLs.
pub struct XvectorArray(Vec<Option<Vec<f32>>>);

unsafe impl BoxRet for XvectorArray {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: the element type is the one the function is declared to return an array of;
        // every datum is a freshly palloc'd xvector.
        unsafe {
            let array_type = pg_sys::get_func_rettype((*(*fcinfo.as_mut_ptr()).flinfo).fn_oid);
            let element = pg_sys::get_element_type(array_type);
            let array = if self.0.is_empty() {
                pg_sys::construct_empty_array(element)
            } else {
                let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
                pg_sys::get_typlenbyvalalign(element, &mut len, &mut byval, &mut align);
                let mut nulls: Vec<bool> = self.0.iter().map(Option::is_none).collect();
                let mut datums: Vec<pg_sys::Datum> = self
                    .0
                    .iter()
                    .map(|v| match v {
                        Some(values) => Xvector::from_slice(values).into_datum_value(),
                        None => pg_sys::Datum::from(0),
                    })
                    .collect();
                let mut dims = [datums.len() as i32];
                let mut lower_bounds = [1];
                pg_sys::construct_md_array(
                    datums.as_mut_ptr(),
                    nulls.as_mut_ptr(),
                    1,
                    dims.as_mut_ptr(),
                    lower_bounds.as_mut_ptr(),
                    element,
                    i32::from(len),
                    byval,
                    align,
                )
            };
            fcinfo.return_raw_datum(pg_sys::Datum::from(array))
        }
    }
}

unsafe impl SqlTranslatable for XvectorArray {
    const TYPE_IDENT: &'static str = concat!(module_path!(), "::XvectorArray");
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
        Ok(SqlMappingRef::literal("xvector[]"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("xvector[]")));
}

#[pg_schema]
mod xmodal {
    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode::*;

    use crate::embed::encoders;
    use crate::embed::registry::{self, Entry};
    use crate::embed::report::{raise, OrRaise};

    /// Registers the model directory `path` under `name` (superusers and members of
    /// xmodal.model_admin_role). Its towers are loaded now, which checks every file.
    #[pg_extern(volatile, parallel_unsafe)]
    fn register_model(name: &str, path: &str, replace: default!(bool, false)) {
        registry::require_admin();
        if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
            raise(
                ERRCODE_INVALID_PARAMETER_VALUE,
                format!("invalid model name \"{name}\": 1 to 63 bytes, no control characters"),
                None,
            );
        }
        let dir = registry::checked_directory(path);
        let config = registry::load_config(&dir).or_raise(name);
        let prepared = encoders::prepare(name, config);
        let id = registry::store(name, &dir, prepared.dims, &prepared.modalities, replace);
        let entry = Entry {
            id,
            name: name.to_string(),
            path: dir,
            dims: prepared.dims,
            modalities: prepared.modalities.clone(),
        };
        encoders::install(entry, prepared);
    }

    /// Removes a model's registration (same privileges as register_model).
    #[pg_extern(volatile, parallel_unsafe)]
    fn drop_model(name: &str) {
        registry::require_admin();
        if !registry::remove(name) {
            raise(
                ERRCODE_UNDEFINED_OBJECT,
                format!("model \"{name}\" is not registered"),
                None,
            );
        }
        encoders::forget(name);
    }

    /// Where this backend runs the model ("cpu" or "cuda"); NULL until it is loaded here.
    #[pg_extern(volatile, parallel_restricted)]
    fn model_device(name: &str) -> Option<String> {
        encoders::device(name)
    }

    /// This backend's encoder counters, per model and modality.
    #[pg_extern(volatile, parallel_restricted)]
    fn encoder_stats() -> TableIterator<
        'static,
        (
            name!(model, String),
            name!(modality, String),
            name!(calls, i64),
            name!(inputs, i64),
            name!(cache_hits, i64),
            name!(inferences, i64),
            name!(preprocess_ms, f64),
            name!(total_ms, f64),
        ),
    > {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        TableIterator::new(
            encoders::stats()
                .into_iter()
                .map(move |(model, modality, c)| {
                    (
                        model,
                        modality.name().to_string(),
                        c.calls,
                        c.inputs,
                        c.cache_hits,
                        c.inferences,
                        ms(c.preprocess),
                        ms(c.total),
                    )
                }),
        )
    }

    /// Zeroes this backend's counters and empties its cache of recent results.
    #[pg_extern(volatile, parallel_restricted)]
    fn encoder_stats_reset() {
        encoders::reset_stats();
    }
}
