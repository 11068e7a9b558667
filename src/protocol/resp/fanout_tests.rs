//! Tests of multi-key fan-out: MGET / DEL / MSET split by server in key
//! order, merged in client order, the first error winning, and single-key
//! commands routed by their key.

use bytes::BytesMut;

use super::*;
use crate::protocol::resp::reply::ReplyDecoder;

fn req(args: &[&str]) -> Request {
    Request::from_args(args.iter().map(|a| a.as_bytes()))
}

/// Test router: the server is the key's first byte minus 'a' (a->0, b->1...).
fn route(key: &[u8]) -> Option<u32> {
    key.first().map(|b| (b - b'a') as u32)
}

fn reply(s: &str) -> Reply {
    ReplyDecoder::default().decode(&mut BytesMut::from(s.as_bytes())).unwrap().unwrap()
}

#[test]
fn mget_splits_by_server_in_key_order() {
    let r = req(&["MGET", "b1", "a1", "b2", "c1", "a2"]);
    let f = split(&r, Kind::MultiKey(Merge::Array), route).unwrap();
    assert_eq!(f.iter().map(|f| f.server).collect::<Vec<_>>(), [1, 0, 2]);
    assert_eq!(f[0].keys, [0, 2]);
    assert_eq!(&f[0].request[..], b"*3\r\n$4\r\nMGET\r\n$2\r\nb1\r\n$2\r\nb2\r\n");
    assert_eq!(f[1].keys, [1, 4]);
    assert_eq!(f[2].keys, [3]);
}

#[test]
fn mget_merges_in_client_order() {
    let r = req(&["MGET", "b1", "a1", "b2", "c1", "a2"]);
    let f = split(&r, Kind::MultiKey(Merge::Array), route).unwrap();
    let replies =
        [reply("*2\r\n$2\r\nB1\r\n$-1\r\n"), reply("*2\r\n$2\r\nA1\r\n$2\r\nA2\r\n"), reply("*1\r\n$2\r\nC1\r\n")];
    let parts: Vec<(&[u32], &Reply)> = f.iter().zip(&replies).map(|(f, r)| (&f.keys[..], r)).collect();
    let merged = merge_replies(Merge::Array, 5, &parts);
    assert_eq!(&merged[..], b"*5\r\n$2\r\nB1\r\n$2\r\nA1\r\n$-1\r\n$2\r\nC1\r\n$2\r\nA2\r\n");
}

#[test]
fn one_server_forwards_the_original_bytes() {
    let r = req(&["DEL", "a1", "a2"]);
    let f = split(&r, Kind::MultiKey(Merge::Sum), route).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(&f[0].request, r.raw());
    let only = reply(":2\r\n");
    assert_eq!(&merge_replies(Merge::Sum, 2, &[(&f[0].keys, &only)])[..], b":2\r\n");
}

#[test]
fn del_sums_and_mset_pairs_split() {
    let r = req(&["MSET", "a1", "v1", "b1", "v2", "a2", "v3"]);
    let f = split(&r, Kind::KeyValues, route).unwrap();
    assert_eq!(&f[0].request[..], b"*5\r\n$4\r\nMSET\r\n$2\r\na1\r\n$2\r\nv1\r\n$2\r\na2\r\n$2\r\nv3\r\n");
    assert_eq!(&f[1].request[..], b"*3\r\n$4\r\nMSET\r\n$2\r\nb1\r\n$2\r\nv2\r\n");
    let ok = reply("+OK\r\n");
    assert_eq!(&merge_replies(Merge::AllOk, 3, &[(&[0, 2], &ok), (&[1], &ok)])[..], b"+OK\r\n");
    let (one, two) = (reply(":1\r\n"), reply(":2\r\n"));
    assert_eq!(&merge_replies(Merge::Sum, 3, &[(&[0], &one), (&[1, 2], &two)])[..], b":3\r\n");
}

#[test]
fn first_error_wins() {
    let (ok, e1, e2) = (reply(":1\r\n"), reply("-ERR first\r\n"), reply("-ERR second\r\n"));
    let m = merge_replies(Merge::Sum, 3, &[(&[0], &ok), (&[1], &e1), (&[2], &e2)]);
    assert_eq!(&m[..], b"-ERR first\r\n");
    let arr = reply("*1\r\n$1\r\nx\r\n");
    let m = merge_replies(Merge::Array, 2, &[(&[0], &arr), (&[1], &e2)]);
    assert_eq!(&m[..], b"-ERR second\r\n");
    // A wrong-shaped part is nutcracker's EINVAL error.
    let m = merge_replies(Merge::Sum, 2, &[(&[0], &ok), (&[1], &arr)]);
    assert_eq!(&m[..], b"-ERR Invalid argument\r\n");
}

#[test]
fn single_key_kinds_route_by_their_key() {
    assert_eq!(split(&req(&["GET", "c9"]), Kind::Keyed, route).unwrap()[0].server, 2);
    let ev = req(&["EVAL", "return 1", "1", "b7", "arg"]);
    assert_eq!(split(&ev, Kind::Eval, route).unwrap()[0].server, 1);
    let nokey = split(&req(&["COMMAND"]), Kind::NoKey, |k: &[u8]| Some(k.len() as u32 + 7)).unwrap();
    assert_eq!(nokey[0].server, 7, "keyless commands route by the empty key");
    assert_eq!(split(&req(&["GET", "zz"]), Kind::Keyed, |_| None), Err(SplitError::NoServer));
}

/// More servers than `Groups` scans linearly: fragments still come in the
/// order of each server's first key, and keys keep their order inside.
#[test]
fn many_groups_keep_first_appearance_order() {
    let keys: Vec<String> = (0..200).map(|i| format!("{}", (i * 7) % 40)).collect();
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(String::as_str));
    let route = |k: &[u8]| std::str::from_utf8(k).ok()?.parse::<u32>().ok();
    let f = split(&req(&args), Kind::MultiKey(Merge::Array), route).unwrap();
    assert_eq!(f.len(), 40);
    let firsts: Vec<u32> = f.iter().map(|f| f.server).collect();
    let mut want = Vec::new();
    for k in &keys {
        let s: u32 = k.parse().unwrap();
        if !want.contains(&s) {
            want.push(s);
        }
    }
    assert_eq!(firsts, want);
    for frag in &f {
        assert!(frag.keys.windows(2).all(|w| w[0] < w[1]));
        assert!(frag.keys.iter().all(|&k| keys[k as usize].parse::<u32>().unwrap() == frag.server));
    }
    assert_eq!(f.iter().map(|f| f.keys.len()).sum::<usize>(), 200);
}
