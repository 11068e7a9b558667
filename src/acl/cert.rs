//! Users by client certificate: the names a verified client certificate
//! carries (`CertNames`, extracted by `tls::peer_names`) and how a user
//! claims them (`[[user]] cert_cn`, `cert_san`). Pools whose `tls.ca`
//! requires client certificates log such a client in as that user when its
//! handshake completes: the only identity memcache clients have besides
//! their address, and a pre-authentication for Redis clients.
//!
//! Invariants: names are compared exactly (the CN byte for byte, SANs
//! ASCII-case-insensitively, as DNS names are); only a certificate the
//! pool's CA verified is ever looked at (the handshake refuses others); a
//! disabled user is never matched.

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    /// The subject's first Common Name.
    pub cn: Option<String>,
    /// Its subjectAltName entries: DNS names, URIs (`spiffe://...`),
    /// e-mail addresses and IP addresses as text.
    pub sans: Vec<String>,
}

/// How one user claims certificates (both may be set; either matches).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertMatch {
    pub cn: Option<String>,
    pub san: Option<String>,
}

impl CertMatch {
    pub fn is_empty(&self) -> bool {
        self.cn.is_none() && self.san.is_none()
    }

    pub fn matches(&self, names: &CertNames) -> bool {
        let cn = self.cn.as_ref().is_some_and(|want| names.cn.as_ref() == Some(want));
        let san = self.san.as_ref().is_some_and(|want| names.sans.iter().any(|s| s.eq_ignore_ascii_case(want)));
        cn || san
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cn_is_exact_and_sans_ignore_ascii_case() {
        let names = CertNames { cn: Some("app1".into()), sans: vec!["App1.Internal".into()] };
        let by_cn = CertMatch { cn: Some("app1".into()), san: None };
        assert!(by_cn.matches(&names));
        assert!(!CertMatch { cn: Some("APP1".into()), san: None }.matches(&names));
        assert!(CertMatch { cn: None, san: Some("app1.internal".into()) }.matches(&names));
        assert!(!CertMatch { cn: None, san: Some("app1".into()) }.matches(&names));
        assert!(!CertMatch::default().matches(&names));
        assert!(!by_cn.matches(&CertNames::default()));
    }
}
