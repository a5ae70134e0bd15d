//! Throughput of [`Bf16Matmul::matmul`], with each engine this machine allows, on the shapes of
//! all-MiniLM-L6-v2's linear layers (64 tokens, and a batch of 16 such texts), in thread CPU
//! time: each shape alone (weights hot in cache), then the 24 matmuls of a forward pass in order
//! over six layers' distinct weights (21 MB of bf16, streamed from L3/memory as in the encoder).
//! Run pinned to one core:
//! `taskset -c 1 target/release/examples/amx_gemm`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use infergate_amx::{bf16, Aligned, Bf16Matmul, Engine, PackedWeights};

fn thread_cpu_seconds() -> f64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9
}

fn main() {
    let engines: Vec<Bf16Matmul> = [Engine::Tiles, Engine::Avx512Bf16]
        .into_iter()
        .filter_map(Bf16Matmul::with_engine)
        .collect();
    if engines.is_empty() {
        println!("neither AMX-BF16 nor AVX512-BF16 is usable on this machine");
    }
    for amx in engines {
        println!("== {}", amx.engine().name());
        run(amx);
    }
}

fn run(amx: Bf16Matmul) {
    // Operands on cache lines vs. shifted off them by 32 bytes, interleaved (why `Aligned`).
    {
        let (k, n, rows) = (384, 1152, 64);
        let w: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
        let packed = PackedWeights::pack(&w, k, n).unwrap();
        let mut a: Aligned<u16> = Aligned::zeroed(rows * k + 16);
        let mut c: Aligned<f32> = Aligned::zeroed(rows * n + 8);
        for (i, v) in a.iter_mut().enumerate() {
            *v = bf16((i % 17) as f32 * 0.1 - 0.8);
        }
        let mut t = [Vec::new(), Vec::new()];
        for _ in 0..300 {
            for (v, off) in [0usize, 16].iter().enumerate() {
                let s = thread_cpu_seconds();
                amx.matmul(&a[*off..*off + rows * k], rows, &packed, &mut c[off / 2..]);
                t[v].push(thread_cpu_seconds() - s);
            }
        }
        for (v, t) in t.iter_mut().enumerate() {
            t.sort_by(f64::total_cmp);
            println!(
                "{}: p50 {:.4} ms",
                ["aligned", "misaligned"][v],
                t[t.len() / 2] * 1e3
            );
        }
    }
    for rows in [64, 1024] {
        let mut total = 0.0;
        for (k, n) in [(384, 1152), (384, 384), (384, 1536), (1536, 384)] {
            let a: Vec<u16> = (0..rows * k)
                .map(|i| bf16((i % 17) as f32 * 0.1 - 0.8))
                .collect();
            let w: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
            let packed = PackedWeights::pack(&w, k, n).unwrap();
            let mut c: Aligned<f32> = Aligned::zeroed(rows * n);
            let reps = 20_000 / rows;
            amx.matmul(&a, rows, &packed, &mut c);
            let t = thread_cpu_seconds();
            for _ in 0..reps {
                amx.matmul(&a, rows, &packed, &mut c);
            }
            let s = (thread_cpu_seconds() - t) / reps as f64;
            total += s * 6.0;
            println!(
                "{rows}×{k}×{n}: {:.4} ms, {:.0} GFLOPS",
                s * 1e3,
                (2 * rows * k * n) as f64 / s / 1e9
            );
        }
        println!("{rows} rows, six layers: {:.3} ms", total * 1e3);
    }
    let shapes = [(384, 1152), (384, 384), (384, 1536), (1536, 384)];
    let layers: Vec<Vec<PackedWeights>> = (0..6)
        .map(|l| {
            shapes
                .iter()
                .map(|&(k, n)| {
                    let w: Vec<f32> = (0..k * n)
                        .map(|i| ((i + l) % 13) as f32 * 0.01 - 0.06)
                        .collect();
                    PackedWeights::pack(&w, k, n).unwrap()
                })
                .collect()
        })
        .collect();
    for rows in [64, 1024] {
        let a: Vec<u16> = (0..rows * 1536)
            .map(|i| bf16((i % 17) as f32 * 0.1 - 0.8))
            .collect();
        let mut c = vec![0f32; rows * 1536];
        let reps = 3000 / rows;
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = thread_cpu_seconds();
            for layer in &layers {
                for w in layer {
                    amx.matmul(&a[..rows * w.k()], rows, w, &mut c);
                }
            }
            times.push(thread_cpu_seconds() - t);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "forward pass order, {rows} rows, distinct weights: p50 {:.3} ms, min {:.3} ms",
            times[times.len() / 2] * 1e3,
            times[0] * 1e3
        );
    }
}
