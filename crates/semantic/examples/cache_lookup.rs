//! Cache lookup latency at 100,000 entries alone (development aid; the report comes from
//! `infergate semantic bench`).
#![allow(clippy::unwrap_used, clippy::print_stdout)]
fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let (p50, p99, max, recall) = infergate_semantic::eval::cache_lookup_latency(384, n, 5_000);
    println!("n={n} p50={p50:?} p99={p99:?} max={max:?} recall={recall}");
}
