//! Tests of memcached command line validation: every numeric field at 0,
//! its max, max+1, negative, with a leading zero and huge; token counts;
//! `noreply` placement; keys; control bytes. Each expectation was checked
//! against memcached 1.6.18 (see the module header for where Puerta is
//! stricter).

use super::*;

const MAX_ITEM: usize = 1 << 20;

fn parse(line: &str) -> Result<Line, ProtoError> {
    parse_line(line.as_bytes(), MAX_ITEM)
}

fn ok(line: &str) -> Line {
    parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn bad(line: &str) -> ProtoError {
    match parse(line) {
        Ok(l) => panic!("{line:?} accepted as {l:?}"),
        Err(e) => e,
    }
}

#[test]
fn flags_are_u32() {
    assert_eq!(ok("set k 0 0 1").data, Some(1));
    ok("set k 4294967295 0 1");
    ok("set k 007 0 1");
    // memcached 1.6 wraps 4294967296 to 0 and stores; Puerta refuses.
    assert_eq!(bad("set k 4294967296 0 1"), ProtoError::McBadLine);
    assert_eq!(bad("set k -1 0 1"), ProtoError::McBadLine);
    assert_eq!(bad("set k 18446744073709551615 0 1"), ProtoError::McBadLine);
    assert_eq!(bad("set k 99999999999999999999999 0 1"), ProtoError::McBadLine);
    assert_eq!(bad("set k +5 0 1"), ProtoError::McBadLine);
    assert_eq!(bad("set k 0x1 0 1"), ProtoError::McBadLine);
}

#[test]
fn exptime_is_i32() {
    ok("set k 0 2147483647 1");
    ok("set k 0 -1 1");
    ok("set k 0 -2147483648 1");
    ok("set k 0 0100 1");
    assert_eq!(bad("set k 0 2147483648 1"), ProtoError::McBadLine);
    assert_eq!(bad("set k 0 -2147483649 1"), ProtoError::McBadLine);
    // The smuggling line: memcached refuses it without reading data.
    assert_eq!(bad("set x 0 10000000000000000000 9 noreply"), ProtoError::McBadLine);
    ok("touch k 0");
    ok("touch k 2147483647");
    ok("touch k -5 noreply");
    assert_eq!(bad("touch k 2147483648"), ProtoError::McExptime);
    assert_eq!(bad("touch k x"), ProtoError::McExptime);
}

#[test]
fn data_length_is_a_bounded_non_negative_i32() {
    assert_eq!(ok("set k 0 0 0").data, Some(0));
    assert_eq!(ok("set k 0 0 01").data, Some(1), "memcached reads 01 as 1");
    assert_eq!(ok(&format!("set k 0 0 {MAX_ITEM}")).data, Some(MAX_ITEM));
    assert_eq!(bad(&format!("set k 0 0 {}", MAX_ITEM + 1)), ProtoError::McTooLarge { max: MAX_ITEM });
    // memcached 1.6 reads -4294967295 as 1 (32-bit wrap); Puerta refuses.
    assert_eq!(bad("set k 0 0 -4294967295"), ProtoError::McBadLine);
    assert_eq!(bad("set k 0 0 -1"), ProtoError::McBadLine);
    assert_eq!(bad("set k 0 0 2147483648"), ProtoError::McBadLine);
    // The crasher: a length near u64::MAX.
    assert_eq!(bad("set a 0 0 18446744073709551582"), ProtoError::McBadLine);
    let wide = parse_line(b"set k 0 0 2147483647", usize::MAX).unwrap();
    assert_eq!(wide.data, Some(2147483647), "limit above i32: i32 still bounds");
}

#[test]
fn cas_unique_and_delta_are_u64() {
    ok("cas k 0 0 1 0");
    ok("cas k 0 0 1 18446744073709551615");
    ok("cas k 0 0 1 00042 noreply");
    assert_eq!(bad("cas k 0 0 1 18446744073709551616"), ProtoError::McBadLine);
    assert_eq!(bad("cas k 0 0 1 -1"), ProtoError::McBadLine);
    ok("incr k 0");
    ok("incr k 18446744073709551615");
    ok("decr k 01 noreply");
    assert_eq!(bad("incr k 18446744073709551616"), ProtoError::McDelta);
    assert_eq!(bad("incr k -1"), ProtoError::McDelta);
    assert_eq!(bad("decr k 1e3"), ProtoError::McDelta);
}

#[test]
fn token_counts_and_noreply() {
    assert!(ok("set k 0 0 1 noreply").noreply);
    assert!(!ok("set k 0 0 1").noreply);
    // memcached ignores a wrong last token; Puerta refuses it.
    assert_eq!(bad("set k 0 0 1 maybe"), ProtoError::McBadLine);
    // One token too many or too few: memcached says ERROR, reads no data.
    assert_eq!(bad("set k 0 0 1 noreply extra"), ProtoError::McUnknown);
    assert_eq!(bad("set k 0 0"), ProtoError::McUnknown);
    assert_eq!(bad("cas k 0 0 1"), ProtoError::McUnknown);
    assert_eq!(bad("get"), ProtoError::McUnknown);
    assert_eq!(bad("incr k"), ProtoError::McUnknown);
    assert_eq!(bad("incr k 1 noreply x"), ProtoError::McUnknown);
    assert_eq!(bad("delete k 0 noreply x"), ProtoError::McUnknown);
    assert_eq!(bad("version x"), ProtoError::McUnknown);
    assert!(ok("delete k noreply").noreply);
    assert!(ok("delete k 0 noreply").noreply);
    assert!(!ok("delete k 0").noreply);
    assert_eq!(bad("delete k 1"), ProtoError::McBadLine);
    assert_eq!(bad("delete k noreply 0"), ProtoError::McBadLine);
    assert_eq!(ok("get k noreply").keys.len(), 2, "get takes no noreply: it is a key");
}

#[test]
fn keys_and_control_bytes() {
    let k250 = "k".repeat(250);
    assert_eq!(ok(&format!("get a {k250}")).keys, [(4, 5), (6, 256)]);
    ok(&format!("set {k250} 0 0 1"));
    assert_eq!(bad(&format!("get a {k250}k")), ProtoError::McKeyTooLong);
    assert_eq!(bad(&format!("incr {k250}k 1")), ProtoError::McKeyTooLong);
    // A NUL ends memcached's view of the line early: refused outright.
    assert_eq!(bad("set a\0zz 0 0 1"), ProtoError::McBadLine);
    assert_eq!(bad("get a\x0bb"), ProtoError::McBadLine);
    assert_eq!(bad("get a\rb"), ProtoError::McBadLine);
    assert_eq!(bad("get a\tb"), ProtoError::McBadLine);
    assert_eq!(bad("set\tk 0 0 1"), ProtoError::McBadLine);
    assert_eq!(ok("get caf\u{e9}").keys.len(), 1, "bytes over 0x7f are key bytes");
    assert_eq!(ok("  get   a  b ").keys, [(8, 9), (11, 12)]);
    assert_eq!(bad(""), ProtoError::McUnknown);
    assert_eq!(bad("GET k"), ProtoError::McUnknown);
}

#[test]
fn flush_all_and_stats() {
    for (line, noreply) in [("flush_all", false), ("flush_all noreply", true), ("flush_all 0", false)] {
        let l = ok(line);
        assert_eq!((l.cmd, l.noreply, l.keys.len(), l.data), (McCmd::FlushAll, noreply, 0, None), "{line}");
    }
    assert!(ok("flush_all 10 noreply").noreply);
    assert!(ok("flush_all -1").keys.is_empty());
    assert_eq!(bad("flush_all x"), ProtoError::McBadLine);
    assert_eq!(bad("flush_all 4294967296"), ProtoError::McBadLine);
    assert_eq!(bad("flush_all 10 x"), ProtoError::McBadLine);
    assert_eq!(bad("flush_all 1 noreply x"), ProtoError::McUnknown);
    assert_eq!(ok("stats").cmd, McCmd::Stats);
    assert_eq!(bad("stats items"), ProtoError::McUnknown);
}
