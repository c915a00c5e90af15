//! `backendTLS`: `host` backends and MCP targets over TLS to a server whose certificate only a
//! private root vouches for; `hostname` (SNI and the checked name), `insecureHost`,
//! `insecure`; a client certificate for a server that requires one (mTLS, Python's `ssl`).
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::both_drivers;
use crate::harness::*;

/// A self-signed certificate for `names` as `<stem>.crt`/`<stem>.key` in `dir` (it is its own
/// root: trusting it is trusting a private CA).
fn make_cert(dir: &Path, stem: &str, names: &[&str]) {
    crate::tls::make_cert(dir, stem, names);
}

/// [`PY_SERVER`] (Python's `ssl`) with `dir` and `args`; it prints `READY <port>` once
/// listening. Stopped when dropped.
struct PyServer {
    port: u16,
    child: Child,
}

impl PyServer {
    fn start(dir: &Path, args: &[&str]) -> PyServer {
        let mut child = Command::new("python3")
            .args(["-c", PY_SERVER])
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the Python HTTPS server did not start: {line:?}"));
        PyServer { port, child }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Portcullis HTTPS listener for `backend.test` answering `body` (the TLS upstream).
fn tls_upstream(d: Driver, dir: &Path, body: &str) -> Proxy {
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - protocol: HTTPS\n    tls: {{cert: '{0}/backend.crt', key: '{0}/backend.key'}}\n    routes:\n    - policies:\n        directResponse: {{body: {body}, status: 200}}\n",
        dir.display()
    );
    Proxy::start(&cfg, d)
}

fn front(up_port: u16, tls: &str) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: tls\n      policies:\n        backendTLS: {tls}\n      backends:\n      - host: 127.0.0.1:{up_port}\n"
    )
}

fn get(p: &Proxy) -> (u16, String) {
    let r = p.req("GET /x HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n");
    (r.status, r.text())
}

both_drivers!(host_backends_over_tls_with_a_private_root, |d| {
    let dir = temp_dir();
    make_cert(&dir, "backend", &["backend.test"]);
    let up = tls_upstream(d, &dir, "over-tls");
    let root = format!("'{}/backend.crt'", dir.display());
    // The private root and the certificate's name: served over TLS.
    let p = Proxy::start(
        &front(
            up.port,
            &format!("{{root: {root}, hostname: backend.test}}"),
        ),
        d,
    );
    assert_eq!(get(&p), (200, "over-tls".to_owned()));
    assert_eq!(get(&p), (200, "over-tls".to_owned()), "a pooled connection");
    // The Mozilla roots do not vouch for it; the wrong name is refused; insecureHost accepts it
    // (with a warning at load); insecure accepts any certificate.
    for (tls, want) in [
        ("{hostname: backend.test}".to_owned(), 502),
        (format!("{{root: {root}, hostname: other.test}}"), 502),
        (
            format!("{{root: {root}, hostname: other.test, insecureHost: true}}"),
            200,
        ),
        (
            format!("{{root: {root}, hostname: other.test, subjectAltNames: [backend.test]}}"),
            200,
        ),
        // Pinned names replace the hostname: a certificate for it without the pin is refused.
        (
            format!("{{root: {root}, hostname: backend.test, subjectAltNames: [pinned.test]}}"),
            502,
        ),
        // insecureHost wins over insecure (agentgateway): the chain is still checked.
        (
            "{hostname: other.test, insecure: true, insecureHost: true}".to_owned(),
            502,
        ),
        ("{insecure: true}".to_owned(), 200),
    ] {
        let p = Proxy::start(&front(up.port, &tls), d);
        assert_eq!(get(&p).0, want, "backendTLS {tls}");
    }
    // Files that are not there, keys the build does not implement, ALPN it does not speak.
    for (tls, err) in [
        (
            "{root: /nonexistent.pem}".to_owned(),
            "cannot read /nonexistent.pem",
        ),
        ("{spiffe: {}}".to_owned(), "spiffe"),
        ("{alpn: [h2]}".to_owned(), "ALPN \"h2\""),
        (format!("{{cert: {root}}}"), "needs both `cert` and `key`"),
    ] {
        let out = Command::new(bin())
            .args(["--validate-only", "--config"])
            .arg(
                front(up.port, &tls)
                    .replace("{STATS}", "0")
                    .replace("{READY}", "0")
                    .replace("{PORT}", "0"),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && text.contains(err), "{tls}: {text}");
    }
});

/// `python3 -c PY_SERVER <dir> <stem> [<client CA stem>]`: HTTPS with `<stem>.crt`/`.key`. With a
/// client CA it requires a client certificate signed by (here: equal to) it and answers with
/// the client's common name; without, it serves `body.json` at every path.
const PY_SERVER: &str = r#"
import http.server, ssl, sys
d, stem = sys.argv[1], sys.argv[2]
client_ca = sys.argv[3] if len(sys.argv) > 3 else None
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if client_ca:
            peer = self.connection.getpeercert() or {}
            cn = dict(x[0] for x in peer.get("subject", ())).get("commonName", "")
            body = ("client=" + cn).encode()
        else:
            body = open(d + "/body.json", "rb").read()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/" + stem + ".crt", d + "/" + stem + ".key")
if client_ca:
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(d + "/" + client_ca + ".crt")
# Threaded: a client's idle keep-alive connection must not hold the next client's handshake.
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("READY", srv.server_address[1], flush=True)
srv.serve_forever()
"#;

both_drivers!(
    a_renewed_backend_root_is_followed_without_a_config_change,
    |d| {
        // The upstream's certificate is its own root (a private CA): renewing it in place rewrites
        // the file both proxies read, the upstream's listener certificate and the front's
        // backendTLS root. Neither config text changes.
        let dir = temp_dir();
        make_cert(&dir, "backend", &["backend.test"]);
        let up = tls_upstream(d, &dir, "over-tls");
        let root = format!("'{}/backend.crt'", dir.display());
        let p = Proxy::start(
            &front(
                up.port,
                &format!("{{root: {root}, hostname: backend.test}}"),
            ),
            d,
        );
        assert_eq!(get(&p), (200, "over-tls".to_owned()));
        make_cert(&dir, "backend", &["backend.test"]);
        // The front reloads (a new root, a new pool), the upstream serves the new certificate to
        // new handshakes: requests succeed again within seconds, verified against the new root.
        assert!(
            p.wait_log("a certificate or key file changed", 10),
            "{}",
            p.log()
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while get(&p) != (200, "over-tls".to_owned()) {
            assert!(std::time::Instant::now() < deadline, "{}", p.log());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            up.wait_log("a certificate or key file changed", 10),
            "{}",
            up.log()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
);

both_drivers!(a_client_certificate_for_a_server_that_requires_one, |d| {
    let dir = temp_dir();
    make_cert(&dir, "backend", &["backend.test"]);
    make_cert(&dir, "client", &["portcullis.client"]);
    let up = PyServer::start(&dir, &["backend", "client"]);
    let base = format!(
        "root: '{0}/backend.crt', hostname: backend.test",
        dir.display()
    );
    let with_cert = format!(
        "{{{base}, cert: '{0}/client.crt', key: '{0}/client.key'}}",
        dir.display()
    );
    let p = Proxy::start(&front(up.port, &with_cert), d);
    let (status, body) = get(&p);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("client="), "{body}");
    drop(p);
    // Without the certificate the server refuses the handshake: a 502 naming the failure.
    let p = Proxy::start(&front(up.port, &format!("{{{base}}}")), d);
    assert_eq!(get(&p).0, 502);
});

both_drivers!(mcp_targets_over_tls, |d| {
    let dir = temp_dir();
    make_cert(&dir, "backend", &["backend.test"]);
    // A TLS front for a plain MCP server: Portcullis terminating TLS for the stdio demo server.
    let inner = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - protocol: HTTPS\n    tls: {{cert: '{0}/backend.crt', key: '{0}/backend.key'}}\n    routes:\n    - matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{1}']}}\n",
        dir.display(),
        crate::mcp::mini_server()
    );
    let inner = Proxy::start(&inner, d);
    let outer = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        backendTLS: {{root: '{0}/backend.crt', hostname: backend.test}}\n      backends:\n      - mcp:\n          targets:\n          - name: tls\n            mcp: {{host: 127.0.0.1, port: {1}, path: /mcp}}\n",
        dir.display(),
        inner.port
    );
    let p = Proxy::start(&outer, d);
    let mut c = crate::mcp::Mcp::new(p.addr());
    let r = c.initialize();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = c.tool("echo", r#"{"message":"over tls"}"#);
    assert!(v.to_string().contains("over tls"), "{v}");
});

both_drivers!(a_jwks_behind_a_private_ca_with_the_system_store, |d| {
    let dir = temp_dir();
    make_cert(&dir, "idp", &["127.0.0.1"]);
    let key = crate::tokens::TestKey::es256("k1");
    std::fs::write(dir.join("body.json"), crate::tokens::jwks(&[&key])).unwrap();
    let idp = PyServer::start(&dir, &["idp"]);
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - policies:\n        jwtAuth:\n          issuer: http://idp.test\n          audiences: [a]\n          jwks: {{url: 'https://127.0.0.1:{}/jwks.json'}}\n        directResponse: {{body: inside, status: 200}}\n",
        idp.port
    );
    let token = key.sign(&crate::tokens::claims("http://idp.test", "a", "u"));
    let call = |p: &Proxy| {
        p.req(&format!(
            "GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ))
        .status
    };
    // The operator installed the CA in the system store (here: SSL_CERT_FILE) and asked for it.
    let ca = dir.join("idp.crt");
    let ca = ca.to_str().unwrap();
    let p = Proxy::start_env(
        &cfg,
        d,
        &[],
        &[],
        &[("SSL_CERT_FILE", ca), ("PORTCULLIS_SYSTEM_ROOTS", "1")],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while call(&p) != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "keys never loaded:\n{}",
            p.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Without asking, the Mozilla roots do not vouch for it: the keys never load.
    let p = Proxy::start_env(&cfg, d, &[], &[], &[("SSL_CERT_FILE", ca)]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_ne!(call(&p), 200);
});
