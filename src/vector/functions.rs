//! SQL functions on xvector: dimensions, norms, distances, arithmetic and comparison.
//! Operators and the btree opclass that use them are in sql/xvector_ops.sql.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cmp::Ordering;

use super::datum::Xvector;
use super::error::{OrRaise, VectorError, VectorResult};
use super::kernels;
use super::validate::{check_dim_count, check_finite};

// Distances are declared `cost = 100` (units of cpu_operator_cost): each detoasts two vectors
// and reads every element, far more than the default of 1, which would make an exact scan over
// large (TOASTed) vectors look nearly free next to an index scan.

fn same_dims(a: &Xvector, b: &Xvector) {
    if a.dim() != b.dim() {
        VectorError::dimension_mismatch(a.dim(), b.dim()).raise();
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_dims(vector: Xvector) -> i32 {
    vector.dim() as i32
}

#[pg_extern(immutable, strict, parallel_safe)]
fn l2_norm(vector: Xvector) -> f64 {
    vector
        .as_slice()
        .iter()
        .map(|v| (*v as f64) * (*v as f64))
        .sum::<f64>()
        .sqrt()
}

/// Unit-length copy; a zero vector stays zero (as pgvector).
#[pg_extern(immutable, strict, parallel_safe)]
fn l2_normalize(vector: Xvector) -> Xvector {
    let norm = l2_norm(Xvector::from_slice(vector.as_slice()));
    if norm == 0.0 {
        return vector;
    }
    let values: Vec<f32> = vector
        .as_slice()
        .iter()
        .map(|v| (*v as f64 / norm) as f32)
        .collect();
    Xvector::from_slice(&values)
}

#[pg_extern(immutable, strict, parallel_safe, cost = 100)]
fn l2_distance(a: Xvector, b: Xvector) -> f64 {
    same_dims(&a, &b);
    (kernels::l2_squared(a.as_slice(), b.as_slice()) as f64).sqrt()
}

/// 1 - cosine similarity; NaN when either vector is zero (as pgvector).
#[pg_extern(immutable, strict, parallel_safe, cost = 100)]
fn cosine_distance(a: Xvector, b: Xvector) -> f64 {
    same_dims(&a, &b);
    kernels::cosine_distance(a.as_slice(), b.as_slice())
}

#[pg_extern(immutable, strict, parallel_safe, cost = 100)]
fn inner_product(a: Xvector, b: Xvector) -> f64 {
    same_dims(&a, &b);
    kernels::dot(a.as_slice(), b.as_slice()) as f64
}

#[pg_extern(immutable, strict, parallel_safe, cost = 100)]
fn negative_inner_product(a: Xvector, b: Xvector) -> f64 {
    -inner_product(a, b)
}

fn elementwise(a: &Xvector, b: &Xvector, op: impl Fn(f32, f32) -> f32) -> VectorResult<Xvector> {
    if a.dim() != b.dim() {
        return Err(VectorError::dimension_mismatch(a.dim(), b.dim()));
    }
    let values: Vec<f32> = a
        .as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(x, y)| op(*x, *y))
        .collect();
    if check_finite(&values).is_err() {
        return Err(VectorError::overflow());
    }
    Ok(Xvector::from_slice(&values))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_add(a: Xvector, b: Xvector) -> Xvector {
    elementwise(&a, &b, |x, y| x + y).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_sub(a: Xvector, b: Xvector) -> Xvector {
    elementwise(&a, &b, |x, y| x - y).or_raise()
}

/// Element-wise product. Element by element, as pgvector: infinity is an overflow, and zero
/// from two non-zero factors an underflow.
#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_mul(a: Xvector, b: Xvector) -> Xvector {
    Xvector::from_slice(&multiply(a.as_slice(), b.as_slice()).or_raise())
}

pub fn multiply(a: &[f32], b: &[f32]) -> VectorResult<Vec<f32>> {
    if a.len() != b.len() {
        return Err(VectorError::dimension_mismatch(a.len(), b.len()));
    }
    let mut out = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        let r = x * y;
        if r.is_infinite() {
            return Err(VectorError::overflow());
        }
        if r == 0.0 && *x != 0.0 && *y != 0.0 {
            return Err(VectorError::new(
                PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                "value out of range: underflow",
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// `a || b`: the elements of `a`, then those of `b`.
#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_concat(a: Xvector, b: Xvector) -> Xvector {
    let values = concat(a.as_slice(), b.as_slice()).or_raise();
    Xvector::from_slice(&values)
}

pub fn concat(a: &[f32], b: &[f32]) -> VectorResult<Vec<f32>> {
    check_dim_count(a.len() + b.len())?;
    Ok([a, b].concat())
}

/// `subvector(v, start, count)`: `count` elements from 1-based `start`, clipped to the vector
/// like `substring` (pgvector's rules: an empty result is an error).
#[pg_extern(immutable, strict, parallel_safe)]
fn subvector(vector: Xvector, start: i32, count: i32) -> Xvector {
    let range = subvector_range(vector.dim(), start, count).or_raise();
    Xvector::from_slice(&vector.as_slice()[range])
}

pub fn subvector_range(dim: usize, start: i32, count: i32) -> VectorResult<std::ops::Range<usize>> {
    let empty = || VectorError::data("xvector must have at least 1 dimension");
    if count < 1 {
        return Err(empty());
    }
    // 1-based, inclusive start; i64 so that start + count cannot overflow.
    let end = (start as i64 + count as i64).min(dim as i64 + 1);
    let start = (start as i64).max(1);
    if start > dim as i64 || end <= start {
        return Err(empty());
    }
    Ok((start - 1) as usize..(end - 1) as usize)
}

#[pg_extern(immutable, strict, parallel_safe, cost = 100)]
fn l1_distance(a: Xvector, b: Xvector) -> f64 {
    same_dims(&a, &b);
    kernels::l1(a.as_slice(), b.as_slice()) as f64
}

/// pgvector's name for `l2_norm`.
#[pg_extern(immutable, strict, parallel_safe)]
fn vector_norm(vector: Xvector) -> f64 {
    l2_norm(vector)
}

/// Total order for btree: element by element, then the shorter vector first.
pub fn compare(a: &[f32], b: &[f32]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.partial_cmp(y) {
            Some(Ordering::Equal) | None => continue,
            Some(other) => return other,
        }
    }
    a.len().cmp(&b.len())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_cmp(a: Xvector, b: Xvector) -> i32 {
    compare(a.as_slice(), b.as_slice()) as i32
}

macro_rules! comparison {
    ($name:ident, $($ordering:pat_param)|+) => {
        #[pg_extern(immutable, strict, parallel_safe)]
        fn $name(a: Xvector, b: Xvector) -> bool {
            matches!(compare(a.as_slice(), b.as_slice()), $($ordering)|+)
        }
    };
}

comparison!(xvector_lt, Ordering::Less);
comparison!(xvector_le, Ordering::Less | Ordering::Equal);
comparison!(xvector_eq, Ordering::Equal);
comparison!(xvector_ne, Ordering::Less | Ordering::Greater);
comparison!(xvector_ge, Ordering::Greater | Ordering::Equal);
comparison!(xvector_gt, Ordering::Greater);

#[cfg(test)]
mod tests {
    use super::{compare, concat, multiply, subvector_range};
    use std::cmp::Ordering::*;

    #[test]
    fn ordering_is_lexicographic_then_length() {
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 3.0]), Less);
        assert_eq!(compare(&[2.0], &[1.0, 3.0]), Greater);
        assert_eq!(compare(&[1.0], &[1.0, 0.0]), Less);
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0]), Equal);
        assert_eq!(compare(&[0.0], &[-0.0]), Equal);
    }

    #[test]
    fn subvector_clips_like_pgvector() {
        assert_eq!(subvector_range(5, 1, 3).unwrap(), 0..3);
        assert_eq!(subvector_range(5, 3, 2).unwrap(), 2..4);
        assert_eq!(subvector_range(5, -1, 3).unwrap(), 0..1);
        assert_eq!(subvector_range(5, 3, 9).unwrap(), 2..5);
        assert_eq!(subvector_range(5, 3, i32::MAX).unwrap(), 2..5);
        assert_eq!(
            subvector_range(5, i32::MIN, i32::MAX).unwrap_err().message,
            "xvector must have at least 1 dimension"
        );
        for (start, count) in [(3, 0), (3, -1), (6, 1), (-1, 2), (i32::MAX, 1)] {
            assert!(subvector_range(5, start, count).is_err(), "{start} {count}");
        }
    }

    #[test]
    fn multiply_checks_range_element_by_element() {
        assert_eq!(multiply(&[1.0, 2.0], &[3.0, 0.0]).unwrap(), vec![3.0, 0.0]);
        assert_eq!(
            multiply(&[1e-37], &[1e-37]).unwrap_err().message,
            "value out of range: underflow"
        );
        assert_eq!(
            multiply(&[1e37], &[1e37]).unwrap_err().message,
            "value out of range: overflow"
        );
        assert_eq!(
            multiply(&[1e-37, 1e37], &[1e-37, 1e37])
                .unwrap_err()
                .message,
            "value out of range: underflow"
        );
        assert_eq!(
            multiply(&[1.0], &[1.0, 2.0]).unwrap_err().message,
            "different xvector dimensions 1 and 2"
        );
    }

    #[test]
    fn concat_respects_the_limit() {
        assert_eq!(concat(&[1.0], &[2.0, 3.0]).unwrap(), vec![1.0, 2.0, 3.0]);
        assert!(concat(&vec![0.0; 16000], &[1.0]).is_err());
    }
}
