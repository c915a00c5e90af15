//! `mcp-load`: every scenario against its built-in backend and through Portcullis, minted
//! tokens (RS256, ES256, EdDSA) accepted by Portcullis's validator, invalid and expired mixes,
//! unique tokens, the JSON report's fields, the token/jwks/keygen commands and argument errors.
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::both_drivers;
use crate::harness::*;

fn load_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-load")
}

fn key(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/load")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// An `mcp-load backend` or `mcp-load jwks` process, killed on drop.
struct Peer {
    child: Child,
    port: u16,
}

impl Peer {
    fn start(args: &[&str]) -> Peer {
        let port = free_port();
        let mut child = Command::new(load_bin())
            .args(args)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mcp-load");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("listening"), "{args:?}: {line:?}");
        Peer { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mcp-load run … --json` briefly; returns the report.
fn run(url: &str, args: &[&str]) -> Value {
    run_on(Driver::Uring, url, args)
}

/// `run` with the generator on `driver` (epoll: `MONOIO_FORCE_LEGACY_DRIVER`).
fn run_on(driver: Driver, url: &str, args: &[&str]) -> Value {
    let mut all: Vec<&str> = vec!["run", "--url", url, "--json"];
    all.extend_from_slice(args);
    for (flag, v) in [("-d", "1s"), ("-w", "200ms"), ("-c", "4")] {
        if !args.contains(&flag) {
            all.extend([flag, v]);
        }
    }
    let mut cmd = Command::new(load_bin());
    if driver == Driver::Epoll {
        cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
    }
    let out = cmd.args(&all).output().expect("run mcp-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mcp-load {args:?} failed: {stderr}\n{stdout}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Asserts answers and no error; returns the report for further checks.
fn clean(r: Value) -> Value {
    assert!(r["requests"]["ok"].as_u64().unwrap() > 0, "{r:#}");
    assert_eq!(r["requests"]["errors"], 0, "{r:#}");
    r
}

fn bad_args(args: &[&str], needle: &str) {
    let out = Command::new(load_bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
}

#[test]
fn backend_call_json_and_report_fields() {
    let b = Peer::start(&["backend", "--strict"]);
    let r = clean(run(&b.url("/mcp"), &["-s", "call"]));
    for k in [
        "scenario",
        "target",
        "mode",
        "threads",
        "connections",
        "duration_s",
        "warmup_s",
        "offered_rps",
        "achieved_rps",
        "requests",
        "errors",
        "latency_us",
        "ops",
        "sessions_completed",
        "tokens",
    ] {
        assert!(r.get(k).is_some(), "report lacks {k}: {r:#}");
    }
    assert_eq!(r["scenario"], "call");
    assert_eq!(r["mode"], "closed");
    assert!(r["offered_rps"].is_null());
    assert!(r["achieved_rps"].as_f64().unwrap() > 0.0);
    for q in ["count", "mean", "p50", "p90", "p99", "p999", "max"] {
        assert!(r["latency_us"][q].is_number(), "latency_us.{q}: {r:#}");
    }
    let l = &r["latency_us"];
    assert!(l["p50"].as_f64() <= l["p99"].as_f64() && l["p99"].as_f64() <= l["max"].as_f64());
    assert!(r["ops"]["tools/call"]["count"].as_u64().unwrap() > 0);
    for class in [
        "connect",
        "io",
        "timeout",
        "status",
        "accepted_invalid",
        "no_event",
        "bad_response",
    ] {
        assert_eq!(r["errors"][class], 0, "{class}");
    }
    assert_eq!(r["tokens"]["mode"], "none");
}

#[test]
fn watched_processes_report_cpu_per_request() {
    let b = Peer::start(&["backend"]);
    let pid = b.child.id().to_string();
    let watch = format!("backend={pid}");
    let r = clean(run(&b.url("/mcp"), &["-s", "call", "--watch", &watch]));
    let cpu = r["cpu"].as_array().expect("cpu rows");
    let row = |name: &str| {
        cpu.iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no cpu row {name}: {r:#}"))
    };
    let (gen, be) = (row("mcp-load"), row("backend"));
    assert_eq!(be["pid"].as_u64().unwrap().to_string(), pid);
    let answered = r["requests"]["answered"].as_f64().unwrap();
    for c in [gen, be] {
        // Both processes did real work for every answer: some CPU, and CPU per request that
        // agrees with the totals.
        let (s, per) = (
            c["cpu_s"].as_f64().unwrap(),
            c["us_per_request"].as_f64().unwrap(),
        );
        assert!(s > 0.0 && per > 0.0, "{c}");
        assert!(
            (per * answered / 1e6 - s).abs() <= 0.002 + s * 0.01,
            "{c} vs {answered}"
        );
        assert!(c["cores"].as_f64().unwrap() <= 2.5, "{c}");
    }
    bad_args(
        &[
            "run",
            "--url",
            "http://127.0.0.1:1/mcp",
            "--watch",
            "proxy=x",
        ],
        "expected NAME=PID",
    );
}

#[test]
fn backend_session_sse_and_json() {
    for mode in [
        &["backend", "--strict", "--sse"][..],
        &["backend", "--strict"],
    ] {
        let b = Peer::start(mode);
        let r = clean(run(&b.url("/mcp"), &["-s", "session", "-k", "2"]));
        assert!(r["sessions_completed"].as_u64().unwrap() > 0, "{r:#}");
        for op in [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call",
            "DELETE",
        ] {
            assert!(r["ops"][op]["count"].as_u64().unwrap() > 0, "{op}: {r:#}");
        }
        let (calls, lists) = (
            r["ops"]["tools/call"]["count"].as_u64().unwrap(),
            r["ops"]["tools/list"]["count"].as_u64().unwrap(),
        );
        assert!(calls >= lists, "two calls per session: {calls} vs {lists}");
    }
}

#[test]
fn backend_sse_call_waits_for_its_event() {
    // The SSE backend sends an unrelated notification before each tools/call response.
    let b = Peer::start(&["backend", "--sse"]);
    clean(run(&b.url("/mcp"), &["-s", "call"]));
}

#[test]
fn backend_unauth_metadata_and_get() {
    let b = Peer::start(&[
        "backend",
        "--auth-challenge",
        "http://127.0.0.1/.well-known/oauth-protected-resource/mcp",
    ]);
    clean(run(&b.url("/mcp"), &["-s", "unauth"]));
    clean(run(&b.url("/mcp"), &["-s", "metadata"]));
    clean(run(&b.url("/healthz"), &["-s", "get"]));
    // Without the challenge the unauth scenario reports the backend's 2xx as a failure.
    let open = Peer::start(&["backend"]);
    let out = Command::new(load_bin())
        .args([
            "run",
            "--url",
            &open.url("/mcp"),
            "-s",
            "unauth",
            "--json",
            "-d",
            "300ms",
            "-w",
            "0s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["errors"]["accepted_invalid"].as_u64().unwrap() > 0,
        "{r:#}"
    );
}

// Paced by timerfd on io_uring, by the timer wheel on epoll.
both_drivers!(open_loop_holds_the_offered_rate, |driver: Driver| {
    let b = Peer::start(&["backend"]);
    let r = clean(run_on(
        driver,
        &b.url("/mcp"),
        &["-s", "call", "--rate", "400", "-d", "2s"],
    ));
    assert_eq!(r["mode"], "open");
    assert_eq!(r["offered_rps"], 400.0);
    let got = r["achieved_rps"].as_f64().unwrap();
    assert!(
        (300.0..=480.0).contains(&got),
        "achieved {got} for 400 offered"
    );
});

#[test]
fn two_threads_split_connections() {
    let b = Peer::start(&["backend", "--threads", "2"]);
    let r = clean(run(&b.url("/mcp"), &["-s", "call", "-t", "2", "-c", "6"]));
    assert_eq!(r["threads"], 2);
    assert_eq!(r["connections"], 6);
}

#[test]
fn token_keygen_and_jwks_commands() {
    let dir = temp_dir();
    for (alg, parts) in [("ES256", 3), ("EdDSA", 3)] {
        let pem = dir.join(format!("{alg}.pem"));
        let st = Command::new(load_bin())
            .args(["keygen", "--alg", alg, "--out", pem.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = Command::new(load_bin())
            .args([
                "token",
                "--sign-key",
                pem.to_str().unwrap(),
                "--aud",
                "a",
                "--iss",
                "i",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let tok = String::from_utf8(out.stdout).unwrap();
        assert_eq!(tok.trim().split('.').count(), parts, "{tok}");
    }
    bad_args(
        &["keygen", "--alg", "RS256", "--out", "/tmp/x.pem"],
        "cannot generate RSA",
    );
    let j = Peer::start(&[
        "jwks",
        "--sign-key",
        &key("rsa-2048.pem"),
        "--sign-key",
        &key("ec-p256.pem"),
        "--sign-key",
        &key("ed-25519.pem"),
    ]);
    let resp = request(
        std::net::SocketAddr::from(([127, 0, 0, 1], j.port)),
        b"GET /jwks.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    let kids: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["mcp-load-rs256", "mcp-load-es256", "mcp-load-eddsa"]);
    assert_eq!(v["keys"][0]["kty"], "RSA");
    assert!(v["keys"][0]["n"].as_str().unwrap().len() > 300);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_arguments_are_named() {
    let u = "http://127.0.0.1:1/mcp";
    bad_args(
        &["run", "--url", u, "-c", "1", "-t", "2"],
        "--connections (1) must be at least --threads (2)",
    );
    bad_args(
        &[
            "run",
            "--url",
            u,
            "--invalid-share",
            "1.5",
            "--token",
            "a.b.c",
        ],
        "--invalid-share must be between 0 and 1",
    );
    bad_args(
        &[
            "run",
            "--url",
            u,
            "--expired-share",
            "0.1",
            "--token",
            "a.b.c",
        ],
        "--expired-share needs --sign-key",
    );
    bad_args(
        &["run", "--url", u, "--invalid-share", "0.1"],
        "--invalid-share needs a token",
    );
    bad_args(
        &[
            "run",
            "--url",
            u,
            "-s",
            "unauth",
            "--invalid-share",
            "0.1",
            "--token",
            "a",
        ],
        "apply to the session, call and get scenarios",
    );
    bad_args(
        &["run", "--url", "https://127.0.0.1/mcp"],
        "only http:// URLs",
    );
    bad_args(&["run", "--url", u, "--tool-args", "{nope"], "--tool-args");
    bad_args(
        &["run", "--url", u, "--rate=0"],
        "--rate must be a positive",
    );
    bad_args(&["run", "--url", u, "-d", "ten"], "not a duration");
    bad_args(
        &["run", "--url", u, "-s", "nonsense"],
        "invalid value 'nonsense'",
    );
    bad_args(&["run", "--url", u, "--unique-tokens"], "--sign-key");
    bad_args(
        &["run", "--url", u, "--sign-key", "/nonexistent.pem"],
        "/nonexistent.pem",
    );
    bad_args(
        &["run", "--url", u, "--cpus", "4096"],
        "CPU 4096 does not exist",
    );
    bad_args(&["token"], "--sign-key is required");
    // A refused port is not an argument error: the run completes and counts connect errors.
    let out = Command::new(load_bin())
        .args([
            "run",
            "--url",
            &format!("http://127.0.0.1:{}/mcp", free_port()),
            "--json",
            "-d",
            "300ms",
            "-w",
            "0s",
            "-c",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["errors"]["connect"].as_u64().unwrap() > 0);
}

const ISS: &str = "http://idp.test/realms/load";
const AUD: &str = "http://localhost/mcp";

/// Portcullis with mcpAuthentication on /mcp (JWKS from `mcp-load jwks`), proxying to an
/// `mcp-load backend` through a `host` backend.
fn proxied(d: Driver, sse: bool) -> (Proxy, Peer, Peer) {
    let jwks = Peer::start(&[
        "jwks",
        "--sign-key",
        &key("rsa-2048.pem"),
        "--sign-key",
        &key("ec-p256.pem"),
        "--sign-key",
        &key("ed-25519.pem"),
    ]);
    let backend = Peer::start(if sse {
        &["backend", "--strict", "--sse"][..]
    } else {
        &["backend", "--strict"]
    });
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {ISS}\n          audiences: ['{AUD}']\n          jwks:\n            url: {{JWKS}}\n          resourceMetadata:\n            resource: http://localhost:{{PORT}}/mcp\n      backends: [{{host: '127.0.0.1:{{UP}}'}}]\n"
    );
    let p = Proxy::start_with(
        &cfg,
        d,
        &[
            ("JWKS", jwks.url("/jwks.json")),
            ("UP", backend.port.to_string()),
        ],
        &[],
    );
    (p, jwks, backend)
}

fn url(p: &Proxy) -> String {
    format!("http://127.0.0.1:{}/mcp", p.port)
}

fn signed(alg_key: &str) -> Vec<String> {
    vec![
        "--sign-key".into(),
        key(alg_key),
        "--iss".into(),
        ISS.into(),
        "--aud".into(),
        AUD.into(),
    ]
}

fn with<'a>(a: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    a.iter()
        .map(String::as_str)
        .chain(more.iter().copied())
        .collect()
}

both_drivers!(through_portcullis_unauth_metadata_and_minted_tokens, |d| {
    let (p, _jwks, _backend) = proxied(d, false);
    let u = url(&p);
    clean(run(&u, &["-s", "unauth"]));
    let m = clean(run(&u, &["-s", "metadata"]));
    assert_eq!(m["ops"]["GET metadata"]["count"], m["requests"]["ok"]);
    // Minted tokens of every algorithm pass Portcullis's validator.
    for k in ["rsa-2048.pem", "ec-p256.pem", "ed-25519.pem"] {
        let a = signed(k);
        let r = clean(run(&u, &with(&a, &["-s", "call"])));
        assert_eq!(r["tokens"]["mode"], "minted", "{k}");
    }
    // A token for another audience is refused: the run reports `unauthorized`.
    let wrong = [
        "--sign-key",
        &key("ec-p256.pem"),
        "--iss",
        ISS,
        "--aud",
        "someone-else",
        "-s",
        "call",
    ];
    let out = Command::new(load_bin())
        .args([
            "run", "--url", &u, "--json", "-d", "300ms", "-w", "0s", "-c", "1",
        ])
        .args(wrong)
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["errors"]["unauthorized"].as_u64().unwrap() > 0, "{r:#}");
});

#[test]
fn through_portcullis_mixes_unique_tokens_and_sessions() {
    let (p, _jwks, _backend) = proxied(Driver::Uring, true);
    let u = url(&p);
    // Invalid and expired shares: rejected with a Bearer challenge, never accepted.
    let a = signed("ec-p256.pem");
    let r = clean(run(
        &u,
        &with(
            &a,
            &[
                "-s",
                "call",
                "--invalid-share",
                "0.3",
                "--expired-share",
                "0.2",
            ],
        ),
    ));
    let (ok, rej) = (
        r["requests"]["ok"].as_u64().unwrap(),
        r["requests"]["rejected"].as_u64().unwrap(),
    );
    assert!(rej > 0 && ok > rej / 2, "ok {ok}, rejected {rej}");
    assert_eq!(r["errors"]["accepted_invalid"], 0);
    // Unique tokens (RS256): a pre-minted pool, each used in turn.
    let a = signed("rsa-2048.pem");
    let r = clean(run(
        &u,
        &with(
            &a,
            &["-s", "call", "--unique-tokens", "--token-pool", "300"],
        ),
    ));
    assert_eq!(r["tokens"]["mode"], "minted-unique");
    assert_eq!(r["tokens"]["minted"], 300);
    // Whole sessions through the proxy with SSE answers, tokens from a file.
    let dir = temp_dir();
    let file = dir.join("tokens.txt");
    let mut toks = String::new();
    for _ in 0..3 {
        let out = Command::new(load_bin())
            .args(["token"])
            .args(with(&signed("ed-25519.pem"), &[]))
            .output()
            .unwrap();
        toks.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    std::fs::write(&file, toks).unwrap();
    let r = clean(run(
        &u,
        &["-s", "session", "--token-file", file.to_str().unwrap()],
    ));
    assert!(r["sessions_completed"].as_u64().unwrap() > 0);
    assert_eq!(r["tokens"]["mode"], "fixed");
    std::thread::sleep(Duration::from_millis(10));
    let _ = std::fs::remove_dir_all(dir);
}

// The `modern` scenario (2026-07-28: server/discover once per user, then calls without a
// session) through Portcullis's MCP relay with mcpAuthentication, against the built-in backend
// answering in JSON and in SSE, and speaking only the 2025 revisions: no errors, and the client
// never sends an initialize (the compatibility mode opens the backend's sessions itself).
both_drivers!(modern_scenario_through_the_relay, |d| {
    let jwks = Peer::start(&["jwks", "--sign-key", &key("ec-p256.pem")]);
    // JSON, SSE, and a backend that speaks only the 2025 revisions (the compatibility mode).
    for args in [
        &["backend", "--strict"][..],
        &["backend", "--strict", "--sse"],
        &["backend", "--strict", "--legacy"],
    ] {
        let backend = Peer::start(args);
        let cfg = format!(
            "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {ISS}\n          audiences: ['{AUD}']\n          jwks:\n            url: {{JWKS}}\n          resourceMetadata:\n            resource: http://localhost:{{PORT}}/mcp\n      backends:\n      - mcp: {{targets: [{{name: be, mcp: {{host: 127.0.0.1, port: {{UP}}, path: /mcp}}}}]}}\n"
        );
        let p = Proxy::start_with(
            &cfg,
            d,
            &[
                ("JWKS", jwks.url("/jwks.json")),
                ("UP", backend.port.to_string()),
            ],
            &[],
        );
        let a = signed("ec-p256.pem");
        let args = ["-s", "modern", "-c", "4"];
        let r = clean(run(&url(&p), &with(&a, &args)));
        assert_eq!(r["scenario"], "modern");
        let discovers = r["ops"]["server/discover"]["count"].as_u64().unwrap_or(0);
        let calls = r["ops"]["tools/call"]["count"].as_u64().unwrap_or(0);
        // Each user discovers once (before or inside the window), then only calls.
        assert!(discovers <= 4 && calls > 10, "{r:#}");
        assert_eq!(
            r["ops"]["initialize"]["count"].as_u64().unwrap_or(0),
            0,
            "{r:#}"
        );
    }
});
