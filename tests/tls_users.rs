//! Users by client certificate (`[[user]] cert_cn`, `cert_san`) on pools
//! whose `tls.ca` requires certificates, under both drivers: memcache
//! clients are the user their certificate names (each user's key patterns
//! decide, a certificate no user claims is closed), and Redis clients are
//! logged in as that user without AUTH; a reload that removes the user
//! closes its clients with a clean TLS close.

mod common;

use common::tls::{client_config, Ca, Leaf, TlsResp};
use common::twem::memcached;
use common::{drivers, free_port, redis, tmpdir, Puerta};

const NOPERM: &str = "CLIENT_ERROR NOPERM No permissions to access a key";

fn config(mc_port: u16, mc: u16, redis_port: u16, rd: u16, server: &Leaf, ca: &Ca) -> String {
    let tls = format!(
        "tls = {{ cert = \"{}\", key = \"{}\", ca = \"{}\" }}",
        server.cert.display(),
        server.key.display(),
        ca.pem.display()
    );
    format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"1s\"\n\n\
         [[pool]]\nname = \"m\"\nmode = \"memcache\"\nlisten = \"127.0.0.1:{mc_port}\"\n\
         servers = [\"127.0.0.1:{mc}:1\"]\n{tls}\n\n\
         [[pool]]\nname = \"r\"\nmode = \"redis\"\nlisten = \"127.0.0.1:{redis_port}\"\n\
         servers = [\"127.0.0.1:{rd}:1\"]\n{tls}\n\n\
         [[user]]\nname = \"app1\"\nrules = \"on ~app1:* +@all\"\ncert_cn = \"app1\"\n\n\
         [[user]]\nname = \"app2\"\nrules = \"on ~app2:* +@all\"\ncert_san = \"app2.internal\"\n"
    )
}

/// One memcached request over TLS; its reply's lines up to the last.
fn mc(c: &mut TlsResp, req: &str, last: &[&str]) -> Vec<String> {
    c.send_raw(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    loop {
        let line = c.line().unwrap_or_else(|e| panic!("{req:?}: {e} after {out:?}"));
        let done = last.iter().any(|l| line.starts_with(l));
        out.push(line);
        if done {
            return out;
        }
    }
}

#[test]
fn client_certificates_name_users() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "users");
    let server = ca.leaf(&dir, "server", false);
    let app1 = ca.client(&dir, "app1", "app1", &[]);
    let app2 = ca.client(&dir, "app2", "someone", &["app2.internal"]);
    let stranger = ca.client(&dir, "stranger", "stranger", &["x.internal"]);
    let (memd, rd) = (memcached(), redis());
    for io in drivers() {
        let (mp, rp) = (free_port(), free_port());
        let cfg = config(mp, memd.port, rp, rd.port, &server, &ca);
        let p = Puerta::start(&cfg, io);
        let end = ["END", "CLIENT_ERROR", "SERVER_ERROR", "ERROR"];

        let mut c1 = TlsResp::connect(mp, client_config(&ca.pem, Some(&app1))).unwrap();
        assert_eq!(mc(&mut c1, "set app1:k 0 0 2\r\nv1\r\n", &["STORED", "CLIENT_ERROR"]), ["STORED"], "{io}");
        assert_eq!(mc(&mut c1, "get app1:k\r\n", &end), ["VALUE app1:k 0 2", "v1", "END"], "{io}");
        assert_eq!(mc(&mut c1, "get app2:k\r\n", &end), [NOPERM], "{io}: app1 reads app2's key");
        assert_eq!(mc(&mut c1, "get app1:k app2:k\r\n", &end), [NOPERM], "{io}: every key is checked");
        assert_eq!(mc(&mut c1, "set app2:k 0 0 1\r\nx\r\n", &["STORED", "CLIENT_ERROR"]), [NOPERM], "{io}");

        let mut c2 = TlsResp::connect(mp, client_config(&ca.pem, Some(&app2))).unwrap();
        assert_eq!(mc(&mut c2, "set app2:k 0 0 2\r\nv2\r\n", &["STORED", "CLIENT_ERROR"]), ["STORED"], "{io}");
        assert_eq!(mc(&mut c2, "get app2:k\r\n", &end), ["VALUE app2:k 0 2", "v2", "END"], "{io}");
        assert_eq!(mc(&mut c2, "get app1:k\r\n", &end), [NOPERM], "{io}: app2 reads app1's key");
        assert_eq!(mc(&mut c1, "delete app2:k\r\n", &["DELETED", "NOT_FOUND", "CLIENT_ERROR"]), [NOPERM], "{io}");

        // A certificate the CA signed but no user claims: closed.
        let refused = TlsResp::connect(mp, client_config(&ca.pem, Some(&stranger))).and_then(|mut c| {
            c.send_raw(b"version\r\n")?;
            c.line()
        });
        assert!(refused.is_err(), "{io}: served a certificate no user claims: {refused:?}");

        // Redis: the certificate's user is logged in without AUTH.
        let mut r1 = TlsResp::connect(rp, client_config(&ca.pem, Some(&app1))).unwrap();
        assert_eq!(r1.cmd(&["SET", "app1:r", "1"]).unwrap(), "OK", "{io}");
        assert_eq!(r1.cmd(&["GET", "app2:r"]).unwrap(), "-NOPERM No permissions to access a key", "{io}");
        let mut r3 = TlsResp::connect(rp, client_config(&ca.pem, Some(&stranger))).unwrap();
        assert_eq!(r3.cmd(&["GET", "app1:r"]).unwrap(), "-NOAUTH Authentication required.", "{io}");

        // A reload that removes app1 closes its idle connections, each
        // with a clean TLS close.
        let without_app1 =
            cfg.replace("cert_cn = \"app1\"", "cert_cn = \"gone\"").replace("name = \"app1\"", "name = \"gone\"");
        std::fs::write(&p.config, without_app1.replace("{admin}", &p.admin.to_string())).unwrap();
        assert_eq!(p.post("/reload").0, 200, "{io}");
        assert_eq!(r1.read_to_close(), Ok(Vec::new()), "{io}: redis client of a removed user");
        assert_eq!(c1.read_to_close(), Ok(Vec::new()), "{io}: memcache client of a removed user");
        assert_eq!(mc(&mut c2, "get app2:k\r\n", &end), ["VALUE app2:k 0 2", "v2", "END"], "{io}: app2 kept");
    }
}
