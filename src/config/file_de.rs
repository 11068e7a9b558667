//! Layer 1's reading: deserializes the TOML source into `file`'s structs
//! and turns what serde rejects (unknown keys, a string where a table
//! belongs) into a key path, a line and an "expected X, got Y" problem,
//! the same form as validation errors. Invariants: nothing here panics on
//! file content; a serde message it does not recognise passes through
//! unchanged rather than being lost.

use serde_path_to_error::Segment;

use super::file::ConfigFile;
use super::span::{line_of, KeyPath, Seg};

/// A serde failure, reduced to what `ConfigError::Invalid` needs. `line` is
/// `None` when toml attached no span; the caller then looks up `path`.
#[derive(Debug)]
pub(crate) struct ShapeError {
    pub path: KeyPath,
    pub line: Option<usize>,
    pub problem: String,
}

/// Deserializes `src` (already known to be syntactically valid TOML).
pub(crate) fn deserialize(src: &str) -> Result<ConfigFile, ShapeError> {
    let de = toml::Deserializer::new(src);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let mut path = KeyPath::root();
        for seg in err.path().iter() {
            match seg {
                Segment::Seq { index } => path.push(Seg::Index(*index)),
                Segment::Map { key } => path.push(Seg::Key(key.clone())),
                Segment::Enum { variant } => path.push(Seg::Key(variant.clone())),
                Segment::Unknown => {}
            }
        }
        let inner = err.inner();
        ShapeError { path, line: inner.span().map(|s| line_of(src, s.start)), problem: reword(inner.message()) }
    })
}

/// Rewrites serde's stock messages into "expected X, got Y" form. Anything
/// unrecognised passes through unchanged rather than being lost.
fn reword(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        // "unknown field `x`, expected one of `a`, `b`" (or "expected `a`",
        // "expected `a` or `b`", "there are no fields").
        let expected = rest.split_once("`, ").map_or("", |(_, e)| e);
        let names = expected
            .trim_start_matches("expected one of ")
            .trim_start_matches("expected ")
            .replace('`', "")
            .replace(" or ", ", ");
        return if expected.starts_with("expected") {
            format!("unknown key; expected one of {names}")
        } else {
            "unknown key; this table takes no keys".to_owned()
        };
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = msg.strip_prefix(prefix).and_then(|rest| rest.rsplit_once(", expected ")) {
            return format!("expected {}, got {got}", toml_words(expected));
        }
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        return format!("required key `{}` is missing", rest.trim_end_matches('`'));
    }
    msg.to_owned()
}

/// Serde names Rust types ("i64", "struct PoolFile"); users wrote TOML.
fn toml_words(expected: &str) -> &str {
    match expected {
        "i64" | "u64" | "i32" | "u32" | "usize" => "an integer",
        "a sequence" => "an array",
        "a map" => "a table",
        s if s.starts_with("struct ") => "a table",
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::Scalar;

    #[test]
    fn rewords_serde_messages() {
        assert_eq!(
            reword("unknown field `blance`, expected one of `name`, `listen`"),
            "unknown key; expected one of name, listen"
        );
        assert_eq!(
            reword("unknown field `x`, expected `server` or `pool`"),
            "unknown key; expected one of server, pool"
        );
        assert_eq!(reword("invalid type: integer `5`, expected a string"), "expected a string, got integer `5`");
        assert_eq!(
            reword("invalid type: integer `5`, expected struct ServerFile"),
            "expected a table, got integer `5`"
        );
        assert_eq!(reword("invalid type: string \"x\", expected a sequence"), "expected an array, got string \"x\"");
        assert_eq!(reword("something else"), "something else");
    }

    #[test]
    fn defaults_fill_omitted_keys() {
        let file = deserialize("[[pool]]\nname = \"a\"\n").expect("valid shape");
        assert_eq!(file.server.workers, Scalar::text("auto"));
        assert_eq!(file.pool.len(), 1);
        assert_eq!(file.pool[0].balance, None);
        assert_eq!(file.pool[0].servers, None);
    }

    #[test]
    fn integers_and_strings_both_become_scalars() {
        let file = deserialize("[server]\nworkers = 4\nshutdown_timeout = \"5s\"\n").expect("valid shape");
        assert_eq!(file.server.workers, Scalar::Int(4));
        assert_eq!(file.server.shutdown_timeout, Scalar::text("5s"));
    }
}
