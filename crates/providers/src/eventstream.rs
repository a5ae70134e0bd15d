//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`) that Bedrock's
//! ConverseStream answers in.
//!
//! One message is: total length (u32 BE) · headers length (u32 BE) · CRC32 of those 8 bytes ·
//! headers · payload · CRC32 of everything before it. A header is a 1-byte name length, the
//! name, a 1-byte value type and the value (types 0–9: bool true/false, byte, short, int, long,
//! bytes, string, timestamp, uuid). Both CRCs are checked; a frame that fails either is an error,
//! never silently skipped.

use bytes::{Buf, Bytes, BytesMut};

/// Messages larger than this are refused (the format allows 16 MiB).
pub const MAX_MESSAGE: usize = 16 << 20;
const PRELUDE: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventStreamError {
    #[error("event-stream prelude checksum mismatch")]
    PreludeCrc,
    #[error("event-stream message checksum mismatch")]
    MessageCrc,
    #[error("event-stream message of {0} bytes is malformed or too large")]
    Length(usize),
    #[error("event-stream header is malformed")]
    Header,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Int(i64),
    Bytes(Bytes),
    String(String),
    Timestamp(i64),
    Uuid([u8; 16]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Message {
    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Incremental decoder: feed bytes as they arrive, take whole messages out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received that do not yet form a whole message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, if one has arrived.
    pub fn next_message(&mut self) -> Result<Option<Message>, EventStreamError> {
        if self.buf.len() < PRELUDE {
            return Ok(None);
        }
        let total =
            u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        let headers_len =
            u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        let prelude_crc =
            u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(EventStreamError::PreludeCrc);
        }
        if !(PRELUDE + 4..=MAX_MESSAGE).contains(&total) || headers_len > total - PRELUDE - 4 {
            return Err(EventStreamError::Length(total));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let msg = self.buf.split_to(total).freeze();
        let crc = u32::from_be_bytes([
            msg[total - 4],
            msg[total - 3],
            msg[total - 2],
            msg[total - 1],
        ]);
        if crc32fast::hash(&msg[..total - 4]) != crc {
            return Err(EventStreamError::MessageCrc);
        }
        let headers = parse_headers(&msg[PRELUDE..PRELUDE + headers_len])?;
        let payload = msg.slice(PRELUDE + headers_len..total - 4);
        Ok(Some(Message { headers, payload }))
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, HeaderValue)>, EventStreamError> {
    let mut out = Vec::new();
    let need = |b: &[u8], n: usize| {
        if b.len() < n {
            Err(EventStreamError::Header)
        } else {
            Ok(())
        }
    };
    while !b.is_empty() {
        let name_len = b[0] as usize;
        need(b, 1 + name_len + 1)?;
        let name =
            String::from_utf8(b[1..1 + name_len].to_vec()).map_err(|_| EventStreamError::Header)?;
        let kind = b[1 + name_len];
        b = &b[2 + name_len..];
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => {
                need(b, 1)?;
                let v = i64::from(b[0] as i8);
                b.advance(1);
                HeaderValue::Int(v)
            }
            3 => {
                need(b, 2)?;
                let v = i64::from(b.get_i16());
                HeaderValue::Int(v)
            }
            4 => {
                need(b, 4)?;
                HeaderValue::Int(i64::from(b.get_i32()))
            }
            5 | 8 => {
                need(b, 8)?;
                let v = b.get_i64();
                if kind == 5 {
                    HeaderValue::Int(v)
                } else {
                    HeaderValue::Timestamp(v)
                }
            }
            6 | 7 => {
                need(b, 2)?;
                let len = b.get_u16() as usize;
                need(b, len)?;
                let data = &b[..len];
                let v = if kind == 6 {
                    HeaderValue::Bytes(Bytes::copy_from_slice(data))
                } else {
                    HeaderValue::String(
                        String::from_utf8(data.to_vec()).map_err(|_| EventStreamError::Header)?,
                    )
                };
                b.advance(len);
                v
            }
            9 => {
                need(b, 16)?;
                let mut u = [0u8; 16];
                u.copy_from_slice(&b[..16]);
                b.advance(16);
                HeaderValue::Uuid(u)
            }
            _ => return Err(EventStreamError::Header),
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Encode one message with string headers (what Bedrock sends: `:event-type`, `:content-type`,
/// `:message-type`, `:exception-type`).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A Bedrock stream event: `:message-type: event`, `:event-type: <name>`, JSON payload.
pub fn encode_event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// A Bedrock stream exception: `:message-type: exception`, `:exception-type: <name>`.
pub fn encode_exception(exception_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_any_chunking() {
        let mut wire = encode_event("messageStart", br#"{"role":"assistant"}"#);
        wire.extend(encode_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ));
        for cut in 1..wire.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for piece in [&wire[..cut], &wire[cut..]] {
                d.feed(piece);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].header(":event-type"), Some("messageStart"));
            assert_eq!(
                &got[1].payload[..],
                br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#
            );
        }
    }

    #[test]
    fn corrupt_frames_are_errors() {
        let mut wire = encode_event("messageStop", br#"{"stopReason":"end_turn"}"#);
        let n = wire.len();
        wire[n - 6] ^= 0xff;
        let mut d = Decoder::new();
        d.feed(&wire);
        assert_eq!(d.next_message(), Err(EventStreamError::MessageCrc));
        let mut wire = encode_event("x", b"{}");
        wire[2] ^= 1;
        let mut d = Decoder::new();
        d.feed(&wire);
        assert_eq!(d.next_message(), Err(EventStreamError::PreludeCrc));
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            let mut d = Decoder::new();
            d.feed(&bytes);
            let _ = d.next_message();
        }
    }
}
