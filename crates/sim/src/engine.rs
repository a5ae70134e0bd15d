//! The engine's scheduler: which requests run and which wait.
//!
//! Owns the `--max-num-seqs` running slots, the bounded waiting queue (FIFO, or by request
//! priority under `--scheduling-policy priority`)
//! (`--max-waiting-queue-length`, beyond it requests are refused), and the LoRA accounting that
//! goes with them: at most `--max-loras` distinct adapters run at once, and a request for another
//! adapter waits while later requests that fit are admitted past it (as vLLM's scheduler skips
//! LoRA-blocked requests). These counts are what `vllm:num_requests_running`,
//! `vllm:num_requests_waiting` and `vllm:lora_requests_info` report.
//!
//! A running request holds a [`SeqSlot`]; dropping it frees the slot and admits waiters. A waiting
//! request holds a [`QueuedRequest`] future; dropping it (client gone) leaves the queue. When a
//! slot is free the request is admitted synchronously with no channel or timer, which keeps the
//! zero-latency path cheap. The lock is never held across an await.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The waiting queue is full.
#[derive(Debug, thiserror::Error)]
#[error("waiting queue is full ({limit} requests)")]
pub(crate) struct QueueFull {
    pub(crate) limit: usize,
}

/// The scheduler of one replica.
pub(crate) struct Engine {
    max_num_seqs: usize,
    max_waiting: usize,
    max_loras: usize,
    state: Mutex<EngineState>,
    running: AtomicUsize,
    waiting: AtomicUsize,
}

struct EngineState {
    running: usize,
    queue: VecDeque<Waiter>,
    next_ticket: u64,
    lora_running: HashMap<Arc<str>, usize>,
    lora_waiting: HashMap<Arc<str>, usize>,
    /// Unix time of the last change in running/waiting adapters.
    lora_updated_at: f64,
}

struct Waiter {
    ticket: u64,
    /// Lower goes first (vLLM's convention); 0 for everyone under `fcfs`.
    priority: i64,
    lora: Option<Arc<str>>,
    tx: oneshot::Sender<SeqSlot>,
}

/// The result of [`Engine::enqueue`].
pub(crate) enum Admission {
    /// A slot was free: the request runs now.
    Running(SeqSlot),
    /// The request waits; await the future for its slot.
    Queued(QueuedRequest),
}

/// A running slot; dropping it frees the slot.
pub(crate) struct SeqSlot {
    engine: Option<Arc<Engine>>,
    lora: Option<Arc<str>>,
    admitted_at: Instant,
}

/// A waiting request; resolves to its slot, and leaves the queue when dropped.
pub(crate) struct QueuedRequest {
    engine: Arc<Engine>,
    ticket: u64,
    rx: oneshot::Receiver<SeqSlot>,
    admitted: bool,
}

/// The scheduler's LoRA state, as `vllm:lora_requests_info` reports it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LoraActivity {
    /// Sorted, comma-separated.
    pub(crate) running: String,
    pub(crate) waiting: String,
    pub(crate) updated_at: f64,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Engine {
    pub(crate) fn new(max_num_seqs: usize, max_waiting: usize, max_loras: usize) -> Arc<Self> {
        Arc::new(Self {
            max_num_seqs: max_num_seqs.max(1),
            max_waiting,
            max_loras: max_loras.max(1),
            state: Mutex::new(EngineState {
                running: 0,
                queue: VecDeque::new(),
                next_ticket: 0,
                lora_running: HashMap::new(),
                lora_waiting: HashMap::new(),
                lora_updated_at: unix_now(),
            }),
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        })
    }

    pub(crate) fn max_num_seqs(&self) -> usize {
        self.max_num_seqs
    }

    pub(crate) fn max_loras(&self) -> usize {
        self.max_loras
    }

    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Admits the request now if it can run, queues it otherwise (behind every waiter with the
    /// same or a better — lower — `priority`), refuses it if the queue is full.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        lora: Option<Arc<str>>,
        priority: i64,
    ) -> Result<Admission, QueueFull> {
        let mut state = self.state.lock();
        if state.queue.is_empty() && self.admissible(&state, lora.as_ref()) {
            let slot = self.start_running(&mut state, lora);
            self.publish_counts(&state);
            return Ok(Admission::Running(slot));
        }
        if state.queue.len() >= self.max_waiting {
            return Err(QueueFull {
                limit: self.max_waiting,
            });
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let (tx, rx) = oneshot::channel();
        if let Some(name) = &lora {
            *state.lora_waiting.entry(Arc::clone(name)).or_default() += 1;
            state.lora_updated_at = unix_now();
        }
        let at = state.queue.partition_point(|w| w.priority <= priority);
        state.queue.insert(
            at,
            Waiter {
                ticket,
                priority,
                lora,
                tx,
            },
        );
        // A LoRA-blocked head may leave room this request can use right away.
        self.admit_waiters(&mut state);
        self.publish_counts(&state);
        Ok(Admission::Queued(QueuedRequest {
            engine: Arc::clone(self),
            ticket,
            rx,
            admitted: false,
        }))
    }

    /// The current LoRA state.
    pub(crate) fn lora_activity(&self) -> LoraActivity {
        let state = self.state.lock();
        let join = |m: &HashMap<Arc<str>, usize>| {
            let mut names: Vec<&str> = m.keys().map(|k| &**k).collect();
            names.sort_unstable();
            names.join(",")
        };
        LoraActivity {
            running: join(&state.lora_running),
            waiting: join(&state.lora_waiting),
            updated_at: state.lora_updated_at,
        }
    }

    fn admissible(&self, state: &EngineState, lora: Option<&Arc<str>>) -> bool {
        state.running < self.max_num_seqs
            && lora.is_none_or(|l| {
                state.lora_running.contains_key(l) || state.lora_running.len() < self.max_loras
            })
    }

    fn start_running(self: &Arc<Self>, state: &mut EngineState, lora: Option<Arc<str>>) -> SeqSlot {
        state.running += 1;
        if let Some(name) = &lora {
            let count = state.lora_running.entry(Arc::clone(name)).or_default();
            *count += 1;
            if *count == 1 {
                state.lora_updated_at = unix_now();
            }
        }
        SeqSlot {
            engine: Some(Arc::clone(self)),
            lora,
            admitted_at: Instant::now(),
        }
    }

    fn stop_running(state: &mut EngineState, lora: Option<&Arc<str>>) {
        state.running = state.running.saturating_sub(1);
        if let Some(name) = lora {
            if let Some(count) = state.lora_running.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    state.lora_running.remove(name);
                    state.lora_updated_at = unix_now();
                }
            }
        }
    }

    fn stop_waiting(state: &mut EngineState, lora: Option<&Arc<str>>) {
        if let Some(name) = lora {
            if let Some(count) = state.lora_waiting.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    state.lora_waiting.remove(name);
                }
                state.lora_updated_at = unix_now();
            }
        }
    }

    /// Admits waiters in FIFO order, skipping those whose adapter cannot run yet.
    fn admit_waiters(self: &Arc<Self>, state: &mut EngineState) {
        let mut i = 0;
        while state.running < self.max_num_seqs && i < state.queue.len() {
            if !self.admissible(state, state.queue[i].lora.as_ref()) {
                i += 1;
                continue;
            }
            let Some(waiter) = state.queue.remove(i) else {
                break;
            };
            Self::stop_waiting(state, waiter.lora.as_ref());
            let slot = self.start_running(state, waiter.lora);
            if let Err(mut slot) = waiter.tx.send(slot) {
                // The waiter is gone (its drop is about to take the lock). Undo without running
                // the slot's Drop, which would re-enter this lock.
                let engine = slot.engine.take();
                Self::stop_running(state, slot.lora.as_ref());
                drop(engine);
            }
        }
    }

    fn release(self: &Arc<Self>, lora: Option<&Arc<str>>) {
        let mut state = self.state.lock();
        Self::stop_running(&mut state, lora);
        self.admit_waiters(&mut state);
        self.publish_counts(&state);
    }

    fn cancel(self: &Arc<Self>, ticket: u64) {
        let mut state = self.state.lock();
        if let Some(pos) = state.queue.iter().position(|w| w.ticket == ticket) {
            if let Some(waiter) = state.queue.remove(pos) {
                Self::stop_waiting(&mut state, waiter.lora.as_ref());
            }
            // Removing a LoRA-blocked head can unblock nobody, but removing any waiter can change
            // which adapters are waiting; a fresh scan keeps admission consistent.
            self.admit_waiters(&mut state);
            self.publish_counts(&state);
        }
    }

    fn publish_counts(&self, state: &EngineState) {
        self.running.store(state.running, Ordering::Relaxed);
        self.waiting.store(state.queue.len(), Ordering::Relaxed);
    }
}

impl SeqSlot {
    /// When the request started running (its queue time ends here).
    pub(crate) fn admitted_at(&self) -> Instant {
        self.admitted_at
    }
}

impl Drop for SeqSlot {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.release(self.lora.as_ref());
        }
    }
}

/// The engine shut down before the request was admitted (cannot happen while the replica runs).
#[derive(Debug, thiserror::Error)]
#[error("the engine stopped before the request was admitted")]
pub(crate) struct EngineStopped;

impl Future for QueuedRequest {
    type Output = Result<SeqSlot, EngineStopped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(Ok(slot)) => {
                this.admitted = true;
                Poll::Ready(Ok(slot))
            }
            Poll::Ready(Err(_)) => {
                this.admitted = true;
                Poll::Ready(Err(EngineStopped))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for QueuedRequest {
    fn drop(&mut self) {
        if !self.admitted {
            // If a slot was already sent, it sits in `rx` and is released when `rx` drops, after
            // this body has returned the lock.
            self.engine.cancel(self.ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a: Result<Admission, QueueFull>) -> SeqSlot {
        match a {
            Ok(Admission::Running(s)) => s,
            _ => panic!("expected to run immediately"),
        }
    }

    fn queued(a: Result<Admission, QueueFull>) -> QueuedRequest {
        match a {
            Ok(Admission::Queued(q)) => q,
            _ => panic!("expected to wait"),
        }
    }

    fn lora(name: &str) -> Option<Arc<str>> {
        Some(Arc::from(name))
    }

    #[tokio::test]
    async fn slots_queue_and_fifo_admission() {
        let e = Engine::new(2, 2, 1);
        let a = run(e.enqueue(None, 0));
        let _b = run(e.enqueue(None, 0));
        let c = queued(e.enqueue(None, 0));
        let d = queued(e.enqueue(None, 0));
        assert!(matches!(e.enqueue(None, 0), Err(QueueFull { limit: 2 })));
        assert_eq!((e.running(), e.waiting()), (2, 2));
        drop(a);
        assert_eq!((e.running(), e.waiting()), (2, 1));
        let c_slot = c.await.unwrap();
        assert_eq!(e.waiting(), 1);
        drop(c_slot);
        let _d_slot = d.await.unwrap();
        assert_eq!((e.running(), e.waiting()), (2, 0));
    }

    #[tokio::test]
    async fn a_better_priority_waits_ahead_of_worse_ones() {
        let e = Engine::new(1, 10, 1);
        let a = run(e.enqueue(None, 0));
        let batch = queued(e.enqueue(None, 5));
        let normal = queued(e.enqueue(None, 0));
        let critical = queued(e.enqueue(None, -10));
        drop(a);
        let c = critical.await.unwrap();
        assert_eq!(e.waiting(), 2);
        drop(c);
        let n = normal.await.unwrap();
        drop(n);
        let _b = batch.await.unwrap();
        assert_eq!((e.running(), e.waiting()), (1, 0));
    }

    #[tokio::test]
    async fn dropping_a_waiter_leaves_the_queue() {
        let e = Engine::new(1, 10, 1);
        let a = run(e.enqueue(None, 0));
        let b = queued(e.enqueue(None, 0));
        let c = queued(e.enqueue(None, 0));
        drop(b);
        assert_eq!(e.waiting(), 1);
        drop(a);
        let _c = c.await.unwrap();
        assert_eq!((e.running(), e.waiting()), (1, 0));
    }

    #[tokio::test]
    async fn a_waiter_dropped_after_admission_releases_its_slot() {
        let e = Engine::new(1, 10, 1);
        let a = run(e.enqueue(None, 0));
        let b = queued(e.enqueue(None, 0));
        drop(a); // b's slot is now in its channel
        assert_eq!(e.running(), 1);
        drop(b);
        assert_eq!((e.running(), e.waiting()), (0, 0));
        let _again = run(e.enqueue(None, 0));
    }

    #[tokio::test]
    async fn max_loras_limits_distinct_running_adapters() {
        let e = Engine::new(4, 10, 1);
        let a1 = run(e.enqueue(lora("a"), 0));
        let _a2 = run(e.enqueue(lora("a"), 0)); // same adapter: fine
        let b = queued(e.enqueue(lora("b"), 0)); // second adapter: waits
        let _base = {
            // base-model requests are admitted past the LoRA-blocked waiter
            match e.enqueue(None, 0) {
                Ok(Admission::Queued(q)) => q.await.unwrap(),
                Ok(Admission::Running(s)) => s,
                Err(_) => panic!("queue full"),
            }
        };
        let info = e.lora_activity();
        assert_eq!((info.running.as_str(), info.waiting.as_str()), ("a", "b"));
        assert_eq!((e.running(), e.waiting()), (3, 1));
        drop(a1);
        assert_eq!(e.waiting(), 1, "one request of adapter a still runs");
        drop(_a2);
        let _b = b.await.unwrap();
        let info = e.lora_activity();
        assert_eq!((info.running.as_str(), info.waiting.as_str()), ("b", ""));
    }

    #[test]
    fn lora_timestamp_moves_when_adapters_change() {
        let e = Engine::new(4, 10, 2);
        let before = e.lora_activity().updated_at;
        std::thread::sleep(std::time::Duration::from_millis(5));
        let s = run(e.enqueue(lora("x"), 0));
        let during = e.lora_activity();
        assert!(during.updated_at > before);
        assert_eq!(during.running, "x");
        drop(s);
        assert_eq!(e.lora_activity().running, "");
    }
}
