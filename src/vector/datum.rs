//! The on-disk and in-memory form of `xvector`: a varlena holding a 16-bit dimension count,
//! 16 unused bits and the float4 elements (the same layout as pgvector's `vector`).
//! `Xvector` borrows a detoasted value for the duration of a function call, or owns a freshly
//! palloc'd one that is returned to Postgres.

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{pg_sys, FromDatum, IntoDatum, PgSqlErrorCode};
use std::ptr::NonNull;

use super::error::VectorError;
use super::validate::check_dim_count;

#[repr(C)]
struct Header {
    varlena_len: u32,
    dim: u16,
    unused: u16,
}

const HEADER_SIZE: usize = std::mem::size_of::<Header>();

/// A detoasted xvector in Postgres memory (valid for the current memory context).
pub struct Xvector {
    ptr: NonNull<Header>,
}

impl Xvector {
    /// Copy `values` into a new palloc'd xvector. Callers validate the values first; more than
    /// MAX_DIM values (which the 16-bit header could not even count) is an ERROR here too (54000).
    pub fn from_slice(values: &[f32]) -> Xvector {
        if let Err(too_many) = check_dim_count(values.len().max(1)) {
            too_many.raise();
        }
        let size = HEADER_SIZE + std::mem::size_of_val(values);
        unsafe {
            let raw = pg_sys::palloc0(size) as *mut Header;
            // SET_VARSIZE for a 4-byte header: length shifted left by 2 on little-endian.
            (*raw).varlena_len = (size as u32) << 2;
            (*raw).dim = values.len() as u16;
            let data = (raw as *mut u8).add(HEADER_SIZE) as *mut f32;
            std::ptr::copy_nonoverlapping(values.as_ptr(), data, values.len());
            Xvector {
                ptr: NonNull::new_unchecked(raw),
            }
        }
    }

    pub fn dim(&self) -> usize {
        unsafe { self.ptr.as_ref().dim as usize }
    }

    pub fn as_slice(&self) -> &[f32] {
        unsafe {
            let data = (self.ptr.as_ptr() as *const u8).add(HEADER_SIZE) as *const f32;
            std::slice::from_raw_parts(data, self.dim())
        }
    }

    pub fn into_datum_value(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.ptr.as_ptr())
    }

    /// Detoast a datum. Refuses a value whose header and length disagree (corrupt input).
    ///
    /// # Safety
    /// `datum` must be a non-NULL datum of type xvector.
    pub unsafe fn from_datum_value(datum: pg_sys::Datum) -> Xvector {
        let raw = unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) } as *mut Header;
        let Some(ptr) = NonNull::new(raw) else {
            VectorError::new(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                "corrupt xvector value",
            )
            .raise();
        };
        let value = Xvector { ptr };
        let total = unsafe { (ptr.as_ref().varlena_len >> 2) as usize };
        if total < HEADER_SIZE || total != HEADER_SIZE + value.dim() * 4 {
            VectorError::data("corrupt xvector value").raise();
        }
        value
    }
}

impl FromDatum for Xvector {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            None
        } else {
            Some(unsafe { Xvector::from_datum_value(datum) })
        }
    }
}

impl IntoDatum for Xvector {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.into_datum_value())
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::InvalidOid
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for Xvector {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

unsafe impl BoxRet for Xvector {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.into_datum_value()) }
    }
}

unsafe impl SqlTranslatable for Xvector {
    const TYPE_IDENT: &'static str = concat!(module_path!(), "::Xvector");
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
        Ok(SqlMappingRef::literal("xvector"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("xvector")));
}
