//! Distance kernels: the inner loop of exact scans and of the xhnsw index.
//!
//! One chunked implementation (independent accumulators, so the compiler can vectorise the
//! reduction without reassociating floats), compiled three times: portable, AVX2+FMA and
//! AVX-512F. The best variant the CPU supports is picked once at first use.

use std::sync::OnceLock;

/// Accumulator lanes: 32 floats = 4 AVX2 registers or 2 AVX-512 registers in flight.
const LANES: usize = 32;

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, acc: f32) -> f32 {
    if FMA {
        a.mul_add(b, acc)
    } else {
        a * b + acc
    }
}

#[inline(always)]
fn l2_squared_impl<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] = madd::<FMA>(d, d, acc[i]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = x - y;
        tail = madd::<FMA>(d, d, tail);
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn dot_impl<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            acc[i] = madd::<FMA>(x[i], y[i], acc[i]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail = madd::<FMA>(*x, *y, tail);
    }
    acc.iter().sum::<f32>() + tail
}

/// (a·b, |a|², |b|²) for cosine distance. Three vectorised passes beat one fused loop, which
/// the compiler leaves scalar (3x slower measured); the operands stay in L1 between passes.
#[inline(always)]
fn cosine_parts_impl<const FMA: bool>(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    (
        dot_impl::<FMA>(a, b),
        dot_impl::<FMA>(a, a),
        dot_impl::<FMA>(b, b),
    )
}

/// One compiled variant of every kernel.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub name: &'static str,
    pub l2_squared: fn(&[f32], &[f32]) -> f32,
    pub dot: fn(&[f32], &[f32]) -> f32,
    pub cosine_parts: fn(&[f32], &[f32]) -> (f32, f32, f32),
}

macro_rules! variant {
    ($module:ident, $name:literal, $features:literal, $fma:literal) => {
        mod $module {
            #[target_feature(enable = $features)]
            pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
                super::l2_squared_impl::<$fma>(a, b)
            }
            #[target_feature(enable = $features)]
            pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
                super::dot_impl::<$fma>(a, b)
            }
            #[target_feature(enable = $features)]
            pub unsafe fn cosine_parts(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
                super::cosine_parts_impl::<$fma>(a, b)
            }
            // SAFETY: only handed out by `variants()` after the CPU features were detected.
            pub const KERNELS: super::Kernels = super::Kernels {
                name: $name,
                l2_squared: |a, b| unsafe { l2_squared(a, b) },
                dot: |a, b| unsafe { dot(a, b) },
                cosine_parts: |a, b| unsafe { cosine_parts(a, b) },
            };
        }
    };
}

#[cfg(target_arch = "x86_64")]
variant!(avx2, "avx2+fma", "avx2,fma", true);
#[cfg(target_arch = "x86_64")]
variant!(avx512, "avx512f", "avx512f,fma", true);

pub const PORTABLE: Kernels = Kernels {
    name: "portable",
    l2_squared: l2_squared_impl::<false>,
    dot: dot_impl::<false>,
    cosine_parts: cosine_parts_impl::<false>,
};

/// Every variant this CPU can run, slowest first (for tests and benchmarks).
pub fn variants() -> Vec<Kernels> {
    #[allow(unused_mut)]
    let mut out = vec![PORTABLE];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            out.push(avx2::KERNELS);
        }
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            out.push(avx512::KERNELS);
        }
    }
    out
}

/// The fastest variant available, chosen once.
pub fn best() -> &'static Kernels {
    static BEST: OnceLock<Kernels> = OnceLock::new();
    BEST.get_or_init(|| *variants().last().expect("portable variant always present"))
}

#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (best().l2_squared)(a, b)
}

#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (best().dot)(a, b)
}

/// Cosine distance in [0, 2]; NaN when either vector is zero (as pgvector).
#[inline]
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let (ab, aa, bb) = (best().cosine_parts)(a, b);
    let similarity = ab as f64 / ((aa as f64) * (bb as f64)).sqrt();
    if similarity.is_nan() {
        return f64::NAN;
    }
    1.0 - similarity.clamp(-1.0, 1.0)
}

/// Sum of absolute differences (pgvector's `<+>`). Independent accumulators, like the other
/// kernels, so the compiler vectorises it without reassociating floats.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [0f32; LANES];
    let mut ca = a[..n].chunks_exact(LANES);
    let mut cb = b[..n].chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            acc[i] += (x[i] - y[i]).abs();
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y).abs())
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_vec(state: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        (got as f64 - want).abs() <= 1e-5 * scale.max(1.0)
    }

    #[test]
    fn every_variant_matches_f64_reference() {
        let mut state = 42u64;
        let variants = variants();
        assert!(!variants.is_empty());
        for n in (1..2000).step_by(7).chain([1, 2, 15, 16, 31, 32, 33, 1999]) {
            let a = random_vec(&mut state, n);
            let b = random_vec(&mut state, n);
            let l2: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                .sum();
            let ab: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let aa: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
            let bb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();
            for k in &variants {
                assert!(close((k.l2_squared)(&a, &b), l2, l2), "{} l2 n={n}", k.name);
                assert!(
                    close((k.dot)(&a, &b), ab, aa.max(bb)),
                    "{} dot n={n}",
                    k.name
                );
                let (pab, paa, pbb) = (k.cosine_parts)(&a, &b);
                assert!(
                    close(pab, ab, aa.max(bb)) && close(paa, aa, aa) && close(pbb, bb, bb),
                    "{} cos",
                    k.name
                );
            }
        }
    }

    #[test]
    fn l1_matches_f64_reference() {
        let mut state = 7u64;
        for n in [1, 3, 31, 32, 33, 100, 1999] {
            let a = random_vec(&mut state, n);
            let b = random_vec(&mut state, n);
            let want: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as f64 - *y as f64).abs())
                .sum();
            assert!(close(l1(&a, &b), want, want), "n={n}");
        }
        assert_eq!(l1(&[0.0, 0.0], &[3.0, -4.0]), 7.0);
    }

    #[test]
    fn cosine_edge_cases() {
        assert!(cosine_distance(&[0.0, 0.0], &[1.0, 2.0]).is_nan());
        assert!(cosine_distance(&[1.0, 2.0], &[2.0, 4.0]).abs() < 1e-7);
        assert!((cosine_distance(&[1.0, 0.0], &[-1.0, 0.0]) - 2.0).abs() < 1e-7);
        assert!((cosine_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-7);
    }
}
