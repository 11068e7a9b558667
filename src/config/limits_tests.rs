//! The hardening keys of issue 13 in both formats: `max_item_bytes`
//! (memcache pools) and `max_keys_per_request` (redis, memcache and
//! redis_cluster pools), their defaults, ranges and the pools that refuse
//! them.

use std::path::Path;

use crate::config::parse;

fn load(src: &str, file: &str) -> Result<crate::config::Config, String> {
    parse(src, Path::new(file)).map_err(|e| e.to_string())
}

const POOL: &str = "[[pool]]\nname = \"p\"\nlisten = \"127.0.0.1:1\"\nservers = [\"127.0.0.1:11211:1\"]\n";

#[test]
fn defaults_are_memcached_and_100k() {
    let c = load(&format!("{POOL}mode = \"memcache\"\n"), "t.toml").unwrap();
    let s = c.pools[0].shard.as_ref().unwrap();
    assert_eq!((s.max_item_bytes, s.max_keys_per_request), (1 << 20, 100_000));
    let src = "[[pool]]\nname = \"c\"\nlisten = \"127.0.0.1:7000\"\nmode = \"redis_cluster\"\n\
               servers = [\"127.0.0.1:30001\"]\nmax_keys_per_request = 7\n";
    assert_eq!(load(src, "t.toml").unwrap().pools[0].cluster.as_ref().unwrap().max_keys_per_request, 7);
}

#[test]
fn toml_and_yaml_take_them() {
    let c = load(&format!("{POOL}mode = \"memcache\"\nmax_item_bytes = 4096\nmax_keys_per_request = 10\n"), "t.toml")
        .unwrap();
    let s = c.pools[0].shard.as_ref().unwrap();
    assert_eq!((s.max_item_bytes, s.max_keys_per_request), (4096, 10));
    let y = "m:\n  listen: 127.0.0.1:1\n  max_item_bytes: 2048\n  max_keys_per_request: 3\n  servers:\n   - 127.0.0.1:11211:1\n";
    let c = load(y, "n.yml").unwrap();
    let s = c.pools[0].shard.as_ref().unwrap();
    assert_eq!((s.max_item_bytes, s.max_keys_per_request), (2048, 3));
}

#[test]
fn ranges_and_modes_are_checked() {
    let bad = |extra: &str| load(&format!("{POOL}{extra}"), "t.toml").unwrap_err();
    assert_eq!(
        bad("mode = \"memcache\"\nmax_item_bytes = 1073741825\n"),
        "t.toml:6: pool[0].max_item_bytes: expected an integer <= 1073741824, got 1073741825"
    );
    assert_eq!(
        bad("mode = \"memcache\"\nmax_keys_per_request = 0\n"),
        "t.toml:6: pool[0].max_keys_per_request: expected an integer >= 1, got 0"
    );
    assert_eq!(
        bad("mode = \"redis\"\nmax_item_bytes = 10\n"),
        "t.toml:6: pool[0].max_item_bytes: applies only to mode \"memcache\", and this pool is \"redis\""
    );
    assert_eq!(
        bad("max_keys_per_request = 10\n"),
        "t.toml:5: pool[0].max_keys_per_request: applies only to mode \"redis\", \"memcache\" or \"redis_cluster\", and this pool is \"tcp\""
    );
}
