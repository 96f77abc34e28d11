//! Where each field of a YAML file stands, so semantic errors can name file, line and field.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Maps dotted field paths (`tenants[0].domains[1].segment`) to 1-based lines.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    by_path: BTreeMap<String, usize>,
    scalars: BTreeMap<String, String>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

impl Frame {
    fn child_path(&self) -> String {
        match self {
            Frame::Map { path, key } => {
                let key = key.as_deref().unwrap_or("");
                if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                }
            }
            Frame::Seq { path, index } => format!("{path}[{index}]"),
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    by_path: BTreeMap<String, usize>,
    scalars: BTreeMap<String, String>,
}

impl Builder {
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn value_path(&self) -> String {
        self.stack.last().map(Frame::child_path).unwrap_or_default()
    }

    fn record(&mut self, path: String, mark: Marker) {
        // yaml-rust2 counts lines from 1.
        self.by_path.entry(path).or_insert(mark.line().max(1));
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, ..) => {
                if let Some(Frame::Map { path, key: key @ None }) = self.stack.last_mut() {
                    let full = if path.is_empty() { text.clone() } else { format!("{path}.{text}") };
                    *key = Some(text);
                    self.record(full, mark);
                } else {
                    let path = self.value_path();
                    self.record(path.clone(), mark);
                    self.scalars.insert(path, text);
                    self.value_done();
                }
            }
            Event::Alias(_) => {
                let path = self.value_path();
                self.record(path, mark);
                self.value_done();
            }
            Event::MappingStart(..) => {
                let path = self.value_path();
                self.record(path.clone(), mark);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path();
                self.record(path.clone(), mark);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

impl LineIndex {
    /// Indexes `text`; a YAML syntax error is returned as (line, message).
    pub fn build(text: &str) -> Result<Self, (usize, String)> {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        parser.load(&mut builder, false).map_err(|e| (e.marker().line().max(1), e.info().to_owned()))?;
        Ok(Self { by_path: builder.by_path, scalars: builder.scalars })
    }

    /// The line of `path`, or of its nearest recorded ancestor.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.by_path.get(p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The first field at or below `under` whose scalar value is `value`.
    pub fn find_value(&self, under: &str, value: &str) -> Option<&str> {
        self.scalars
            .iter()
            .filter(|(p, _)| {
                under.is_empty()
                    || p.as_str() == under
                    || p.starts_with(&format!("{under}."))
                    || p.starts_with(&format!("{under}["))
            })
            .find(|(_, v)| v.as_str() == value)
            .map(|(p, _)| p.as_str())
    }

    /// The deepest field path that starts on `line`, for errors that only know their line.
    pub fn path_at_line(&self, line: usize) -> Option<&str> {
        self.by_path.iter().filter(|(_, l)| **l == line).map(|(p, _)| p.as_str()).max_by_key(|p| p.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_lines() {
        let text = "tenants:\n  - name: a\n    domains:\n      - name: d\n        segment: 5\n  - name: b\n";
        let idx = LineIndex::build(text).unwrap();
        assert_eq!(idx.line_of("tenants[0].name"), Some(2));
        assert_eq!(idx.line_of("tenants[0].domains[0].segment"), Some(5));
        assert_eq!(idx.line_of("tenants[1].name"), Some(6));
        assert_eq!(idx.line_of("tenants[1].domains[3].name"), Some(6));
        assert_eq!(idx.path_at_line(5), Some("tenants[0].domains[0].segment"));
    }

    #[test]
    fn flow_style_is_indexed() {
        let idx = LineIndex::build("vms:\n  - { name: x,\n      ip: 1.2.3.4 }\n").unwrap();
        assert_eq!(idx.line_of("vms[0].ip"), Some(3));
    }

    #[test]
    fn syntax_error_has_line() {
        let err = LineIndex::build("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.0 >= 1);
    }
}
