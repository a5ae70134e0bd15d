//! Corpus vectors on disk, so a gateway start does not re-embed the injection corpus, topic and
//! route examples every time (on one busy core that is tens of seconds).
//!
//! A file per corpus, named by the model's identity and a hash of the corpus's texts (in
//! order): a changed model or a changed text is a different file, never a stale vector. The
//! file repeats both keys and ends with a checksum of its vectors; anything that does not match
//! is ignored (and rewritten), so a torn or foreign file costs one re-embedding, never a wrong
//! vector. Written to a temporary name and renamed into place.
//!
//! Layout (little-endian): magic `IGVEC001`, model id (u64), corpus key (u64), dim (u32),
//! count (u32), `count × dim` f32, xxh64 of the vector bytes (u64).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh64::{xxh64, Xxh64};

use crate::vector::Vector;

const MAGIC: &[u8; 8] = b"IGVEC001";
const HEADER: usize = 8 + 8 + 8 + 4 + 4;

/// Where corpus vectors of one model are kept.
#[derive(Debug, Clone)]
pub struct VectorStore {
    dir: PathBuf,
    model: u64,
}

impl VectorStore {
    /// `model`: an identity of the embedding model (see [`model_identity`]).
    pub fn new(dir: impl Into<PathBuf>, model: u64) -> Self {
        Self {
            dir: dir.into(),
            model,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn key(texts: &[String]) -> u64 {
        let mut h = Xxh64::new(0xc0de);
        for t in texts {
            h.update(&(t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        h.digest()
    }

    fn path(&self, key: u64) -> PathBuf {
        self.dir.join(format!("{:016x}-{key:016x}.vec", self.model))
    }

    /// The vectors of `texts` if a valid file has them.
    pub fn load(&self, texts: &[String], dim: usize) -> Option<Vec<Vector>> {
        let key = Self::key(texts);
        let bytes = std::fs::read(self.path(key)).ok()?;
        if bytes.len() < HEADER + 8 || &bytes[..8] != MAGIC {
            return None;
        }
        let u64_at = |o: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?))
        };
        let u32_at = |o: usize| -> Option<usize> {
            Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?) as usize)
        };
        if u64_at(8)? != self.model || u64_at(16)? != key {
            return None;
        }
        let (d, n) = (u32_at(24)?, u32_at(28)?);
        if d != dim || n != texts.len() || bytes.len() != HEADER + n * d * 4 + 8 {
            return None;
        }
        let data = &bytes[HEADER..HEADER + n * d * 4];
        if u64_at(HEADER + n * d * 4)? != xxh64(data, 0) {
            return None;
        }
        let floats: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if d == 0 {
            return Some(vec![Vector::from(Vec::new()); n]);
        }
        Some(floats.chunks_exact(d).map(Vector::from).collect())
    }

    /// Keep the vectors of `texts` (creating the directory if needed).
    pub fn save(&self, texts: &[String], vectors: &[Vector]) -> std::io::Result<()> {
        let dim = vectors.first().map_or(0, |v| v.len());
        if vectors.len() != texts.len() || vectors.iter().any(|v| v.len() != dim) {
            return Err(std::io::Error::other("vectors do not match the texts"));
        }
        let key = Self::key(texts);
        let mut data = Vec::with_capacity(vectors.len() * dim * 4);
        for v in vectors {
            for x in v.iter() {
                data.extend_from_slice(&x.to_le_bytes());
            }
        }
        let mut out = Vec::with_capacity(HEADER + data.len() + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.model.to_le_bytes());
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&(dim as u32).to_le_bytes());
        out.extend_from_slice(&(vectors.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(&xxh64(&data, 0).to_le_bytes());
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(key);
        // A name of its own per writer (two starts, or two threads, may save the same corpus).
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}.{seq}", std::process::id()));
        std::fs::write(&tmp, &out)?;
        std::fs::rename(&tmp, &path)
    }
}

/// An identity for a local model directory: a hash of its `config.json`, `tokenizer.json` and
/// `model.safetensors` contents (the weights are streamed: ~90 MB, tens of milliseconds).
pub fn model_identity(dir: &Path) -> std::io::Result<u64> {
    let mut h = Xxh64::new(0x1d);
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        let mut f = std::fs::File::open(dir.join(name))?;
        let mut buf = vec![0u8; 1 << 20];
        h.update(name.as_bytes());
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.digest())
}

/// An identity for a remote model: its endpoint and model name.
pub fn remote_identity(endpoint: &str, model: &str) -> u64 {
    xxh64(format!("{endpoint}\0{model}").as_bytes(), 0x1e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vecs(n: usize, dim: usize) -> Vec<Vector> {
        (0..n)
            .map(|i| {
                Vector::from(
                    (0..dim)
                        .map(|j| (i * dim + j) as f32 * 0.5)
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    }

    #[test]
    fn round_trip_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = VectorStore::new(dir.path().join("v"), 7);
        let texts: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        assert!(store.load(&texts, 4).is_none());
        let v = vecs(3, 4);
        store.save(&texts, &v).unwrap();
        assert_eq!(store.load(&texts, 4).unwrap(), v);
        // Another text, order, dimension or model: not this file.
        assert!(store
            .load(&["a".into(), "b".into(), "d".into()], 4)
            .is_none());
        assert!(store
            .load(&["b".into(), "a".into(), "c".into()], 4)
            .is_none());
        assert!(store.load(&texts, 5).is_none());
        assert!(VectorStore::new(dir.path().join("v"), 8)
            .load(&texts, 4)
            .is_none());
    }

    #[test]
    fn a_damaged_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = VectorStore::new(dir.path(), 1);
        let texts: Vec<String> = vec!["x".into(), "y".into()];
        store.save(&texts, &vecs(2, 3)).unwrap();
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 2] ^= 0xff; // flip bits in a vector
        std::fs::write(&path, &bytes).unwrap();
        assert!(store.load(&texts, 3).is_none());
        bytes.truncate(bytes.len() - 3); // torn write
        std::fs::write(&path, &bytes).unwrap();
        assert!(store.load(&texts, 3).is_none());
        // Rewritten, it is good again.
        store.save(&texts, &vecs(2, 3)).unwrap();
        assert_eq!(store.load(&texts, 3).unwrap(), vecs(2, 3));
    }

    #[test]
    fn mismatched_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = VectorStore::new(dir.path(), 1);
        assert!(store.save(&["a".into()], &vecs(2, 3)).is_err());
    }
}
