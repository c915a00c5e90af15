//! The real IdP peer: panva `oidc-provider` (npm, OpenID Certified) in Keycloak's path layout
//! (tests/fixtures/idp). Installed on first use with the committed lockfile; every process a
//! test starts is killed when its handle drops.
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::harness::*;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/idp")
}

/// Runs the fixture's install script once per test process; returns the node binary.
fn node() -> &'static str {
    static NODE: OnceLock<String> = OnceLock::new();
    NODE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(fixture_dir().join("install.sh"))
            .output()
            .expect("run install.sh");
        assert!(
            out.status.success(),
            "IdP install failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("node path")
            .trim()
            .to_owned()
    })
}

pub struct Idp {
    child: Child,
    pub issuer: String,
    pub port: u16,
    env: Vec<(String, String)>,
}

impl Idp {
    pub fn start(env: &[(&str, &str)]) -> Idp {
        let env = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Self::start_on(0, env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the fixture and waits for its `IDP_READY` line. On failure the process is
    /// stopped and the error carries what it wrote to stderr.
    fn start_on(port: u16, env: Vec<(String, String)>) -> Result<Idp, String> {
        let err_path = temp_dir().join("idp.stderr");
        let err_file = std::fs::File::create(&err_path).expect("idp stderr file");
        let mut cmd = Command::new(node());
        cmd.arg(fixture_dir().join("idp.mjs"))
            .env("IDP_PORT", port.to_string())
            .env("REALM", "mcp");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .expect("start IdP");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("IDP_READY ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        // Generous: node loads oidc-provider from disk, slow when CI's two cores are busy.
        let issuer = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(issuer) => issuer,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
                return Err(format!(
                    "IdP did not start on port {port} ({e:?}, {status:?}):\n{stderr}"
                ));
            }
        };
        let port = issuer
            .split(':')
            .nth(2)
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("IdP port");
        Ok(Idp {
            child,
            issuer,
            port,
            env,
        })
    }

    /// Stops the IdP (as an outage would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same settings (fresh keys). The port can be
    /// briefly taken (for instance by a connection the proxy is attempting), so this retries.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match Idp::start_on(self.port, self.env.clone()) {
                Ok(new) => {
                    // The old handle's process is already stopped; dropping it is harmless.
                    drop(std::mem::replace(self, new));
                    return;
                }
                Err(e) if Instant::now() >= deadline => panic!("{e}"),
                Err(e) => {
                    eprintln!("idp restart: {e}");
                    std::thread::sleep(Duration::from_millis(200))
                }
            }
        }
    }

    /// Where it listens: the issuer's host (127.0.0.1 unless started with `IDP_HOST`).
    pub fn addr(&self) -> SocketAddr {
        let host = self
            .issuer
            .strip_prefix("http://")
            .and_then(|h| h.split(':').next())
            .and_then(|h| h.parse().ok())
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        SocketAddr::from((host, self.port))
    }

    fn post(&self, path_and_query: &str, body: &str, basic: Option<&str>) -> Response {
        let auth = basic
            .map(|b| format!("Authorization: Basic {b}\r\n"))
            .unwrap_or_default();
        let mut s = TcpStream::connect(self.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        read_response(&mut BufReader::new(s), false).unwrap()
    }

    /// A client_credentials access token for `resource` (an RFC 8707 resource indicator).
    pub fn token(&self, resource: &str) -> String {
        // base64("mcp-cc:mcp-cc-secret")
        let basic = "bWNwLWNjOm1jcC1jYy1zZWNyZXQ=";
        let body = format!(
            "grant_type=client_credentials&scope=mcp%3Aread&resource={}",
            urlencode(resource)
        );
        let r = self.post(
            "/realms/mcp/protocol/openid-connect/token",
            &body,
            Some(basic),
        );
        assert_eq!(r.status, 200, "token request failed: {}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// Rotates the signing key (test-only endpoint); `keep_old` keeps the previous key published.
    pub fn rotate(&self, keep_old: bool) {
        let path = if keep_old {
            "/__test__/rotate?keep_old=1"
        } else {
            "/__test__/rotate"
        };
        let r = self.post(path, "", None);
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Installs the seed's FastMCP stdio server (tests/fixtures/stdio-server) once; returns its
/// folder and a PATH in which `uv` is found.
pub fn stdio_server() -> (PathBuf, String) {
    static UV: OnceLock<String> = OnceLock::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stdio-server");
    let uv = UV.get_or_init(|| {
        let out = Command::new("bash")
            .arg(dir.join("install.sh"))
            .output()
            .expect("run install.sh");
        assert!(
            out.status.success(),
            "stdio server install failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("uv path")
            .trim()
            .to_owned()
    });
    let uv_dir = std::path::Path::new(uv)
        .parent()
        .unwrap()
        .display()
        .to_string();
    (
        dir,
        format!("{uv_dir}:{}", std::env::var("PATH").unwrap_or_default()),
    )
}
