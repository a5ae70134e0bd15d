//! Publishing a replica's KV-cache events as vLLM does: a ZMQ PUB socket connected to
//! `--zmq-endpoint`, one message per batch of up to `--event-batch-size` events, framed as
//! `[topic, sequence (8 bytes, big-endian), msgpack batch]` with the topic
//! `kv@<ip>:<port>@<model>` (llm-d's convention, so a subscriber knows which endpoint holds the
//! blocks). The wire format itself is `infergate_protocol::kv_events`.
//!
//! Owns a socket; runs as one task per replica and dies with it. Events come from the cache's
//! broadcast channel; if the publisher falls behind and the channel drops events, the loss is
//! logged (a subscriber's view then drifts until blocks are stored or evicted again).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use infergate_protocol::kv_events::{encode_batch, topic, KvEventBatch, KvWireEvent};
use tokio::sync::broadcast::{self, error::RecvError};
use zeromq::{Socket, SocketSend, ZmqMessage};

use crate::kv_cache::KvEvent;

fn to_wire(e: KvEvent) -> KvWireEvent {
    match e {
        KvEvent::BlockStored {
            block_hashes,
            parent_block_hash,
            token_ids,
            block_size,
            lora_name,
        } => KvWireEvent::BlockStored {
            block_hashes,
            parent_block_hash,
            token_ids,
            block_size,
            lora_id: None,
            medium: Some("GPU".into()),
            lora_name: lora_name.map(|l| l.to_string()),
        },
        KvEvent::BlockRemoved { block_hashes } => KvWireEvent::BlockRemoved {
            block_hashes,
            medium: Some("GPU".into()),
        },
        KvEvent::AllBlocksCleared => KvWireEvent::AllBlocksCleared,
    }
}

/// Publish `events` (a subscription taken before the replica served anything) to `endpoint`
/// under the replica's topic until the channel closes.
pub(crate) async fn run(
    endpoint: String,
    host_port: String,
    model: String,
    batch_size: usize,
    mut events: broadcast::Receiver<KvEvent>,
) {
    let mut socket = zeromq::PubSocket::new();
    // Retries until the subscriber is listening (it may start after the fleet).
    if let Err(e) = socket.connect(&endpoint).await {
        tracing::warn!(%endpoint, "cannot connect the KV-event publisher: {e}");
        return;
    }
    let topic = Bytes::from(topic(&host_port, &model));
    let mut seq: u64 = 0;
    loop {
        let first = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(replica = %host_port, "KV-event publisher fell behind; {n} events lost");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let mut batch = vec![to_wire(first)];
        while batch.len() < batch_size.max(1) {
            match events.try_recv() {
                Ok(e) => batch.push(to_wire(e)),
                Err(_) => break,
            }
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let payload = encode_batch(&KvEventBatch {
            ts,
            events: batch,
            data_parallel_rank: None,
        });
        let frames = vec![
            topic.clone(),
            Bytes::copy_from_slice(&seq.to_be_bytes()),
            Bytes::from(payload),
        ];
        seq += 1;
        let Ok(msg) = ZmqMessage::try_from(frames) else {
            continue;
        };
        if let Err(e) = socket.send(msg).await {
            tracing::debug!(replica = %host_port, "KV-event publish failed: {e}");
        }
    }
}
