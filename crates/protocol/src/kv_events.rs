//! vLLM's KV-cache events, as published over ZMQ (`vllm/distributed/kv_events.py`): what an
//! engine tells subscribers about the prefix-cache blocks it stores and evicts.
//!
//! A ZMQ message is three frames: the topic (`kv@<ip>:<port>@<model>` by llm-d's convention),
//! an 8-byte big-endian sequence number, and a msgpack payload. The payload is an `EventBatch`
//! encoded by msgspec with `array_like=True`: `[ts, [event, ...], data_parallel_rank?]`; each event
//! is a tagged array whose first element is its class name:
//!
//! - `["BlockStored", block_hashes, parent_block_hash|nil, token_ids, block_size, lora_id|nil, medium|nil, lora_name?]`
//! - `["BlockRemoved", block_hashes, medium|nil]`
//! - `["AllBlocksCleared"]`
//!
//! Block hashes are integers in older vLLM and bytes in newer ones; both are read (bytes are
//! folded to a `u64` with xxh64, which is all a subscriber needs: a stable id per block).
//! Trailing fields may be absent (msgspec omits defaults) or extra (newer versions); both are
//! tolerated. Pure: no sockets.

use rmpv::Value;

/// The topic prefix subscribers filter on.
pub const TOPIC_PREFIX: &str = "kv@";

/// One batch of events from one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEventBatch {
    /// Unix time (seconds) the batch was made.
    pub ts: f64,
    pub events: Vec<KvWireEvent>,
    pub data_parallel_rank: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KvWireEvent {
    BlockStored {
        block_hashes: Vec<u64>,
        parent_block_hash: Option<u64>,
        token_ids: Vec<u32>,
        block_size: usize,
        lora_id: Option<i64>,
        medium: Option<String>,
        /// The adapter the blocks belong to (newer vLLM; the simulator sends it).
        lora_name: Option<String>,
    },
    BlockRemoved {
        block_hashes: Vec<u64>,
        medium: Option<String>,
    },
    AllBlocksCleared,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvEventError {
    #[error("not msgpack: {0}")]
    Msgpack(String),
    #[error("unexpected shape: {0}")]
    Shape(&'static str),
}

/// `kv@<host:port>@<model>`.
pub fn topic(host_port: &str, model: &str) -> String {
    format!("{TOPIC_PREFIX}{host_port}@{model}")
}

/// `(host:port, model)` from a topic. The model may contain `@`-free slashes; the endpoint is
/// what sits between the first and the last `@`.
pub fn parse_topic(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(TOPIC_PREFIX)?;
    let at = rest.rfind('@')?;
    let (ep, model) = (&rest[..at], &rest[at + 1..]);
    (!ep.is_empty()).then_some((ep, model))
}

fn opt_str(v: Option<&Value>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(String::from)
}

fn opt_i64(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_i64)
}

fn block_hash(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => i.as_u64().or_else(|| i.as_i64().map(|x| x as u64)),
        Value::Binary(b) => Some(xxhash_rust::xxh64::xxh64(b, 0)),
        _ => None,
    }
}

fn hashes(v: Option<&Value>) -> Result<Vec<u64>, KvEventError> {
    v.and_then(Value::as_array)
        .ok_or(KvEventError::Shape("block_hashes must be a list"))?
        .iter()
        .map(|h| block_hash(h).ok_or(KvEventError::Shape("a block hash must be an int or bytes")))
        .collect()
}

fn decode_event(v: &Value) -> Result<KvWireEvent, KvEventError> {
    let a = v
        .as_array()
        .ok_or(KvEventError::Shape("an event must be a tagged array"))?;
    let tag = a
        .first()
        .and_then(|t| t.as_str())
        .ok_or(KvEventError::Shape("an event starts with its type name"))?;
    match tag {
        "BlockStored" => {
            let token_ids = a
                .get(3)
                .and_then(Value::as_array)
                .ok_or(KvEventError::Shape("token_ids must be a list"))?
                .iter()
                .map(|t| {
                    t.as_u64()
                        .and_then(|t| u32::try_from(t).ok())
                        .ok_or(KvEventError::Shape("a token id must be a u32"))
                })
                .collect::<Result<Vec<u32>, _>>()?;
            Ok(KvWireEvent::BlockStored {
                block_hashes: hashes(a.get(1))?,
                parent_block_hash: a.get(2).and_then(block_hash),
                token_ids,
                block_size: a
                    .get(4)
                    .and_then(Value::as_u64)
                    .and_then(|b| usize::try_from(b).ok())
                    .ok_or(KvEventError::Shape("block_size must be an int"))?,
                lora_id: opt_i64(a.get(5)),
                medium: opt_str(a.get(6)),
                lora_name: opt_str(a.get(7)),
            })
        }
        "BlockRemoved" => Ok(KvWireEvent::BlockRemoved {
            block_hashes: hashes(a.get(1))?,
            medium: opt_str(a.get(2)),
        }),
        "AllBlocksCleared" => Ok(KvWireEvent::AllBlocksCleared),
        _ => Err(KvEventError::Shape("unknown event type")),
    }
}

/// Decode one payload frame.
pub fn decode_batch(mut payload: &[u8]) -> Result<KvEventBatch, KvEventError> {
    let v =
        rmpv::decode::read_value(&mut payload).map_err(|e| KvEventError::Msgpack(e.to_string()))?;
    let a = v
        .as_array()
        .ok_or(KvEventError::Shape("a batch must be an array"))?;
    let ts = match a.first() {
        Some(Value::F64(f)) => *f,
        Some(Value::F32(f)) => f64::from(*f),
        Some(v) => v.as_i64().map_or(0.0, |i| i as f64),
        None => return Err(KvEventError::Shape("a batch starts with its timestamp")),
    };
    let events = a
        .get(1)
        .and_then(Value::as_array)
        .ok_or(KvEventError::Shape(
            "a batch's second element is its event list",
        ))?
        .iter()
        // An event of a type this version does not know is skipped, not fatal.
        .filter_map(|e| match decode_event(e) {
            Err(KvEventError::Shape("unknown event type")) => None,
            other => Some(other),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KvEventBatch {
        ts,
        events,
        data_parallel_rank: opt_i64(a.get(2)),
    })
}

fn nil_or<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or(Value::Nil, f)
}

/// Encode one payload frame (what an engine publishes).
pub fn encode_batch(batch: &KvEventBatch) -> Vec<u8> {
    let events: Vec<Value> = batch
        .events
        .iter()
        .map(|e| match e {
            KvWireEvent::BlockStored {
                block_hashes,
                parent_block_hash,
                token_ids,
                block_size,
                lora_id,
                medium,
                lora_name,
            } => {
                let mut v = vec![
                    Value::from("BlockStored"),
                    Value::Array(block_hashes.iter().map(|h| Value::from(*h)).collect()),
                    nil_or(*parent_block_hash, Value::from),
                    Value::Array(token_ids.iter().map(|t| Value::from(*t)).collect()),
                    Value::from(*block_size as u64),
                    nil_or(*lora_id, Value::from),
                    nil_or(medium.as_deref(), Value::from),
                ];
                if let Some(name) = lora_name {
                    v.push(Value::from(name.as_str()));
                }
                Value::Array(v)
            }
            KvWireEvent::BlockRemoved {
                block_hashes,
                medium,
            } => Value::Array(vec![
                Value::from("BlockRemoved"),
                Value::Array(block_hashes.iter().map(|h| Value::from(*h)).collect()),
                nil_or(medium.as_deref(), Value::from),
            ]),
            KvWireEvent::AllBlocksCleared => Value::Array(vec![Value::from("AllBlocksCleared")]),
        })
        .collect();
    let mut top = vec![Value::F64(batch.ts), Value::Array(events)];
    if let Some(r) = batch.data_parallel_rank {
        top.push(Value::from(r));
    }
    let mut out = Vec::with_capacity(64);
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &Value::Array(top));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let batch = KvEventBatch {
            ts: 1.5,
            events: vec![
                KvWireEvent::BlockStored {
                    block_hashes: vec![1, u64::MAX],
                    parent_block_hash: None,
                    token_ids: vec![10, 11, 12, 13],
                    block_size: 2,
                    lora_id: None,
                    medium: Some("GPU".into()),
                    lora_name: Some("sql".into()),
                },
                KvWireEvent::BlockRemoved {
                    block_hashes: vec![7],
                    medium: None,
                },
                KvWireEvent::AllBlocksCleared,
            ],
            data_parallel_rank: None,
        };
        assert_eq!(decode_batch(&encode_batch(&batch)).unwrap(), batch);
    }

    #[test]
    fn reads_what_msgspec_writes() {
        // msgspec.msgpack.encode(KVEventBatch(ts=2.0, events=[BlockStored(block_hashes=[5],
        // parent_block_hash=4, token_ids=[1,2], block_size=2, lora_id=None, medium=None)]))
        // with bytes hashes as newer vLLM sends them, and a trailing field a later version adds.
        let v = Value::Array(vec![
            Value::F64(2.0),
            Value::Array(vec![Value::Array(vec![
                Value::from("BlockStored"),
                Value::Array(vec![Value::Binary(vec![0xab; 32])]),
                Value::from(4u64),
                Value::Array(vec![Value::from(1u64), Value::from(2u64)]),
                Value::from(2u64),
                Value::Nil,
                Value::Nil,
                Value::Nil,
                Value::from("future-field"),
            ])]),
            Value::from(3u64),
        ]);
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, &v).unwrap();
        let b = decode_batch(&buf).unwrap();
        assert_eq!(b.data_parallel_rank, Some(3));
        let KvWireEvent::BlockStored {
            block_hashes,
            parent_block_hash,
            token_ids,
            ..
        } = &b.events[0]
        else {
            panic!("{b:?}")
        };
        assert_eq!(block_hashes.len(), 1);
        assert_eq!(*parent_block_hash, Some(4));
        assert_eq!(token_ids, &vec![1, 2]);
        assert!(decode_batch(b"\xc1").is_err());
        assert!(decode_batch(&encode_batch(&KvEventBatch {
            ts: 0.0,
            events: vec![],
            data_parallel_rank: None
        }))
        .unwrap()
        .events
        .is_empty());
    }

    #[test]
    fn topics() {
        assert_eq!(topic("10.0.0.1:8000", "m"), "kv@10.0.0.1:8000@m");
        assert_eq!(
            parse_topic("kv@10.0.0.1:8000@meta-llama/Llama-3.1-8B"),
            Some(("10.0.0.1:8000", "meta-llama/Llama-3.1-8B"))
        );
        assert_eq!(parse_topic("kv@[::1]:80@m"), Some(("[::1]:80", "m")));
        assert_eq!(parse_topic("other"), None);
    }
}
