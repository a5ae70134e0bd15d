//! The token estimate on the request path (`estimate::estimate`: the chat messages' JSON walked,
//! their text counted with `bpe-openai`), next to counting the same text with `tiktoken-rs`
//! (what the estimate used before), for the overhead benchmark's 1 KB chat body and for a
//! 16 KB one (the most text counted exactly; longer prompts are extrapolated).
//!
//! `cargo bench -p infergate-policy --bench estimate` times 3,000 calls of each after a warm-up
//! and writes the percentiles to `docs/benchmarks/token-estimate.md`. Wall time of one thread;
//! run it on a quiet machine.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use infergate_policy::estimate::{estimate, warm_up};

const CALLS: usize = 3_000;

/// A chat body's `messages` with about `bytes` of English-like text.
fn messages(bytes: usize) -> (String, String) {
    let words = [
        "the", "gateway", "reserves", "tokens", "before", "a", "request", "runs,", "and",
        "settles", "them", "when", "usage", "arrives;", "limits", "are", "per", "tenant", "key",
        "model.", "Numbers", "like", "1024", "or", "3.14", "appear", "too:", "don't", "forget",
        "it!",
    ];
    let mut text = String::new();
    let mut i = 0;
    while text.len() < bytes {
        text.push_str(words[(i * 7 + i / 3) % words.len()]);
        text.push(' ');
        i += 1;
    }
    let raw = serde_json::json!([
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": text},
    ])
    .to_string();
    (raw, text)
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

fn time(mut f: impl FnMut() -> u64) -> (f64, f64, f64) {
    for _ in 0..300 {
        black_box(f());
    }
    let mut ns = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        black_box(f());
        ns.push(t.elapsed().as_nanos() as u64);
    }
    percentiles(ns)
}

fn main() {
    warm_up();
    let tk = tiktoken_rs::cl100k_base_singleton();
    let mut rows = Vec::new();
    for bytes in [1024usize, 16 * 1024] {
        let (raw, text) = messages(bytes);
        let est = time(|| {
            estimate(
                "meta-llama/Llama-3.1-8B-Instruct",
                raw.as_bytes(),
                Some(16),
                1024,
                true,
            )
            .input
        });
        let tik = time(|| tk.encode_ordinary(&text).len() as u64);
        let bpe = time(|| bpe_openai::cl100k_base().count(text.as_str()) as u64);
        assert_eq!(
            tk.encode_ordinary(&text).len(),
            bpe_openai::cl100k_base().count(text.as_str())
        );
        rows.push((bytes, est, tik, bpe));
    }
    let mut md = String::from(
        "# Token estimate on the request path\n\n\
         Produced by `cargo bench -p infergate-policy --bench estimate` \
         (`crates/policy/benches/estimate.rs`): 3,000 timed calls of each after 300 warm-up \
         calls, one thread, wall time in µs. The estimate is what a request with limits on pays \
         (`estimate::estimate` on the chat body's `messages`: JSON walked, text counted with \
         `bpe-openai`, cl100k_base); beside it, counting the same text alone with `bpe-openai` \
         and with `tiktoken-rs` (the estimate's tokenizer before). Both give the same count \
         (asserted).\n\n\
         | prompt | estimate p50 | estimate p99 | bpe-openai count p50 | tiktoken-rs count p50 | tiktoken-rs p99 | tiktoken / bpe-openai (mean) |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (bytes, est, tik, bpe) in &rows {
        let _ = writeln!(
            md,
            "| {} KB | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}× |",
            bytes / 1024,
            est.0,
            est.1,
            bpe.0,
            tik.0,
            tik.1,
            tik.2 / bpe.2
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
