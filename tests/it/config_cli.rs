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
