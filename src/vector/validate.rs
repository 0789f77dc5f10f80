//! The rules every xvector obeys, wherever it comes from (text, binary, arrays, arithmetic):
//! 1..=MAX_DIM elements, all finite, and the column's declared dimension when there is one.

use super::error::{VectorError, VectorResult};
use pgrx::PgSqlErrorCode;

/// Largest number of dimensions (the on-disk header stores it in 16 bits, like pgvector).
pub const MAX_DIM: usize = 16000;

pub fn check_dim_count(dim: usize) -> VectorResult<()> {
    if dim == 0 {
        return Err(VectorError::data("xvector must have at least 1 dimension"));
    }
    if dim > MAX_DIM {
        return Err(VectorError::new(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("xvector cannot have more than {MAX_DIM} dimensions"),
        ));
    }
    Ok(())
}

pub fn check_finite(values: &[f32]) -> VectorResult<()> {
    for v in values {
        if v.is_nan() {
            return Err(VectorError::data("NaN not allowed in xvector"));
        }
        if v.is_infinite() {
            return Err(VectorError::data("infinite value not allowed in xvector"));
        }
    }
    Ok(())
}

/// `typmod` is the declared dimension, or -1 for an unconstrained `xvector`.
pub fn check_typmod(dim: usize, typmod: i32) -> VectorResult<()> {
    if typmod > 0 && dim != typmod as usize {
        return Err(VectorError::data(format!(
            "expected {typmod} dimensions, not {dim}"
        )));
    }
    Ok(())
}

pub fn check_all(values: &[f32], typmod: i32) -> VectorResult<()> {
    check_dim_count(values.len())?;
    check_finite(values)?;
    check_typmod(values.len(), typmod)
}

/// Validate the integer inside `xvector(n)`.
pub fn typmod_from_dims(dims: &[i32]) -> VectorResult<i32> {
    let code = PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE;
    match dims {
        [d] if *d < 1 => Err(VectorError::new(
            code,
            "dimensions for type xvector must be at least 1",
        )),
        [d] if *d as usize > MAX_DIM => Err(VectorError::new(
            code,
            format!("dimensions for type xvector cannot exceed {MAX_DIM}"),
        )),
        [d] => Ok(*d),
        _ => Err(VectorError::new(code, "invalid type modifier")),
    }
}

/// Convert a computed f64 back to f32, refusing results that no longer fit.
pub fn to_f32_checked(v: f64) -> VectorResult<f32> {
    let f = v as f32;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(VectorError::overflow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_bounds() {
        assert!(check_dim_count(0).is_err());
        assert!(check_dim_count(1).is_ok());
        assert!(check_dim_count(MAX_DIM).is_ok());
        assert_eq!(
            check_dim_count(MAX_DIM + 1).unwrap_err().code,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED
        );
    }

    #[test]
    fn finite_and_typmod() {
        assert_eq!(
            check_finite(&[1.0, f32::NAN]).unwrap_err().message,
            "NaN not allowed in xvector"
        );
        assert!(check_finite(&[f32::NEG_INFINITY]).is_err());
        assert!(check_typmod(3, -1).is_ok());
        assert_eq!(
            check_typmod(4, 3).unwrap_err().message,
            "expected 3 dimensions, not 4"
        );
        assert_eq!(typmod_from_dims(&[512]).unwrap(), 512);
        assert!(typmod_from_dims(&[0]).is_err());
        assert!(typmod_from_dims(&[16001]).is_err());
        assert!(typmod_from_dims(&[1, 2]).is_err());
        assert!(to_f32_checked(1e39).is_err());
        assert_eq!(to_f32_checked(2.5).unwrap(), 2.5);
    }
}
