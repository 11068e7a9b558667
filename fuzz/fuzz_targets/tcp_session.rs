//! Arbitrary event sequences against `TcpSession`: no panic, bytes relayed
//! in order and never duplicated, nothing after Close, and no tick acts
//! before `next_deadline`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use puerta::session::{Intent, Limits, Side, TcpSession};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let limits = Limits { connect_timeout: Duration::from_millis(50), idle_timeout: Some(Duration::from_millis(80)), high_water: 64 };
    let mut s = TcpSession::new(limits, t0);
    let mut sent = [Vec::new(), Vec::new()]; // bytes fed from each side
    let mut got = [Vec::new(), Vec::new()]; // bytes delivered to each side
    let mut closed = false;
    let mut now = t0;
    for chunk in data.chunks(3) {
        let (op, arg) = (chunk[0] % 10, chunk.get(1).copied().unwrap_or(0));
        let side = if arg & 1 == 0 { Side::Client } else { Side::Backend };
        match op {
            0 => s.handle_connected(now),
            1 | 2 => {
                let bytes: Vec<u8> = (0..arg % 40).map(|i| i ^ arg).collect();
                if !closed {
                    sent[side as usize].extend_from_slice(&bytes);
                }
                s.handle_data(side, &bytes, now);
            }
            3 => s.handle_eof(side),
            4 => s.handle_connect_failed(111, arg & 2 == 0),
            5 => now += Duration::from_millis(arg as u64),
            6 => {
                // Before its next deadline a tick changes nothing: drivers
                // that arm one timer at `next_deadline` miss no expiry.
                let quiet = s.next_deadline(false).is_none_or(|d| now < d);
                s.handle_tick(now);
                if quiet {
                    assert_eq!(s.poll_intent(), None, "tick before next_deadline acted");
                }
            }
            _ => {
                if let Some(buf) = s.poll_transmit(side) {
                    let n = (arg as usize).min(buf.len());
                    got[side as usize].extend_from_slice(&buf[..n]);
                    s.handle_sent(side, n, now);
                }
            }
        }
        while let Some(i) = s.poll_intent() {
            assert!(!closed, "intent after close");
            if let Intent::Close(_) = i {
                closed = true;
            }
        }
    }
    // What reached a side is a prefix of what the other side sent.
    for side in [Side::Client, Side::Backend] {
        let from = side.other() as usize;
        assert!(sent[from].starts_with(&got[side as usize]));
    }
});
