//! Real MCP clients through Portcullis, with the whole OAuth dance: the official TypeScript SDK
//! (1.32.x) and Python SDK (2.3.x, legacy and auto modes), authorization code + PKCE with dynamic
//! registration, and client_credentials; against oidc-provider in Keycloak's layout with
//! `provider: keycloak`, in front of the seed's FastMCP stdio server. Also the official MCP
//! conformance suite (server mode) against a route without auth.
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::both_drivers;
use crate::harness::*;
use crate::idp::{stdio_server, Idp};

pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// (node, python) of the clients' install.
pub(crate) fn client_runtimes() -> &'static (String, String) {
    static R: OnceLock<(String, String)> = OnceLock::new();
    R.get_or_init(|| {
        let out = Command::new("bash")
            .arg(fixtures().join("clients/install.sh"))
            .output()
            .expect("clients install");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "clients install failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_owned())
                .unwrap_or_else(|| panic!("{k}= not printed by clients/install.sh:\n{text}"))
        };
        (get("NODE"), get("PYTHON"))
    })
}

pub(crate) fn run_client(cmd: &str, script: &str, url: &str, mode: &str) -> serde_json::Value {
    run_client_with(cmd, script, url, mode, &[], &[])
}

/// [`run_client`] with more arguments and environment variables.
pub(crate) fn run_client_with(
    cmd: &str,
    script: &str,
    url: &str,
    mode: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> serde_json::Value {
    let out = Command::new(cmd)
        .arg(fixtures().join("clients").join(script))
        .arg(url)
        .arg(mode)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    assert!(
        out.status.success() && v["ok"] == true,
        "{script} {mode} failed (exit {:?}):\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

both_drivers!(sdk_clients_complete_oauth_through_portcullis, |d| {
    let (node, python) = client_runtimes().clone();
    let idp = Idp::start(&[("AT_ALG", "RS256")]);
    let (server_dir, path) = stdio_server();
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: hello\n      matches: [{{path: {{exact: /hello/mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: hello-world\n            stdio: {{cmd: uv, args: [run, src/main.py]}}\n      policies:\n        cors: {{allowOrigins: ['*'], allowHeaders: [mcp-protocol-version, content-type, authorization]}}\n        mcpAuthentication:\n          issuer: {iss}\n          jwksUrl: {iss}/protocol/openid-connect/certs\n          audience: http://127.0.0.1:{{PORT}}/hello/mcp\n          provider: {{keycloak: {{}}}}\n          resourceMetadata:\n            resource: http://127.0.0.1:{{PORT}}/hello/mcp\n            scopesSupported: [mcp:read, mcp:write]\n            bearerMethodsSupported: [header]\n",
        iss = idp.issuer
    );
    let p = Proxy::start_full(
        &cfg,
        d,
        &[],
        &[],
        &[("PATH", path.as_str()), ("UV_PYTHON_DOWNLOADS", "never")],
        Some(&server_dir),
    );
    let url = format!("http://127.0.0.1:{}/hello/mcp", p.port);
    for (cmd, script, mode) in [
        (&node, "ts_client.mjs", "oauth"),
        (&node, "ts_client.mjs", "cc"),
        (&python, "py_client.py", "oauth-legacy"),
        (&python, "py_client.py", "oauth-auto"),
        (&python, "py_client.py", "cc"),
    ] {
        let v = run_client(cmd, script, &url, mode);
        if mode == "oauth-auto" {
            // 2026-07-28 to a 2025 stdio server, through the compatibility mode: no fallback.
            assert_eq!(v["protocolVersion"], "2026-07-28", "{v}");
        }
        let call = v["call"].to_string();
        assert!(call.contains("echo"), "{script} {mode}: {v}");
        assert!(
            v["tools"].to_string().contains("echo"),
            "{script} {mode}: {v}"
        );
    }
    let log = p.log();
    assert!(!log.contains("eyJ"), "no token material in the log");
});

both_drivers!(conformance_suite_server_mode, |d| {
    let install = Command::new("bash")
        .arg(fixtures().join("conformance/install.sh"))
        .output()
        .expect("conformance install");
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let node22 = String::from_utf8_lossy(&install.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let fixture = fixtures().join("conformance/fixture_server.mjs");
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: conformance\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: fixture\n            stdio: {{cmd: '{node22}', args: ['{}', --stdio]}}\n",
        fixture.display()
    );
    let p = Proxy::start(&cfg, d);
    let results = temp_dir();
    let out = Command::new("bash")
        .arg(fixtures().join("conformance/run.sh"))
        .arg("-o")
        .arg(&results)
        .env(
            "CONFORMANCE_URL",
            format!("http://127.0.0.1:{}/mcp", p.port),
        )
        .output()
        .expect("run the conformance suite");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // Every scenario recorded as passing must still pass (tests/conformance/passing.txt).
    let passing = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/passing.txt"
    ))
    .unwrap();
    for scenario in passing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(
            text.contains(&format!("✓ {scenario}:")),
            "conformance scenario {scenario} regressed:\n{text}"
        );
    }
    assert!(
        out.status.success(),
        "unexpected conformance failures:\n{text}"
    );
    // The 2026-07-28 scenarios, through the compatibility mode (the fixture speaks the 2025
    // revisions): every check recorded as passing must still pass
    // (tests/conformance/passing-2026-07-28.txt, which says why the others fail).
    let mut text = String::new();
    for scenario in [
        "server-stateless",
        "caching",
        "http-header-validation",
        "http-custom-header-server-validation",
        "sep-2164-resource-not-found",
    ] {
        let out = Command::new("bash")
            .arg(fixtures().join("conformance/run.sh"))
            .args(["-o", &results.display().to_string(), "--scenario", scenario])
            .env(
                "CONFORMANCE_URL",
                format!("http://127.0.0.1:{}/mcp", p.port),
            )
            .output()
            .expect("run a 2026-07-28 scenario");
        text += &String::from_utf8_lossy(&out.stdout);
        text += &String::from_utf8_lossy(&out.stderr);
    }
    let text = strip_ansi(&text);
    let passing = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/passing-2026-07-28.txt"
    ))
    .unwrap();
    for check in passing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let passed = text.lines().any(|l| {
            l.contains(&format!("[{check} ")) || l.contains(&format!("[{check}]"))
        } && l.contains("SUCCESS"));
        assert!(
            passed,
            "2026-07-28 conformance check {check} regressed:\n{text}"
        );
    }
    let _ = std::fs::remove_dir_all(results);
});

/// The text without its terminal colour sequences (`ESC [ … m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
