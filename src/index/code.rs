//! One-bit codes of vectors, and the per-query tables that estimate a distance from a code
//! without the vector. No Postgres here: the codec is tested with plain `cargo test`.
//!
//! A code keeps, for each dimension, whether the vector lies above or below a centroid `c`
//! (the mean of the vectors the index was built on), plus three floats that correct the
//! estimate: `r2 = |v - c|^2`, `g = |v - c|^2 / |v - c|_1` and `cv = <c, v>`. With
//! `d = v - c` and `s_i = sign(d_i)`, the estimate `<q - c, d> ~ g * sum_i s_i (q_i - c_i)` is
//! the RaBitQ estimator without its random rotation (it projects `q - c` onto the sign vector
//! and rescales by how well the sign vector follows `d`); the metrics follow from it:
//! - L2 squared: `|q - c|^2 + r2 - 2 <q - c, d>`
//! - `<q, v>` (cosine: `1 - <q, v>` on normalised vectors; inner product: `-<q, v>`):
//!   `<q - c, d> + <q, c> + cv - |c|^2`.
//!
//! A [`QueryTable`] holds, per byte of the code (8 dimensions), the signed sum of the query's
//! centred values for each of the 256 bit patterns: an estimate is one table lookup per byte.

use crate::vector::metric::Metric;

/// Fewest dimensions an index keeps codes for: the estimate's error shrinks with the square
/// root of the dimension, and below this it orders a search's frontier too coarsely (small
/// vectors also share pages, so codes would save few reads).
pub const MIN_DIMS: usize = 64;

/// Bytes of the three correction floats after the bits.
const CORRECTION_BYTES: usize = 12;

/// Bytes of one code for `dims` dimensions.
pub fn code_bytes(dims: usize) -> usize {
    rotated_dims(dims) / 8 + CORRECTION_BYTES
}

/// Codes are taken after a rotation that needs a power of two (at least 8) dimensions.
fn rotated_dims(dims: usize) -> usize {
    dims.next_power_of_two().max(8)
}

/// Rotates `x - c` (padded with zeros): random signs, then a normalised Walsh-Hadamard
/// transform, twice. Spreads each vector's energy evenly over the dimensions, which the
/// one-bit estimator assumes; inner products and norms are kept.
fn rotate(x: &[f32], c: &[f32]) -> Vec<f32> {
    let n = rotated_dims(x.len());
    let mut out = vec![0f32; n];
    for (o, (a, b)) in out.iter_mut().zip(x.iter().zip(c)) {
        *o = a - b;
    }
    let scale = 1.0 / (n as f32).sqrt();
    for round in 0..2u64 {
        for (i, o) in out.iter_mut().enumerate() {
            let h = (i as u64 ^ (round << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            if (h >> 63) == 1 {
                *o = -*o;
            }
        }
        let mut len = 1;
        while len < n {
            for block in out.chunks_mut(2 * len) {
                let (lo, hi) = block.split_at_mut(len);
                for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (x, y) = (*a, *b);
                    *a = x + y;
                    *b = x - y;
                }
            }
            len *= 2;
        }
        out.iter_mut().for_each(|o| *o *= scale);
    }
    out
}

/// Whether codes can order vectors under `metric` (L1 has no estimator here).
pub fn supports(metric: Metric) -> bool {
    !matches!(metric, Metric::L1)
}

/// Encodes `v` around `centroid` into `out` (`code_bytes(v.len())` bytes).
pub fn encode(centroid: &[f32], v: &[f32], out: &mut [u8]) {
    debug_assert_eq!(centroid.len(), v.len());
    let rotated = rotate(v, centroid);
    let bits = rotated.len() / 8;
    out[..bits].fill(0);
    let (mut r2, mut l1) = (0f64, 0f64);
    for (i, &d) in rotated.iter().enumerate() {
        r2 += (d * d) as f64;
        l1 += d.abs() as f64;
        if d > 0.0 {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    let cv: f64 = v.iter().zip(centroid).map(|(&x, &c)| (x * c) as f64).sum();
    let g = if l1 > 0.0 { r2 / l1 } else { 0.0 };
    out[bits..bits + 4].copy_from_slice(&(r2 as f32).to_le_bytes());
    out[bits + 4..bits + 8].copy_from_slice(&(g as f32).to_le_bytes());
    out[bits + 8..bits + 12].copy_from_slice(&(cv as f32).to_le_bytes());
}

/// A query prepared for estimating its distance to coded vectors.
///
/// The rotated, centred query is quantised to 4 bits per dimension (`low + step * u`,
/// `u` in 0..16) and kept as four bit planes, so that the sum of the query's values over a
/// code's set bits is five population counts per 64 dimensions (RaBitQ's query quantisation).
pub struct QueryTable {
    metric: Metric,
    /// Per 64 dimensions, the bit planes of `u` (plane b holds bit b).
    planes: Vec<[u64; 4]>,
    low: f32,
    step: f32,
    /// The sum of the quantised values over all dimensions.
    quantised_sum: f32,
    /// `|q - c|^2` (L2) or `<q, c> - |c|^2` (dot-product metrics).
    offset: f32,
    /// `|q - c|`, which the estimate's error grows with.
    centred_norm: f32,
    count: CountFn,
}

/// (set bits of a code, sum of `u` over them).
type CountFn = fn(&[[u64; 4]], &[u8]) -> (u32, u32);

impl QueryTable {
    /// `query` is prepared as the index stores vectors (normalised for cosine).
    pub fn new(metric: Metric, centroid: &[f32], query: &[f32]) -> QueryTable {
        debug_assert_eq!(centroid.len(), query.len());
        let centred = rotate(query, centroid);
        let low = centred.iter().copied().fold(f32::INFINITY, f32::min);
        let high = centred.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let step = if high > low { (high - low) / 15.0 } else { 1.0 };
        let mut planes = vec![[0u64; 4]; centred.len().div_ceil(64)];
        let mut quantised_sum = 0f32;
        for (i, &x) in centred.iter().enumerate() {
            let u = (((x - low) / step).round() as u32).min(15);
            quantised_sum += low + step * u as f32;
            for (b, plane) in planes[i / 64].iter_mut().enumerate() {
                *plane |= (((u >> b) & 1) as u64) << (i % 64);
            }
        }
        let centred_square: f32 = centred.iter().map(|x| x * x).sum();
        let offset = match metric {
            Metric::L2 => centred_square,
            _ => {
                let qc: f32 = query.iter().zip(centroid).map(|(q, c)| q * c).sum();
                let cc: f32 = centroid.iter().map(|c| c * c).sum();
                qc - cc
            }
        };
        QueryTable {
            metric,
            planes,
            low,
            step,
            quantised_sum,
            offset,
            centred_norm: centred_square.sqrt(),
            count: count_fn(),
        }
    }

    /// The estimated distance to the vector coded in `code` (in the metric's own units).
    pub fn estimate(&self, code: &[u8]) -> f32 {
        self.estimate_with_error(code).0
    }

    /// The estimate and the standard deviation of its error, from RaBitQ's analysis: the
    /// one-bit estimate of `<q - c, d>` errs by about `|q - c| |d| sqrt(1/rho^2 - 1) /
    /// sqrt(D - 1)`, where `rho = |d|_1 / (sqrt(D) |d|)` says how well the signs follow `d`
    /// (so `|d|^2 / rho^2 = g^2 D`), plus what the query's 4-bit steps add (uniform, so
    /// `step / sqrt(12)` per dimension, scaled by `g`). A distance counts `<q - c, d>` twice
    /// under L2, once under the dot-product metrics.
    pub fn estimate_with_error(&self, code: &[u8]) -> (f32, f32) {
        let bits = code.len() - CORRECTION_BYTES;
        let (ones, weighted) = (self.count)(&self.planes, &code[..bits]);
        let selected = self.low * ones as f32 + self.step * weighted as f32;
        let signed = 2.0 * selected - self.quantised_sum;
        let float = |at: usize| f32::from_le_bytes(code[at..at + 4].try_into().unwrap());
        let (r2, g, cv) = (float(bits), float(bits + 4), float(bits + 8));
        let centred_dot = g * signed;
        let estimate = match self.metric {
            Metric::L2 => (self.offset + r2 - 2.0 * centred_dot).max(0.0),
            Metric::Cosine => 1.0 - (centred_dot + self.offset + cv),
            Metric::InnerProduct => -(centred_dot + self.offset + cv),
            Metric::L1 => f32::INFINITY,
        };
        let dims = (bits * 8) as f32;
        let sign_error =
            self.centred_norm * (g * g * dims - r2).max(0.0).sqrt() / (dims - 1.0).max(1.0).sqrt();
        let step_error = g * self.step * (dims / 12.0).sqrt();
        let times = if self.metric == Metric::L2 { 2.0 } else { 1.0 };
        (estimate, times * sign_error.hypot(step_error))
    }
}

fn count_fn() -> CountFn {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has the instruction.
        return |planes, code| unsafe { count_popcnt(planes, code) };
    }
    count_portable
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn count_popcnt(planes: &[[u64; 4]], code: &[u8]) -> (u32, u32) {
    count_portable(planes, code)
}

#[inline(always)]
fn count_portable(planes: &[[u64; 4]], code: &[u8]) -> (u32, u32) {
    let (mut ones, mut weighted) = (0u32, 0u32);
    for (plane, chunk) in planes.iter().zip(code.chunks(8)) {
        // Codes are whole words: the padded copy (a call to memcpy) is never taken.
        let c = match chunk.try_into() {
            Ok(word) => u64::from_le_bytes(word),
            Err(_) => {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                u64::from_le_bytes(word)
            }
        };
        ones += c.count_ones();
        weighted += (c & plane[0]).count_ones()
            + 2 * (c & plane[1]).count_ones()
            + 4 * (c & plane[2]).count_ones()
            + 8 * (c & plane[3]).count_ones();
    }
    (ones, weighted)
}

/// The mean of `rows` of `dims` values each (zeros when there are none).
pub fn centroid<'a>(rows: impl IntoIterator<Item = &'a [f32]>, dims: usize) -> Vec<f32> {
    let mut sum = vec![0f64; dims];
    let mut count = 0usize;
    for row in rows {
        count += 1;
        for (s, &x) in sum.iter_mut().zip(row) {
            *s += x as f64;
        }
    }
    sum.iter()
        .map(|s| (s / count.max(1) as f64) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn random_vectors(n: usize, dims: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n * dims).map(|_| rng(&mut s)).collect()
    }

    fn normalise(v: &mut [f32]) {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
    }

    #[test]
    fn codes_hold_rotated_bits_and_corrections() {
        assert_eq!(code_bytes(784), 1024 / 8 + 12);
        assert_eq!(code_bytes(1), 1 + 12);
        let v = [1.0, -1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0];
        let c = [0.5; 9];
        let mut code = vec![0u8; code_bytes(9)];
        encode(&c, &v, &mut code);
        let float = |at: usize| f32::from_le_bytes(code[at..at + 4].try_into().unwrap());
        let r2: f32 = v.iter().map(|x| (x - 0.5) * (x - 0.5)).sum();
        assert!((float(2) - r2).abs() < 1e-4, "the rotation keeps |v - c|");
        assert_eq!(float(10), 0.5 * v.iter().sum::<f32>(), "<c, v>");
    }

    #[test]
    fn rotation_keeps_inner_products() {
        let a = random_vectors(1, 100, 1);
        let b = random_vectors(1, 100, 2);
        let zero = [0.0; 100];
        let (ra, rb) = (rotate(&a, &zero), rotate(&b, &zero));
        assert_eq!(ra.len(), 128);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(&ra, &rb) - dot(&a, &b)).abs() < 1e-4);
        assert!((dot(&ra, &ra) - dot(&a, &a)).abs() < 1e-4);
    }

    /// Before the query's quantisation the estimator is exact for the coded vector itself
    /// (distance 0); after it, close to 0 against the vector's spread around the centroid.
    #[test]
    fn a_vector_is_estimated_near_itself() {
        let data = random_vectors(50, 64, 3);
        let c = centroid(data.chunks(64), 64);
        let mut v = random_vectors(1, 64, 4);
        let mut code = vec![0u8; code_bytes(64)];
        encode(&c, &v, &mut code);
        let r2 = Metric::L2.distance(&c, &v);
        let est = QueryTable::new(Metric::L2, &c, &v).estimate(&code);
        assert!(est.abs() < 0.05 * r2, "{est} against {r2}");
        normalise(&mut v);
        encode(&c, &v, &mut code);
        let est = QueryTable::new(Metric::Cosine, &c, &v).estimate(&code);
        assert!(est.abs() < 0.05, "{est}");
    }

    /// On random data the estimate ranks well: the true nearest of 1,000 is among the
    /// estimate's best 5%, and estimates correlate with exact distances, for every metric.
    #[test]
    fn estimates_rank_like_exact_distances() {
        let (n, dims) = (1000, 96);
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
            let mut data = random_vectors(n, dims, 7);
            if metric == Metric::Cosine {
                data.chunks_mut(dims).for_each(normalise);
            }
            let c = centroid(data.chunks(dims), dims);
            let cb = code_bytes(dims);
            let mut codes = vec![0u8; n * cb];
            for (row, code) in data.chunks(dims).zip(codes.chunks_mut(cb)) {
                encode(&c, row, code);
            }
            for qi in 0..10 {
                let mut q = random_vectors(1, dims, 1000 + qi);
                if metric == Metric::Cosine {
                    normalise(&mut q);
                }
                let table = QueryTable::new(metric, &c, &q);
                let exact: Vec<f32> = data.chunks(dims).map(|r| metric.distance(&q, r)).collect();
                let est: Vec<f32> = codes.chunks(cb).map(|code| table.estimate(code)).collect();
                let best = (0..n)
                    .min_by(|&a, &b| exact[a].total_cmp(&exact[b]))
                    .unwrap();
                let rank = est.iter().filter(|&&e| e < est[best]).count();
                assert!(
                    rank < n / 20,
                    "{metric:?}: true nearest ranked {rank} by estimate"
                );
                let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
                let (me, mx) = (mean(&est), mean(&exact));
                let cov: f32 = est
                    .iter()
                    .zip(&exact)
                    .map(|(e, x)| (e - me) * (x - mx))
                    .sum();
                let ve: f32 = est.iter().map(|e| (e - me).powi(2)).sum();
                let vx: f32 = exact.iter().map(|x| (x - mx).powi(2)).sum();
                let r = cov / (ve * vx).sqrt();
                assert!(r > 0.6, "{metric:?}: correlation {r}");
            }
        }
    }

    /// The error the estimate reports is a standard deviation: on random and on clustered
    /// data, for every metric, about 1 estimate in 1,000 misses by more than three of them
    /// (a normal error would: 0.3%), and none by more than five.
    #[test]
    fn errors_stay_within_their_reported_spread() {
        let (n, dims) = (2000, 200);
        for clustered in [false, true] {
            for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
                let mut data = random_vectors(n, dims, 11);
                if clustered {
                    // Ten clusters: each row is pulled towards one of ten centres.
                    let centres = random_vectors(10, dims, 12);
                    for (i, row) in data.chunks_mut(dims).enumerate() {
                        let centre = &centres[(i % 10) * dims..(i % 10 + 1) * dims];
                        row.iter_mut()
                            .zip(centre)
                            .for_each(|(x, c)| *x = 0.3 * *x + 3.0 * c);
                    }
                }
                if metric == Metric::Cosine {
                    data.chunks_mut(dims).for_each(normalise);
                }
                let c = centroid(data.chunks(dims), dims);
                let cb = code_bytes(dims);
                let (mut beyond3, mut beyond5, mut total) = (0, 0, 0);
                let mut code = vec![0u8; cb];
                for qi in 0..20 {
                    let q = &data[qi * 97 * dims..(qi * 97 + 1) * dims];
                    let table = QueryTable::new(metric, &c, q);
                    for row in data.chunks(dims) {
                        encode(&c, row, &mut code);
                        let (est, err) = table.estimate_with_error(&code);
                        let miss = (est - metric.distance(q, row)).abs();
                        beyond3 += (miss > 3.0 * err + 1e-4) as usize;
                        beyond5 += (miss > 5.0 * err + 1e-4) as usize;
                        total += 1;
                    }
                }
                let share = beyond3 as f64 / total as f64;
                assert!(share < 0.005, "{metric:?} clustered {clustered}: {share}");
                assert_eq!(beyond5, 0, "{metric:?} clustered {clustered}");
            }
        }
    }

    #[test]
    fn centroid_is_the_mean() {
        let rows: [&[f32]; 2] = [&[1.0, 2.0], &[3.0, 6.0]];
        assert_eq!(centroid(rows, 2), vec![2.0, 4.0]);
        assert_eq!(centroid([], 3), vec![0.0; 3]);
    }
}
