//! The distances an xhnsw index orders by, over the kernels (kernels.rs), and how a vector is
//! prepared for one (normalised for cosine).

use super::kernels;

/// Distance the index orders by, taken from the opclass's support function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Metric {
    /// `<->`: ordered by squared L2 distance.
    L2 = 1,
    /// `<=>`: vectors are stored normalised; ordered by 1 - dot product.
    Cosine = 2,
    /// `<#>`: ordered by -dot product.
    InnerProduct = 3,
    /// `<+>`: ordered by L1 (taxicab) distance.
    L1 = 4,
}

impl Metric {
    pub fn from_u32(v: u32) -> Option<Metric> {
        match v {
            1 => Some(Metric::L2),
            2 => Some(Metric::Cosine),
            3 => Some(Metric::InnerProduct),
            4 => Some(Metric::L1),
            _ => None,
        }
    }

    /// Distance used inside the graph (monotone in the operator's value).
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => kernels::l2_squared(a, b),
            Metric::Cosine => 1.0 - kernels::dot(a, b),
            Metric::InnerProduct => -kernels::dot(a, b),
            Metric::L1 => kernels::l1(a, b),
        }
    }

    /// The vector as the index stores it; None when it cannot be indexed (zero under cosine).
    pub fn prepare(self, v: &[f32]) -> Option<Vec<f32>> {
        if self != Metric::Cosine {
            return Some(v.to_vec());
        }
        let norm = v
            .iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        Some(v.iter().map(|x| (*x as f64 / norm) as f32).collect())
    }
}
