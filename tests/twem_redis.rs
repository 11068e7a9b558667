//! twemproxy-mode redis pools through the real `puerta` binary, under
//! both I/O drivers, against real redis-servers (and the real nutcracker
//! for placement): placement, pipelining, fan-out, byte splits both ways,
//! AUTH/SELECT and unsupported commands.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::twem::{command, dribble, Nutcracker, Proxy, RawResp, Reply};
use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, free_port, redis, wait_until, Proc};
use puerta::route::ShardRing;

/// The ring Puerta builds from the config file `p` was started with.
fn ring_of(p: &PuertaTwem) -> ShardRing {
    let cfg = puerta::config::load(&p.conf).unwrap_or_else(|e| panic!("{e}"));
    puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a redis pool has a ring")
}

fn ok() -> Reply {
    Reply::Status(b"OK".to_vec())
}

/// Keys of every shape the hashes care about: ASCII, hash-tagged, binary.
fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i % 3 {
            0 => format!("key:{i}").into_bytes(),
            1 => format!("user:{{{}}}:f{i}", i % 29).into_bytes(),
            _ => vec![0x80 | (i % 128) as u8, b'k', (i / 128) as u8, 0xff],
        })
        .collect()
}

/// Writes `keys` through `proxy` in one pipelined write and maps each key
/// to the backend holding it, read directly; then empties the backends.
fn placement(proxy: &dyn Proxy, backends: &[Proc], keys: &[Vec<u8>]) -> HashMap<Vec<u8>, usize> {
    let mut c = RawResp::connect(proxy.port());
    let cmds: Vec<Vec<u8>> = keys.iter().map(|k| command(&[b"SET", k, b"v"])).collect();
    for (k, r) in keys.iter().zip(c.pipeline(&cmds)) {
        assert_eq!(r, ok(), "{}: SET {k:?}", proxy.label());
    }
    let mut at = HashMap::new();
    for (i, b) in backends.iter().enumerate() {
        let mut direct = RawResp::connect(b.port);
        for k in direct.keys() {
            assert!(at.insert(k, i).is_none(), "a key on two backends");
        }
        assert_eq!(direct.cmd(&[b"FLUSHALL"]), ok());
    }
    assert_eq!(at.len(), keys.len(), "{}: every key written once", proxy.label());
    at
}

#[test]
fn placement_through_the_workers_matches_nutcracker() {
    let backends = [redis(), redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let named = |w: [u32; 3]| -> String {
        let mut s = String::from("  servers:\n");
        for (i, p) in ports.iter().enumerate() {
            s.push_str(&format!("   - 127.0.0.1:{p}:{} node-{i}\n", w[i]));
        }
        s
    };
    let layouts = [
        yaml(true, &ports, ""),
        format!(
            "alpha:\n  listen: 127.0.0.1:{{listen}}\n  redis: true\n  hash: md5\n  distribution: modula\n{}",
            named([1, 2, 5])
        ),
        format!(
            "alpha:\n  listen: 127.0.0.1:{{listen}}\n  redis: true\n  hash: murmur\n  hash_tag: \"{{}}\"\n{}",
            named([1, 1, 3])
        ),
    ];
    let keys = keys(2000);
    for layout in &layouts {
        let nc = Nutcracker::start(layout);
        let want = placement(&nc, &backends, &keys);
        drop(nc);
        for io in drivers() {
            let px = PuertaTwem::start(layout, io);
            let got = placement(&px, &backends, &keys);
            let differ = keys.iter().filter(|k| got[*k] != want[*k]).count();
            assert_eq!(differ, 0, "{io}: keys placed differently from nutcracker in\n{layout}");
            let spread: std::collections::HashSet<usize> = got.values().copied().collect();
            assert_eq!(spread.len(), 3, "keys spread over every server");
        }
    }
}

#[test]
fn pipelines_fan_out_and_byte_splits() {
    let backends = [redis(), redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &ports, "  hash: murmur\n"), io);
        let ring = ring_of(&px);
        let mut c = RawResp::connect(px.port());
        // 1,000 commands in one write, each on the server the ring names.
        let cmds: Vec<Vec<u8>> =
            (0..1000).map(|i| command(&[b"SET", format!("k{i}").as_bytes(), format!("v{i}").as_bytes()])).collect();
        assert!(c.pipeline(&cmds).iter().all(|r| *r == ok()), "{io}");
        let mut direct: Vec<RawResp> = ports.iter().map(|&p| RawResp::connect(p)).collect();
        for i in (0..1000).step_by(7) {
            let k = format!("k{i}");
            let home = ring.pick(k.as_bytes()).unwrap() as usize;
            for (j, d) in direct.iter_mut().enumerate() {
                let want = if j == home { Reply::Bulk(Some(format!("v{i}").into_bytes())) } else { Reply::Bulk(None) };
                assert_eq!(d.cmd(&[b"GET", k.as_bytes()]), want, "{io}: {k} on server {j}");
            }
        }
        // Fan-out: MGET over every server answers in the client's order.
        // The ring follows the backends' (random) ports, so the keys are
        // picked until they span every server.
        let mut names: Vec<String> = ["k1", "k2", "nope"].map(String::from).into();
        let mut servers: std::collections::HashSet<u32> =
            names.iter().map(|k| ring.pick(k.as_bytes()).unwrap()).collect();
        for i in 3..1000 {
            let k = format!("k{i}");
            if servers.insert(ring.pick(k.as_bytes()).unwrap()) || names.len() < 10 {
                names.push(k);
            }
            if servers.len() == 3 && names.len() >= 10 {
                break;
            }
        }
        assert_eq!(servers.len(), 3, "the MGET really spans all servers");
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(names.iter().map(|k| k.as_bytes()));
        let want: Vec<Reply> =
            names.iter().map(|k| Reply::Bulk(k.strip_prefix('k').map(|n| format!("v{n}").into_bytes()))).collect();
        assert_eq!(c.cmd(&args), Reply::Array(Some(want)), "{io}");
        // DEL / EXISTS sum per-server counts; MSET splits; PING is local.
        let replies = c.pipeline(&[
            command(&[b"EXISTS", b"k1", b"k2", b"k3", b"nope"]),
            command(&[b"MSET", b"m1", b"a", b"m2", b"b", b"m3", b"c"]),
            command(&[b"DEL", b"k1", b"k2", b"k3", b"nope", b"m1", b"m2"]),
            command(&[b"PING"]),
            command(&[b"MGET", b"m1", b"m3"]),
        ]);
        assert_eq!(
            replies,
            [
                Reply::Int(3),
                ok(),
                Reply::Int(5),
                Reply::Status(b"PONG".to_vec()),
                Reply::Array(Some(vec![Reply::Bulk(None), Reply::Bulk(Some(b"c".to_vec()))]))
            ],
            "{io}"
        );
        // Requests split at every byte boundary.
        let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        s.set_nodelay(true).unwrap();
        let mut req = command(&[b"SET", b"a", b"1"]);
        req.extend(command(&[b"MSET", b"b", b"2", b"c", b"3"]));
        req.extend(command(&[b"MGET", b"a", b"b", b"c"]));
        for byte in &req {
            s.write_all(std::slice::from_ref(byte)).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        let want = b"+OK\r\n+OK\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n";
        assert_eq!(read_exact(&mut s, want.len()), want, "{io}");
    }
}

fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = vec![0u8; n];
    s.read_exact(&mut out).unwrap();
    out
}

#[test]
fn replies_split_at_every_byte_boundary() {
    let backend = redis();
    let relay = dribble(backend.port);
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &[relay.port], ""), io);
        let mut c = RawResp::connect(px.port());
        let replies = c.pipeline(&[
            command(&[b"SET", b"k", b"hello"]),
            command(&[b"RPUSH", b"l", b"a", b"bb", b"ccc"]),
            command(&[b"GET", b"k"]),
            command(&[b"LRANGE", b"l", b"0", b"-1"]),
            command(&[b"GET", b"missing"]),
            command(&[b"INCR", b"k"]),
            command(&[b"DEL", b"l"]),
        ]);
        let bulk = |s: &str| Reply::Bulk(Some(s.as_bytes().to_vec()));
        assert_eq!(
            replies,
            [
                ok(),
                Reply::Int(3),
                bulk("hello"),
                Reply::Array(Some(vec![bulk("a"), bulk("bb"), bulk("ccc")])),
                Reply::Bulk(None),
                Reply::Error(b"ERR value is not an integer or out of range".to_vec()),
                Reply::Int(1),
            ],
            "{io}"
        );
        assert_eq!(RawResp::connect(backend.port).cmd(&[b"FLUSHALL"]), ok());
    }
}

#[test]
fn auth_select_and_unsupported_commands() {
    let port = free_port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--requirepass", "pw"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let backend = Proc { child, port };
    wait_until("redis-server", Duration::from_secs(10), || TcpStream::connect(backend.addr()).is_ok());
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &[port], "  redis_auth: pw\n  redis_db: 3\n"), io);
        let mut c = RawResp::connect(px.port());
        let err = |s: &str| Reply::Error(s.as_bytes().to_vec());
        assert_eq!(c.cmd(&[b"SET", b"k", b"v"]), err("NOAUTH Authentication required"), "{io}");
        assert_eq!(c.cmd(&[b"AUTH", b"bad"]), err("ERR invalid password"));
        assert_eq!(c.cmd(&[b"AUTH", b"pw"]), ok());
        assert_eq!(c.cmd(&[b"SET", b"k", io.as_bytes()]), ok());
        // Puerta's backend connection authenticated and selected db 3.
        let mut d = RawResp::connect(port);
        assert_eq!(d.cmd(&[b"AUTH", b"pw"]), ok());
        assert_eq!(d.cmd(&[b"GET", b"k"]), Reply::Bulk(None), "not in db 0");
        assert_eq!(d.cmd(&[b"SELECT", b"3"]), ok());
        assert_eq!(d.cmd(&[b"GET", b"k"]), Reply::Bulk(Some(io.as_bytes().to_vec())));
        // The handshake is Puerta's, whatever `unsupported` says.
        assert_eq!(c.cmd(&[b"CLIENT", b"SETINFO", b"lib-name", b"x"]), ok(), "{io}");
        assert_eq!(c.cmd(&[b"SELECT", b"0"]), ok(), "{io}");
        // Unsupported commands close the connection, as nutcracker does.
        let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        s.write_all(&command(&[b"CONFIG", b"GET", b"x"])).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(s.read(&mut [0u8; 64]).unwrap_or(0), 0, "{io}: closed without a reply");
    }
    // unsupported = "error" (TOML) answers and keeps the connection.
    let toml = format!(
        "[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\n\
         servers = [\"127.0.0.1:{port}:1\"]\nredis_auth = \"pw\"\nunsupported = \"error\"\n"
    );
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml, io, "puerta.toml", &[]);
        let mut c = RawResp::connect(px.port());
        assert_eq!(c.cmd(&[b"AUTH", b"pw"]), ok());
        assert_eq!(
            c.cmd(&[b"CONFIG", b"GET", b"x"]),
            Reply::Error(b"ERR unsupported command 'CONFIG'".to_vec()),
            "{io}"
        );
        assert_eq!(c.cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()));
    }
}

#[test]
fn redis_crate_client_works_through_puerta() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    // redis-rs sends CLIENT SETINFO on connect: nutcracker (and Puerta's
    // default) would close; `unsupported = "error"` is the documented fix.
    let servers: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}:1\"")).collect();
    let toml = format!(
        "[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\nhash = \"murmur\"\n\
         servers = [{}]\nunsupported = \"error\"\n",
        servers.join(", ")
    );
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml, io, "puerta.toml", &[]);
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", px.port())).unwrap();
        let mut con = client.get_connection().unwrap();
        let _: () = redis::cmd("MSET").arg(&["a", "1", "b", "2", "c", "3", "d", "4"]).query(&mut con).unwrap();
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(&["d", "c", "x", "b", "a"]).query(&mut con).unwrap();
        let want: Vec<Option<String>> =
            vec![Some("4".into()), Some("3".into()), None, Some("2".into()), Some("1".into())];
        assert_eq!(got, want, "{io}");
        let mut pipe = redis::pipe();
        for i in 0..200 {
            pipe.cmd("INCRBY").arg("ctr").arg(i);
        }
        let sums: Vec<i64> = pipe.query(&mut con).unwrap();
        assert_eq!(sums.last().copied(), Some((0..200).sum::<i64>()), "{io}");
        let _: () = redis::cmd("DEL").arg(&["a", "b", "c", "d", "ctr"]).query(&mut con).unwrap();
    }
}
