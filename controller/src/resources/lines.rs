//! Where each node of a YAML stream is written, so errors can say `FILE:LINE`.
//!
//! A second, event-level parse (yaml-rust2) beside serde_yaml_ng's: serde gives values without
//! positions. Lines are a hint; when the two parsers disagree (anchors, odd streams) an error
//! falls back to its nearest ancestor's line, then to the document's.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// The lines of one document: its start, and every node by the path of keys and indices to it.
#[derive(Debug, Default, Clone)]
pub(super) struct DocLines {
    pub start: usize,
    nodes: HashMap<String, usize>,
}

impl DocLines {
    /// The line of the node at `steps`, or of its nearest ancestor found.
    pub(super) fn line_of<I: IntoIterator<Item = String>>(&self, steps: I) -> usize {
        let steps: Vec<String> = steps.into_iter().collect();
        (0..=steps.len())
            .rev()
            .find_map(|n| self.nodes.get(&steps[..n].join("/")).copied())
            .unwrap_or(self.start)
    }
}

/// The documents of `text`, in order; empty when it does not parse (serde reports that).
pub(super) fn document_lines(text: &str) -> Vec<DocLines> {
    let mut recorder = Recorder::default();
    let mut parser = Parser::new_from_str(text);
    if parser.load(&mut recorder, true).is_err() {
        return Vec::new();
    }
    recorder.docs
}

#[derive(Default)]
struct Recorder {
    docs: Vec<DocLines>,
    /// Open containers: for a mapping, the pending key (None while a key is expected).
    stack: Vec<Frame>,
    path: Vec<String>,
}

enum Frame {
    /// The pending key and the line it is written on (where its value is reported).
    Mapping {
        key: Option<(String, usize)>,
    },
    Sequence {
        next: usize,
    },
}

impl Recorder {
    /// Called when a node starts: names it from its parent, records its line.
    fn enter(&mut self, mut line: usize) -> bool {
        match self.stack.last_mut() {
            Some(Frame::Mapping { key: None }) => return false,
            Some(Frame::Mapping {
                key: Some((k, key_line)),
            }) => {
                line = *key_line;
                self.path.push(k.clone());
            }
            Some(Frame::Sequence { next }) => {
                self.path.push(next.to_string());
                *next += 1;
            }
            None => {}
        }
        if let Some(doc) = self.docs.last_mut() {
            doc.nodes.entry(self.path.join("/")).or_insert(line);
        }
        true
    }

    /// Called when a node ends: a mapping awaits its next key.
    fn leave(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping { key }) => {
                *key = None;
                self.path.pop();
            }
            Some(Frame::Sequence { .. }) => {
                self.path.pop();
            }
            None => {}
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::DocumentStart => {
                self.docs.push(DocLines {
                    start: line,
                    nodes: HashMap::new(),
                });
                self.stack.clear();
                self.path.clear();
            }
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping { key: key @ None }) = self.stack.last_mut() {
                    *key = Some((value, line));
                } else if self.enter(line) {
                    self.leave();
                }
            }
            Event::Alias(_) if self.enter(line) => self.leave(),
            Event::MappingStart(..) => {
                self.enter(line);
                self.stack.push(Frame::Mapping { key: None });
            }
            Event::SequenceStart(..) => {
                self.enter(line);
                self.stack.push(Frame::Sequence { next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.leave();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(path: &str) -> Vec<String> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn nodes_get_the_line_they_are_written_on() {
        let text =
            "a: 1\n---\n# comment\nkind: X\nspec:\n  rules:\n  - name: r\n    backendRef: x\n";
        let docs = document_lines(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line_of(steps("kind")), 4);
        assert_eq!(docs[1].line_of(steps("spec/rules/0/backendRef")), 8);
        assert_eq!(docs[1].line_of(steps("spec/rules/0")), 7);
        // A missing field is reported at its parent.
        assert_eq!(docs[1].line_of(steps("spec/rules/0/matches")), 7);
    }

    #[test]
    fn flow_style_nodes_share_their_line() {
        let docs = document_lines("metadata: {name: a}\nspec: {listeners: [{port: x}]}\n");
        assert_eq!(docs[0].line_of(steps("spec/listeners/0/port")), 2);
    }
}
