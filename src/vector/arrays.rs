//! Casts between xvector and SQL arrays. integer[] and numeric[] reach `array_to_xvector`
//! through float8[] (see sql/xvector_ops.sql).

use pgrx::prelude::*;

use super::datum::Xvector;
use super::error::{OrRaise, VectorError, VectorResult};
use super::validate::{check_all, check_dim_count, to_f32_checked, MAX_DIM};

fn from_elements(
    elements: impl Iterator<Item = Option<f64>>,
    ndim: i32,
    typmod: i32,
) -> VectorResult<Vec<f32>> {
    if ndim > 1 {
        return Err(VectorError::data("array must be 1-D"));
    }
    let mut values = Vec::new();
    for element in elements {
        let value = element.ok_or_else(|| {
            VectorError::new(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "array must not contain nulls",
            )
        })?;
        // NaN and infinity get their own message; finite values too large for real overflow.
        if !value.is_finite() {
            check_all(&[value as f32], -1)?;
        }
        values.push(to_f32_checked(value)?);
    }
    check_all(&values, typmod)?;
    Ok(values)
}

fn ndim<T>(array: Array<'_, T>) -> i32 {
    // SAFETY: the Array wraps a valid, detoasted ArrayType for the duration of the call.
    unsafe { (*array.into_array_type()).ndim }
}

/// Refuses an array of more than MAX_DIM elements (NULLs included) before its elements are
/// copied: a 1 GB array would otherwise take gigabytes of Rust heap before the size check.
fn check_length<T>(array: &Array<'_, T>) {
    if array.len() > MAX_DIM {
        check_dim_count(array.len()).or_raise();
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn array_to_xvector(array: Array<'_, f64>, typmod: i32, _explicit: bool) -> Xvector {
    check_length(&array);
    let elements: Vec<Option<f64>> = array.iter().collect();
    Xvector::from_slice(&from_elements(elements.into_iter(), ndim(array), typmod).or_raise())
}

#[pg_extern(name = "array_to_xvector", immutable, strict, parallel_safe)]
fn real_array_to_xvector(array: Array<'_, f32>, typmod: i32, _explicit: bool) -> Xvector {
    check_length(&array);
    let elements: Vec<Option<f64>> = array.iter().map(|e| e.map(f64::from)).collect();
    Xvector::from_slice(&from_elements(elements.into_iter(), ndim(array), typmod).or_raise())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_to_float4(vector: Xvector, _typmod: i32, _explicit: bool) -> Vec<f32> {
    vector.as_slice().to_vec()
}
