//! The encoder pool: a fixed set of OS threads that run a [`SentenceEncoder`], fed by a bounded
//! queue. Async callers wait on a oneshot channel, so the runtime's threads never run model code.
//!
//! Coalescing: a worker that wakes up takes every job waiting (up to `max_batch` texts) and
//! encodes them as one batch, so concurrent requests share a forward pass instead of queueing
//! behind each other one by one. The queue is bounded in texts; beyond it callers get
//! [`EmbedError::Overloaded`] at once instead of waiting without limit.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::{BoxFuture, EmbedError, Embedded, Embedder, SentenceEncoder};
use crate::vector::Vector;

#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Worker threads (each runs the encoder single-threaded).
    pub workers: usize,
    /// Most texts encoded in one forward pass.
    pub max_batch: usize,
    /// Most texts waiting in the queue.
    pub max_queue: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            workers: 1,
            max_batch: 16,
            max_queue: 1024,
        }
    }
}

struct Job {
    texts: Vec<String>,
    /// Whether the caller wants token maxima too ([`Embedded`]).
    token_max: bool,
    reply: oneshot::Sender<Result<Vec<Embedded>, EmbedError>>,
}

struct Queue {
    jobs: VecDeque<Job>,
    texts: usize,
    stopped: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// Runs an encoder on its own threads. Dropping the pool stops the threads once the queue is
/// empty.
pub struct EncoderPool {
    shared: Arc<Shared>,
    dim: usize,
    name: String,
    options: PoolOptions,
}

impl EncoderPool {
    pub fn start(
        encoder: Arc<dyn SentenceEncoder>,
        name: impl Into<String>,
        options: PoolOptions,
    ) -> std::io::Result<Self> {
        let options = PoolOptions {
            workers: options.workers.max(1),
            max_batch: options.max_batch.max(1),
            max_queue: options.max_queue.max(1),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                texts: 0,
                stopped: false,
            }),
            wake: Condvar::new(),
        });
        for i in 0..options.workers {
            let shared = shared.clone();
            let encoder = encoder.clone();
            std::thread::Builder::new()
                .name(format!("embed-{i}"))
                .spawn(move || work(&shared, encoder.as_ref(), options.max_batch))?;
        }
        Ok(Self {
            shared,
            dim: encoder.dim(),
            name: name.into(),
            options,
        })
    }

    pub fn options(&self) -> PoolOptions {
        self.options
    }

    /// Texts waiting for a worker.
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().texts
    }

    fn submit(
        &self,
        texts: Vec<String>,
        token_max: bool,
    ) -> Result<oneshot::Receiver<Result<Vec<Embedded>, EmbedError>>, EmbedError> {
        let (tx, rx) = oneshot::channel();
        let mut q = self.shared.queue.lock();
        if q.stopped {
            return Err(EmbedError::Stopped);
        }
        if q.texts + texts.len() > self.options.max_queue && q.texts > 0 {
            return Err(EmbedError::Overloaded(q.texts));
        }
        q.texts += texts.len();
        q.jobs.push_back(Job {
            texts,
            token_max,
            reply: tx,
        });
        drop(q);
        self.shared.wake.notify_one();
        Ok(rx)
    }
}

impl Drop for EncoderPool {
    fn drop(&mut self) {
        self.shared.queue.lock().stopped = true;
        self.shared.wake.notify_all();
    }
}

fn work(shared: &Shared, encoder: &dyn SentenceEncoder, max_batch: usize) {
    loop {
        let mut batch: Vec<Job> = Vec::new();
        {
            let mut q = shared.queue.lock();
            while q.jobs.is_empty() {
                if q.stopped {
                    return;
                }
                shared.wake.wait(&mut q);
            }
            let mut n = 0;
            while let Some(job) = q.jobs.front() {
                if !batch.is_empty() && n + job.texts.len() > max_batch {
                    break;
                }
                n += job.texts.len();
                if let Some(job) = q.jobs.pop_front() {
                    batch.push(job);
                }
            }
            q.texts -= n;
            if !q.jobs.is_empty() {
                // More work than one batch: let another worker start on it.
                shared.wake.notify_one();
            }
        }
        // Callers that went away (client disconnected) need no vectors.
        batch.retain(|j| !j.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|j| j.texts.iter().map(String::as_str))
            .collect();
        // Token maxima come from the same forward pass, when any caller of the batch wants them.
        let with_max = batch
            .iter()
            .any(|j| j.token_max)
            .then(|| encoder.encode_with_token_max(&texts))
            .flatten();
        let encoded: Result<Vec<Embedded>, EmbedError> = match with_max {
            Some(r) => r.map(|v| {
                v.into_iter()
                    .map(|(e, m)| Embedded {
                        vector: Vector::from(e),
                        token_max: Some(Vector::from(m)),
                    })
                    .collect()
            }),
            None => encoder.encode(&texts).map(|v| {
                v.into_iter()
                    .map(|e| Embedded {
                        vector: Vector::from(e),
                        token_max: None,
                    })
                    .collect()
            }),
        };
        match encoded {
            Ok(vecs) => {
                let mut it = vecs.into_iter();
                for job in batch {
                    let mut mine: Vec<Embedded> = it.by_ref().take(job.texts.len()).collect();
                    if !job.token_max {
                        for e in &mut mine {
                            e.token_max = None;
                        }
                    }
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

impl Embedder for EncoderPool {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vector>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let rx = self.submit(texts.to_vec(), false)?;
            let out = rx.await.map_err(|_| EmbedError::Stopped)??;
            Ok(out.into_iter().map(|e| e.vector).collect())
        })
    }

    fn embed_with_token_max<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Embedded>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let rx = self.submit(texts.to_vec(), true)?;
            rx.await.map_err(|_| EmbedError::Stopped)?
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::HashingEncoder;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        inner: HashingEncoder,
        calls: AtomicUsize,
        slow: std::time::Duration,
    }

    impl SentenceEncoder for Counting {
        fn dim(&self) -> usize {
            self.inner.dim
        }
        fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.slow);
            self.inner.encode(texts)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_coalesced_and_answered_in_order() {
        let enc = Arc::new(Counting {
            inner: HashingEncoder { dim: 64 },
            calls: AtomicUsize::new(0),
            slow: std::time::Duration::from_millis(30),
        });
        let pool = Arc::new(
            EncoderPool::start(
                enc.clone(),
                "t",
                PoolOptions {
                    workers: 1,
                    max_batch: 64,
                    max_queue: 1000,
                },
            )
            .unwrap(),
        );
        let mut handles = Vec::new();
        for i in 0..20 {
            let pool = pool.clone();
            handles.push(tokio::spawn(async move {
                let texts = vec![format!("text number {i}"), format!("another {i}")];
                let v = pool.embed(&texts).await.unwrap();
                (texts, v)
            }));
        }
        for h in handles {
            let (texts, v) = h.await.unwrap();
            let want = HashingEncoder { dim: 64 }
                .encode(&[texts[0].as_str(), texts[1].as_str()])
                .unwrap();
            assert_eq!(&*v[0], want[0].as_slice());
            assert_eq!(&*v[1], want[1].as_slice());
        }
        // 20 requests, one slow worker: most of them shared a forward pass.
        assert!(
            enc.calls.load(Ordering::SeqCst) < 20,
            "{}",
            enc.calls.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_not_waited_on() {
        let enc = Arc::new(Counting {
            inner: HashingEncoder { dim: 8 },
            calls: AtomicUsize::new(0),
            slow: std::time::Duration::from_millis(200),
        });
        let pool = Arc::new(
            EncoderPool::start(
                enc,
                "t",
                PoolOptions {
                    workers: 1,
                    max_batch: 1,
                    max_queue: 2,
                },
            )
            .unwrap(),
        );
        let texts: Vec<String> = vec!["a".into()];
        let mut rxs = Vec::new();
        let mut refused = 0;
        for _ in 0..10 {
            match pool.submit(texts.clone(), false) {
                Ok(rx) => rxs.push(rx),
                Err(EmbedError::Overloaded(_)) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused >= 7, "refused {refused}");
        for rx in rxs {
            rx.await.unwrap().unwrap();
        }
    }
}
