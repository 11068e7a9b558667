//! `[[user]]`: each pool's share, `client_auth` as users, and errors with
//! their line and key.

use std::path::Path;

use crate::config::tests::err;
use crate::config::{parse, Config};

const POOLS: &str =
    "[[pool]]\nname = \"r\"\nlisten = \"127.0.0.1:7000\"\nmode = \"redis\"\nservers = [\"127.0.0.1:6379\"]\n\
[[pool]]\nname = \"c\"\nlisten = \"127.0.0.1:7001\"\nmode = \"redis_cluster\"\nservers = [\"127.0.0.1:30001\"]\n\
client_auth = { default = \"pw\" }\n\
[[pool]]\nname = \"m\"\nlisten = \"127.0.0.1:7002\"\nmode = \"memcache\"\nservers = [\"127.0.0.1:11211\"]\n";

fn ok(src: &str) -> Config {
    parse(src, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn names(c: &Config, pool: usize) -> Option<Vec<String>> {
    c.pools[pool].users.as_ref().map(|u| u.iter().map(|u| u.name.clone()).collect())
}

#[test]
fn pools_get_their_users() {
    let c = ok(&format!(
        "{POOLS}[[user]]\nname = \"app\"\nrules = \"on >s3cret ~cache:* +@read\"\n\
         [[user]]\nname = \"ops\"\nrules = \"on nopass +@all allkeys\"\npools = [\"c\"]\n\
         [[user]]\nname = \"web\"\nrules = \"on\"\npools = [\"m\"]\nsource = [\"10.0.0.0/8\"]\n"
    ));
    assert_eq!(c.users.len(), 3);
    assert_eq!(names(&c, 0), Some(vec!["app".into()]));
    assert_eq!(names(&c, 1), Some(vec!["app".into(), "ops".into(), "default".into()]));
    assert_eq!(names(&c, 2), Some(vec!["web".into()]));
    let cluster = c.pools[1].users.as_ref().unwrap();
    assert!(cluster.authenticate(b"default", b"pw").is_some() && cluster.authenticate(b"default", b"x").is_none());
    assert!(cluster.authenticate(b"app", b"s3cret").is_some());
    assert!(c.pools[0].users.as_ref().unwrap().authenticate(b"ops", b"").is_none(), "ops is limited to c");
}

#[test]
fn without_users_only_client_auth_gates() {
    let c = ok(POOLS);
    assert_eq!(names(&c, 0), None);
    assert_eq!(names(&c, 1), Some(vec!["default".into()]));
    assert_eq!(names(&c, 2), None);
    // A user limited to another pool still closes this Redis pool.
    let c = ok(&format!("{POOLS}[[user]]\nname = \"a\"\nrules = \"on nopass\"\npools = [\"c\"]\n"));
    assert_eq!(names(&c, 0), Some(vec![]));
}

#[test]
fn errors_name_line_and_key() {
    let base = POOLS.lines().count();
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\nrules = \"on +@nosuch ~[x\"\n"));
    assert!(e.contains(&format!("t.toml:{}: user[0].rules: unknown ACL category 'nosuch'", base + 3)), "{e}");
    assert!(e.contains("user[0].rules: bad pattern in rule '~[x': unterminated '[' class"), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\npools = [\"nope\"]\n"));
    assert!(e.contains("user[0].pools[0]: expected the name of a [[pool]], got \"nope\""), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\n[[user]]\nname = \"a\"\n"));
    assert!(e.contains("user[1].name: expected a unique user name"), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\nrules = \"#00\"\n"));
    assert!(e.contains("bad password hash"), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"default\"\n"));
    assert!(e.contains("pool[1].client_auth.default: user \"default\" is also a [[user]]"), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\nsource = [\"10.0.0.0/40\"]\n"));
    assert!(e.contains("user[0].source[0]: expected a prefix length"), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nrules = \"on\"\n"));
    assert!(e.contains("user[0].name: required key is missing"), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\nlimit = 1\n"));
    assert!(e.contains("user[0].limit: unknown key; expected one of name, rules, pools, source"), "{e}");
}

#[test]
fn user_limits_parse_like_per_ip() {
    let c = ok(&format!(
        "{POOLS}[[user]]\nname = \"app\"\nrules = \"on nopass\"\n\
         limits = {{ requests = 5000, bytes = \"10mb\", burst = 2.0 }}\n\
         [[user]]\nname = \"ops\"\nrules = \"on nopass\"\n"
    ));
    let spec = c.users[0].limits.expect("app has limits");
    assert_eq!((spec.requests, spec.bytes, spec.burst), (Some(5000.0), Some(10.0 * 1024.0 * 1024.0), 2.0));
    assert_eq!(c.users[1].limits, None);
    assert_eq!((c.users[0].user.id, c.users[1].user.id), (0, 1), "ids are the [[user]] indexes");
    let cluster = c.pools[1].users.as_ref().unwrap();
    assert_eq!(cluster.get("default").unwrap().id, crate::acl::NO_ID, "client_auth users have no id");
}

#[test]
fn user_limit_errors_name_line_and_key() {
    let base = POOLS.lines().count();
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\nlimits = {{ requests = 0 }}\n"));
    assert!(e.contains(&format!("t.toml:{}: user[0].limits.requests: expected an integer from 1", base + 3)), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\nlimits = {{ bytes = \"lots\", burst = 0 }}\n"));
    assert!(e.contains("user[0].limits.bytes: expected"), "{e}");
    assert!(e.contains("user[0].limits.burst: expected seconds of rate from 0.01 to 3600"), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\nlimits = {{ burst = 2.0 }}\n"));
    assert!(e.contains("user[0].limits: expected at least one of requests, bytes"), "{e}");
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\nlimits = {{ connections = 3 }}\n"));
    assert!(e.contains("user[0].limits.connections: unknown"), "{e}");
}

#[test]
fn certificate_users_reach_memcache_pools_and_claim_unique_names() {
    let c = ok(&format!(
        "{POOLS}[[user]]\nname = \"app1\"\nrules = \"on ~app1:*\"\ncert_cn = \"app1\"\n\
         [[user]]\nname = \"app2\"\nrules = \"on ~app2:*\"\ncert_san = \"app2.internal\"\n\
         [[user]]\nname = \"pw\"\nrules = \"on >x\"\n"
    ));
    assert_eq!(names(&c, 2), Some(vec!["app1".into(), "app2".into()]), "memcache: users with a certificate name");
    let mc = c.pools[2].users.as_ref().unwrap();
    let names = |cn: &str, san: &str| crate::acl::CertNames { cn: Some(cn.into()), sans: vec![san.into()] };
    assert_eq!(mc.by_cert(&names("app1", "x")).map(|u| u.name.as_str()), Some("app1"));
    assert_eq!(mc.by_cert(&names("zzz", "APP2.internal")).map(|u| u.name.as_str()), Some("app2"));
    assert!(mc.by_cert(&names("app2", "app1")).is_none());
    let base = POOLS.lines().count();
    let e =
        err(&format!("{POOLS}[[user]]\nname = \"a\"\ncert_cn = \"app\"\n[[user]]\nname = \"b\"\ncert_cn = \"app\"\n"));
    assert!(
        e.contains(&format!("t.toml:{}: user[1].cert_cn: expected a cert_cn no other user claims", base + 6)),
        "{e}"
    );
    let e = err(&format!("{POOLS}[[user]]\nname = \"a\"\ncert_san = \" \"\n"));
    assert!(e.contains("user[0].cert_san: expected a certificate name"), "{e}");
}
