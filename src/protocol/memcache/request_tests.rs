//! Tests of the memcached request decoder: every command split at every
//! byte boundary, malformed requests as errors, oversized data blocks
//! refused before their bytes arrive.

use super::*;

type Seen = (McCmd, Vec<String>, bool, usize);

fn all(dec: &mut McRequestDecoder, buf: &mut BytesMut) -> Result<Vec<Seen>, ProtoError> {
    let mut out = Vec::new();
    while let Some(r) = dec.decode(buf)? {
        let keys = (0..r.nkeys()).map(|i| String::from_utf8_lossy(r.key(i)).into_owned()).collect();
        out.push((r.cmd, keys, r.noreply, r.raw().len()));
    }
    Ok(out)
}

const PIPE: &[u8] = b"get a b c\r\ngets x\r\nset k 1 0 5\r\nhel\r\n\r\nadd k 0 0 0 noreply\r\n\r\n\
cas k 0 0 2 99\r\nhi\r\nappend k 0 0 1\r\nx\r\nprepend k 0 0 1\r\ny\r\nreplace k 0 0 1\r\nz\r\n\
delete k\r\ndelete k 0 noreply\r\nincr n 5\r\ndecr n 2 noreply\r\ntouch k 10\nquit\r\nversion\r\n";

#[test]
fn every_command_at_every_boundary() {
    let whole = all(&mut McRequestDecoder::new(1 << 20, 1 << 20), &mut BytesMut::from(PIPE)).unwrap();
    let cmds: Vec<McCmd> = whole.iter().map(|r| r.0).collect();
    use McCmd::*;
    assert_eq!(
        cmds,
        [Get, Gets, Set, Add, Cas, Append, Prepend, Replace, Delete, Delete, Incr, Decr, Touch, Quit, Version]
    );
    assert_eq!(whole[0].1, ["a", "b", "c"]);
    assert_eq!(whole[2].3, b"set k 1 0 5\r\nhel\r\n\r\n".len(), "data with CRLF inside is one block");
    assert!(whole[3].2 && whole[9].2 && whole[11].2);
    assert_eq!(whole.iter().map(|r| r.3).sum::<usize>(), PIPE.len());
    for cut in 0..=PIPE.len() {
        let mut dec = McRequestDecoder::new(1 << 20, 1 << 20);
        let mut buf = BytesMut::from(&PIPE[..cut]);
        let mut got = all(&mut dec, &mut buf).unwrap();
        buf.extend_from_slice(&PIPE[cut..]);
        got.extend(all(&mut dec, &mut buf).unwrap());
        assert_eq!(got, whole, "split at {cut}");
        assert!(buf.is_empty() && dec.is_idle());
    }
}

fn err(input: &[u8]) -> ProtoError {
    McRequestDecoder::new(1 << 20, 1 << 20).decode(&mut BytesMut::from(input)).unwrap_err()
}

#[test]
fn malformed_requests_are_errors() {
    assert_eq!(err(b"bogus k\r\n"), ProtoError::McUnknown);
    assert_eq!(err(b"GET k\r\n"), ProtoError::McUnknown, "commands are lowercase");
    assert_eq!(err(b"get\r\n"), ProtoError::McUnknown);
    assert_eq!(err(b"set k 0 0\r\n"), ProtoError::McUnknown);
    assert_eq!(err(b"set k x 0 1\r\n"), ProtoError::McBadLine);
    assert_eq!(err(b"set k 0 0 1 maybe\r\n"), ProtoError::McBadLine);
    assert_eq!(err(b"incr k -1\r\n"), ProtoError::McDelta);
    assert_eq!(err(b"delete k 5\r\n"), ProtoError::McBadLine);
    assert_eq!(err(b"set k 0 0 1\r\nxyz\r\n"), ProtoError::McBadData);
    let long = format!("get {}\r\n", "k".repeat(251));
    assert_eq!(err(long.as_bytes()), ProtoError::McKeyTooLong);
    let ok = format!("get {}\r\n", "k".repeat(250));
    assert!(McRequestDecoder::new(1 << 20, 1 << 20).decode(&mut BytesMut::from(ok.as_bytes())).unwrap().is_some());
}

#[test]
fn oversized_data_block_is_refused_early() {
    let mut dec = McRequestDecoder::new(100, 1 << 20);
    assert_eq!(dec.decode(&mut BytesMut::from(&b"set k 0 0 1000\r\n"[..])), Err(ProtoError::TooLarge { max: 100 }));
    let mut dec = McRequestDecoder::new(1 << 20, 10);
    let e = dec.decode(&mut BytesMut::from(&b"set k 0 0 11\r\n"[..]));
    assert_eq!(e, Err(ProtoError::McTooLarge { max: 10 }));
}

/// The crasher: a length that wrapped the frame size in release
/// builds and then panicked on a slice index.
#[test]
fn huge_length_is_refused_not_wrapped() {
    for line in [&b"set a 0 0 18446744073709551582\r\n"[..], b"set a 0 0 4294967295\r\n", b"cas a 0 0 2147483647 1\r\n"]
    {
        let mut dec = McRequestDecoder::new(usize::MAX, usize::MAX);
        let mut buf = BytesMut::from(line);
        assert!(dec.decode(&mut buf).is_err(), "{line:?}");
    }
    // The largest length memcached takes, with no limits of Puerta's own:
    // the frame size is computed, not wrapped, and waited for.
    let mut dec = McRequestDecoder::new(usize::MAX, usize::MAX);
    let mut buf = BytesMut::from(&b"set a 0 0 1073741824\r\nxy"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(!dec.is_idle());
}

/// memcached closes a connection that sends more than 2048 bytes without a
/// newline unless it is a multi-get; Puerta refuses the same lines.
#[test]
fn line_length_cap() {
    let mut long = b"delete ".to_vec();
    long.resize(MAX_LINE + 1, b'k');
    let mut dec = McRequestDecoder::new(1 << 20, 1 << 20);
    assert_eq!(dec.decode(&mut BytesMut::from(&long[..])), Err(ProtoError::McLineTooLong));
    long.extend_from_slice(b"\r\n");
    let mut dec = McRequestDecoder::new(1 << 20, 1 << 20);
    assert_eq!(dec.decode(&mut BytesMut::from(&long[..])), Err(ProtoError::McLineTooLong));
    // 2048 bytes before the LF pass, CR included; 2049 do not.
    let mut edge = b"delete k".to_vec();
    edge.resize(MAX_LINE - 1, b' ');
    edge.extend_from_slice(b"\r\n");
    let mut dec = McRequestDecoder::new(1 << 20, 1 << 20);
    assert!(dec.decode(&mut BytesMut::from(&edge[..])).unwrap().is_some());
    edge.insert(10, b' ');
    let mut dec = McRequestDecoder::new(1 << 20, 1 << 20);
    assert_eq!(dec.decode(&mut BytesMut::from(&edge[..])), Err(ProtoError::McLineTooLong));
    let mut get = b"get".to_vec();
    while get.len() < 3 * MAX_LINE {
        get.extend_from_slice(b" key");
    }
    let mut dec = McRequestDecoder::new(1 << 20, 1 << 20);
    let mut buf = BytesMut::from(&get[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None), "a long multi-get waits for its newline");
    buf.extend_from_slice(b"\r\n");
    assert_eq!(dec.decode(&mut buf).unwrap().unwrap().nkeys(), (get.len() - 3) / 4);
    let mut dec = McRequestDecoder::new(1000, 1 << 20);
    assert_eq!(dec.decode(&mut BytesMut::from(&get[..])), Err(ProtoError::TooLarge { max: 1000 }));
}
