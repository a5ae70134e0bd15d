//! Server-sent events, incrementally.
//!
//! [`SseSplitter`] cuts a byte stream into complete events (terminated by a blank line) no matter
//! how the transport chunked it: an event split across chunks is reassembled, events that lie
//! wholly inside a chunk are handed out as zero-copy slices. It holds at most one partial event.

use bytes::{Buf, Bytes, BytesMut};

/// Events larger than this are passed through in pieces instead of being held (a bound on memory
/// for a misbehaving upstream that never sends a blank line).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct SseSplitter {
    partial: BytesMut,
}

/// Find the end (exclusive, including the terminator) of the first complete event in `buf`.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let nl = from + i;
        // "\n\n" or "\n\r\n"
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => from = nl + 1,
        }
    }
    None
}

impl SseSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one transport chunk; `on_event` gets each complete event, terminator included.
    pub fn feed(&mut self, mut chunk: Bytes, mut on_event: impl FnMut(Bytes)) {
        if !self.partial.is_empty() {
            self.partial.extend_from_slice(&chunk);
            while let Some(end) = event_end(&self.partial) {
                on_event(self.partial.split_to(end).freeze());
            }
            if self.partial.len() > MAX_EVENT_BYTES {
                on_event(self.partial.split().freeze());
            }
            return;
        }
        while let Some(end) = event_end(&chunk) {
            on_event(chunk.split_to(end));
        }
        if chunk.has_remaining() {
            if chunk.len() > MAX_EVENT_BYTES {
                on_event(chunk);
            } else {
                self.partial.extend_from_slice(&chunk);
            }
        }
    }

    /// Whatever is left when the stream ends (an unterminated last event).
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.partial.is_empty()).then(|| self.partial.split().freeze())
    }

    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }
}

/// The payload of an event's `data:` line(s); multi-line data is joined with `\n` as the SSE
/// spec says. Returns `None` for events without data (comments, keep-alives).
pub fn event_data(event: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let mut found: Option<std::borrow::Cow<'_, [u8]>> = None;
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = line.strip_prefix(b"data:") else {
            continue;
        };
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        found = Some(match found {
            None => std::borrow::Cow::Borrowed(rest),
            Some(prev) => {
                let mut v = prev.into_owned();
                v.push(b'\n');
                v.extend_from_slice(rest);
                std::borrow::Cow::Owned(v)
            }
        });
    }
    found
}

/// The `event:` name of an event, if any (Anthropic streams name their events).
pub fn event_name(event: &[u8]) -> Option<&[u8]> {
    event.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.strip_prefix(b"event:")
            .map(|r| r.strip_prefix(b" ").unwrap_or(r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = SseSplitter::new();
        let mut out = vec![];
        for c in chunks {
            s.feed(Bytes::copy_from_slice(c), |e| out.push(e.to_vec()));
        }
        if let Some(rest) = s.finish() {
            out.push(rest.to_vec());
        }
        out
    }

    #[test]
    fn whole_events_in_one_chunk() {
        let out = split_all(&[b"data: a\n\ndata: b\n\n"]);
        assert_eq!(out, vec![b"data: a\n\n".to_vec(), b"data: b\n\n".to_vec()]);
    }

    #[test]
    fn event_split_across_chunks() {
        let out = split_all(&[b"data: {\"x\"", b":1}\n", b"\ndata: [DONE]\n\n"]);
        assert_eq!(
            out,
            vec![
                b"data: {\"x\":1}\n\n".to_vec(),
                b"data: [DONE]\n\n".to_vec()
            ]
        );
    }

    #[test]
    fn crlf_terminators() {
        let out = split_all(&[b"data: a\r\n\r\ndata: b\r\n", b"\r\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(event_data(&out[0]).unwrap().as_ref(), b"a");
        assert_eq!(event_data(&out[1]).unwrap().as_ref(), b"b");
    }

    #[test]
    fn data_and_name() {
        let ev = b"event: message_start\ndata: {\"a\":1}\n\n";
        assert_eq!(event_name(ev), Some(&b"message_start"[..]));
        assert_eq!(event_data(ev).unwrap().as_ref(), b"{\"a\":1}");
        assert!(event_data(b": keep-alive\n\n").is_none());
        assert_eq!(
            event_data(b"data: a\ndata: b\n\n").unwrap().as_ref(),
            b"a\nb"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_yields_same_events(cuts in proptest::collection::vec(0usize..60, 0..8)) {
            let stream = b"data: {\"id\":1}\n\ndata: {\"id\":2,\"t\":\"x y\"}\n\n: ping\n\ndata: [DONE]\n\n".to_vec();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = vec![];
            let mut prev = 0;
            for p in points { chunks.push(&stream[prev..p]); prev = p; }
            chunks.push(&stream[prev..]);
            let out = split_all(&chunks);
            proptest::prop_assert_eq!(out.concat(), stream.clone());
            proptest::prop_assert_eq!(out.len(), 4);
        }
    }
}
