//! Classifying a node's error reply: a redirect to follow (MOVED, ASK), a
//! transient state to retry after a pause (TRYAGAIN, CLUSTERDOWN, LOADING,
//! MASTERDOWN), or an ordinary error for the client.
//!
//! Runs on every error reply on the request path, so it reads the line in
//! place and allocates only for the redirect target. A malformed MOVED or
//! ASK is not followed: it is passed to the client as the error it is.

use super::Endpoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `-MOVED slot host:port`: the slot lives there now.
    Moved { slot: u16, to: Endpoint },
    /// `-ASK slot host:port`: this one request goes there, after ASKING.
    Ask { slot: u16, to: Endpoint },
    /// `-TRYAGAIN`: a multi-key request during a slot migration.
    TryAgain,
    /// `-CLUSTERDOWN`: the cluster (or this slot) is not being served.
    ClusterDown,
    /// `-LOADING`: the node is loading its dataset.
    Loading,
    /// `-MASTERDOWN`: a replica lost its master and serves no stale data.
    MasterDown,
}

impl Redirect {
    /// True for the states that a retry after a pause can get past.
    pub fn is_retry(&self) -> bool {
        matches!(self, Redirect::TryAgain | Redirect::ClusterDown | Redirect::Loading | Redirect::MasterDown)
    }
}

/// Classifies a whole error reply frame (`-MOVED 3999 127.0.0.1:6381\r\n`)
/// or its line without the CRLF. `None` for any other error.
pub fn classify(reply: &[u8]) -> Option<Redirect> {
    let line = reply.strip_prefix(b"-")?;
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let word_end = memchr::memchr(b' ', line).unwrap_or(line.len());
    match &line[..word_end] {
        b"MOVED" | b"ASK" => {
            let text = std::str::from_utf8(&line[word_end..]).ok()?;
            let mut parts = text.split_ascii_whitespace();
            let slot: u16 = parts.next()?.parse().ok().filter(|&s| usize::from(s) < super::SLOTS)?;
            let to = Endpoint::parse(parts.next()?)?;
            if parts.next().is_some() {
                return None;
            }
            Some(if line.starts_with(b"MOVED") { Redirect::Moved { slot, to } } else { Redirect::Ask { slot, to } })
        }
        b"TRYAGAIN" => Some(Redirect::TryAgain),
        b"CLUSTERDOWN" => Some(Redirect::ClusterDown),
        b"LOADING" => Some(Redirect::Loading),
        b"MASTERDOWN" => Some(Redirect::MasterDown),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Endpoint {
        Endpoint { host: host.into(), port }
    }

    #[test]
    fn redirects_and_retries() {
        assert_eq!(
            classify(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Some(Redirect::Moved { slot: 3999, to: ep("127.0.0.1", 6381) })
        );
        assert_eq!(classify(b"-ASK 0 ::1:7000"), Some(Redirect::Ask { slot: 0, to: ep("::1", 7000) }));
        assert_eq!(classify(b"-MOVED 12 :7002\r\n"), Some(Redirect::Moved { slot: 12, to: ep("", 7002) }));
        assert_eq!(classify(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"), Some(Redirect::TryAgain));
        assert_eq!(classify(b"-CLUSTERDOWN Hash slot not served\r\n"), Some(Redirect::ClusterDown));
        assert_eq!(classify(b"-LOADING Redis is loading the dataset in memory\r\n"), Some(Redirect::Loading));
        assert_eq!(classify(b"-MASTERDOWN Link with MASTER is down\r\n"), Some(Redirect::MasterDown));
        assert!(Redirect::TryAgain.is_retry() && !Redirect::Ask { slot: 1, to: ep("h", 1) }.is_retry());
    }

    #[test]
    fn other_errors_and_malformed_redirects_are_none() {
        for line in [
            &b"-ERR unknown command\r\n"[..],
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
            b"-MOVED\r\n",
            b"-MOVED 16384 h:1\r\n",
            b"-MOVED x h:1\r\n",
            b"-MOVED 1 nohostport\r\n",
            b"-MOVED 1 h:1 extra\r\n",
            b"-MOVEDX 1 h:1\r\n",
            b"+MOVED 1 h:1\r\n",
            b"-ASK 1 h:0\r\n",
        ] {
            assert_eq!(classify(line), None, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
