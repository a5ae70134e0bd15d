//! Cache lookup latency at 100,000 entries alone (development aid; the report comes from
//! `infergate semantic bench`).
#![allow(clippy::unwrap_used, clippy::print_stdout)]
fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let r = infergate_semantic::eval::cache_lookup_latency(384, n, 5_000);
    println!(
        "n={n} lists={} median_list={} wall p50={:?} p99={:?} max={:?} | cpu p50={:?} p99={:?} | recall={}",
        r.lists, r.median_list, r.p50, r.p99, r.max, r.cpu_p50, r.cpu_p99, r.recall
    );
}
