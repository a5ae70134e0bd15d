//! Routing accuracy per route threshold (development aid).
#![allow(clippy::unwrap_used, clippy::print_stdout)]
fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or("models/all-MiniLM-L6-v2".into());
    let enc =
        infergate_semantic::embed::bert::BertEncoder::load(std::path::Path::new(&dir)).unwrap();
    for t in [0.0f32, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35] {
        let r = infergate_semantic::eval::evaluate_routing(&enc, t, 0.15, 2.5).unwrap();
        println!(
            "threshold {t}: {}/{} confusion {:?}",
            r.correct, r.total, r.confusion
        );
    }
}
