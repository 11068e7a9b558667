//! The key of a per-IP bucket: an IPv4 address, or the /64 prefix of an
//! IPv6 address (one site or host usually owns a whole /64, so counting
//! single IPv6 addresses would let one client take 2^64 buckets).
//!
//! Invariant: an IPv4 address and its IPv4-mapped IPv6 form (a dual-stack
//! listener's view of a v4 client) give the same key.

use std::net::IpAddr;

/// A client address reduced to what a per-IP limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey(u128);

impl IpKey {
    pub fn new(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey::new(IpAddr::V4(v4)),
                None => IpKey(u128::from(v6) & !u128::from(u64::MAX)),
            },
        }
    }

    /// The key as a number (hashing).
    pub fn bits(self) -> u128 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_its_mapped_form_match_and_v6_groups_by_64() {
        let v4 = IpKey::new("10.1.2.3".parse().unwrap());
        assert_eq!(v4, IpKey::new("::ffff:10.1.2.3".parse().unwrap()));
        assert_ne!(v4, IpKey::new("10.1.2.4".parse().unwrap()));
        let a = IpKey::new("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(a, IpKey::new("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert_ne!(a, IpKey::new("2001:db8:1:3::1".parse().unwrap()));
    }
}
