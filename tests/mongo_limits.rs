//! Per-IP limits of `mode = "mongos"` pools through the real `puerta`
//! binary, both I/O drivers, over a mockupdb mongos stand-in: the
//! connection count refuses the third connection of an address, "delay"
//! holds a client to its rate without an error, and "error" (like
//! "close") closes the connection, since a mongos pool has no error
//! reply of its own to give.

mod common;
mod mongo_support;

use std::time::{Duration, Instant};

use bson::doc;
use common::*;
use mongo_support::*;

fn ping(c: &mut Mongo) -> std::io::Result<bson::Document> {
    c.command(doc! {"ping": 1, "$db": "admin"})
}

#[test]
fn mongos_pools_limit_connections_and_rates_per_ip() {
    let s = Standin::start("a");
    for io in drivers() {
        let listen = free_port();
        let extra = "per_ip = { connections = 2, requests = 20, burst = 1.0 }";
        let p = Puerta::start(&mongos_config(listen, &[("a", s.port)], extra), io);
        p.wait_ready();
        let mut a = Mongo::connect(listen);
        let mut b = Mongo::connect(listen);
        ping(&mut a).unwrap();
        ping(&mut b).unwrap();
        let mut third = Mongo::connect(listen);
        assert!(third.is_closed(), "{io}: the third connection of the address is refused");
        assert_eq!(p.metric("puerta_client_rejected_total", "reason=\"per_ip_connections\""), 1.0, "{io}");

        // 20 of burst (less what the pings took), then 20/s: 60 more
        // cannot finish in under (60 - 20 - 4) / 20 s; none fails.
        let t0 = Instant::now();
        for _ in 0..60 {
            ping(&mut a).unwrap_or_else(|e| panic!("{io}: delay never fails: {e}"));
        }
        let took = t0.elapsed();
        eprintln!("{io}: 60 pings at 20/s took {took:?}");
        assert!(took >= Duration::from_secs_f64(36.0 / 20.0), "{io}: the rate was passed ({took:?})");
        assert!(p.metric("puerta_ip_rate_limited_total", "pool=\"mongo\"") >= 1.0, "{io}");
        drop(p);

        let listen = free_port();
        let extra = "on_limit = \"error\"\nper_ip = { requests = 5, burst = 1.0 }";
        let p = Puerta::start(&mongos_config(listen, &[("a", s.port)], extra), io);
        p.wait_ready();
        let mut c = Mongo::connect(listen);
        let answered = (0..20).take_while(|_| ping(&mut c).is_ok()).count();
        assert!((1..20).contains(&answered), "{io}: {answered} answered before the close");
        assert!(c.is_closed(), "{io}: closed, not answered with an error");
        wait_until("the close counted", Duration::from_secs(5), || {
            p.metric("puerta_rate_limited_total", "pool=\"mongo\"") >= 1.0
        });
    }
}
