//! Prefill lanes: how many prompts a replica prefills at once (`--prefill-parallelism`), and in
//! which order the others wait.
//!
//! A running request takes a lane for its prefill and gives it back when its first token is
//! due; the next waiter gets it then. Waiters are served in `(priority, arrival)` order: with
//! `--scheduling-policy priority` a lower `priority` value goes first (vLLM's convention), with
//! `fcfs` every request has priority 0, so the order is arrival. Event-driven (a lane is handed
//! over when the previous prefill really ends), so a request that arrives later with a better
//! priority overtakes those still waiting, never the one prefilling.
//!
//! The lock is never held across an await; a waiter that left (client gone) is skipped.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The prefill lanes of one replica.
pub(crate) struct PrefillLanes {
    /// 0 = unlimited: every prefill starts at once.
    lanes: usize,
    state: Mutex<LaneState>,
    waiting: AtomicUsize,
}

struct LaneState {
    busy: usize,
    next_seq: u64,
    /// Keyed by (priority, arrival sequence): the first entry goes next.
    queue: BTreeMap<(i64, u64), oneshot::Sender<LaneGuard>>,
}

/// The result of [`PrefillLanes::acquire`].
pub(crate) enum LaneAdmission {
    Now(LaneGuard),
    Queued(LaneWait),
}

/// A lane held for a prefill; dropping it hands the lane to the next waiter.
pub(crate) struct LaneGuard {
    lanes: Option<Arc<PrefillLanes>>,
    /// When the lane was granted: the prefill starts here.
    pub(crate) started: Instant,
}

/// Waiting for a lane; resolves to it, and leaves the queue when dropped.
pub(crate) struct LaneWait {
    lanes: Arc<PrefillLanes>,
    key: (i64, u64),
    rx: oneshot::Receiver<LaneGuard>,
    granted: bool,
}

impl PrefillLanes {
    pub(crate) fn new(lanes: usize) -> Arc<Self> {
        Arc::new(Self {
            lanes,
            state: Mutex::new(LaneState {
                busy: 0,
                next_seq: 0,
                queue: BTreeMap::new(),
            }),
            waiting: AtomicUsize::new(0),
        })
    }

    /// Prefills waiting for a lane.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A lane now if one is free and nobody waits, else a place in the queue.
    pub(crate) fn acquire(self: &Arc<Self>, priority: i64) -> LaneAdmission {
        if self.lanes == 0 {
            return LaneAdmission::Now(LaneGuard {
                lanes: None,
                started: Instant::now(),
            });
        }
        let mut state = self.state.lock();
        if state.busy < self.lanes && state.queue.is_empty() {
            state.busy += 1;
            return LaneAdmission::Now(LaneGuard {
                lanes: Some(Arc::clone(self)),
                started: Instant::now(),
            });
        }
        let key = (priority, state.next_seq);
        state.next_seq += 1;
        let (tx, rx) = oneshot::channel();
        state.queue.insert(key, tx);
        self.waiting.store(state.queue.len(), Ordering::Relaxed);
        LaneAdmission::Queued(LaneWait {
            lanes: Arc::clone(self),
            key,
            rx,
            granted: false,
        })
    }

    /// A lane came back: hand it to the first waiter still there, or mark it free.
    fn release(self: &Arc<Self>) {
        let mut state = self.state.lock();
        while let Some((_, tx)) = state.queue.pop_first() {
            let guard = LaneGuard {
                lanes: Some(Arc::clone(self)),
                started: Instant::now(),
            };
            match tx.send(guard) {
                Ok(()) => {
                    self.waiting.store(state.queue.len(), Ordering::Relaxed);
                    return;
                }
                // The waiter is gone; its guard must not run Drop (it would re-enter this lock).
                Err(mut unsent) => unsent.lanes = None,
            }
        }
        state.busy = state.busy.saturating_sub(1);
        self.waiting.store(0, Ordering::Relaxed);
    }

    fn cancel(&self, key: (i64, u64)) {
        let mut state = self.state.lock();
        state.queue.remove(&key);
        self.waiting.store(state.queue.len(), Ordering::Relaxed);
    }
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        if let Some(lanes) = self.lanes.take() {
            lanes.release();
        }
    }
}

impl Future for LaneWait {
    type Output = LaneGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LaneGuard> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(guard)) => {
                self.granted = true;
                Poll::Ready(guard)
            }
            // The sender lives in the queue until it is sent or this waiter cancels, so it
            // cannot be dropped unsent while we wait; answer with an unlimited lane regardless.
            Poll::Ready(Err(_)) => {
                self.granted = true;
                Poll::Ready(LaneGuard {
                    lanes: None,
                    started: Instant::now(),
                })
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for LaneWait {
    fn drop(&mut self) {
        if !self.granted {
            // Still queued: leave. Already sent but not received: the guard in the channel drops
            // with `rx` (after this) and hands the lane on.
            self.lanes.cancel(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(a: LaneAdmission) -> LaneWait {
        match a {
            LaneAdmission::Queued(w) => w,
            LaneAdmission::Now(_) => panic!("expected to wait"),
        }
    }

    fn now(a: LaneAdmission) -> LaneGuard {
        match a {
            LaneAdmission::Now(g) => g,
            LaneAdmission::Queued(_) => panic!("expected a lane now"),
        }
    }

    #[tokio::test]
    async fn a_better_priority_overtakes_waiters_but_not_the_prefill_running() {
        let lanes = PrefillLanes::new(1);
        let running = now(lanes.acquire(0));
        let batch_1 = queued(lanes.acquire(5));
        let batch_2 = queued(lanes.acquire(5));
        let critical = queued(lanes.acquire(-10));
        assert_eq!(lanes.waiting(), 3);
        drop(running);
        let critical_lane = critical.await;
        assert_eq!(
            lanes.waiting(),
            2,
            "the critical request took the lane first"
        );
        drop(critical_lane);
        let first = batch_1.await;
        drop(first);
        let second = batch_2.await;
        assert_eq!(lanes.waiting(), 0);
        drop(second);
        // All lanes free again: the next request starts at once.
        drop(now(lanes.acquire(0)));
    }

    #[tokio::test]
    async fn equal_priorities_go_in_arrival_order_and_leavers_are_skipped() {
        let lanes = PrefillLanes::new(1);
        let running = now(lanes.acquire(0));
        let gone = queued(lanes.acquire(0));
        let next = queued(lanes.acquire(0));
        drop(gone); // client went away while waiting
        assert_eq!(lanes.waiting(), 1);
        drop(running);
        let lane = next.await;
        drop(lane);
        drop(now(lanes.acquire(0)));
    }

    #[tokio::test]
    async fn a_lane_sent_to_a_waiter_that_left_is_handed_on() {
        let lanes = PrefillLanes::new(1);
        let running = now(lanes.acquire(0));
        let leaver = queued(lanes.acquire(0));
        let next = queued(lanes.acquire(0));
        drop(running); // sends the lane to `leaver`, which never polls it
        drop(leaver);
        let lane = next.await;
        drop(lane);
        drop(now(lanes.acquire(0)));
    }

    #[test]
    fn unlimited_lanes_never_queue() {
        let lanes = PrefillLanes::new(0);
        let guards: Vec<_> = (0..10).map(|_| now(lanes.acquire(0))).collect();
        assert_eq!(lanes.waiting(), 0);
        drop(guards);
    }
}
