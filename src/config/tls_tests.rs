//! Which pool modes take `tls` and `backend_tls`.

use std::path::{Path, PathBuf};

/// A self-signed "localhost" certificate and its key, as PEM files.
fn pem_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn pool(mode: &str, keys: &str) -> String {
    format!(
        "[[pool]]\nname = \"p\"\nmode = \"{mode}\"\nlisten = \"127.0.0.1:7000\"\n\
         servers = [\"127.0.0.1:7001\"]\n{keys}\n"
    )
}

#[test]
fn tcp_and_mongos_take_tls_on_both_sides() {
    let dir = std::env::temp_dir().join(format!("puerta-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = pem_pair(&dir);
    let (cert, key) = (cert.display(), key.display());
    let both = format!(
        "tls = {{ cert = \"{cert}\", key = \"{key}\" }}\n\
         backend_tls = {{ ca = \"{cert}\", server_name = \"db.internal\" }}"
    );
    let file = dir.join("puerta.toml");
    for mode in ["tcp", "mongos"] {
        let cfg = super::super::parse(&pool(mode, &both), &file).unwrap_or_else(|e| panic!("{mode}: {e}"));
        let t = &cfg.pools[0].tls;
        assert!(t.server.is_some(), "{mode}: tls");
        let b = t.backend.as_ref().expect("backend_tls");
        assert_eq!(b.settings.server_name.as_deref(), Some("db.internal"), "{mode}");
    }
    // verify = true (the default) needs a ca.
    let err = super::super::parse(&pool("tcp", "backend_tls = { server_name = \"x\" }"), &file).err().unwrap();
    assert!(err.to_string().contains("backend_tls.ca"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
