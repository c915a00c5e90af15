//! `protocol: HTTPS` listeners: rustls with certificates from the config, SNI between listeners,
//! and certificates reloaded with the config.
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};

use crate::both_drivers;
use crate::harness::*;

/// Writes a self-signed certificate for `names` as `<stem>.crt`/`<stem>.key` in `dir`.
fn make_cert(dir: &Path, stem: &str, names: &[&str]) -> CertificateDer<'static> {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    std::fs::write(dir.join(format!("{stem}.crt")), ck.cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{stem}.key")),
        ck.signing_key.serialize_pem(),
    )
    .unwrap();
    ck.cert.der().clone()
}

/// One HTTPS GET that trusts exactly `root`; returns the body.
fn https_get(port: u16, sni: &str, root: &CertificateDer<'static>) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from(sni.to_owned()).unwrap())
            .map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        format!("GET /x HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let alpn = tls.conn.alpn_protocol().map(|a| a.to_vec());
    let r = read_response(&mut BufReader::new(tls), false).map_err(|e| e.to_string())?;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    Ok(format!("{} {}", r.status, r.text()))
}

fn config() -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - name: a\n    hostname: a.test\n    protocol: HTTPS\n    tls: {{cert: a.crt, key: a.key}}\n    routes:\n    - policies:\n        directResponse: {{body: site-a, status: 200}}\n  - name: b\n    hostname: b.test\n    protocol: HTTPS\n    tls: {{cert: b.crt, key: b.key}}\n    routes:\n    - policies:\n        directResponse: {{body: site-b, status: 200}}\n"
    )
}

both_drivers!(https_listeners_with_sni_and_reload, |d| {
    // Certificates live next to the config, referenced by relative paths.
    let dir = temp_dir();
    let a = make_cert(&dir, "a", &["a.test"]);
    let b = make_cert(&dir, "b", &["b.test"]);
    let cfg_path = dir.join("tls.yaml");
    let port = free_port();
    let (stats, ready) = (free_port(), free_port());
    let text = config()
        .replace("{PORT}", &port.to_string())
        .replace("{STATS}", &stats.to_string())
        .replace("{READY}", &ready.to_string());
    std::fs::write(&cfg_path, &text).unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("-f")
        .arg(&cfg_path)
        .args(["--workers", "2"])
        .env("PORTCULLIS_BIND_ADDR", "127.0.0.1");
    if d == Driver::Epoll {
        cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
    }
    let mut child = KillOnDrop(
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while https_get(port, "a.test", &a).is_err() {
        assert!(Instant::now() < deadline, "HTTPS listener did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(https_get(port, "a.test", &a).unwrap(), "200 site-a");
    assert_eq!(https_get(port, "b.test", &b).unwrap(), "200 site-b");
    // The b certificate is not valid for a.test: a client trusting only b must fail for a.
    assert!(https_get(port, "a.test", &b).is_err());
    // Plain HTTP on the TLS port is not served.
    assert!(try_request(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
    )
    .is_err());

    // Rotate a's certificate: the new one is served after the reload, without a restart.
    let a2 = make_cert(&dir, "a", &["a.test"]);
    std::fs::write(&cfg_path, text.replace("site-a", "site-a2")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(body) = https_get(port, "a.test", &a2) {
            assert_eq!(body, "200 site-a2");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served after reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.0.kill();
    let _ = child.0.wait();
    let _ = std::fs::remove_dir_all(&dir);
});

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
