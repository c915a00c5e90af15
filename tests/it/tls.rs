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
pub(crate) fn make_cert(dir: &Path, stem: &str, names: &[&str]) -> CertificateDer<'static> {
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

/// A TLS client connection to the proxy trusting exactly `root`.
fn tls_connect(
    port: u16,
    sni: &str,
    root: &CertificateDer<'static>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    tls_connect_with(port, sni, root, rustls::DEFAULT_VERSIONS)
}

fn tls_connect_with(
    port: u16,
    sni: &str,
    root: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from(sni.to_owned()).unwrap())
            .unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

both_drivers!(https_keepalive_large_bodies_idle_and_drain, |d| {
    // One HTTPS connection carries several requests with bodies of many TLS records each way,
    // pipelined requests, a request split across a pause, and requests after the connection
    // has idled past the 1 s buffer release; a drain then ends idle TLS connections at once.
    let dir = temp_dir();
    let root = make_cert(&dir, "a", &["a.test"]);
    let up = Upstream::echo();
    let cfg = format!(
        "{CONFIG_HEAD}  listener:\n    http1IdleTimeout: 60s\nbinds:\n- port: {{PORT}}\n  listeners:\n  - protocol: HTTPS\n    tls: {{cert: {d}/a.crt, key: {d}/a.key}}\n    routes:\n    - backends: [{{host: '127.0.0.1:{}'}}]\n",
        up.port,
        d = dir.display()
    )
    .replace("connectionTerminationDeadline: 5s", "connectionTerminationDeadline: 30s");
    let mut p = Proxy::start(&cfg, d);
    let mut tls = tls_connect(p.port, "a.test", &root);
    let big: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for round in 0..3 {
        let head = format!(
            "POST /big/{round} HTTP/1.1\r\nHost: a.test\r\ncontent-length: {}\r\n\r\n",
            big.len()
        );
        tls.write_all(head.as_bytes()).unwrap();
        tls.write_all(&big).unwrap();
        let r = read_response(&mut BufReader::new(&mut tls), false).unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.body.ends_with(&big),
            "round {round}: body of {} bytes",
            r.body.len()
        );
        assert!(r.text().starts_with(&format!("POST /big/{round}\n")));
    }
    // Two pipelined requests in one write.
    tls.write_all(
        b"GET /p1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(&mut tls);
    assert!(read_response(&mut r, false)
        .unwrap()
        .text()
        .starts_with("GET /p1\n"));
    assert!(read_response(&mut r, false)
        .unwrap()
        .text()
        .starts_with("GET /p2\n"));
    drop(r);
    // Idle past the buffer release, twice; then a head split across a pause.
    for i in 0..2 {
        std::thread::sleep(Duration::from_millis(1600));
        tls.write_all(format!("GET /after-idle/{i} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut BufReader::new(&mut tls), false).unwrap();
        assert!(
            r.text().starts_with(&format!("GET /after-idle/{i}\n")),
            "{}",
            r.text()
        );
    }
    tls.write_all(b"GET /split HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    tls.write_all(b"st: a.test\r\n\r\n").unwrap();
    let r = read_response(&mut BufReader::new(&mut tls), false).unwrap();
    assert!(r.text().starts_with("GET /split\n"));
    // TLS 1.2 as well: a request, an idle release, another request.
    let mut t12 = tls_connect_with(p.port, "a.test", &root, &[&rustls::version::TLS12]);
    for i in 0..2 {
        t12.write_all(format!("GET /tls12/{i} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut BufReader::new(&mut t12), false).unwrap();
        assert!(
            r.text().starts_with(&format!("GET /tls12/{i}\n")),
            "{}",
            r.text()
        );
        assert_eq!(
            t12.conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        std::thread::sleep(Duration::from_millis(1200));
    }
    // A client that drops its TCP connection without close_notify harms nobody.
    let mut rude = tls_connect(p.port, "a.test", &root);
    rude.write_all(b"GET /rude HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let _ = read_response(&mut BufReader::new(&mut rude), false).unwrap();
    let _ = rude.sock.shutdown(std::net::Shutdown::Both);
    drop(rude);

    // Drain: this connection has idled past the release; another was just answered.
    std::thread::sleep(Duration::from_millis(1600));
    let mut fresh = tls_connect(p.port, "a.test", &root);
    fresh
        .write_all(b"GET /fresh HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut BufReader::new(&mut fresh), false)
            .unwrap()
            .status,
        200
    );
    let t0 = Instant::now();
    let status = p.terminate();
    assert!(status.success(), "{status}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
});

both_drivers!(
    renewed_certificates_and_sighup_reload_without_a_config_change,
    |d| {
        let dir = temp_dir();
        let first = make_cert(&dir, "a", &["a.test"]);
        let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - protocol: HTTPS\n    tls: {{cert: {d}/a.crt, key: {d}/a.key}}\n    routes:\n    - policies:\n        directResponse: {{body: hello, status: 200}}\n",
        d = dir.display()
    );
        let p = Proxy::start(&cfg, d);
        assert_eq!(https_get(p.port, "a.test", &first).unwrap(), "200 hello");
        // A renewal rewrites the certificate and the key in place (as certbot does); the config
        // text does not change. The new certificate is served within a few seconds.
        let renewed = make_cert(&dir, "a", &["a.test"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while https_get(p.port, "a.test", &renewed).is_err() {
            assert!(
                Instant::now() < deadline,
                "the renewed certificate is not served:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(p.log().contains("a certificate or key file changed"));
        // SIGHUP reloads (HAProxy and Caddy users send it); it never stops the proxy.
        assert!(p.wait_log("generation=2", 10), "{}", p.log());
        p.signal("HUP");
        assert!(
            p.wait_log("SIGHUP: reloading the config", 10),
            "{}",
            p.log()
        );
        assert!(
            p.wait_log("generation=3", 10),
            "the reload ran:\n{}",
            p.log()
        );
        assert_eq!(https_get(p.port, "a.test", &renewed).unwrap(), "200 hello");
        let _ = std::fs::remove_dir_all(&dir);
    }
);
