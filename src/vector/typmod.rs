//! The integer inside `xvector(n)` / `xhalfvec(n)`, read the way PostgreSQL's own types read
//! theirs (ArrayGetIntegerTypmods), so `xvector(99999999999)` or `xvector('a')` get PostgreSQL's
//! integer errors instead of a misleading "must be at least 1".

use pgrx::prelude::*;
use std::ffi::CStr;

pub fn integer_typmods(modifiers: Array<'_, &CStr>) -> Vec<i32> {
    unsafe {
        let array = modifiers.into_array_type() as *mut pg_sys::ArrayType;
        let mut n = 0;
        let values = pg_sys::ArrayGetIntegerTypmods(array, &mut n);
        if values.is_null() || n <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts(values, n as usize).to_vec()
    }
}
