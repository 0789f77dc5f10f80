//! SQL functions on xvector: dimensions, norms, distances, arithmetic and comparison.
//! Operators and the btree opclass that use them are in sql/xvector_ops.sql.

use pgrx::prelude::*;
use std::cmp::Ordering;

use super::datum::Xvector;
use super::error::{OrRaise, VectorError, VectorResult};
use super::kernels;
use super::validate::check_finite;

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
    vector.as_slice().iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt()
}

/// Unit-length copy; a zero vector stays zero (as pgvector).
#[pg_extern(immutable, strict, parallel_safe)]
fn l2_normalize(vector: Xvector) -> Xvector {
    let norm = l2_norm(Xvector::from_slice(vector.as_slice()));
    if norm == 0.0 {
        return vector;
    }
    let values: Vec<f32> = vector.as_slice().iter().map(|v| (*v as f64 / norm) as f32).collect();
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
    let values: Vec<f32> = a.as_slice().iter().zip(b.as_slice()).map(|(x, y)| op(*x, *y)).collect();
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

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_mul(a: Xvector, b: Xvector) -> Xvector {
    elementwise(&a, &b, |x, y| x * y).or_raise()
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
    use super::compare;
    use std::cmp::Ordering::*;

    #[test]
    fn ordering_is_lexicographic_then_length() {
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 3.0]), Less);
        assert_eq!(compare(&[2.0], &[1.0, 3.0]), Greater);
        assert_eq!(compare(&[1.0], &[1.0, 0.0]), Less);
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0]), Equal);
        assert_eq!(compare(&[0.0], &[-0.0]), Equal);
    }
}
