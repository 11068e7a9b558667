//! Client IP ranges (`10.0.0.0/8`, `::1`, `2001:db8::/32`): how memcached
//! pools tell users apart, having no AUTH (memcached's own `-Y` ASCII
//! auth is not supported). A bare address is a /32 or /128.
//!
//! Invariant: the prefix is at most the address's width, so `contains`
//! never shifts past it. An IPv4-mapped IPv6 client (`::ffff:a.b.c.d`)
//! matches IPv4 ranges.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr =
            addr.trim().parse().map_err(|_| format!("expected an IP address or CIDR range, got {text:?}"))?;
        let width = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= width => n,
                _ => return Err(format!("expected a prefix length 0..={width}, got {p:?}")),
            },
        };
        Ok(IpRange { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u128::from(n.to_bits()), u128::from(a.to_bits()), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(n.to_bits(), a.to_bits(), 128, self.prefix),
            _ => false,
        }
    }
}

/// Whether the top `prefix` of `width` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let drop = u32::from(width.saturating_sub(prefix));
    a.checked_shr(drop).unwrap_or(0) == b.checked_shr(drop).unwrap_or(0)
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let r = IpRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.1.2.3")) && !r.contains(ip("11.0.0.1")));
        assert!(r.contains(ip("::ffff:10.9.9.9")));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        let one = IpRange::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = IpRange::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8::1")) && !v6.contains(ip("2001:db9::1")) && !v6.contains(ip("10.0.0.1")));
        assert!(IpRange::parse("10.0.0.0/33").is_err() && IpRange::parse("nope").is_err());
    }
}
