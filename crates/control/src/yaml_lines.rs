//! Where each field is: a map from a field path (`spec.targetModels[1].weight`, the same form
//! `serde_path_to_error` prints) to its 1-based line, per YAML document. Validation errors use it
//! to say file, line and field.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One YAML document's field locations.
#[derive(Debug, Default, Clone)]
pub struct DocLines {
    /// The line the document's content starts on.
    pub start_line: usize,
    fields: HashMap<String, usize>,
}

impl DocLines {
    /// The line of `path`, or of its nearest ancestor that has one, or the document start.
    pub fn line_of(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(l) = self.fields.get(p) {
                return *l;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.start_line,
            }
        }
    }
}

enum Frame {
    Map {
        key: Option<String>,
        expecting_key: bool,
    },
    Seq {
        index: usize,
    },
}

struct Recv {
    docs: Vec<DocLines>,
    stack: Vec<Frame>,
    path: Vec<String>,
}

impl Recv {
    fn current_path(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            if seg.starts_with('[') || s.is_empty() {
                s.push_str(seg);
            } else {
                s.push('.');
                s.push_str(seg);
            }
        }
        s
    }

    /// A value (scalar or container start) is about to be consumed at this position.
    fn enter_value(&mut self, line: usize) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, expecting_key }) => {
                *expecting_key = true;
                let k = key.take().unwrap_or_default();
                self.path.push(k);
            }
            Some(Frame::Seq { index }) => {
                let i = *index;
                *index += 1;
                self.path.push(format!("[{i}]"));
                let p = self.current_path();
                if let Some(doc) = self.docs.last_mut() {
                    doc.fields.entry(p).or_insert(line);
                }
            }
            None => {}
        }
    }

    fn leave_value(&mut self) {
        if !self.stack.is_empty() {
            self.path.pop();
        }
    }
}

impl MarkedEventReceiver for Recv {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::DocumentStart => {
                self.docs.push(DocLines {
                    start_line: line.max(1),
                    fields: HashMap::new(),
                });
                self.stack.clear();
                self.path.clear();
            }
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { key, expecting_key }) = self.stack.last_mut() {
                    if *expecting_key {
                        *expecting_key = false;
                        *key = Some(value.clone());
                        self.path.push(value);
                        let p = self.current_path();
                        self.path.pop();
                        if let Some(doc) = self.docs.last_mut() {
                            doc.fields.entry(p).or_insert(line);
                        }
                        return;
                    }
                }
                self.enter_value(line);
                self.leave_value();
            }
            Event::Alias(_) => {
                self.enter_value(line);
                self.leave_value();
            }
            Event::MappingStart(..) => {
                self.enter_value(line);
                self.stack.push(Frame::Map {
                    key: None,
                    expecting_key: true,
                });
            }
            Event::SequenceStart(..) => {
                self.enter_value(line);
                self.stack.push(Frame::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.leave_value();
            }
            _ => {}
        }
    }
}

/// Field lines for every document in `text`, or the syntax error's (line, message).
pub fn document_lines(text: &str) -> Result<Vec<DocLines>, (usize, String)> {
    let mut recv = Recv {
        docs: Vec::new(),
        stack: Vec::new(),
        path: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut recv, true)
        .map_err(|e| (e.marker().line(), e.info().to_string()))?;
    Ok(recv.docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_lines() {
        let text = "\
apiVersion: v1
kind: X
spec:
  targets:
  - name: a
    weight: 1
  - name: b
    weight: 2
---
kind: Y
metadata:
  name: y
";
        let docs = document_lines(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line_of("kind"), 2);
        assert_eq!(docs[0].line_of("spec.targets[1].weight"), 8);
        assert_eq!(docs[0].line_of("spec.targets[0]"), 5);
        assert_eq!(docs[0].line_of("spec.targets[1].unknown"), 7);
        assert_eq!(docs[1].line_of("metadata.name"), 12);
    }

    #[test]
    fn syntax_error_has_line() {
        let (line, _msg) = document_lines("a: b\nc: [1, 2\nd: e\n").unwrap_err();
        assert!(line >= 2, "line {line}");
    }
}
