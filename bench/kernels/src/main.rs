//! ns per distance of each kernel variant at common embedding sizes.
//! Run: make bench-kernels  (cargo run --release --manifest-path bench/kernels/Cargo.toml)

#[path = "../../../src/vector/kernels.rs"]
#[allow(dead_code)]
mod kernels;

use std::hint::black_box;
use std::time::Instant;

const POOL: usize = 4096; // vectors per size: 2-25 MB, larger than L2 like an index scan's working set
const REPEATS: usize = 7;

fn pool(dim: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..POOL * dim)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// Median over repeats of ns per call, one query against every vector of the pool.
fn time(dim: usize, data: &[f32], query: &[f32], f: impl Fn(&[f32], &[f32]) -> f32) -> f64 {
    let mut samples: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            let mut acc = 0f32;
            for row in data.chunks_exact(dim) {
                acc += f(black_box(query), black_box(row));
            }
            black_box(acc);
            start.elapsed().as_nanos() as f64 / POOL as f64
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[REPEATS / 2]
}

fn main() {
    let variants = kernels::variants();
    println!("| dims | kernel | variant | ns/distance | speed-up vs portable |");
    println!("|---:|---|---|---:|---:|");
    for dim in [128usize, 512, 784, 1536] {
        let data = pool(dim, dim as u64);
        let query = &pool(dim, 7)[..dim];
        for (kernel, pick) in [("l2_squared", 0usize), ("dot", 1), ("cosine", 2)] {
            let mut portable = 0.0;
            for v in &variants {
                let ns = match pick {
                    0 => time(dim, &data, query, v.l2_squared),
                    1 => time(dim, &data, query, v.dot),
                    _ => time(dim, &data, query, |a, b| (v.cosine_parts)(a, b).0),
                };
                if v.name == "portable" {
                    portable = ns;
                }
                println!("| {dim} | {kernel} | {} | {ns:.1} | {:.2}x |", v.name, portable / ns);
            }
        }
    }
}
