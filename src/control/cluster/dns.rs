//! Hostname lookups for topology refreshes (clusters that announce
//! hostnames: `cluster-announce-hostname`), bounded in time.
//!
//! `getaddrinfo` blocks, and its own timeouts add up to many seconds per
//! name when a resolver is slow or gone. The refresh runs on the control
//! thread, which also runs health probes, reloads and every other pool's
//! refresh, so it must never wait on DNS for longer than the refresh's own
//! budget. Here each lookup runs on a short-lived helper thread; the
//! refresh waits for all of a topology's names together, until its
//! deadline at most, and uses the last answer for a name whose fresh
//! lookup is late. A late lookup keeps running and its answer is picked
//! up by a later refresh; a name never has two lookups at once, and at
//! most `MAX_PENDING` run in all (past that a name keeps its last answer).
//!
//! Owner: the control thread (one `Dns` per cluster pool). Invariant: the
//! cache holds only names of the last topology resolved, so it is bounded
//! by the topology's size.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

/// Lookups running at once, at most.
const MAX_PENDING: usize = 64;

/// One lookup: a host (never an IP literal) and port to an address.
pub type Lookup = Arc<dyn Fn(&str, u16) -> Option<SocketAddr> + Send + Sync>;

/// A host name and port as a cluster announced it.
pub type Name = (String, u16);

pub struct Dns {
    lookup: Lookup,
    /// The last answer per name (`None`: it did not resolve).
    cache: HashMap<Name, Option<SocketAddr>>,
    /// Lookups still running, each on its helper thread.
    pending: HashMap<Name, Receiver<Option<SocketAddr>>>,
}

impl Default for Dns {
    fn default() -> Self {
        Dns::system()
    }
}

impl Dns {
    /// The system resolver (`getaddrinfo`).
    pub fn system() -> Dns {
        Dns::with_lookup(Arc::new(|host: &str, port: u16| (host, port).to_socket_addrs().ok()?.next()))
    }

    /// A resolver that runs `lookup` (tests pass a table or a slow one).
    pub fn with_lookup(lookup: Lookup) -> Dns {
        Dns { lookup, cache: HashMap::new(), pending: HashMap::new() }
    }

    /// Resolves `names` together, waiting until `deadline` at most. A name
    /// whose lookup is not done by then gets its last answer, if any.
    pub fn resolve_all(&mut self, names: &[Name], deadline: Instant) -> HashMap<Name, SocketAddr> {
        for name in names {
            if !self.pending.contains_key(name) && self.pending.len() < MAX_PENDING {
                self.start(name);
            }
        }
        for name in names {
            let Some(rx) = self.pending.get(name) else { continue };
            let left = deadline.saturating_duration_since(Instant::now());
            let got = if left.is_zero() {
                rx.try_recv().map_err(|e| e == TryRecvError::Disconnected)
            } else {
                rx.recv_timeout(left).map_err(|e| e == RecvTimeoutError::Disconnected)
            };
            match got {
                Ok(answer) => {
                    self.cache.insert(name.clone(), answer);
                    self.pending.remove(name);
                }
                // The helper thread died without answering.
                Err(true) => {
                    self.pending.remove(name);
                }
                // Late: it keeps running; a later refresh takes its answer.
                Err(false) => {}
            }
        }
        self.cache.retain(|n, _| names.contains(n));
        // Dropping a receiver lets its helper thread end unheard.
        self.pending.retain(|n, _| names.contains(n));
        names.iter().filter_map(|n| Some((n.clone(), (*self.cache.get(n)?)?))).collect()
    }

    /// Starts a lookup of `name` on a helper thread. If no thread can be
    /// started, the name keeps its last answer.
    fn start(&mut self, name: &Name) {
        let (tx, rx) = mpsc::sync_channel(1);
        let (lookup, host, port) = (self.lookup.clone(), name.0.clone(), name.1);
        let spawned = std::thread::Builder::new().name("puerta-dns".into()).spawn(move || {
            // The receiver may be gone (pool removed): nothing to tell.
            let _ = tx.send(lookup(&host, port));
        });
        match spawned {
            Ok(_) => {
                self.pending.insert(name.clone(), rx);
            }
            Err(e) => tracing::warn!(host = %name.0, err = %e, "cannot start a DNS lookup thread"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    /// A resolver whose lookups of "slow" wait until the test releases
    /// them (or 10 s pass, then answer late), counting lookups.
    fn gated() -> (Dns, mpsc::Sender<()>, Arc<AtomicUsize>) {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let dns = Dns::with_lookup(Arc::new(move |host: &str, port| {
            counted.fetch_add(1, Ordering::SeqCst);
            if host == "slow" {
                let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
            }
            Some(addr(if host == "slow" { 2 } else { 1 }, port))
        }));
        (dns, release, calls)
    }

    #[test]
    fn a_slow_lookup_never_holds_the_refresh_past_its_deadline() {
        let (mut dns, release, calls) = gated();
        let names = vec![("fast".to_owned(), 7000), ("slow".to_owned(), 7001)];
        let got = dns.resolve_all(&names, Instant::now() + Duration::from_millis(50));
        assert_eq!(got.get(&names[0]), Some(&addr(1, 7000)));
        assert_eq!(got.get(&names[1]), None, "the slow name is left out, not waited for");

        // Its lookup goes on; the next refresh takes its answer without
        // starting a second lookup of the same name.
        release.send(()).unwrap();
        let got = dns.resolve_all(&names, Instant::now() + Duration::from_secs(5));
        assert_eq!(got.get(&names[1]), Some(&addr(2, 7001)));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "fast twice, slow once");
    }

    #[test]
    fn a_late_lookup_keeps_the_last_answer() {
        let (mut dns, release, _) = gated();
        let slow = vec![("slow".to_owned(), 1)];
        release.send(()).unwrap();
        let got = dns.resolve_all(&slow, Instant::now() + Duration::from_secs(5));
        assert_eq!(got.get(&slow[0]), Some(&addr(2, 1)));
        // The next lookup hangs: the refresh uses the answer it had.
        let got = dns.resolve_all(&slow, Instant::now() + Duration::from_millis(20));
        assert_eq!(got.get(&slow[0]), Some(&addr(2, 1)));
        release.send(()).unwrap();
        // A name the topology no longer has is forgotten.
        let got = dns.resolve_all(&[], Instant::now());
        assert!(got.is_empty() && dns.cache.is_empty());
    }
}
