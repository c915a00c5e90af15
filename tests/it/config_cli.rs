//! The CLI and config loading: --validate-only, malformed configs, env expansion, the seed.
use std::path::Path;
use std::process::Command;

use crate::harness::*;

fn validate(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("--validate-only")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

#[test]
fn seed_validates_unchanged() {
    let seed = std::fs::read(repo("config/seed.yaml")).unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/config/seed.yaml");
    if let Ok(orig) = std::fs::read(shared) {
        assert_eq!(
            seed, orig,
            "config/seed.yaml must stay byte-for-byte the users' seed"
        );
    }
    let (code, out, err) = validate(&["-f", &repo("config/seed.yaml")], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn quickstart_validates() {
    let (code, out, err) = validate(&["-f", &repo("config/quickstart.yaml")], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn every_invalid_config_names_its_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/testdata/invalid");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("err")).unwrap();
        let expected = expected.lines().next().unwrap().trim();
        let (code, _, err) = validate(&["-f", path.to_str().unwrap()], &[]);
        assert_eq!(code, 64, "{}: {err}", path.display());
        assert!(
            err.contains(expected),
            "{}: expected {expected:?} in:\n{err}",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 10, "only {n} malformed configs");
}

#[test]
fn inline_config_and_env_expansion() {
    let cfg = "binds:\n- port: ${PC_TEST_PORT}\n  listeners:\n  - routes:\n    - policies:\n        directResponse: {body: hi, status: 200}\n";
    let (code, out, err) = validate(&["-c", cfg], &[("PC_TEST_PORT", "18080")]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = validate(&["-c", cfg], &[]);
    assert_eq!(code, 64);
    assert!(err.contains("PC_TEST_PORT"), "{err}");
}

#[test]
fn unsupported_feature_is_named() {
    let cfg = "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - policies:\n        remoteRateLimit:\n          domain: agentgateway\n      backends: [{host: '127.0.0.1:1'}]\n";
    let (code, _, err) = validate(&["-c", cfg], &[]);
    assert_eq!(code, 64);
    assert!(
        err.contains("binds[0].listeners[0].routes[0].policies.remoteRateLimit"),
        "{err}"
    );
    assert!(err.contains("not supported"), "{err}");
}

#[test]
fn missing_file_and_bad_flags_are_clear() {
    let (code, _, err) = validate(&["-f", "/nonexistent/portcullis.yaml"], &[]);
    assert_eq!(code, 64);
    assert!(err.contains("/nonexistent/portcullis.yaml"), "{err}");
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("portcullis"));
}

/// `--validate-only` prints every error of the file in one pass, each with its path.
#[test]
fn validate_only_prints_every_error() {
    let cfg = "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - name: a\n      matchez: []\n      policies:\n        corz: {}\n        directResponse: {body: hi, status: 200}\n    - name: b\n      policies:\n        directResponse: {body: hi, statuz: 200}\n";
    let (code, out, err) = validate(&["-c", cfg], &[]);
    assert_eq!(code, 64, "{out}{err}");
    let r = "binds[0].listeners[0].routes";
    for want in [
        format!("{r}[0].matchez: unknown field (did you mean `matches`?)"),
        format!("{r}[0].policies.corz: unknown field (did you mean `cors`?)"),
        format!("{r}[1].policies.directResponse.statuz: unknown field (did you mean `status`?)"),
    ] {
        assert!(err.contains(&want), "{want:?} in:\n{err}");
    }
}

/// `portcullis schema` is a JSON Schema every valid config (the seed, the quickstart, the
/// fixtures) validates against, checked with the Python `jsonschema` package (Draft 2020-12);
/// unknown keys and agentgateway features Portcullis refuses fail it.
#[test]
fn the_schema_accepts_valid_configs_and_marks_refused_ones() {
    let out = Command::new(bin()).arg("schema").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let dir = temp_dir();
    std::fs::write(dir.join("schema.json"), &out.stdout).unwrap();
    let as_json = |rel: &str| {
        let text = std::fs::read_to_string(repo(rel)).unwrap();
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let path = dir.join(rel.replace('/', "_") + ".json");
        std::fs::write(&path, v.to_string()).unwrap();
        path.display().to_string()
    };
    let mut valid = vec![
        as_json("config/seed.yaml"),
        as_json("config/quickstart.yaml"),
    ];
    for f in ["current", "kitchen-sink", "seed"] {
        valid.push(as_json(&format!("config/testdata/valid/{f}.yaml")));
    }
    // Refused by the schema itself (unknown keys, refused features), not only at load.
    let refused: Vec<String> = [
        "unknown-top-level-key",
        "unknown-listener-key",
        "unknown-policy-key",
        "unsupported-ai-backend",
        "unsupported-ai-policy",
        "unsupported-remote-rate-limit",
        "openapi-target",
        "tcp-listener",
    ]
    .iter()
    .map(|f| as_json(&format!("config/testdata/invalid/{f}.yaml")))
    .collect();
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
want = None
for arg in sys.argv[2:]:
    if arg in ("--valid", "--refused"):
        want = arg
        continue
    errors = list(v.iter_errors(json.load(open(arg))))
    if want == "--valid" and errors:
        print("INVALID", arg, errors[0].message[:300], list(errors[0].absolute_path))
    if want == "--refused" and not errors:
        print("ACCEPTED", arg)
print("checked")
"#;
    let python = &crate::clients::client_runtimes().1;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(dir.join("schema.json"))
        .arg("--valid")
        .args(&valid)
        .arg("--refused")
        .args(&refused)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.trim() == "checked",
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Refused agentgateway features are marked, so an editor can say why.
    let defs = &schema["$defs"];
    assert_eq!(defs["Unsupported"]["x-portcullis"], "unsupported");
    assert_eq!(defs["Ignored"]["x-portcullis"], "no-effect");
    let _ = std::fs::remove_dir_all(dir);
}
