//! Tests of the RESP request decoder: pipelined and inline requests at
//! every byte boundary, binary-safe arguments, exact frame bytes, clear
//! protocol errors, size limits enforced early, and no rescans.

use super::*;

fn decode_all(dec: &mut RequestDecoder, buf: &mut BytesMut) -> Result<Vec<Vec<Vec<u8>>>, ProtoError> {
    let mut out = Vec::new();
    while let Some(r) = dec.decode(buf)? {
        out.push(r.args().map(|a| a.to_vec()).collect());
    }
    Ok(out)
}

fn strs(v: &[Vec<Vec<u8>>]) -> Vec<Vec<String>> {
    v.iter().map(|r| r.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()).collect()
}

/// Feeds `input` split at every byte boundary (and byte by byte) and checks
/// the same requests come out with nothing left over.
fn every_split(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut whole = BytesMut::from(input);
    let expect = decode_all(&mut RequestDecoder::new(1 << 20), &mut whole).unwrap();
    assert!(whole.is_empty(), "whole input not consumed");
    for cut in 0..=input.len() {
        let mut dec = RequestDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&input[..cut]);
        let mut got = decode_all(&mut dec, &mut buf).unwrap();
        buf.extend_from_slice(&input[cut..]);
        got.extend(decode_all(&mut dec, &mut buf).unwrap());
        assert_eq!(got, expect, "split at {cut}");
        assert!(buf.is_empty() && dec.is_idle());
    }
    let mut dec = RequestDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in input {
        buf.extend_from_slice(&[b]);
        got.extend(decode_all(&mut dec, &mut buf).unwrap());
    }
    assert_eq!(got, expect, "byte by byte");
    expect
}

#[test]
fn pipelined_arrays_at_every_boundary() {
    let input = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n";
    let got = every_split(input);
    assert_eq!(strs(&got), vec![vec!["GET", "key"], vec!["SET", "k", ""], vec!["PING"]]);
}

#[test]
fn binary_safe_args_with_crlf_inside() {
    let input = b"*2\r\n$3\r\nGET\r\n$6\r\na\r\n\r\nb\r\n";
    let got = every_split(input);
    assert_eq!(got[0][1], b"a\r\n\r\nb");
}

#[test]
fn inline_commands_at_every_boundary() {
    let got = every_split(b"PING\r\nset k \"a b\"\n\r\n   \r\nGET k\r\n");
    assert_eq!(strs(&got), vec![vec!["PING"], vec!["set", "k", "a b"], vec!["GET", "k"]]);
}

#[test]
fn inline_request_is_reencoded_as_resp() {
    let mut dec = RequestDecoder::new(1 << 20);
    let r = dec.decode(&mut BytesMut::from(&b"get k\r\n"[..])).unwrap().unwrap();
    assert_eq!(&r.raw()[..], b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n");
    assert_eq!(r.name(), b"get");
    assert_eq!(&r.arg_bytes(1)[..], b"k");
}

#[test]
fn empty_arrays_are_skipped_like_redis() {
    let got = every_split(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(strs(&got), vec![vec!["PING"]]);
}

#[test]
fn frame_bytes_are_exactly_the_request() {
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQU"[..]);
    let mut dec = RequestDecoder::new(1 << 20);
    let r = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(&r.raw()[..], b"*1\r\n$4\r\nPING\r\n");
    assert!(dec.decode(&mut buf).unwrap().is_none());
    assert_eq!(&buf[..], b"*1\r\n$4\r\nQU", "partial frame left in place");
}

fn err_of(input: &[u8], max: usize) -> ProtoError {
    let mut buf = BytesMut::from(input);
    let mut dec = RequestDecoder::new(max);
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error for {input:?}"),
            Err(e) => return e,
        }
    }
}

#[test]
fn protocol_errors_are_clear() {
    assert_eq!(err_of(b"*1\r\n+PING\r\n", 1 << 20), ProtoError::Expected { expected: '$', got: '+' });
    assert_eq!(err_of(b"*x\r\n", 1 << 20), ProtoError::ArrayLen);
    assert_eq!(err_of(b"*2000000\r\n", 1 << 20), ProtoError::ArrayLen);
    assert_eq!(err_of(b"*1\r\n$-1\r\n", 1 << 20), ProtoError::BulkLen);
    assert_eq!(err_of(b"*1\r\n$3\r\nGETxx", 1 << 20), ProtoError::MissingCrlf);
    assert_eq!(err_of(b"*1\r\n$3x\r\n", 1 << 20), ProtoError::BulkLen);
    assert_eq!(err_of(b"*1\r\x00", 1 << 20), ProtoError::Expected { expected: '\n', got: '\0' });
    assert_eq!(err_of(b"SET k \"abc\r\n", 1 << 20), ProtoError::Quotes);
    assert_eq!(err_of(&[b'a'; 70 * 1024], 1 << 20), ProtoError::InlineTooBig);
    assert_eq!(ProtoError::Expected { expected: '$', got: '+' }.to_string(), "Protocol error: expected '$', got '+'");
}

#[test]
fn too_large_is_refused_before_the_data_arrives() {
    // Only the header of a 1 MiB argument is buffered: the declared size is
    // enough to refuse it.
    assert_eq!(err_of(b"*2\r\n$3\r\nSET\r\n$1048576\r\n", 1000), ProtoError::TooLarge { max: 1000 });
    // A frame made of many small arguments trips the limit too.
    let mut big = b"*100\r\n".to_vec();
    for _ in 0..100 {
        big.extend_from_slice(b"$10\r\n0123456789\r\n");
    }
    assert_eq!(err_of(&big, 500), ProtoError::TooLarge { max: 500 });
    // Exactly at the limit passes.
    let ok = b"*1\r\n$4\r\nPING\r\n";
    let mut buf = BytesMut::from(&ok[..]);
    assert!(RequestDecoder::new(ok.len()).decode(&mut buf).unwrap().is_some());
}

#[test]
fn resumes_without_rescanning_a_long_bulk() {
    // A 1 MiB value fed in 1 KiB chunks: the decoder must not re-parse the
    // header each time (the state stays at Bulk and pos at the data start).
    let mut dec = RequestDecoder::new(4 << 20);
    let mut frame = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n".to_vec();
    frame.extend(std::iter::repeat_n(b'v', 1 << 20));
    frame.extend_from_slice(b"\r\n");
    let mut buf = BytesMut::new();
    let mut done = None;
    let data_start = frame.len() - (1 << 20) - 2;
    for chunk in frame.chunks(1024) {
        buf.extend_from_slice(chunk);
        if let Some(r) = dec.decode(&mut buf).unwrap() {
            done = Some(r);
        } else {
            // Parked at the value's data: headers are never parsed again.
            assert_eq!(dec.state, State::Bulk { len: 1 << 20, left: 1 });
            assert_eq!(dec.pos, data_start);
        }
    }
    let r = done.unwrap();
    assert_eq!(r.argc(), 3);
    assert_eq!(r.arg(2).len(), 1 << 20);
}

#[test]
fn from_args_locates_arguments() {
    let args: [&[u8]; 3] = [b"MGET", b"", b"key\r\n"];
    let r = Request::from_args(args.into_iter());
    assert_eq!(r.args().collect::<Vec<_>>(), args.to_vec());
    let mut buf = BytesMut::from(&r.raw()[..]);
    assert_eq!(RequestDecoder::new(1 << 20).decode(&mut buf).unwrap().unwrap(), r);
}

#[test]
fn declared_counts_do_not_preallocate() {
    // `*1048576` alone must not make the decoder reserve room for a million
    // arguments: memory follows the bytes actually received.
    let mut dec = RequestDecoder::new(1 << 20);
    assert!(dec.decode(&mut BytesMut::from(&b"*1048576\r\n"[..])).unwrap().is_none());
    assert!(dec.args.capacity() <= 64, "reserved {}", dec.args.capacity());
}

/// Redis 7.0's `processMultibulkBuffer` and `string2ll`, checked against
/// redis-server 7.0.15: every number Redis refuses is refused (the client
/// is closed before anything reaches a backend, whose shared connection
/// Redis would close on a protocol error).
#[test]
fn lengths_are_read_as_redis_reads_them() {
    const MB: usize = 1 << 30;
    // The example: a leading zero in a bulk length.
    assert_eq!(err_of(b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n", MB), ProtoError::BulkLen);
    for bad in [&b"$+3"[..], b"$-0", b"$00", b"$ 3", b"$3 ", b"$-1", b"$-3", b"$", b"$9223372036854775808"] {
        let mut input = b"*1\r\n".to_vec();
        input.extend_from_slice(bad);
        input.extend_from_slice(b"\r\nGET\r\n");
        assert_eq!(err_of(&input, MB), ProtoError::BulkLen, "{:?}", String::from_utf8_lossy(bad));
    }
    for bad in [&b"*+1"[..], b"*-0", b"*01", b"*00", b"* 1", b"*", b"*2147483648", b"*99999999999999999999"] {
        let mut input = bad.to_vec();
        input.extend_from_slice(b"\r\n$4\r\nPING\r\n");
        assert_eq!(err_of(&input, MB), ProtoError::ArrayLen, "{:?}", String::from_utf8_lossy(bad));
    }
    // 0 to 512 MiB (`proto-max-bulk-len`), whatever max_request_bytes says.
    assert_eq!(err_of(b"*1\r\n$536870913\r\n", usize::MAX), ProtoError::BulkLen);
    let mut dec = RequestDecoder::new(usize::MAX);
    assert_eq!(dec.decode(&mut BytesMut::from(&b"*1\r\n$536870912\r\n"[..])), Ok(None));
    assert_eq!(every_split(b"*1\r\n$0\r\n\r\n"), vec![vec![Vec::<u8>::new()]]);
}

/// Redis skips `*0` and any negative count without a reply.
#[test]
fn empty_and_negative_counts_are_skipped() {
    let got = every_split(b"*-5\r\n*0\r\n*-9223372036854775808\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(strs(&got), vec![vec!["PING"]]);
}

/// A `*`/`$` line that can no longer hold a number Redis accepts (21
/// bytes or more) is refused at once, not buffered up to 64 KiB.
#[test]
fn header_lines_are_capped() {
    let mut dec = RequestDecoder::new(1 << 20);
    let mut buf = BytesMut::from(&b"*12345678901234567890"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None), "20 digits may still end in CR");
    buf.extend_from_slice(b"1");
    assert_eq!(dec.decode(&mut buf), Err(ProtoError::ArrayLen));
    let mut dec = RequestDecoder::new(1 << 20);
    let mut buf = BytesMut::from(&b"*1\r\n$000000000000000000004"[..]);
    assert_eq!(dec.decode(&mut buf), Err(ProtoError::BulkLen));
    // A NUL hides the CR from Redis's strchr: never a valid header.
    assert_eq!(err_of(b"*1\0\r\n$4\r\nPING\r\n", 1 << 20), ProtoError::ArrayLen);
}

/// Inline requests: Redis's strchr never sees a newline behind a NUL, and
/// an inline line is at most 64 KiB.
#[test]
fn inline_limits() {
    assert_eq!(err_of(b"ECHO a\0b\r\nPING\r\n", 1 << 20), ProtoError::InlineTooBig);
    let mut long = vec![b'a'; 64 * 1024 + 1];
    long.extend_from_slice(b"\r\n");
    assert_eq!(err_of(&long, 1 << 20), ProtoError::InlineTooBig);
    let mut ok = vec![b'a'; 64 * 1024 - 1];
    ok.extend_from_slice(b"\r\n");
    let mut buf = BytesMut::from(&ok[..]);
    assert_eq!(RequestDecoder::new(1 << 20).decode(&mut buf).unwrap().unwrap().name().len(), 64 * 1024 - 1);
}

/// In a twemproxy pool an empty request closes the client, as nutcracker
/// does, after the requests before it were decoded.
#[test]
fn nutcracker_refuses_empty_requests() {
    for input in [
        &b"*1\r\n$4\r\nPING\r\n\r\n"[..],
        b"*1\r\n$4\r\nPING\r\n\n",
        b"*1\r\n$4\r\nPING\r\n*0\r\n",
        b"*1\r\n$4\r\nPING\r\n*-1\r\n",
    ] {
        let mut dec = RequestDecoder::nutcracker(1 << 20);
        let mut buf = BytesMut::from(input);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().name(), b"PING");
        assert_eq!(dec.decode(&mut buf), Err(ProtoError::EmptyRequest), "{input:?}");
    }
    let mut dec = RequestDecoder::nutcracker(1 << 20);
    assert_eq!(dec.decode(&mut BytesMut::from(&b"get k\r\n"[..])).unwrap().unwrap().name(), b"get");
}
