//! The floor of a proxy hop, for benchmarks (`scripts/profile-wakeups.sh`
//! with `FLOOR=1`): the least any user-space proxy can do between a client
//! and a backend. One thread, one epoll loop (mio); every accepted client
//! gets its own backend connection, and bytes are copied from one socket to
//! the other as they arrive: no parsing, no routing, no queues, no timers,
//! no statistics.
//!
//! What it measures: the cost of the two extra loopback hops and the
//! proxy's own wakeups. Any proxy that parses, shares backend connections
//! or keeps counters adds to this floor; none can go below it with the
//! same sleeping pattern. `--spin-us N` polls with a zero timeout for up
//! to N microseconds before it sleeps, as Puerta's `busy_poll_us` does:
//! the floor for a busy-polling proxy.
//!
//! Invariants: bytes keep their order per direction; a write that would
//! block is retried in place (spins), which is fine for the small
//! requests and replies a benchmark sends, and is not a proxy. Either side
//! closing closes the pair. Not a test fixture.
//!
//! Usage: relay_floor --listen PORT --backend HOST:PORT [--spin-us N]
//! Prints `PORT <n>` once listening, runs until killed.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

struct Args {
    listen: u16,
    backend: SocketAddr,
    spin_us: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut listen, mut backend, mut spin_us) = (0u16, None, 0u64);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => {
                let v = it.next().ok_or("--listen needs a port")?;
                listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--backend" => {
                let v = it.next().ok_or("--backend needs HOST:PORT")?;
                backend = Some(v.parse().map_err(|e| format!("--backend {v}: {e}"))?);
            }
            "--spin-us" => {
                let v = it.next().ok_or("--spin-us needs a number")?;
                spin_us = v.parse().map_err(|e| format!("--spin-us {v}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args { listen, backend: backend.ok_or("--backend is required")?, spin_us })
}

/// Copies what `from` has to `to`. `Ok(false)`: `from` reached EOF.
fn pump(from: &mut TcpStream, to: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut out = &buf[..n];
        while !out.is_empty() {
            match to.write(out) {
                Ok(0) => return Ok(false),
                Ok(w) => out = &out[w..],
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    std::hint::spin_loop()
                }
                Err(e) => return Err(e),
            }
        }
        if n < buf.len() {
            return Ok(true);
        }
    }
}

/// Polls without sleeping for up to `spin`, then waits.
fn wait(poll: &mut Poll, events: &mut Events, spin: Duration) -> io::Result<()> {
    if !spin.is_zero() {
        let end = Instant::now() + spin;
        loop {
            poll.poll(events, Some(Duration::ZERO))?;
            if !events.is_empty() || Instant::now() >= end {
                break;
            }
            std::hint::spin_loop();
        }
        if !events.is_empty() {
            return Ok(());
        }
    }
    poll.poll(events, None)
}

fn main() -> io::Result<()> {
    let args = parse_args().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.listen)))?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("PORT {}", listener.local_addr()?.port());
    // Pair i: client at slot 2i, backend at slot 2i + 1; the token is the slot.
    let mut socks: Vec<Option<TcpStream>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let spin = Duration::from_micros(args.spin_us);
    loop {
        if let Err(e) = wait(&mut poll, &mut events, spin) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events {
            if ev.token() == LISTENER {
                while let Ok((mut client, _)) = listener.accept() {
                    let std_backend = std::net::TcpStream::connect(args.backend)?;
                    std_backend.set_nodelay(true)?;
                    std_backend.set_nonblocking(true)?;
                    let mut backend = TcpStream::from_std(std_backend);
                    client.set_nodelay(true)?;
                    let slot = match socks.chunks(2).position(|p| p[0].is_none()) {
                        Some(i) => 2 * i,
                        None => {
                            socks.extend([None, None]);
                            socks.len() - 2
                        }
                    };
                    poll.registry().register(&mut client, Token(slot), Interest::READABLE)?;
                    poll.registry().register(&mut backend, Token(slot + 1), Interest::READABLE)?;
                    socks[slot] = Some(client);
                    socks[slot + 1] = Some(backend);
                }
                continue;
            }
            let slot = ev.token().0;
            let pair = slot & !1;
            let (a, b) = socks.split_at_mut(pair + 1);
            let (Some(client), Some(backend)) = (a[pair].as_mut(), b[0].as_mut()) else { continue };
            let open = if slot == pair { pump(client, backend, &mut buf) } else { pump(backend, client, &mut buf) };
            if !matches!(open, Ok(true)) {
                for s in [pair, pair + 1] {
                    if let Some(mut sock) = socks[s].take() {
                        let _ = poll.registry().deregister(&mut sock);
                    }
                }
            }
        }
    }
}
