//! The names a peer's certificate carries (`acl::CertNames`), read with
//! x509-parser from the leaf rustls verified: the subject's Common Name
//! and its subjectAltName entries. Used once per client handshake, to
//! find the proxy user a client certificate names.
//!
//! Invariant: whatever the DER holds, this returns (empty names for a
//! certificate it cannot read) and never panics; names are kept only when
//! they are valid UTF-8 (a CN in another string type is skipped).

use x509_parser::extensions::GeneralName;

use crate::acl::CertNames;

/// The names in a DER certificate.
pub fn names(der: &[u8]) -> CertNames {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return CertNames::default() };
    let cn = cert.subject().iter_common_name().next().and_then(|a| a.as_str().ok()).map(str::to_owned);
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
                    sans.push((*s).to_owned())
                }
                GeneralName::IPAddress(raw) => {
                    let ip = match raw.len() {
                        4 => <[u8; 4]>::try_from(*raw).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*raw).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    sans.extend(ip);
                }
                _ => {}
            }
        }
    }
    CertNames { cn, sans }
}
