//! Key paths (`pool[1].servers[0]`) and where they sit in the source text.
//!
//! Owns the mapping from a validation problem back to a line number. The
//! validator works on plain serde structs that have forgotten where their
//! values came from, so each problem carries a `KeyPath` and this module
//! looks the path up in a span-preserving `toml_edit` parse of the same text.
//! Invariant: lookup never fails. A path that is not in the document (a key
//! left at its default, a missing required key) resolves to the deepest
//! table that is there, and failing that to line 1.

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path such as `pool[1].balance`; the root is the empty path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    /// `self` placed under `parent`, for problems found relative to a table.
    pub(crate) fn under(&self, parent: &KeyPath) -> Self {
        let mut segs = parent.0.clone();
        segs.extend(self.0.iter().cloned());
        Self(segs)
    }

    pub(crate) fn push(&mut self, seg: Seg) {
        self.0.push(seg);
    }

    /// The steps of this path, outermost first.
    pub(crate) fn segments(&self) -> &[Seg] {
        &self.0
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Resolves the path to the 1-based line where it is written in `doc`.
    pub(crate) fn line_in<S: AsRef<str>>(&self, doc: &ImDocument<S>) -> usize {
        let src = doc.raw();
        match self.span_in(doc.as_table()) {
            Some(span) => line_of(src, span.start),
            None => 1,
        }
    }

    /// The span of the deepest resolvable part of the path.
    fn span_in(&self, root: &Table) -> Option<Range<usize>> {
        let mut node = Node::Table(root);
        // The root table's span is 0..0, which is useless; report line 1.
        let mut best = None;
        for seg in &self.0 {
            let step = match seg {
                Seg::Key(key) => node.child_key(key),
                Seg::Index(index) => node.child_index(*index),
            };
            let Some((span, child)) = step else { break };
            best = span.or(best);
            node = child;
        }
        best
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => write!(f, "{key}")?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line containing byte `offset` of `src`.
pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    // Count on bytes: `offset` may come from a span that is not on a char
    // boundary after an error, and '\n' is never part of a multi-byte char.
    src.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A position in the parsed document. `toml_edit` hands out three kinds of
/// reference (a table from `[[pool]]`, an item under a key, a value inside
/// an array or inline table), so the walk has to carry all three.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Item(&'a Item),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    /// The child under `key`, with the span of the key as written, since
    /// that is the line a reader looks for ("balance = ..."), falling back
    /// to the value's span.
    fn child_key(self, key: &str) -> Option<(Option<Range<usize>>, Node<'a>)> {
        let (k, item) = match self {
            Node::Table(t) => t.get_key_value(key)?,
            Node::Item(i) => i.as_table_like()?.get_key_value(key)?,
            Node::Value(v) => v.as_inline_table()?.get_key_value(key)?,
        };
        let span = k.span().or_else(|| item.span());
        Some((span, Node::Item(item)))
    }

    fn child_index(self, index: usize) -> Option<(Option<Range<usize>>, Node<'a>)> {
        match self {
            Node::Item(Item::ArrayOfTables(a)) => {
                let t = a.get(index)?;
                Some((t.span(), Node::Table(t)))
            }
            Node::Item(Item::Value(v)) | Node::Value(v) => {
                let v = v.as_array()?.get(index)?;
                Some((v.span(), Node::Value(v)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
# comment
[server]
workers = 4

[[pool]]
name = \"a\"

[[pool]]
name = \"b\"
servers = [
  \"127.0.0.1:1\",
  \"127.0.0.1:2\",
]
";

    fn line(path: &KeyPath) -> usize {
        let doc = ImDocument::parse(SRC).expect("test source is valid TOML");
        path.line_in(&doc)
    }

    #[test]
    fn display_mixes_keys_and_indices() {
        let p = KeyPath::root().key("pool").index(1).key("servers").index(0);
        assert_eq!(p.to_string(), "pool[1].servers[0]");
        assert_eq!(KeyPath::root().to_string(), "");
    }

    #[test]
    fn resolves_keys_tables_and_array_elements() {
        let root = KeyPath::root();
        assert_eq!(line(&root.key("server").key("workers")), 3);
        assert_eq!(line(&root.key("pool").index(0).key("name")), 6);
        assert_eq!(line(&root.key("pool").index(1).key("servers").index(1)), 12);
    }

    #[test]
    fn missing_keys_fall_back_to_the_enclosing_table_then_line_1() {
        let root = KeyPath::root();
        assert_eq!(line(&root.key("pool").index(1).key("listen")), 8);
        assert_eq!(line(&root.key("pool").index(7)), 5);
        assert_eq!(line(&root.key("nope").key("deeper")), 1);
        assert_eq!(line(&root), 1);
    }

    #[test]
    fn line_of_counts_newlines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
