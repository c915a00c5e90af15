//! Unit tests for `config`: golden files under `config/testdata/` plus env expansion, durations
//! and error formatting. Invalid fixtures are `invalid/NAME.yaml` with `NAME.err` holding the
//! exact expected first error line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::schema::*;

fn testdata(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/testdata")
        .join(sub)
}

/// Fixed environment so results do not depend on the machine.
fn test_env(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("3000".into()),
        "ISSUER" => Some("http://localhost:7080/realms/mcp".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<LocalConfig, ConfigErrors> {
    load_str_with_env(text, &test_env)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn seed_parses_as_v0_10_5() {
    let text = std::fs::read_to_string(testdata("valid/seed.yaml")).unwrap();
    let cfg = load(&text).unwrap();
    let bind = &cfg.binds[0];
    assert_eq!(bind.port, 3000);
    let listener = &bind.listeners[0];
    assert_eq!(listener.protocol, Protocol::Http);
    let route = &listener.routes.as_ref().unwrap()[0];
    assert_eq!(route.matches[0].path, PathMatch::Exact("/hello/mcp".into()));
    let Some(BackendKind::Mcp(mcp)) = route.backends[0].kind() else {
        panic!("expected mcp backend");
    };
    let Some(McpTargetKind::Stdio(stdio)) = mcp.targets[0].kind() else {
        panic!("expected stdio target");
    };
    assert_eq!((stdio.cmd.as_str(), stdio.args.len()), ("uv", 2));
    let p = route.policies.as_ref().unwrap();
    assert_eq!(p.cors.as_ref().unwrap().allow_origins, ["*"]);
    let auth = p.mcp_authentication.as_ref().unwrap();
    assert_eq!(auth.issuer, "http://localhost:7080/realms/mcp");
    assert_eq!(auth.audience.as_deref(), Some("mcp_proxy"));
    assert!(auth.audiences.is_none() && auth.jwks.is_none());
    assert_eq!(auth.provider, Some(McpProvider::Keycloak {}));
    let keys: Vec<&str> = auth.resource_metadata.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "bearerMethodsSupported",
            "resource",
            "resourceDocumentation",
            "resourcePolicyUri",
            "scopesSupported"
        ]
    );
}

#[test]
fn current_dialect_parses() {
    let text = std::fs::read_to_string(testdata("valid/current.yaml")).unwrap();
    let cfg = load(&text).unwrap();
    let route = &cfg.binds[0].listeners[0].routes.as_ref().unwrap()[0];
    let auth = route
        .policies
        .as_ref()
        .unwrap()
        .mcp_authentication
        .as_ref()
        .unwrap();
    assert_eq!(
        auth.audiences.as_deref(),
        Some(&["mcp_proxy".to_owned()][..])
    );
    assert_eq!(
        auth.jwks,
        Some(Jwks::Url(
            "http://localhost:7080/realms/mcp/protocol/openid-connect/certs".into()
        ))
    );
    assert_eq!(auth.mode, Some(AuthMode::Strict));
}

#[test]
fn every_valid_fixture_parses() {
    for path in yaml_files(&testdata("valid")) {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = load(&text) {
            panic!("{}:\n{e}", path.display());
        }
    }
}

#[test]
fn kitchen_sink_values() {
    let text = std::fs::read_to_string(testdata("valid/kitchen-sink.yaml")).unwrap();
    let cfg = load(&text).unwrap();
    let c = cfg.config.as_ref().unwrap();
    assert_eq!(
        parse_worker_threads(c.worker_threads.as_ref().unwrap()),
        Ok(crate::snapshot::WorkerThreads::Percent(50))
    );
    let routes = cfg.binds[0].listeners[0].routes.as_ref().unwrap();
    assert_eq!(
        routes[0].matches[1].path,
        PathMatch::Regex(PathRegex {
            pattern: "^/v[0-9]+/.*".into(),
            length: Some(10)
        })
    );
    assert_eq!(
        routes[0].matches[2].path,
        PathMatch::Regex(PathRegex {
            pattern: "^/current/.*$".into(),
            length: None
        })
    );
    let direct = routes[2]
        .policies
        .as_ref()
        .unwrap()
        .direct_response
        .as_ref()
        .unwrap();
    assert_eq!(direct.body, Body(b"hi".to_vec()));
    assert_eq!(routes[3].matches.len(), 1);
    // Default match when `matches` is absent.
    let https = &cfg.binds[1].listeners[0].routes.as_ref().unwrap()[0];
    assert_eq!(https.matches, vec![Match::default()]);
}

#[test]
fn invalid_fixtures_report_expected_first_error() {
    let files = yaml_files(&testdata("invalid"));
    assert!(files.len() >= 12, "need at least 12 invalid fixtures");
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read_to_string(path.with_extension("err"))
            .unwrap_or_else(|_| panic!("missing {}", path.with_extension("err").display()));
        let expected = expected.trim_end();
        match load(&text) {
            Ok(_) => failures.push(format!("{}: unexpectedly valid", path.display())),
            Err(errs) => {
                let first = errs.0[0].to_string();
                if first != expected {
                    failures.push(format!(
                        "{}:\n  expected: {expected}\n  actual:   {first}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn validation_collects_all_errors() {
    let text = r#"
binds:
- port: 80
  listeners:
  - routes:
    - policies:
        remoteRateLimit: {domain: d}
        timeout: {requestTimeout: forever}
        cors: {maxAge: 1x}
      matches: [{path: {regex: "("}}]
- port: 80
  listeners: [{protocol: HTTPS, routes: []}]
"#;
    let errs = load(text).unwrap_err();
    let lines: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 6, "{errs}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("binds[1].port: duplicate port 80")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("binds[0].listeners[0].routes[0].policies.cors.maxAge:")));
    assert_eq!(errs.to_string().lines().count(), 6);
}

#[test]
fn env_expansion() {
    let env = |k: &str| match k {
        "A" => Some("x".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    assert_eq!(expand_env("$A ${A} $$A", &env).unwrap(), "x x $A");
    assert_eq!(expand_env("${B:-dflt} ${A:-no}", &env).unwrap(), "dflt x");
    assert_eq!(expand_env("[${EMPTY}]", &env).unwrap(), "[]");
    assert_eq!(expand_env("^/a$\n$ x $-", &env).unwrap(), "^/a$\n$ x $-");
    assert_eq!(
        expand_env("# $UNDEFINED in a comment\n", &env).unwrap(),
        "# $UNDEFINED in a comment\n"
    );
    let e = expand_env("a: 1\nb: $MISSING\n", &env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "(env): environment variable `MISSING` is not defined (line 2)"
    );
    assert!(expand_env("${A", &env).is_err());
    assert!(expand_env("${a-b}", &env).is_err());
}

#[test]
fn env_expansion_in_load() {
    let text = "# yaml-language-server: $schema=../schema/local.json\nbinds:\n- port: $PORT\n  listeners: []\n";
    assert_eq!(load(text).unwrap().binds[0].port, 3000);
}

#[test]
fn durations() {
    let ok = [
        ("0", Duration::ZERO),
        ("10s", Duration::from_secs(10)),
        ("1m30s", Duration::from_secs(90)),
        ("100ms", Duration::from_millis(100)),
        ("1h", Duration::from_secs(3600)),
        ("1.5s", Duration::from_millis(1500)),
        (".5m", Duration::from_secs(30)),
        ("500us", Duration::from_micros(500)),
        ("500µs", Duration::from_micros(500)),
        ("7ns", Duration::from_nanos(7)),
        ("2h45m0.5s", Duration::from_millis(9_900_500)),
        ("+1s", Duration::from_secs(1)),
        ("-0s", Duration::ZERO),
    ];
    for (s, d) in ok {
        assert_eq!(parse_duration(s), Ok(d), "{s}");
    }
    for s in [
        "",
        "10",
        "1x",
        "s",
        "1.s.",
        "-1s",
        "1 s",
        "99999999999999999999999h",
        ".",
    ] {
        assert!(parse_duration(s).is_err(), "{s} should fail");
    }
    assert_eq!(
        parse_duration("10 seconds").unwrap_err(),
        "invalid duration \"10 seconds\": unknown unit \" seconds\" (expected e.g. \"10s\", \"1m30s\", \"100ms\")"
    );
}

#[test]
fn worker_threads() {
    use WorkerThreads::*;
    assert_eq!(
        parse_worker_threads(&Number(4)),
        Ok(crate::snapshot::WorkerThreads::Count(4))
    );
    assert_eq!(
        parse_worker_threads(&Text("8".into())),
        Ok(crate::snapshot::WorkerThreads::Count(8))
    );
    assert_eq!(
        parse_worker_threads(&Text("100%".into())),
        Ok(crate::snapshot::WorkerThreads::Percent(100))
    );
    for bad in [
        Number(0),
        Number(-2),
        Text("0%".into()),
        Text("101%".into()),
        Text("x".into()),
    ] {
        assert!(parse_worker_threads(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn empty_document_is_empty_config() {
    assert_eq!(load("").unwrap(), LocalConfig::default());
    assert_eq!(load("# only a comment\n").unwrap(), LocalConfig::default());
}

#[test]
fn fuzz_entry_does_not_panic() {
    let inputs: [&[u8]; 8] = [
        b"",
        b"\xff\xfe",
        b"binds: [[[[[[",
        b"binds: [{port: 1, listeners: [{routes: [{matches: [{path: {regex: [1, 2, 3]}}]}]}]}]",
        b"{a: *b}",
        b"binds:\n- port: 99999999999999999999\n",
        b"config: {workerThreads: -9223372036854775808}",
        b"? [a]\n: b\n",
    ];
    for i in inputs {
        fuzz_load(i);
    }
}

/// Deterministic mutation smoke test of the fuzz entry (the real fuzzer lives in `fuzz/`).
#[test]
fn fuzz_entry_survives_seed_mutations() {
    let seed = std::fs::read(testdata("valid/kitchen-sink.yaml")).unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"{}[]:,-'\"$ \n#&*!|>01x.%";
    for _ in 0..1500 {
        let mut data = seed.clone();
        for _ in 0..(next() % 4 + 1) {
            let pos = (next() as usize) % data.len();
            let byte = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => data[pos] = byte,
                1 => data.insert(pos, byte),
                _ => {
                    data.remove(pos);
                }
            }
        }
        fuzz_load(&data);
    }
}

#[test]
fn auth_warnings_name_the_field_once() {
    let yaml = r#"
binds:
- port: 3000
  listeners:
  - routes:
    - matches: [{path: {exact: /mcp}}]
      policies:
        mcpAuthentication:
          issuer: http://localhost:7080/realms/mcp
          audiences: [http://localhost:3000/other]
          jwks: {url: http://localhost:7080/realms/mcp/protocol/openid-connect/certs}
          resourceMetadata:
            resource: http://localhost:3000/other
            bearerMethodsSupported: [header, query]
      backends: [{host: 127.0.0.1:9}]
"#;
    let snap = load_bytes(yaml.as_bytes(), None).unwrap();
    let at = "binds[0].listeners[0].routes[0].policies.mcpAuthentication.resourceMetadata.";
    let has = |field: &str| {
        snap.warnings
            .iter()
            .any(|w| w.starts_with(&format!("{at}{field} ")))
    };
    assert!(has("resource:"), "{:#?}", snap.warnings);
    assert!(has("bearerMethodsSupported"), "{:#?}", snap.warnings);
    assert!(
        snap.warnings
            .iter()
            .all(|w| !w.contains("mcpAuthentication.mcpAuthentication")),
        "{:#?}",
        snap.warnings
    );
}

#[test]
fn mock_registration_keys_are_refused_by_name() {
    // Accepted and ignored before: agentgateway acts on both.
    let text = r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        mcpAuthentication:
          issuer: http://idp.test/realms/mcp
          audiences: [mcp]
          jwks: {url: http://idp.test/certs}
          clientId: my-client
          clientSecret: s3cret
          resourceMetadata: {resource: http://localhost:3000/mcp}
      backends:
      - host: 127.0.0.1:9
"#;
    let errs = load(text).unwrap_err();
    let lines: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    let base = "binds[0].listeners[0].routes[0].policies.mcpAuthentication";
    for want in [
        format!("{base}.clientId: agentgateway feature 'clientId' (mock client registration) is not supported by Portcullis"),
        format!("{base}.clientSecret: agentgateway feature 'clientSecret' (Entra token proxy) is not supported by Portcullis"),
    ] {
        assert!(lines.contains(&want), "{want}\n{errs}");
    }
    let without = text.replace(
        "          clientId: my-client\n          clientSecret: s3cret\n",
        "",
    );
    load(&without).unwrap();
}

#[test]
fn http_filters_on_an_mcp_route_are_refused_by_name() {
    let text = r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        timeout: {requestTimeout: 30s}
        requestHeaderModifier: {set: {x-a: b}}
        responseHeaderModifier: {remove: [server]}
        urlRewrite: {path: {full: /other}}
        cors: {allowOrigins: ['*']}
      backends:
      - mcp: {targets: [{name: t, stdio: {cmd: server}}]}
"#;
    let errs = load(text).unwrap_err();
    let lines: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{errs}");
    for key in [
        "requestHeaderModifier",
        "responseHeaderModifier",
        "urlRewrite",
    ] {
        let want = format!(
            "binds[0].listeners[0].routes[0].policies.{key}: agentgateway feature '{key} on a route with an mcp backend' is not supported by Portcullis"
        );
        assert!(lines.contains(&want), "{want}\n{errs}");
    }
    // The same filters on a host route load.
    let host = text.replace(
        "      - mcp: {targets: [{name: t, stdio: {cmd: server}}]}",
        "      - host: 127.0.0.1:9",
    );
    load(&host).unwrap();
}

/// `timeout` on an MCP route bounds each call (the shorter of the two); without it, the default.
#[test]
fn mcp_call_timeout_from_the_route_timeout() {
    use crate::snapshot::{Backend, DEFAULT_MCP_CALL_TIMEOUT};
    let call_timeout = |policies: &str| {
        let yaml = format!(
            "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - {policies}backends:\n      - mcp: {{targets: [{{name: t, stdio: {{cmd: server}}}}]}}\n"
        );
        let snap = load_bytes(yaml.as_bytes(), None).unwrap();
        let route = snap.binds[0].listeners[0].routes.iter().next().unwrap();
        match &route.backend {
            Backend::Mcp(m) => m.call_timeout,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(call_timeout(""), DEFAULT_MCP_CALL_TIMEOUT);
    assert_eq!(
        call_timeout("policies: {timeout: {requestTimeout: 7s}}\n      "),
        Duration::from_secs(7)
    );
    assert_eq!(
        call_timeout(
            "policies: {timeout: {requestTimeout: 7s, backendRequestTimeout: 2s}}\n      "
        ),
        Duration::from_secs(2)
    );
}

/// Every error of a config is reported in one pass: unknown keys, wrong types (a required field
/// of the wrong type is not reported again as missing), bad enum variants, and the validation
/// errors of the rest of the document.
#[test]
fn every_error_in_one_pass() {
    let text = "\
config:
  workerThreadz: 2
binds:
- port: three thousand
  listeners:
  - routes:
    - name: a
      policies:
        corz: {}
        directResponse: {body: hi, status: 200}
    - name: b
      matches:
      - path: {exactt: /x}
      policies:
        directResponse: {body: hi, status: abc}
    - name: c
      policies:
        remoteRateLimit: {domain: d}
        directResponse: {body: hi, status: 200}
";
    let errs = load(text).unwrap_err().0;
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    let r = "binds[0].listeners[0].routes";
    let want = [
        "config.workerThreadz".to_owned(),
        "binds[0].port".to_owned(),
        format!("{r}[0].policies.corz"),
        format!("{r}[1].matches[0].path"),
        format!("{r}[1].policies.directResponse.status"),
        format!("{r}[2].policies.remoteRateLimit"),
    ];
    for w in &want {
        assert!(paths.contains(&w.as_str()), "{w} in {errs:#?}");
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    assert!(!errs.iter().any(|e| e.message.contains("missing field")));
    // The same through the snapshot loader (what --validate-only and reloads use).
    let errs = load_bytes_with_env(text.as_bytes(), None, &test_env)
        .unwrap_err()
        .0;
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
}

/// A required key that is missing is reported once, and errors elsewhere are still found.
#[test]
fn missing_required_key_and_later_errors() {
    let text = "binds:\n- listeners:\n  - routes:\n    - policies: {corz: {}}\n- port: 3001\n  listeners:\n  - routes:\n    - policies: {directResponze: {}}\n";
    let errs = load(text).unwrap_err().0;
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        shown
            .iter()
            .any(|e| e.starts_with("binds[0]: missing field `port`")),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|e| e
            .starts_with("binds[1].listeners[0].routes[0].policies.directResponze: unknown field")),
        "{shown:#?}"
    );
}

/// A missing required key gets no error of its stand-in, and a key no stand-in fits (a header
/// match without `value`) does not hide the errors after it.
#[test]
fn stand_ins_add_no_errors_and_hide_none() {
    let errs = load("binds: [{port: 3000}]\n").unwrap_err().0;
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["binds[0]: missing field `listeners`"], "{shown:#?}");
    let text = "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - matches: [{headers: [{name: x}]}]\n      policies: {corz: {}}\n    - policies: {directResponze: {}}\n";
    let errs = load(text).unwrap_err().0;
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let r = "binds[0].listeners[0].routes";
    for want in [
        format!("{r}[0].matches[0].headers[0]: missing field `value`"),
        format!("{r}[0].policies.corz: unknown field"),
        format!("{r}[1].policies.directResponze: unknown field"),
    ] {
        assert!(
            shown.iter().any(|e| e.starts_with(&want)),
            "{want} in {shown:#?}"
        );
    }
    assert_eq!(shown.len(), 3, "{shown:#?}");
}

/// Requests are routed on their normalised path: a route path that normalisation would change
/// could never match, and says what to write instead.
#[test]
fn route_paths_must_be_normalised() {
    let cfg = |p: &str| {
        format!(
            "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - matches: [{{path: {{pathPrefix: '{p}'}}}}]\n      backends: [{{host: 127.0.0.1:9}}]\n"
        )
    };
    for (p, want) in [
        ("/a/./b", "write \"/a/b\""),
        ("/a/../b", "write \"/b\""),
        ("/%7euser", "write \"/~user\""),
        ("/caf%c3%a9", "write \"/caf%C3%A9\""),
        ("/a%2Fb", "refused"),
        ("/echo/..;/x", "refused"),
    ] {
        let errs = load(&cfg(p)).unwrap_err().to_string();
        assert!(
            errs.contains("would never match") && errs.contains(want),
            "{p}: {errs}"
        );
    }
    for p in ["/", "/api", "/api/", "/.well-known/x", "/a%20b"] {
        load(&cfg(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

#[test]
fn local_rate_limit_in_both_dialects_and_its_errors() {
    use crate::snapshot::Backend;
    let cfg = |rl: &str| {
        format!(
            "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - policies:\n        localRateLimit: {rl}\n      backends: [{{host: 127.0.0.1:9}}]\n"
        )
    };
    let snap = load_bytes(
        cfg("[{maxTokens: 10, tokensPerFill: 2, fillInterval: 1s, type: requests}, {maxTokens: 100, tokensPerFill: 100, fillInterval: 1m}]").as_bytes(),
        None,
    )
    .unwrap();
    let route = snap.binds[0].listeners[0].routes.iter().next().unwrap();
    assert!(matches!(route.backend, Backend::Hosts(_)));
    let rl = &route.policies.rate_limits;
    assert_eq!(rl.len(), 2);
    assert_eq!((rl[0].max_tokens, rl[0].tokens_per_fill), (10, 2));
    assert_eq!(rl[1].fill_interval, Duration::from_secs(60));
    assert_ne!(rl[0].key, rl[1].key);
    // `[]` and null are "off".
    for off in ["[]", "null"] {
        let snap = load_bytes(cfg(off).as_bytes(), None).unwrap();
        let route = snap.binds[0].listeners[0].routes.iter().next().unwrap();
        assert!(route.policies.rate_limits.is_empty());
    }
    let at = "binds[0].listeners[0].routes[0].policies.localRateLimit";
    for (rl, want) in [
        (
            "[{maxTokens: 1, tokensPerFill: 1}]",
            format!("{at}[0]: missing field `fillInterval`"),
        ),
        (
            "[{maxTokens: 1, tokensPerFill: 1, fillInterval: 1s, burst: 2}]",
            format!("{at}[0]: unknown field `burst`"),
        ),
        (
            "[{maxTokens: 1, tokensPerFill: 2, fillInterval: 1s}]",
            format!("{at}[0].maxTokens: cannot be less than tokensPerFill"),
        ),
        (
            "[{maxTokens: 1, tokensPerFill: 1, fillInterval: soon}]",
            format!("{at}[0].fillInterval:"),
        ),
        (
            "[{maxTokens: 0, fillInterval: 1s}]",
            format!("{at}[0].maxTokens: must be at least 1"),
        ),
        (
            "[{maxTokens: 5, tokensPerFill: 1, fillInterval: 1s, type: tokens}]",
            format!("{at}[0].type: agentgateway feature"),
        ),
        (
            "{conditional: [{maxTokens: 5, tokensPerFill: 1, fillInterval: 1s}]}",
            format!("{at}.conditional: agentgateway feature"),
        ),
    ] {
        let errs = load_bytes(cfg(rl).as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(errs.contains(&want), "{rl}: want {want:?} in:\n{errs}");
    }
}

/// A `requiredClaims` entry that token validation does not know would make every token fail
/// (it is treated as absent): the config is refused at load, naming the entry.
#[test]
fn unknown_required_claims_are_refused_at_load() {
    let yaml = |opts: &str| {
        format!(
            r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        jwtAuth:
          issuer: https://issuer.example
          audiences: [api]
          jwks: {{url: https://issuer.example/jwks}}
          jwtValidationOptions: {{requiredClaims: {opts}}}
      backends: [{{host: 127.0.0.1:9}}]
"#
        )
    };
    let errs = load(&yaml("[exp, emial]")).unwrap_err().to_string();
    assert!(
        errs.contains("jwtAuth.jwtValidationOptions.requiredClaims[1]") && errs.contains("emial"),
        "{errs}"
    );
    load(&yaml("[exp, sub, aud]")).unwrap();
    // The same rule for each provider of a multi-provider jwtAuth, and for mcpAuthentication.
    let providers = r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        jwtAuth:
          providers:
          - issuer: https://issuer.example
            jwks: {url: https://issuer.example/jwks}
            jwtValidationOptions: {requiredClaims: [nbf, groups]}
      backends: [{host: 127.0.0.1:9}]
"#;
    let errs = load(providers).unwrap_err().to_string();
    assert!(
        errs.contains("providers[0].jwtValidationOptions.requiredClaims[1]"),
        "{errs}"
    );
    let mcp = r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        mcpAuthentication:
          issuer: https://issuer.example
          audiences: [api]
          jwks: {url: https://issuer.example/jwks}
          jwtValidationOptions: {requiredClaims: [role]}
      backends: [{host: 127.0.0.1:9}]
"#;
    let errs = load(mcp).unwrap_err().to_string();
    assert!(
        errs.contains("mcpAuthentication.jwtValidationOptions.requiredClaims[0]"),
        "{errs}"
    );
}

#[test]
fn tracing_and_custom_metric_fields_are_refused_and_removals_checked() {
    let yaml = r#"
config:
  tracing: {otlpEndpoint: http://localhost:4317, randomSampling: 'request.path == "/x"', clientSampling: 2, fields: {add: {a: b}}}
  metrics: {remove: [requests, agentgateway_mcp_requests_total, gen_ai_client_cost, bogus], fields: {add: {team: '"a"'}}}
binds:
- port: 3000
  listeners:
  - routes:
    - backends: [{host: 127.0.0.1:9}]
"#;
    let errs = load_bytes(yaml.as_bytes(), None).unwrap_err().to_string();
    for want in [
        "config.tracing.otlpProtocol: Portcullis exports OTLP over HTTP only",
        "config.tracing.randomSampling: \"request.path == \\\"/x\\\"\" is not a probability",
        "CEL sampling expressions are not supported",
        "config.tracing.clientSampling: 2 is not a probability",
        "config.tracing.fields: agentgateway feature 'fields'",
        "config.metrics.fields: agentgateway feature 'fields'",
        "config.metrics.remove[3]: unknown metric \"bogus\"",
    ] {
        assert!(errs.contains(want), "{want} in {errs}");
    }
    assert!(
        !errs.contains("remove[0]") && !errs.contains("remove[1]") && !errs.contains("remove[2]"),
        "{errs}"
    );
    let ok = r#"
config:
  tracing: {otlpEndpoint: 'http://collector:4318/', otlpProtocol: http, randomSampling: "0.5", clientSampling: false, headers: {authorization: k}}
binds:
- port: 3000
  listeners:
  - routes:
    - backends: [{host: 127.0.0.1:9}]
"#;
    let snap = load_bytes(ok.as_bytes(), None).unwrap();
    let t = snap.settings.tracing.as_ref().unwrap();
    assert_eq!(t.url, "http://collector:4318/v1/traces");
    assert_eq!((t.random, t.client), (0.5, 0.0));
    assert_eq!(
        t.headers,
        vec![("authorization".to_owned(), "k".to_owned())]
    );
}

#[test]
fn namespace_and_gateway_name_the_gateway_label() {
    let yaml = r#"
config: {namespace: edge, gateway: gw1, metrics: {remove: [retries]}}
binds:
- port: 3000
  listeners:
  - name: main
    routes:
    - name: r
      backends: [{host: 127.0.0.1:9}]
"#;
    let snap = load_bytes(yaml.as_bytes(), None).unwrap();
    assert_eq!(snap.settings.metrics.gateway, "edge/gw1");
    assert_eq!(snap.settings.metrics.removed, vec!["retries".to_owned()]);
    let route = snap.binds[0].listeners[0].routes.iter().next().unwrap();
    assert_eq!(
        &*route.labels.text,
        "backend=\"127.0.0.1:9\",protocol=\"http\",bind=\"bind/3000\",gateway=\"edge/gw1\",listener=\"main\",route=\"default/r\",route_rule=\"unknown\""
    );
    assert!(
        snap.warnings
            .iter()
            .all(|w| !w.contains("namespace") && !w.contains("gateway")),
        "{:?}",
        snap.warnings
    );
}

#[test]
fn keys_without_effect_are_named_at_every_load() {
    let yaml = r#"
config:
  adminAddr: localhost:15000
  enableIpv6: true
  logging: {fields: {remove: [foo]}}
  backend: {keepalives: {enabled: true}}
  listener: {http1MaxHeaders: 50, http2WindowSize: 65535}
binds:
- port: 3000
  listeners:
  - routes:
    - backends: [{host: 127.0.0.1:9}]
"#;
    let snap = load_bytes(yaml.as_bytes(), None).unwrap();
    let w = snap.warnings.join("\n");
    // Used now: no warning, the admin endpoints listen there.
    assert!(!w.contains("adminAddr"), "{w}");
    assert_eq!(snap.settings.admin_addr.port(), 15000);
    assert!(snap.settings.admin_explicit);
    let open = load_bytes(
        yaml.replace("localhost:15000", "0.0.0.0:15000").as_bytes(),
        None,
    )
    .unwrap();
    assert!(
        open.warnings
            .iter()
            .any(|w| w.starts_with("config.adminAddr: 0.0.0.0:15000 is not a loopback address")),
        "{:?}",
        open.warnings
    );
    for key in [
        "config.enableIpv6",
        "config.logging.fields",
        "config.backend.keepalives",
        "config.listener.http1MaxHeaders",
        "config.listener.http2*",
    ] {
        assert!(
            w.lines()
                .any(|l| l.starts_with(key) && l.contains("no effect")),
            "{key} in:\n{w}"
        );
    }
    // A config without them loads without a word.
    let plain =
        "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends: [{host: 127.0.0.1:9}]\n";
    assert!(load_bytes(plain.as_bytes(), None)
        .unwrap()
        .warnings
        .is_empty());
}

/// agentgateway's `examples/authorization/config.yaml` (v0.10.5), changed only in the JWKS file
/// path, and the current dialect's `mcp-authorization` rules with `{allow|deny|require}` on a
/// backend: both load, with the rules compiled.
#[test]
fn agentgateway_authorization_examples_load() {
    let dir = std::env::temp_dir().join(format!("pc-authz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, _) = crate::mint::SignKey::generate(crate::mint::Alg::Es256, None).unwrap();
    std::fs::write(dir.join("pub-key"), crate::mint::SignKey::jwks(&[key])).unwrap();
    let v0105 = r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        cors:
          allowOrigins:
          - "*"
          allowHeaders:
          - "*"
        backendAuth:
          passthrough: {}
        jwtAuth:
          issuer: agentgateway.dev
          audiences: [test.agentgateway.dev]
          jwks:
            # Relative to the folder the binary runs from, not the config file
            file: ./pub-key
        mcpAuthorization:
          rules:
          # Allow anyone to call 'echo'
          - 'mcp.tool.name == "echo"'
          # Only the test-user can call 'add'
          - 'jwt.sub == "test-user" && mcp.tool.name == "add"'
          # Any authenticated user with the claim `nested.key == value` can access 'printEnv'
          - 'mcp.tool.name == "printEnv" && jwt.nested.key == "value"'
      backends:
      - mcp:
          targets:
          - name: mcp2
            mcp:
              host: http://localhost:3001/mcp
"#;
    let snap = load_bytes(v0105.as_bytes(), Some(&dir)).unwrap();
    let route = &snap.binds[0].listeners[0].routes.iter().next().unwrap();
    let crate::snapshot::Backend::Mcp(m) = &route.backend else {
        panic!("an mcp backend")
    };
    assert!(m.authorization.is_some());
    let current = r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        authorization:
          rules:
          - 'request.method == "POST" || request.method == "GET"'
      backends:
      - mcp:
          targets:
          - name: a
            stdio: {cmd: cat}
        policies:
          mcpAuthorization:
            rules:
            - allow: 'mcp.tool.name.startsWith("read_")'
            - deny: 'mcp.tool.name == "read_secrets"'
            - require: 'has(jwt.sub)'
"#;
    let snap = load_bytes(current.as_bytes(), Some(&dir)).unwrap();
    let route = &snap.binds[0].listeners[0].routes.iter().next().unwrap();
    assert_eq!(route.policies.authorization.len(), 1);
    assert!(
        snap.warnings.iter().any(|w| w.contains("`deny` rule")),
        "{:#?}",
        snap.warnings
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn authorization_rule_errors_name_path_and_position() {
    let cfg = |rules: &str, policy: &str| {
        format!(
            r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        {policy}:
          rules: {rules}
      backends:
      - mcp:
          targets:
          - name: a
            stdio: {{cmd: cat}}
"#
        )
    };
    let first = |text: String| load_bytes(text.as_bytes(), None).unwrap_err().0[0].to_string();
    let at = "binds[0].listeners[0].routes[0].policies";
    assert_eq!(
        first(cfg(r#"['true', 'mcp.tool.name == ']"#, "mcpAuthorization")),
        format!("{at}.mcpAuthorization.rules[1]: line 1, column 18: not a CEL expression: Syntax error: mismatched input '<EOF>' expecting {{'[', '{{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}}")
    );
    assert_eq!(
        first(cfg(r#"[{deny: 'user.name == "x"'}]"#, "mcpAuthorization")),
        format!("{at}.mcpAuthorization.rules[0]: line 1, column 1: unknown variable `user` (available: jwt, mcp, request, source)")
    );
    assert_eq!(
        first(cfg(r#"['mcp.tool.name == "x"']"#, "authorization")),
        format!("{at}.authorization.rules[0]: line 1, column 1: `mcp` is only available in mcpAuthorization rules (available: jwt, request, source)")
    );
    // Rules that could never apply are refused.
    let host = cfg(r#"['true']"#, "mcpAuthorization").replace(
        "- mcp:\n          targets:\n          - name: a\n            stdio: {cmd: cat}",
        "- host: 127.0.0.1:9",
    );
    assert_eq!(
        first(host),
        format!("{at}.mcpAuthorization: mcpAuthorization applies to routes whose backend is `mcp`")
    );
    // A rule that is neither a string nor one of the three keys.
    let e = first(cfg(r#"[{permit: 'true'}]"#, "mcpAuthorization"));
    assert!(e.contains("mcpAuthorization.rules[0]"), "{e}");
}
