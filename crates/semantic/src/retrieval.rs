//! Retrieval: a collection of local documents, chunked and embedded when the configuration
//! loads, searched by the prompt's embedding; the best chunks go into the system prompt with
//! their sources.
//!
//! Chunking splits on blank lines (paragraphs) and packs paragraphs into chunks of about
//! `chunk_chars`, carrying the last paragraph over as overlap; a paragraph longer than a chunk is
//! cut on sentence or word boundaries. The index is persisted as JSON next to the documents (or
//! where configured) with each file's content hash and the embedding model's name, so a restart
//! or reload embeds only files that changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::embed::{EmbedError, Embedder};
use crate::index::{IndexOptions, VectorIndex};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Chunk {
    /// The file it came from (as configured, relative paths kept relative).
    pub source: String,
    /// 1-based index of the chunk within its file.
    pub part: usize,
    pub text: String,
}

#[derive(Serialize, Deserialize)]
struct StoredChunk {
    #[serde(flatten)]
    chunk: Chunk,
    vector: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    hash: String,
    chunks: Vec<StoredChunk>,
}

#[derive(Serialize, Deserialize)]
struct StoredIndex {
    model: String,
    dim: usize,
    chunk_chars: usize,
    files: HashMap<String, StoredFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// Split `text` into chunks of about `chunk_chars` characters.
pub fn chunk_text(text: &str, chunk_chars: usize) -> Vec<String> {
    let chunk_chars = chunk_chars.max(100);
    let mut paragraphs: Vec<String> = Vec::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if para.len() <= chunk_chars {
            paragraphs.push(para.to_string());
            continue;
        }
        // Cut long paragraphs at sentence ends, else at spaces.
        let mut rest = para;
        while rest.len() > chunk_chars {
            let mut cut = floor_boundary(rest, chunk_chars);
            let window = &rest[..cut];
            if let Some(i) = window.rfind(". ").filter(|i| *i > chunk_chars / 2) {
                cut = i + 1;
            } else if let Some(i) = window.rfind(' ').filter(|i| *i > chunk_chars / 2) {
                cut = i;
            }
            paragraphs.push(rest[..cut].trim().to_string());
            rest = rest[cut..].trim_start();
        }
        if !rest.is_empty() {
            paragraphs.push(rest.to_string());
        }
    }
    let mut chunks = Vec::new();
    let mut cur = String::new();
    let mut last_para = String::new();
    for p in paragraphs {
        if !cur.is_empty() && cur.len() + p.len() + 2 > chunk_chars {
            chunks.push(std::mem::take(&mut cur));
            // Overlap: the previous paragraph opens the next chunk when it is short.
            if last_para.len() < chunk_chars / 3 {
                cur.push_str(&last_para);
            }
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(&p);
        last_para = p;
    }
    if !cur.trim().is_empty() {
        chunks.push(cur);
    }
    chunks
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A searchable collection.
pub struct Collection {
    pub name: Arc<str>,
    chunks: Vec<Chunk>,
    index: VectorIndex,
}

/// How a collection is built.
#[derive(Debug, Clone)]
pub struct CollectionSource {
    pub name: String,
    /// Files or directories (every `.md`, `.txt`, `.rst` inside, recursively).
    pub paths: Vec<PathBuf>,
    pub chunk_chars: usize,
    /// Where the index is persisted (None = not persisted).
    pub index_path: Option<PathBuf>,
}

fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RetrievalError> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), RetrievalError> {
        let io = |e: std::io::Error| RetrievalError::Io {
            path: p.display().to_string(),
            detail: e.to_string(),
        };
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                if e.is_dir() {
                    walk(&e, out)?;
                } else if matches!(
                    e.extension().and_then(|x| x.to_str()),
                    Some("md" | "txt" | "rst" | "markdown")
                ) {
                    out.push(e);
                }
            }
            Ok(())
        } else if p.is_file() {
            out.push(p.to_path_buf());
            Ok(())
        } else {
            Err(RetrievalError::Io {
                path: p.display().to_string(),
                detail: "no such file or directory".into(),
            })
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    Ok(out)
}

impl Collection {
    /// Read, chunk and embed the documents, reusing the persisted index for unchanged files.
    pub async fn load(
        source: &CollectionSource,
        embedder: &dyn Embedder,
    ) -> Result<Self, RetrievalError> {
        let stored: Option<StoredIndex> = source
            .index_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|s: &StoredIndex| {
                s.model == embedder.name()
                    && s.dim == embedder.dim()
                    && s.chunk_chars == source.chunk_chars
            });
        let mut stored_files = stored.map(|s| s.files).unwrap_or_default();
        let mut files_out: HashMap<String, StoredFile> = HashMap::new();
        for path in list_files(&source.paths)? {
            let key = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| RetrievalError::Io {
                path: key.clone(),
                detail: e.to_string(),
            })?;
            let hash = format!("{:016x}", xxhash_rust::xxh64::xxh64(text.as_bytes(), 0));
            if let Some(f) = stored_files.remove(&key).filter(|f| f.hash == hash) {
                files_out.insert(key, f);
                continue;
            }
            let pieces = chunk_text(&text, source.chunk_chars);
            let mut chunks = Vec::with_capacity(pieces.len());
            for batch in pieces.chunks(16) {
                let vecs = embedder.embed(batch).await?;
                for (t, v) in batch.iter().zip(vecs) {
                    chunks.push(StoredChunk {
                        chunk: Chunk {
                            source: key.clone(),
                            part: chunks.len() + 1,
                            text: t.clone(),
                        },
                        vector: v.to_vec(),
                    });
                }
            }
            files_out.insert(key, StoredFile { hash, chunks });
        }
        let stored = StoredIndex {
            model: embedder.name().to_string(),
            dim: embedder.dim(),
            chunk_chars: source.chunk_chars,
            files: files_out,
        };
        if let Some(p) = &source.index_path {
            let bytes = serde_json::to_vec(&stored).map_err(|e| RetrievalError::Io {
                path: p.display().to_string(),
                detail: e.to_string(),
            })?;
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, p))
                .map_err(|e| RetrievalError::Io {
                    path: p.display().to_string(),
                    detail: e.to_string(),
                })?;
        }
        let mut keys: Vec<&String> = stored.files.keys().collect();
        keys.sort();
        let mut chunks = Vec::new();
        let mut index = VectorIndex::new(stored.dim, IndexOptions::default());
        for k in keys {
            for sc in &stored.files[k].chunks {
                index.insert(chunks.len() as u64, &sc.vector);
                chunks.push(sc.chunk.clone());
            }
        }
        Ok(Self {
            name: Arc::from(source.name.as_str()),
            chunks,
            index,
        })
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The best `k` chunks for a query embedding, with their similarity.
    pub fn search(&self, query: &[f32], k: usize, min_score: f32) -> Vec<(&Chunk, f32)> {
        self.index
            .top_k(query, k, min_score)
            .into_iter()
            .filter_map(|(id, s)| self.chunks.get(id as usize).map(|c| (c, s)))
            .collect()
    }
}

/// The text added to the system prompt for the retrieved chunks.
pub fn context_block(hits: &[(&Chunk, f32)]) -> String {
    let mut out = String::from(
        "Use the following context to answer. Cite the sources you use by their [number].\n",
    );
    for (i, (c, _)) in hits.iter().enumerate() {
        out.push_str(&format!(
            "\n[{}] (source: {}#{})\n{}\n",
            i + 1,
            c.source,
            c.part,
            c.text.trim()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_size_and_keep_all_text() {
        let para = "word ".repeat(50);
        let text = format!("{para}\n\n{para}\n\nshort one\n\n{}", "x. ".repeat(400));
        let chunks = chunk_text(&text, 300);
        assert!(chunks.len() >= 4);
        assert!(
            chunks.iter().all(|c| c.len() <= 300 + 120),
            "{:?}",
            chunks.iter().map(String::len).collect::<Vec<_>>()
        );
        assert!(chunks.iter().any(|c| c.contains("short one")));
    }

    #[tokio::test]
    async fn load_search_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.md"),
            "Refunds are issued within 14 days of purchase, to the card that paid, once the \
             returned item has arrived at our warehouse.\n\nShipping is free for every order \
             over 50 euros, and costs 4.90 euros below that amount, anywhere in the country.",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.txt"),
            "Our office is in Lisbon and opens at 9am.",
        )
        .unwrap();
        let pool = crate::embed::hashing_pool(128);
        let src = CollectionSource {
            name: "docs".into(),
            paths: vec![dir.path().to_path_buf()],
            chunk_chars: 100,
            index_path: Some(dir.path().join("index.json")),
        };
        let c = Collection::load(&src, &pool).await.unwrap();
        assert!(c.len() >= 3, "{}", c.len());
        let q = pool
            .embed(&["when are refunds issued".into()])
            .await
            .unwrap();
        let hits = c.search(&q[0], 1, 0.0);
        assert!(hits[0].0.text.contains("Refunds"), "{:?}", hits);
        assert!(context_block(&hits).contains("a.md#1"));
        // A reload reuses the persisted vectors.
        assert!(dir.path().join("index.json").exists());
        let again = Collection::load(&src, &pool).await.unwrap();
        assert_eq!(again.len(), c.len());
    }
}
