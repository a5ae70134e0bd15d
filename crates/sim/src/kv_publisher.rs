//! Publishing a replica's KV-cache events as vLLM does: a ZMQ PUB socket connected to
//! `--zmq-endpoint` (to each of them when several are given), one message per batch of up to `--event-batch-size` events, framed as
//! `[topic, sequence (8 bytes, big-endian), msgpack batch]` with the topic
//! `kv@<ip>:<port>@<model>` (llm-d's convention, so a subscriber knows which endpoint holds the
//! blocks). The wire format itself is `infergate_protocol::kv_events`.
//!
//! Owns a socket; runs as one task per replica and dies with it. Events come from the cache's
//! broadcast channel; if the publisher falls behind and the channel drops events, the loss is
//! logged (a subscriber's view then drifts until blocks are stored or evicted again).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use infergate_protocol::kv_events::{encode_batch, topic, KvEventBatch, KvWireEvent};
use tokio::sync::broadcast::{self, error::RecvError};
use zeromq::{Socket, SocketEvent, SocketOptions, SocketSend, ZmqMessage};

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
/// under the replica's topic until the channel closes. One task per endpoint: a replica given
/// several endpoints (one per picker replica) sends every batch to each of them, as a ZMQ PUB
/// socket connected to several peers does. The connection is re-made when the subscriber goes
/// away (a picker restart), and while it is down the events are dropped, as ZMQ PUB does.
pub(crate) async fn run(
    endpoint: String,
    host_port: String,
    model: String,
    batch_size: usize,
    mut events: broadcast::Receiver<KvEvent>,
) {
    let topic = Bytes::from(topic(&host_port, &model));
    let mut seq: u64 = 0;
    loop {
        let mut options = SocketOptions::default();
        options.no_connect_timeout();
        let mut socket = zeromq::PubSocket::with_options(options);
        let mut monitor = socket.monitor();
        // Retries until the subscriber is listening (it may start after the fleet); events
        // published meanwhile would have no subscriber, so they are drained, not queued.
        {
            let connect = socket.connect(&endpoint);
            tokio::pin!(connect);
            loop {
                tokio::select! {
                    r = &mut connect => {
                        if let Err(e) = r {
                            tracing::warn!(%endpoint, "cannot connect the KV-event publisher: {e}");
                            return;
                        }
                        break;
                    }
                    e = events.recv() => if matches!(e, Err(RecvError::Closed)) { return },
                }
            }
        }
        tracing::debug!(replica = %host_port, %endpoint, "KV-event publisher connected");
        loop {
            let first = tokio::select! {
                e = events.recv() => match e {
                    Ok(e) => e,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(replica = %host_port, %endpoint, "KV-event publisher fell behind; {n} events lost");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
                ev = monitor.next() => match ev {
                    Some(SocketEvent::Disconnected(_)) | None => {
                        tracing::info!(replica = %host_port, %endpoint, "KV-event subscriber went away; reconnecting");
                        break;
                    }
                    Some(_) => continue,
                },
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
}
