//! PROXY protocol v1 (text) and v2 (binary) headers, as sent first on a
//! backend connection so the backend (mongos's `loadBalancerPort`) learns
//! the real client address.
//!
//! Sans-IO encoders only. Invariant: the output is exactly what the spec
//! (haproxy.org/download/2.9/doc/proxy-protocol.txt) defines for a proxied
//! TCP connection; mixed address families are sent as IPv6 (v2, with the
//! IPv4 address mapped) or `UNKNOWN` (v1, which has no mixed form).

use std::net::{IpAddr, SocketAddr};

/// Which version to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

impl ProxyVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        }
    }
}

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
pub const V2_SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

/// The header for a client at `src` that connected to `dst`.
pub fn encode(version: ProxyVersion, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => v1(src, dst),
        ProxyVersion::V2 => v2(src, dst),
    }
}

fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let fam = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => "TCP4",
        (IpAddr::V6(_), IpAddr::V6(_)) => "TCP6",
        _ => return b"PROXY UNKNOWN\r\n".to_vec(),
    };
    format!("PROXY {fam} {} {} {} {}\r\n", src.ip(), dst.ip(), src.port(), dst.port()).into_bytes()
}

fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let six = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&six(s).octets());
            out.extend_from_slice(&six(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_matches_the_spec_example() {
        assert_eq!(
            encode(ProxyVersion::V1, a("192.168.0.1:56324"), a("192.168.0.11:443")),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        assert_eq!(
            encode(ProxyVersion::V1, a("[2001:db8::1]:1000"), a("[::1]:27017")),
            b"PROXY TCP6 2001:db8::1 ::1 1000 27017\r\n"
        );
        assert_eq!(encode(ProxyVersion::V1, a("10.0.0.1:1"), a("[::1]:2")), b"PROXY UNKNOWN\r\n");
    }

    #[test]
    fn v2_ipv4_is_byte_exact() {
        let got = encode(ProxyVersion::V2, a("10.1.2.3:50000"), a("127.0.0.1:27017"));
        let want: Vec<u8> = [
            &V2_SIGNATURE[..],
            &[0x21, 0x11, 0x00, 0x0C],
            &[10, 1, 2, 3],
            &[127, 0, 0, 1],
            &[0xC3, 0x50], // 50000
            &[0x69, 0x89], // 27017
        ]
        .concat();
        assert_eq!(got, want);
        assert_eq!(got.len(), 28);
    }

    #[test]
    fn v2_ipv6_and_mixed() {
        let got = encode(ProxyVersion::V2, a("[::1]:1"), a("[2001:db8::2]:2"));
        assert_eq!(&got[12..16], &[0x21, 0x21, 0x00, 0x24]);
        assert_eq!(got.len(), 16 + 36);
        let mut src = [0u8; 16];
        src[15] = 1;
        assert_eq!(&got[16..32], &src);
        assert_eq!(&got[48..52], &[0, 1, 0, 2]);
        let mixed = encode(ProxyVersion::V2, a("10.0.0.1:5"), a("[::1]:6"));
        assert_eq!(&mixed[16..32], &"::ffff:10.0.0.1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    }
}
