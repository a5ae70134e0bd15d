//! A vector index with insert *and* delete: exact search while small, an inverted-file (IVF)
//! approximate index once large.
//!
//! Why our own: the semantic cache evicts (LRU, TTL, byte budget) as often as it inserts, and
//! the well-kept Rust ANN crates either build immutable indexes (`instant-distance`) or do not
//! support removal (`hnsw_rs`); rebuilding an HNSW graph on every eviction is not an option. An
//! IVF index supports both in O(1) amortised: vectors live in the list of their nearest
//! centroid; a query scans the `nprobe` nearest lists. Centroids are trained with a few rounds
//! of k-means on the vectors present when the index crosses `ivf_threshold`, and retrained when
//! it has grown 4× since — cheap at cache sizes (100k × 384 floats), and recall for the close
//! neighbours a cache cares about (cosine ≥ 0.85) stays near 1 (see the recall test and
//! `docs/benchmarks/semantic.md`).

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::vector::{dot, normalize, Vector};

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

struct Slot {
    id: u64,
    vector: Vector,
    list: usize,
}

/// Vectors keyed by caller ids.
pub struct VectorIndex {
    dim: usize,
    options: IndexOptions,
    slots: Vec<Slot>,
    pos: HashMap<u64, usize>,
    /// IVF: centroids and, per list, positions in `slots`.
    centroids: Vec<Vec<f32>>,
    lists: Vec<Vec<usize>>,
    trained_at: usize,
}

impl VectorIndex {
    pub fn new(dim: usize, options: IndexOptions) -> Self {
        Self {
            dim,
            options,
            slots: Vec::new(),
            pos: HashMap::new(),
            centroids: Vec::new(),
            lists: Vec::new(),
            trained_at: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Vectors per IVF list, largest first (empty while the index is exact).
    pub fn list_sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.lists.iter().map(Vec::len).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes
    }

    pub fn is_ivf(&self) -> bool {
        !self.centroids.is_empty()
    }

    pub fn insert(&mut self, id: u64, vector: Vector) {
        if vector.len() != self.dim {
            return;
        }
        self.remove(id);
        let list = self.nearest_list(&vector);
        let at = self.slots.len();
        self.slots.push(Slot { id, vector, list });
        self.pos.insert(id, at);
        if let Some(l) = self.lists.get_mut(list) {
            l.push(at);
        }
        let n = self.slots.len();
        if (self.centroids.is_empty() && n >= self.options.ivf_threshold)
            || (!self.centroids.is_empty() && n >= self.trained_at * 4)
        {
            self.train();
        }
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let Some(at) = self.pos.remove(&id) else {
            return false;
        };
        let list = self.slots[at].list;
        if let Some(l) = self.lists.get_mut(list) {
            if let Some(i) = l.iter().position(|&p| p == at) {
                l.swap_remove(i);
            }
        }
        let last = self.slots.len() - 1;
        if at != last {
            // The last slot moves into `at`: fix its entries.
            let moved_list = self.slots[last].list;
            let moved_id = self.slots[last].id;
            if let Some(l) = self.lists.get_mut(moved_list) {
                if let Some(i) = l.iter().position(|&p| p == last) {
                    l[i] = at;
                }
            }
            self.pos.insert(moved_id, at);
        }
        self.slots.swap_remove(at);
        if self.is_ivf() && self.slots.len() < self.options.ivf_threshold / 2 {
            self.centroids.clear();
            self.lists.clear();
            self.trained_at = 0;
        }
        true
    }

    /// The best match at or above `min_score`: (id, cosine).
    pub fn nearest(&self, query: &[f32], min_score: f32) -> Option<(u64, f32)> {
        let mut best: Option<(u64, f32)> = None;
        let mut consider = |s: &Slot| {
            let score = dot(&s.vector, query);
            if score >= min_score && best.is_none_or(|(_, b)| score > b) {
                best = Some((s.id, score));
            }
        };
        if self.centroids.is_empty() {
            self.slots.iter().for_each(&mut consider);
        } else {
            for list in self.probe_lists(query) {
                for &p in &self.lists[list] {
                    consider(&self.slots[p]);
                }
            }
        }
        best
    }

    /// The `k` best matches at or above `min_score`, best first.
    pub fn top_k(&self, query: &[f32], k: usize, min_score: f32) -> Vec<(u64, f32)> {
        let mut out: Vec<(u64, f32)> = Vec::new();
        let mut consider = |s: &Slot| {
            let score = dot(&s.vector, query);
            if score >= min_score {
                out.push((s.id, score));
            }
        };
        if self.centroids.is_empty() {
            self.slots.iter().for_each(&mut consider);
        } else {
            for list in self.probe_lists(query) {
                for &p in &self.lists[list] {
                    consider(&self.slots[p]);
                }
            }
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(k);
        out
    }

    /// Exact best match (for measuring the IVF's recall).
    pub fn nearest_exact(&self, query: &[f32]) -> Option<(u64, f32)> {
        self.slots
            .iter()
            .map(|s| (s.id, dot(&s.vector, query)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn probe_lists(&self, query: &[f32]) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = self
            .centroids
            .iter()
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
        self.centroids
            .iter()
            .enumerate()
            .map(|(i, c)| (i, dot(c, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(i, _)| i)
    }

    /// k-means (spherical: centroids re-normalised) on a sample, then reassign every vector.
    fn train(&mut self) {
        let n = self.slots.len();
        // ~sqrt(n) lists keeps both the centroid scan and the list scans short.
        let k = ((n as f64).sqrt() as usize).clamp(16, 1024);
        let mut rng = SmallRng::seed_from_u64(n as u64);
        let sample_n = (k * 32).min(n);
        let sample: Vec<usize> = (0..sample_n).map(|_| rng.random_range(0..n)).collect();
        let mut centroids: Vec<Vec<f32>> = (0..k)
            .map(|_| {
                self.slots[sample[rng.random_range(0..sample.len())]]
                    .vector
                    .to_vec()
            })
            .collect();
        for _ in 0..6 {
            let mut sums = vec![vec![0f32; self.dim]; k];
            let mut counts = vec![0usize; k];
            for &i in &sample {
                let v = &self.slots[i].vector;
                let c = centroids
                    .iter()
                    .enumerate()
                    .map(|(j, c)| (j, dot(c, v)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map_or(0, |(j, _)| j);
                counts[c] += 1;
                for (s, x) in sums[c].iter_mut().zip(v.iter()) {
                    *s += *x;
                }
            }
            for j in 0..k {
                if counts[j] == 0 {
                    // Re-seed an empty list with a random vector.
                    centroids[j] = self.slots[rng.random_range(0..n)].vector.to_vec();
                } else {
                    normalize(&mut sums[j]);
                    centroids[j] = std::mem::take(&mut sums[j]);
                }
            }
        }
        self.centroids = centroids;
        self.lists = vec![Vec::new(); k];
        for at in 0..n {
            let list = self.nearest_list(&self.slots[at].vector);
            self.slots[at].list = list;
            self.lists[list].push(at);
        }
        self.trained_at = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_unit(rng: &mut SmallRng, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        normalize(&mut v);
        v
    }

    #[test]
    fn insert_remove_and_exact_search() {
        let mut idx = VectorIndex::new(3, IndexOptions::default());
        idx.insert(1, Vector::from(vec![1.0, 0.0, 0.0]));
        idx.insert(2, Vector::from(vec![0.0, 1.0, 0.0]));
        assert_eq!(idx.nearest(&[0.9, 0.1, 0.0], 0.5).map(|x| x.0), Some(1));
        assert!(idx.remove(1));
        assert_eq!(idx.nearest(&[0.9, 0.1, 0.0], 0.5), None);
        assert_eq!(idx.len(), 1);
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
            idx.insert(i, Vector::from(v.clone()));
            vecs.push(v);
        }
        assert!(idx.is_ivf());
        // Remove a third (eviction churn), then query perturbed copies of the survivors.
        for i in (0..3000u64).step_by(3) {
            idx.remove(i);
        }
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
