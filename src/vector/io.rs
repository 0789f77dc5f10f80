//! Type I/O functions named in `CREATE TYPE xvector` (sql/xvector_type.sql declares them, so
//! they are `sql = false` here) and the typmod coercion cast.

use pgrx::prelude::*;
use pgrx::Internal;
use std::ffi::{CStr, CString};

use super::datum::Xvector;
use super::error::{OrRaise, VectorError};
use super::validate::{check_typmod, typmod_from_dims};
use super::{binary, text};

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xvector_in(input: &CStr, _type_oid: pg_sys::Oid, typmod: i32) -> Xvector {
    let text = input
        .to_str()
        .map_err(|_| VectorError::syntax(&input.to_string_lossy()))
        .or_raise();
    let values = text::parse(text).or_raise();
    check_typmod(values.len(), typmod).or_raise();
    Xvector::from_slice(&values)
}

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xvector_out(vector: Xvector) -> CString {
    CString::new(text::format(vector.as_slice())).expect("formatted floats contain no NUL")
}

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xvector_typmod_in(modifiers: Array<&CStr>) -> i32 {
    typmod_from_dims(&super::typmod::integer_typmods(modifiers)).or_raise()
}

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xvector_recv(buffer: Internal, _type_oid: pg_sys::Oid, typmod: i32) -> Xvector {
    let malformed = || {
        VectorError::new(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            "malformed binary xvector",
        )
    };
    let values = unsafe {
        let Some(info) = buffer.unwrap() else {
            malformed().raise()
        };
        let info = &mut *info.cast_mut_ptr::<pg_sys::StringInfoData>();
        let start = usize::try_from(info.cursor).unwrap_or(usize::MAX);
        let Some(rest) = usize::try_from(info.len)
            .ok()
            .and_then(|len| len.checked_sub(start))
        else {
            malformed().raise()
        };
        let bytes = std::slice::from_raw_parts((info.data as *const u8).add(start), rest);
        let values = binary::decode(bytes).or_raise();
        info.cursor = info.len;
        values
    };
    check_typmod(values.len(), typmod).or_raise();
    Xvector::from_slice(&values)
}

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xvector_send(vector: Xvector) -> Vec<u8> {
    binary::encode(vector.as_slice())
}

/// `xvector(n)` coercion: applied on assignment to a column of declared dimension.
#[pg_extern(name = "xvector", immutable, strict, parallel_safe)]
fn xvector_coerce(vector: Xvector, typmod: i32, _explicit: bool) -> Xvector {
    check_typmod(vector.dim(), typmod).or_raise();
    vector
}
