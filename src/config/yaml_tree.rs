//! A YAML document as a small tree of strings with line numbers.
//!
//! nutcracker reads its YAML through libyaml events and treats every
//! scalar as text, converting per key; this module does the same with
//! `yaml-rust2`'s event parser, keeping the line of every key and sequence
//! item so errors can name them. Invariant: parsing never panics; anchors
//! and aliases (which nutcracker does not support either) are errors.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A node; `line` fields are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Scalar(String),
    /// Keys in file order with the line each key is written on.
    Map(Vec<Entry>),
    /// Items with the line each starts on.
    Seq(Vec<(usize, Node)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub line: usize,
    pub value: Node,
}

impl Node {
    /// What this is, for "expected ..., got ..." messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(_) => "a scalar",
            Node::Map(_) => "a mapping",
            Node::Seq(_) => "a sequence",
        }
    }
}

/// A YAML syntax error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub problem: String,
}

/// A container being filled, and for maps the key awaiting its value.
enum Frame {
    Map { entries: Vec<Entry>, pending: Option<(String, usize)> },
    Seq { items: Vec<(usize, Node)>, start: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// The document root once complete (`None` for an empty file).
    root: Option<Node>,
    error: Option<SyntaxError>,
    /// Line of the event being handled, for the value just completed.
    line: usize,
}

impl Builder {
    fn fail(&mut self, line: usize, problem: &str) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { line, problem: problem.to_owned() });
        }
    }

    /// Places a finished node into the enclosing container.
    fn put(&mut self, node: Node, line: usize) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push((line, node)),
            Some(Frame::Map { entries, pending }) => match pending.take() {
                Some((key, kline)) => entries.push(Entry { key, line: kline, value: node }),
                None => match node {
                    Node::Scalar(key) => *pending = Some((key, line)),
                    _ => self.fail(line, "expected a plain key, got a mapping or sequence as a key"),
                },
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line().max(1);
        self.line = line;
        match ev {
            Event::Scalar(text, _, anchor, _) => {
                if anchor != 0 {
                    self.fail(line, "anchors and aliases are not supported");
                }
                self.put(Node::Scalar(text), line);
            }
            Event::Alias(_) => self.fail(line, "anchors and aliases are not supported"),
            Event::MappingStart(..) => self.stack.push(Frame::Map { entries: Vec::new(), pending: None }),
            Event::SequenceStart(..) => self.stack.push(Frame::Seq { items: Vec::new(), start: line }),
            Event::MappingEnd => {
                if let Some(Frame::Map { entries, .. }) = self.stack.pop() {
                    // A map's own line is that of its first key, which is
                    // where a reader looks for it.
                    let start = entries.first().map_or(line, |e| e.line);
                    self.put(Node::Map(entries), start);
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, start }) = self.stack.pop() {
                    self.put(Node::Seq(items), start);
                }
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty document is `Ok(None)`.
pub(crate) fn parse(src: &str) -> Result<Option<Node>, SyntaxError> {
    let mut b = Builder::default();
    if let Err(e) = Parser::new_from_str(src).load(&mut b, false) {
        return Err(SyntaxError { line: e.marker().line().max(1), problem: e.info().to_owned() });
    }
    match b.error {
        Some(e) => Err(e),
        None => Ok(b.root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(s: &str) -> Node {
        Node::Scalar(s.to_owned())
    }

    #[test]
    fn keeps_keys_items_and_their_lines() {
        let src =
            "# c\nalpha:\n  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:6379:1\n   - 127.0.0.1:6380:1 b\n";
        let Some(Node::Map(top)) = parse(src).expect("valid") else { panic!("root is a map") };
        assert_eq!((top[0].key.as_str(), top[0].line), ("alpha", 2));
        let Node::Map(pool) = &top[0].value else { panic!("pool is a map") };
        assert_eq!(pool[0], Entry { key: "listen".into(), line: 3, value: scalar("127.0.0.1:22121") });
        assert_eq!(pool[1].line, 4);
        let Node::Seq(items) = &pool[1].value else { panic!("servers is a seq") };
        assert_eq!(items[0], (5, scalar("127.0.0.1:6379:1")));
        assert_eq!(items[1], (6, scalar("127.0.0.1:6380:1 b")));
    }

    #[test]
    fn quoted_scalars_are_text_and_empty_is_none() {
        let Some(Node::Map(top)) = parse("a: \"{}\"\nb: true\n").expect("valid") else { panic!() };
        assert_eq!(top[0].value, scalar("{}"));
        assert_eq!(top[1].value, scalar("true"));
        assert_eq!(parse("").expect("valid"), None);
        assert_eq!(parse("# only a comment\n").expect("valid"), None);
    }

    #[test]
    fn syntax_errors_and_aliases_carry_a_line() {
        let e = parse("a:\n  b: [1, 2\n").expect_err("unclosed flow sequence");
        assert!(e.line >= 2, "{e:?}");
        let e = parse("a: &x 1\nb: *x\n").expect_err("alias");
        assert_eq!(e.line, 1);
    }
}
