//! Receiving KV events, feeding a [`KvBlockIndex`], in one of two ways:
//!
//! - **bind** ([`subscribe`]): a ZMQ SUB socket bound where model servers connect their
//!   publishers (vLLM
//!   `--kv-events-config '{"publisher":"zmq","endpoint":"tcp://GATEWAY:5557","topic":"kv@IP:PORT@MODEL"}'`,
//!   the simulator's `--zmq-endpoint`, which may list one such address per picker replica);
//! - **connect** ([`subscribe_connect`]): one SUB socket per model server, connected to the PUB
//!   socket the server binds (vLLM's default `tcp://*:5557`), so any number of picker replicas
//!   can each subscribe to every server without the servers knowing them.
//!
//! I/O beside the decision path: one subscription per bound address (or per list of
//! publishers), shared by every pool whose precise scorer names it (the index is keyed by
//! endpoint address, so sharing is exact). Its tasks end when the last pool using it drops its
//! [`KvSubscription`].

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
    tasks: Vec<tokio::task::AbortHandle>,
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
        for t in &self.tasks {
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
    shared(endpoint.to_string(), |index| {
        vec![tokio::spawn(run_bound(
            endpoint.to_string(),
            topic_filter.to_string(),
            index,
        ))]
    })
}

/// The subscription connected to each of `publishers` (`tcp://HOST:PORT` of PUB sockets the
/// model servers bind), started if nobody holds one for the same list. Each publisher gets its
/// own socket and task, so a server that is down (or not up yet) delays nobody else's events;
/// the socket keeps retrying and reconnects when a server restarts.
pub fn subscribe_connect(publishers: &[String], topic_filter: &str) -> Arc<KvSubscription> {
    let mut sorted = publishers.to_vec();
    sorted.sort();
    sorted.dedup();
    let key = format!("connect:{}", sorted.join(","));
    shared(key, |index| {
        sorted
            .iter()
            .map(|p| {
                tokio::spawn(run_connected(
                    p.clone(),
                    topic_filter.to_string(),
                    index.clone(),
                ))
            })
            .collect()
    })
}

fn shared(
    key: String,
    spawn: impl FnOnce(Weak<KvBlockIndex>) -> Vec<tokio::task::JoinHandle<()>>,
) -> Arc<KvSubscription> {
    let mut hub = hub().lock();
    if let Some(s) = hub.get(&key).and_then(Weak::upgrade) {
        return s;
    }
    let index = Arc::new(KvBlockIndex::default());
    let tasks = if tokio::runtime::Handle::try_current().is_ok() {
        spawn(Arc::downgrade(&index))
            .into_iter()
            .map(|t| t.abort_handle())
            .collect()
    } else {
        Vec::new()
    };
    let sub = Arc::new(KvSubscription {
        endpoint: key.clone(),
        index,
        tasks,
    });
    hub.insert(key, Arc::downgrade(&sub));
    hub.retain(|_, w| w.strong_count() > 0);
    sub
}

async fn run_bound(endpoint: String, filter: String, index: Weak<KvBlockIndex>) {
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
    feed(socket, &endpoint, index).await;
}

async fn run_connected(publisher: String, filter: String, index: Weak<KvBlockIndex>) {
    let mut options = zeromq::SocketOptions::default();
    // Wait for a server that is not up yet for as long as it takes (retrying with backoff).
    options.no_connect_timeout();
    let mut socket = zeromq::SubSocket::with_options(options);
    if let Err(e) = socket.subscribe(&filter).await {
        tracing::error!(%publisher, "cannot subscribe to KV events: {e}");
        return;
    }
    if let Err(e) = socket.connect(&publisher).await {
        tracing::error!(%publisher, "cannot connect to the KV-event publisher: {e}; the precise prefix scorer will see no blocks from it");
        return;
    }
    tracing::info!(%publisher, "receiving KV events");
    feed(socket, &publisher, index).await;
}

async fn feed(mut socket: zeromq::SubSocket, endpoint: &str, index: Weak<KvBlockIndex>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use infergate_protocol::kv_events::{encode_batch, topic, KvEventBatch, KvWireEvent};
    use zeromq::{Socket, SocketSend, ZmqMessage};

    /// A model server binding its PUB socket (vLLM's default) and two subscriptions connected
    /// to it (two picker replicas): both indexes learn the server's blocks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_mode_lets_two_subscribers_share_one_bound_publisher() {
        let mut publisher = zeromq::PubSocket::new();
        let bound = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
        let addr = bound.to_string();
        // Two replicas in one process would share one subscription (same key); give each its
        // own socket and index here, as two processes have.
        let a = subscribe_connect(std::slice::from_ref(&addr), "kv@");
        assert!(Arc::ptr_eq(
            &a,
            &subscribe_connect(&[addr.clone(), addr.clone()], "kv@")
        ));
        let b = Arc::new(KvBlockIndex::default());
        let task = tokio::spawn(run_connected(
            addr.clone(),
            "kv@".into(),
            Arc::downgrade(&b),
        ));
        let batch = KvEventBatch {
            ts: 0.0,
            events: vec![KvWireEvent::BlockStored {
                block_hashes: vec![11, 12],
                parent_block_hash: None,
                token_ids: (0..32).collect(),
                block_size: 16,
                lora_id: None,
                medium: None,
                lora_name: None,
            }],
            data_parallel_rank: None,
        };
        let frames = || {
            ZmqMessage::try_from(vec![
                Bytes::from(topic("10.0.0.7:8000", "m")),
                Bytes::from_static(&[0; 8]),
                Bytes::from(encode_batch(&batch)),
            ])
            .unwrap()
        };
        // PUB drops what it sends before a subscriber is connected: publish until both see it.
        for _ in 0..200 {
            if a.index.blocks_of("10.0.0.7:8000") > 0 && b.blocks_of("10.0.0.7:8000") > 0 {
                break;
            }
            publisher.send(frames()).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(a.index.blocks_of("10.0.0.7:8000"), 2);
        assert_eq!(b.blocks_of("10.0.0.7:8000"), 2);
        task.abort();
    }
}
