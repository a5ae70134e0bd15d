//! A vector index with insert *and* delete: exact search while small, an inverted-file (IVF)
//! approximate index once large.
//!
//! Why our own: the semantic cache evicts (LRU, TTL, byte budget) as often as it inserts, and
//! the well-kept Rust ANN crates either build immutable indexes (`instant-distance`) or do not
//! support removal (`hnsw_rs`); rebuilding an HNSW graph on every eviction is not an option. An
//! IVF index supports both in O(dim): vectors live in the list of their nearest centroid; a
//! query scans the `nprobe` nearest lists. Centroids are trained with a few rounds of k-means on
//! the vectors present when the index crosses `ivf_threshold`, and retrained when it has grown
//! 4× since — cheap at cache sizes (100k × 384 floats), and recall for the close neighbours a
//! cache cares about (cosine ≥ 0.85) stays near 1 (see the recall test and
//! `docs/benchmarks/semantic.md`).
//!
//! Storage is list-major and contiguous, because a lookup is memory-bound: each list keeps its
//! ids, its vectors as one `Vec<f32>` (row `i` belongs to `ids[i]`) and an int8 copy of them
//! (one scale per row). A query scans the int8 rows of its lists — a quarter of the bytes, read
//! sequentially — keeps the best few candidates, and re-ranks those on the exact f32 rows, so
//! the scores it returns are exact. Removal swaps the list's last row into the hole. While the
//! index is exact (small) it is a single list with no centroid.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::vector::{dot, normalize};

#[derive(Debug, Clone, Copy)]
pub struct IndexOptions {
    /// Below this many vectors every query is exact.
    pub ivf_threshold: usize,
    /// Lists scanned per query.
    pub nprobe: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            ivf_threshold: 4096,
            nprobe: 12,
        }
    }
}

/// Candidates kept from the int8 scan for exact re-ranking, beyond the `k` asked for. The int8
/// score of a unit vector is within ~0.01 of the exact one (see `int8_scores_track_exact`), so
/// the true best is among the first few approximate ones.
const RERANK_EXTRA: usize = 8;
/// How far below `min_score` an int8 score may be and still be re-ranked (quantisation error
/// bound with room to spare).
const INT8_SLACK: f32 = 0.05;

/// One inverted list: ids and their vectors, row-major, in the same order.
#[derive(Default, Clone)]
struct List {
    ids: Vec<u64>,
    exact: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
}

impl List {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn push(&mut self, id: u64, v: &[f32]) {
        self.ids.push(id);
        self.exact.extend_from_slice(v);
        let start = self.codes.len();
        self.codes.resize(start + v.len(), 0);
        let scale = quantize(v, &mut self.codes[start..]);
        self.scales.push(scale);
    }

    fn row(&self, i: usize, dim: usize) -> &[f32] {
        &self.exact[i * dim..(i + 1) * dim]
    }

    /// Remove row `i` by moving the last row into it; returns the id that moved, if any.
    fn swap_remove(&mut self, i: usize, dim: usize) -> Option<u64> {
        let last = self.ids.len() - 1;
        self.ids.swap_remove(i);
        self.scales.swap_remove(i);
        if i != last {
            self.exact
                .copy_within(last * dim..(last + 1) * dim, i * dim);
            self.codes
                .copy_within(last * dim..(last + 1) * dim, i * dim);
        }
        self.exact.truncate(last * dim);
        self.codes.truncate(last * dim);
        (i != last).then(|| self.ids[i])
    }
}

/// Symmetric int8 quantisation with one scale per vector: `v[j] ≈ out[j] * scale`.
fn quantize(v: &[f32], out: &mut [i8]) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        out.iter_mut().for_each(|c| *c = 0);
        return 0.0;
    }
    let inv = 127.0 / max;
    for (c, x) in out.iter_mut().zip(v) {
        *c = (x * inv).round().clamp(-127.0, 127.0) as i8;
    }
    max / 127.0
}

/// Integer dot product, 16 independent i32 lanes so it vectorises (|c| ≤ 127, so products fit
/// in i16 and the sum of a 384-dim row in i32 with room to spare).
#[inline]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0i32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..16 {
            acc[j] += i32::from(x[j]) * i32::from(y[j]);
        }
    }
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    acc.iter().sum::<i32>() + tail
}

/// The best `keep` (score, list, row) seen, best first.
struct TopN {
    keep: usize,
    items: Vec<(f32, u32, u32)>,
}

impl TopN {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            items: Vec::with_capacity(keep + 1),
        }
    }

    /// The score a candidate must beat to enter.
    #[inline]
    fn bar(&self) -> f32 {
        if self.items.len() < self.keep {
            f32::NEG_INFINITY
        } else {
            self.items.last().map_or(f32::NEG_INFINITY, |x| x.0)
        }
    }

    fn offer(&mut self, score: f32, list: u32, row: u32) {
        if self.keep == 0 || score <= self.bar() {
            return;
        }
        let at = self.items.partition_point(|x| x.0 >= score);
        self.items.insert(at, (score, list, row));
        self.items.truncate(self.keep);
    }
}

/// Vectors keyed by caller ids.
pub struct VectorIndex {
    dim: usize,
    options: IndexOptions,
    /// One list while exact; one per centroid once IVF.
    lists: Vec<List>,
    /// IVF centroids, row-major (`lists.len()` rows); empty while exact.
    centroids: Vec<f32>,
    /// id → (list, row).
    pos: HashMap<u64, (u32, u32)>,
    trained_at: usize,
}

impl VectorIndex {
    pub fn new(dim: usize, options: IndexOptions) -> Self {
        Self {
            dim,
            options,
            lists: vec![List::default()],
            centroids: Vec::new(),
            pos: HashMap::new(),
            trained_at: 0,
        }
    }

    /// Bytes one stored vector of `dim` floats costs (f32 row, int8 row, scale, id).
    pub fn bytes_per_vector(dim: usize) -> usize {
        dim * 5 + 4 + 8
    }

    pub fn len(&self) -> usize {
        self.pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// Vectors per IVF list, largest first (empty while the index is exact).
    pub fn list_sizes(&self) -> Vec<usize> {
        if !self.is_ivf() {
            return Vec::new();
        }
        let mut sizes: Vec<usize> = self.lists.iter().map(List::len).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes
    }

    pub fn is_ivf(&self) -> bool {
        !self.centroids.is_empty()
    }

    /// Insert (or replace) `id`. A vector of the wrong dimension is ignored.
    pub fn insert(&mut self, id: u64, vector: &[f32]) {
        if vector.len() != self.dim {
            return;
        }
        self.remove(id);
        let list = self.nearest_list(vector);
        let l = &mut self.lists[list];
        let row = l.len();
        l.push(id, vector);
        self.pos.insert(id, (list as u32, row as u32));
        let n = self.len();
        if (!self.is_ivf() && n >= self.options.ivf_threshold)
            || (self.is_ivf() && n >= self.trained_at * 4)
        {
            self.train();
        }
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let Some((list, row)) = self.pos.remove(&id) else {
            return false;
        };
        if let Some(moved) = self.lists[list as usize].swap_remove(row as usize, self.dim) {
            self.pos.insert(moved, (list, row));
        }
        if self.is_ivf() && self.len() < self.options.ivf_threshold / 2 {
            self.untrain();
        }
        true
    }

    /// The best match at or above `min_score`: (id, cosine).
    pub fn nearest(&self, query: &[f32], min_score: f32) -> Option<(u64, f32)> {
        self.candidates(query, 1, min_score).into_iter().next()
    }

    /// The `k` best matches at or above `min_score`, best first.
    pub fn top_k(&self, query: &[f32], k: usize, min_score: f32) -> Vec<(u64, f32)> {
        self.candidates(query, k, min_score)
    }

    /// The one scan behind [`nearest`](Self::nearest) and [`top_k`](Self::top_k): int8 scores
    /// over the probed lists, the best `k + RERANK_EXTRA` re-scored exactly, those at or above
    /// `min_score` returned best first (at most `k`).
    fn candidates(&self, query: &[f32], k: usize, min_score: f32) -> Vec<(u64, f32)> {
        if k == 0 || query.len() != self.dim || self.is_empty() {
            return Vec::new();
        }
        let mut qcodes = vec![0i8; self.dim];
        let qscale = quantize(query, &mut qcodes);
        let floor = min_score - INT8_SLACK;
        let mut top = TopN::new(k + RERANK_EXTRA);
        let mut scan = |li: usize| {
            let l = &self.lists[li];
            for (row, (codes, scale)) in l.codes.chunks_exact(self.dim).zip(&l.scales).enumerate() {
                let approx = dot_i8(codes, &qcodes) as f32 * scale * qscale;
                if approx >= floor {
                    top.offer(approx, li as u32, row as u32);
                }
            }
        };
        if self.is_ivf() {
            self.probe_lists(query).into_iter().for_each(&mut scan);
        } else {
            scan(0);
        }
        let mut out: Vec<(u64, f32)> = top
            .items
            .iter()
            .map(|&(_, li, row)| {
                let l = &self.lists[li as usize];
                let score = dot(l.row(row as usize, self.dim), query);
                (l.ids[row as usize], score)
            })
            .filter(|(_, s)| *s >= min_score)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(k);
        out
    }

    /// Exact best match over every vector (for measuring the IVF's recall).
    pub fn nearest_exact(&self, query: &[f32]) -> Option<(u64, f32)> {
        self.lists
            .iter()
            .flat_map(|l| {
                l.ids
                    .iter()
                    .zip(l.exact.chunks_exact(self.dim))
                    .map(|(id, v)| (*id, dot(v, query)))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn probe_lists(&self, query: &[f32]) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = self
            .centroids
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(i, c)| (i, dot(c, query)))
            .collect();
        let k = self.options.nprobe.min(scored.len());
        if k < scored.len() {
            scored.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1));
        }
        scored.truncate(k);
        scored.into_iter().map(|(i, _)| i).collect()
    }

    fn nearest_list(&self, v: &[f32]) -> usize {
        nearest_centroid(&self.centroids, self.dim, v)
    }

    /// Move every vector back into one list (the index shrank below half the IVF threshold).
    fn untrain(&mut self) {
        let old = std::mem::replace(&mut self.lists, vec![List::default()]);
        self.centroids.clear();
        self.trained_at = 0;
        self.pos.clear();
        for l in &old {
            for (i, id) in l.ids.iter().enumerate() {
                self.pos.insert(*id, (0, self.lists[0].len() as u32));
                self.lists[0].push(*id, l.row(i, self.dim));
            }
        }
    }

    /// k-means (spherical: centroids re-normalised) on a sample, then reassign every vector.
    fn train(&mut self) {
        let dim = self.dim;
        let n = self.len();
        // ~sqrt(n) lists keeps both the centroid scan and the list scans short.
        let k = ((n as f64).sqrt() as usize).clamp(16, 1024);
        let old = std::mem::take(&mut self.lists);
        let rows: Vec<&[f32]> = old.iter().flat_map(|l| l.exact.chunks_exact(dim)).collect();
        let mut rng = SmallRng::seed_from_u64(n as u64);
        let sample_n = (k * 32).min(n);
        let sample: Vec<usize> = (0..sample_n).map(|_| rng.random_range(0..n)).collect();
        let mut centroids: Vec<f32> = Vec::with_capacity(k * dim);
        for _ in 0..k {
            centroids.extend_from_slice(rows[sample[rng.random_range(0..sample.len())]]);
        }
        for _ in 0..6 {
            let mut sums = vec![0f32; k * dim];
            let mut counts = vec![0usize; k];
            for &i in &sample {
                let v = rows[i];
                let c = nearest_centroid(&centroids, dim, v);
                counts[c] += 1;
                for (s, x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(v) {
                    *s += *x;
                }
            }
            for j in 0..k {
                let dst = &mut centroids[j * dim..(j + 1) * dim];
                if counts[j] == 0 {
                    // Re-seed an empty list with a random vector.
                    dst.copy_from_slice(rows[rng.random_range(0..n)]);
                } else {
                    let s = &mut sums[j * dim..(j + 1) * dim];
                    normalize(s);
                    dst.copy_from_slice(s);
                }
            }
        }
        let mut lists = vec![List::default(); k];
        self.pos.clear();
        for l in &old {
            for (i, id) in l.ids.iter().enumerate() {
                let v = l.row(i, dim);
                let c = nearest_centroid(&centroids, dim, v);
                self.pos.insert(*id, (c as u32, lists[c].len() as u32));
                lists[c].push(*id, v);
            }
        }
        self.lists = lists;
        self.centroids = centroids;
        self.trained_at = n;
    }
}

fn nearest_centroid(centroids: &[f32], dim: usize, v: &[f32]) -> usize {
    centroids
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, c)| (i, dot(c, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_unit(rng: &mut SmallRng, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        normalize(&mut v);
        v
    }

    /// Every id is where `pos` says, and each list's arrays agree in length.
    fn assert_consistent(idx: &VectorIndex) {
        let mut seen = 0;
        for (li, l) in idx.lists.iter().enumerate() {
            assert_eq!(l.exact.len(), l.len() * idx.dim);
            assert_eq!(l.codes.len(), l.len() * idx.dim);
            assert_eq!(l.scales.len(), l.len());
            for (row, id) in l.ids.iter().enumerate() {
                assert_eq!(idx.pos.get(id), Some(&(li as u32, row as u32)), "id {id}");
                seen += 1;
            }
        }
        assert_eq!(seen, idx.len());
    }

    #[test]
    fn insert_remove_and_exact_search() {
        let mut idx = VectorIndex::new(3, IndexOptions::default());
        idx.insert(1, &[1.0, 0.0, 0.0]);
        idx.insert(2, &[0.0, 1.0, 0.0]);
        assert_eq!(idx.nearest(&[0.9, 0.1, 0.0], 0.5).map(|x| x.0), Some(1));
        assert!(idx.remove(1));
        assert_eq!(idx.nearest(&[0.9, 0.1, 0.0], 0.5), None);
        assert_eq!(idx.len(), 1);
        assert!(!idx.remove(1));
        // Wrong dimension: ignored, not stored.
        idx.insert(3, &[1.0, 0.0]);
        assert_eq!(idx.len(), 1);
        assert_consistent(&idx);
    }

    #[test]
    fn scores_are_exact_and_top_k_is_ordered() {
        let dim = 64;
        let mut rng = SmallRng::seed_from_u64(3);
        let mut idx = VectorIndex::new(dim, IndexOptions::default());
        let vecs: Vec<Vec<f32>> = (0..200).map(|_| random_unit(&mut rng, dim)).collect();
        for (i, v) in vecs.iter().enumerate() {
            idx.insert(i as u64, v);
        }
        let q = &vecs[17];
        let (id, s) = idx.nearest(q, 0.5).unwrap();
        assert_eq!(id, 17);
        assert_eq!(s, dot(q, &vecs[17]), "re-ranked on the exact row");
        let top = idx.top_k(q, 5, -1.0);
        assert_eq!(top.len(), 5);
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
        // Against brute force on the exact vectors.
        let mut brute: Vec<(u64, f32)> = vecs
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, dot(v, q)))
            .collect();
        brute.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(
            top.iter().map(|x| x.0).collect::<Vec<_>>(),
            brute[..5].iter().map(|x| x.0).collect::<Vec<_>>()
        );
        // min_score filters on the exact score.
        assert!(idx.top_k(q, 5, 0.99).iter().all(|x| x.1 >= 0.99));
    }

    #[test]
    fn int8_scores_track_exact() {
        let dim = 384;
        let mut rng = SmallRng::seed_from_u64(11);
        let mut worst = 0f32;
        for _ in 0..500 {
            let a = random_unit(&mut rng, dim);
            let b = random_unit(&mut rng, dim);
            let (mut ca, mut cb) = (vec![0i8; dim], vec![0i8; dim]);
            let (sa, sb) = (quantize(&a, &mut ca), quantize(&b, &mut cb));
            let approx = dot_i8(&ca, &cb) as f32 * sa * sb;
            worst = worst.max((approx - dot(&a, &b)).abs());
        }
        assert!(worst < 0.01, "int8 error {worst}");
    }

    #[test]
    fn removal_keeps_rows_and_ids_together() {
        let dim = 16;
        let mut rng = SmallRng::seed_from_u64(5);
        let mut idx = VectorIndex::new(
            dim,
            IndexOptions {
                ivf_threshold: 64,
                nprobe: 4,
            },
        );
        let mut live: HashMap<u64, Vec<f32>> = HashMap::new();
        // Churn through exact → IVF → retrain → exact again, checking every step.
        for step in 0..2000u64 {
            if step < 1200 || step % 3 != 0 {
                let id = rng.random_range(0..400u64);
                let v = random_unit(&mut rng, dim);
                idx.insert(id, &v);
                live.insert(id, v);
            }
            if step >= 1200 || step % 4 == 0 {
                let id = rng.random_range(0..400u64);
                assert_eq!(idx.remove(id), live.remove(&id).is_some());
            }
            if step % 97 == 0 {
                assert_consistent(&idx);
            }
        }
        assert_consistent(&idx);
        assert_eq!(idx.len(), live.len());
        // Each live id still maps to its own vector.
        for (id, v) in &live {
            let (li, row) = idx.pos[id];
            assert_eq!(idx.lists[li as usize].row(row as usize, dim), v.as_slice());
            assert_eq!(idx.nearest_exact(v).map(|x| x.0), Some(*id));
        }
    }

    #[test]
    fn shrinking_below_half_the_threshold_goes_back_to_exact() {
        let dim = 8;
        let mut rng = SmallRng::seed_from_u64(9);
        let mut idx = VectorIndex::new(
            dim,
            IndexOptions {
                ivf_threshold: 100,
                nprobe: 2,
            },
        );
        for i in 0..150u64 {
            idx.insert(i, &random_unit(&mut rng, dim));
        }
        assert!(idx.is_ivf());
        assert!(!idx.list_sizes().is_empty());
        for i in 0..110u64 {
            idx.remove(i);
        }
        assert!(!idx.is_ivf());
        assert!(idx.list_sizes().is_empty());
        assert_eq!(idx.len(), 40);
        assert_consistent(&idx);
    }

    #[test]
    fn ivf_finds_near_duplicates_and_survives_churn() {
        let dim = 48;
        let mut rng = SmallRng::seed_from_u64(7);
        let mut idx = VectorIndex::new(
            dim,
            IndexOptions {
                ivf_threshold: 512,
                nprobe: 8,
            },
        );
        let mut vecs = Vec::new();
        for i in 0..3000u64 {
            let v = random_unit(&mut rng, dim);
            idx.insert(i, &v);
            vecs.push(v);
        }
        assert!(idx.is_ivf());
        // Remove a third (eviction churn), then query perturbed copies of the survivors.
        for i in (0..3000u64).step_by(3) {
            idx.remove(i);
        }
        assert_consistent(&idx);
        let mut found = 0;
        let mut total = 0;
        for i in (1..3000u64).step_by(7) {
            if i % 3 == 0 {
                continue;
            }
            let mut q = vecs[i as usize].clone();
            for x in q.iter_mut() {
                *x += rng.random_range(-0.02f32..0.02);
            }
            normalize(&mut q);
            total += 1;
            if idx.nearest(&q, 0.8).map(|x| x.0) == Some(i) {
                found += 1;
            }
        }
        assert!(found * 100 >= total * 97, "recall {found}/{total}");
    }
}
