//! Receiving KV events: a ZMQ SUB socket bound where model servers publish (vLLM
//! `--kv-events-config '{"publisher":"zmq","endpoint":"tcp://GATEWAY:5557","topic":"kv@IP:PORT@MODEL"}'`,
//! the simulator's `--zmq-endpoint`), feeding a [`KvBlockIndex`].
//!
//! I/O beside the decision path: one task per bound address, shared by every pool whose precise
//! scorer names that address (the index is keyed by endpoint address, so sharing is exact). The
//! task ends when the last pool using it drops its [`KvSubscription`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use infergate_protocol::kv_events::{decode_batch, parse_topic};
use parking_lot::Mutex;
use zeromq::{Socket, SocketRecv};

use crate::kv_index::KvBlockIndex;

/// A live subscription: the index it feeds, and the task feeding it.
pub struct KvSubscription {
    pub endpoint: String,
    pub index: Arc<KvBlockIndex>,
    task: Option<tokio::task::AbortHandle>,
}

impl std::fmt::Debug for KvSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvSubscription")
            .field("endpoint", &self.endpoint)
            .field("index", &self.index)
            .finish()
    }
}

impl Drop for KvSubscription {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

fn hub() -> &'static Mutex<HashMap<String, Weak<KvSubscription>>> {
    static HUB: OnceLock<Mutex<HashMap<String, Weak<KvSubscription>>>> = OnceLock::new();
    HUB.get_or_init(Default::default)
}

/// The subscription bound at `endpoint` (`tcp://HOST:PORT`), started if nobody holds one. Without
/// a tokio runtime (unit tests, benchmarks) the index exists but nothing feeds it.
pub fn subscribe(endpoint: &str, topic_filter: &str) -> Arc<KvSubscription> {
    let mut hub = hub().lock();
    if let Some(s) = hub.get(endpoint).and_then(Weak::upgrade) {
        return s;
    }
    let index = Arc::new(KvBlockIndex::default());
    let task = tokio::runtime::Handle::try_current().ok().map(|rt| {
        rt.spawn(run(
            endpoint.to_string(),
            topic_filter.to_string(),
            Arc::downgrade(&index),
        ))
        .abort_handle()
    });
    let sub = Arc::new(KvSubscription {
        endpoint: endpoint.to_string(),
        index,
        task,
    });
    hub.insert(endpoint.to_string(), Arc::downgrade(&sub));
    hub.retain(|_, w| w.strong_count() > 0);
    sub
}

async fn run(endpoint: String, filter: String, index: Weak<KvBlockIndex>) {
    let mut socket = zeromq::SubSocket::new();
    if let Err(e) = socket.bind(&endpoint).await {
        tracing::error!(%endpoint, "cannot bind the KV-events socket: {e}; the precise prefix scorer will see no blocks");
        return;
    }
    if let Err(e) = socket.subscribe(&filter).await {
        tracing::error!(%endpoint, "cannot subscribe to KV events: {e}");
        return;
    }
    tracing::info!(%endpoint, "listening for KV events");
    let mut bad = 0u64;
    loop {
        let msg = match socket.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%endpoint, "KV-events socket error: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(index) = index.upgrade() else {
            return;
        };
        // [topic, seq, payload] (vLLM); [topic, payload] is accepted too.
        let frames = msg.into_vec();
        let (topic, payload) = match frames.as_slice() {
            [t, _seq, p] => (t, p),
            [t, p] => (t, p),
            _ => continue,
        };
        let Some((host_port, model)) = std::str::from_utf8(topic).ok().and_then(parse_topic) else {
            continue;
        };
        match decode_batch(payload) {
            Ok(batch) => index.apply(host_port, model, &batch),
            Err(e) => {
                bad += 1;
                if bad.is_power_of_two() {
                    tracing::warn!(%endpoint, topic = %String::from_utf8_lossy(topic), "unreadable KV-event batch ({bad} so far): {e}");
                }
            }
        }
    }
}
