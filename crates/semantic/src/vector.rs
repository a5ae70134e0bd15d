//! Vectors and the few operations on them the index, cache and router need. Vectors are
//! L2-normalised on creation, so cosine similarity is a dot product.

use std::sync::Arc;

/// A unit-length embedding, cheap to share.
pub type Vector = Arc<[f32]>;

/// Dot product. Written as 8 independent accumulators so the compiler vectorises it without
/// `unsafe` or target-specific intrinsics.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        let o = i * 8;
        for j in 0..8 {
            acc[j] += a[o + j] * b[o + j];
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..n {
        tail += a[i] * b[i];
    }
    acc.iter().sum::<f32>() + tail
}

/// Scale `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two vectors of any length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d = dot(a, b);
    let n = (dot(a, a) * dot(b, b)).sqrt();
    if n == 0.0 {
        0.0
    } else {
        d / n
    }
}

/// The mean of unit vectors, re-normalised (a centroid).
pub fn centroid<'a>(vs: impl IntoIterator<Item = &'a [f32]>, dim: usize) -> Vec<f32> {
    let mut c = vec![0f32; dim];
    for v in vs {
        for (x, y) in c.iter_mut().zip(v) {
            *x += *y;
        }
    }
    normalize(&mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..389).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..389).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn normalized_cosine_is_dot() {
        let mut a = vec![3.0, 4.0, 0.0];
        normalize(&mut a);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-6);
    }
}
