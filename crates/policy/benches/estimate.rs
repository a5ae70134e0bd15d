//! The token estimate on the request path (`estimate::estimate`: the chat messages' JSON walked,
//! their text counted exactly as `tiktoken` counts it), next to counting the same text with
//! `bpe-openai`'s own `count` and with `tiktoken-rs` (what the estimate used before), for 1 KB
//! and 16 KB prompts (16 KB is the most text counted exactly; longer prompts are extrapolated).
//!
//! The prompts are consecutive slices of this repository's documentation (English prose with
//! code, tables and numbers), a different slice for every call, so the estimate's memo of word
//! counts is exercised as real traffic exercises it: common words repeat, new ones keep coming.
//! The estimate is also timed with its memo emptied before every call (the worst case).
//!
//! `cargo bench -p infergate-policy --bench estimate` times 3,000 calls of each after 300
//! warm-up calls and writes the percentiles to `docs/benchmarks/token-estimate.md`. Wall time of
//! one thread; run it on a quiet machine.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use infergate_policy::estimate::{estimate, reset_memo, warm_up};

const CALLS: usize = 3_000;
const WARMUP: usize = 300;

/// The documentation's text, every page once.
fn corpus() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut pages: Vec<_> = std::fs::read_dir(format!("{root}/docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    pages.push(format!("{root}/README.md").into());
    pages
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// `n` prompts of about `bytes` each: consecutive slices of `text` (cut at char boundaries),
/// wrapping around; each with the chat body's `messages` JSON.
fn prompts(text: &str, bytes: usize, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    while out.len() < n {
        let mut end = (at + bytes).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let slice = text[at..end].to_string();
        at = if end + bytes > text.len() { 0 } else { end };
        let raw = serde_json::json!([
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": slice},
        ])
        .to_string();
        out.push((raw, slice));
    }
    out
}

fn percentiles(mut ns: Vec<u64>) -> (f64, f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (
        at(0.5),
        at(0.99),
        ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
    )
}

/// Time `f(i)` for calls `i` = 0.., `before(i)` run untimed ahead of each.
fn time(mut before: impl FnMut(), mut f: impl FnMut(usize) -> u64) -> (f64, f64, f64) {
    for i in 0..WARMUP {
        before();
        black_box(f(i));
    }
    let mut ns = Vec::with_capacity(CALLS);
    for i in WARMUP..WARMUP + CALLS {
        before();
        let t = Instant::now();
        black_box(f(i));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    percentiles(ns)
}

fn main() {
    warm_up();
    let tk = tiktoken_rs::cl100k_base_singleton();
    let bpe = bpe_openai::cl100k_base();
    let text = corpus();
    let mut rows = Vec::new();
    for bytes in [1024usize, 16 * 1024] {
        // Room for the system message, so that the 16 KB prompt is still counted exactly.
        let ps = prompts(&text, bytes - 64, WARMUP + CALLS);
        let model = "meta-llama/Llama-3.1-8B-Instruct";
        let est = |i: usize| {
            let (raw, _) = &ps[i % ps.len()];
            estimate(model, raw.as_bytes(), Some(16), 1024, true).input
        };
        // The estimate counts what tiktoken counts (plus the messages' fixed overhead).
        for (raw, slice) in ps.iter().take(50) {
            let full = format!("You are a helpful assistant.\n{slice}\n");
            let overhead = 2 * 3 + 3;
            assert_eq!(
                estimate(model, raw.as_bytes(), Some(16), 1024, true).input,
                tk.encode_ordinary(&full).len() as u64 + overhead
            );
        }
        reset_memo();
        let warm = time(|| {}, est);
        let cold = time(reset_memo, est);
        let tik = time(
            || {},
            |i| tk.encode_ordinary(&ps[i % ps.len()].1).len() as u64,
        );
        let lib = time(|| {}, |i| bpe.count(ps[i % ps.len()].1.as_str()) as u64);
        rows.push((bytes, warm, cold, lib, tik));
    }
    let mut md = String::from(
        "# Token estimate on the request path\n\n\
         Produced by `cargo bench -p infergate-policy --bench estimate` \
         (`crates/policy/benches/estimate.rs`): 3,000 timed calls of each after 300 warm-up \
         calls, one thread, wall time in µs. Each call counts a different prompt: consecutive \
         slices of this repository's documentation (English prose with code, tables and \
         numbers). The estimate is what a request with limits on pays (`estimate::estimate` on \
         the chat body's `messages`: JSON walked, text counted exactly as tiktoken counts it, \
         `cl100k_base`): ASCII lines are split by a hand-written scanner of cl100k_base's pattern \
         and each piece's count is remembered per thread; *memo cold* empties that memo before \
         every call. Beside it, counting the same text alone with `bpe-openai`'s `count` and \
         with `tiktoken-rs` (the estimate's tokenizer two changes ago). All give the same count \
         (asserted).\n\n\
         | prompt | estimate p50 | estimate p99 | estimate p50, memo cold | bpe-openai count p50 | tiktoken-rs count p50 | tiktoken / estimate (mean) |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (bytes, warm, cold, lib, tik) in &rows {
        let _ = writeln!(
            md,
            "| {} KB | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}× |",
            bytes / 1024,
            warm.0,
            warm.1,
            cold.0,
            lib.0,
            tik.0,
            tik.2 / warm.2
        );
    }
    let _ = writeln!(
        md,
        "\nMachine: {} logical CPUs, `{}`.",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        std::env::consts::ARCH
    );
    print!("{md}");
    let out = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/benchmarks/token-estimate.md"
    );
    std::fs::write(out, md).unwrap();
    println!("wrote {out}");
}
