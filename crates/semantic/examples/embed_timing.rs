//! Focused timing of the BERT encoder (development aid; `infergate semantic bench` is the
//! benchmark of record). Run it pinned to one core, e.g.
//! `taskset -c 1 target/release/examples/embed_timing MODEL_DIR [RUNS] [BATCH]`
//! (`EMBED_BACKEND=candle` for the candle forward pass; `EMBED_TEXT_FILE=PATH` to time that
//! file's text instead of the built-in one), and under
//! `perf record -g` to see where a forward pass spends its time.
#![allow(clippy::unwrap_used, clippy::print_stdout)]
use infergate_semantic::embed::bert::{Backend, BertEncoder};
use infergate_semantic::embed::SentenceEncoder;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: embed_timing MODEL_DIR [RUNS] [BATCH]");
    let runs: usize = args.next().map_or(200, |s| s.parse().unwrap());
    let batch: usize = args.next().map_or(16, |s| s.parse().unwrap());
    let backend = match std::env::var("EMBED_BACKEND").as_deref() {
        Ok("candle") => Backend::Candle,
        _ => Backend::Auto,
    };
    let enc = BertEncoder::load_with(std::path::Path::new(&dir), backend).unwrap();
    println!("backend: {}", enc.backend_name());
    let default_text = "Semantic caching stores the answers of a language model together with an \
                embedding of the prompt, so that a later prompt with the same meaning can be \
                answered from the cache without calling the model again; the threshold decides \
                how similar two prompts must be before the cached answer is served to the caller.";
    let file_text = std::env::var("EMBED_TEXT_FILE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| std::fs::read_to_string(p).unwrap());
    let text = file_text.as_deref().unwrap_or(default_text);
    println!("tokens: {}", enc.count_tokens(text).unwrap());
    // agreement with the sentence-transformers reference vectors
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../data/reference/minilm-l6-v2.json")).unwrap();
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let ours = enc.encode(&texts).unwrap();
    let mut worst = (1.0f32, "");
    for (item, v) in items.iter().zip(&ours) {
        let r: Vec<f32> = item["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let c = infergate_semantic::vector::cosine(v, &r);
        if c < worst.0 {
            worst = (c, item["text"].as_str().unwrap());
        }
    }
    println!("lowest cosine {:.6} ({:?})", worst.0, worst.1);
    for _ in 0..10 {
        enc.encode(&[text]).unwrap();
    }
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs {
        let c = infergate_semantic::eval::process_cpu_time();
        let s = std::time::Instant::now();
        enc.encode(&[text]).unwrap();
        wall.push(s.elapsed().as_secs_f64() * 1e3);
        cpu.push((infergate_semantic::eval::process_cpu_time() - c).as_secs_f64() * 1e3);
    }
    for (name, t) in [("wall", &mut wall), ("CPU", &mut cpu)] {
        t.sort_by(f64::total_cmp);
        println!(
            "one text, {name}: p50 {:.3} ms  p90 {:.3} ms  min {:.3} ms",
            t[t.len() / 2],
            t[t.len() * 9 / 10],
            t[0]
        );
    }
    let texts: Vec<&str> = std::iter::repeat_n(text, batch).collect();
    let rounds = (runs / batch).max(3);
    let c = infergate_semantic::eval::process_cpu_time();
    let s = std::time::Instant::now();
    for _ in 0..rounds {
        enc.encode(&texts).unwrap();
    }
    println!(
        "batch of {batch}: {:.3} ms per text wall, {:.3} ms CPU",
        s.elapsed().as_secs_f64() * 1e3 / (rounds * batch) as f64,
        (infergate_semantic::eval::process_cpu_time() - c).as_secs_f64() * 1e3
            / (rounds * batch) as f64
    );
}
