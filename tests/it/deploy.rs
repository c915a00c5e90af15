//! Deployment artefacts, run for real (issue 14).
//!
//! - `image`: the binary the Dockerfile builds, built the way it builds it, runs in an empty root
//!   holding only what the distroless image holds (the binary, the shared libraries `ldd` names
//!   with the dynamic loader, the CA bundle, the config, and here the peer key), in new network,
//!   mount and PID namespaces, as the image's user, with no capability, `no_new_privs` and a
//!   read-only root: `--validate-only`, readiness, the listener's answer, metrics, the peer
//!   listener, SIGTERM and exit 0. It listens on exactly the ports the Dockerfile exposes.
//! - `stdio_image`: Dockerfile.stdio declares the same binary, config, user, ports and signal.
//! - `kubernetes`: `kubectl kustomize` renders the base and each overlay; the objects are checked
//!   against each other and against what the binary does with the ConfigMap's config, run in the
//!   same sandbox with the Deployment's environment, user and file layout: the ports it listens
//!   on, the probe and scrape paths, the 401 and its metadata URL, the drain time.
//! - `seccomp_profile`: the io-uring overlay's profile, emulated with strace (every system call
//!   outside its allowlist fails with EPERM, `clone3` with ENOSYS, as under seccomp): the proxy
//!   serves on io_uring; without the three io_uring calls (the runtime's default profile) it
//!   falls back to epoll and serves too.
//!
//! The binary is the release one, built by the test with the Dockerfile's command (at the lowest
//! priority): a no-op when it is up to date, a few minutes after a source change (fat LTO).
//! `.ci/run` builds it before the suite. `PORTCULLIS_DEPLOY_DEBUG=1` tests the debug binary
//! instead (the same code and libraries) where those minutes matter more.
//!
//! The sandbox needs root (namespaces, chroot): without it the tests that need it print `SKIP`
//! (past the harness's output capture) and return. Nothing is mounted in the root: no /proc, /dev
//! or /sys. The proxy reads /proc/self/cgroup (a CPU limit, for its default worker count),
//! /proc/self/maps and /proc/sys/vm/overcommit_memory when they exist and does without them
//! (a container always has /proc).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::harness::{read_response, temp_dir, Response};

const BUILD: &str = "cargo build --release --locked --bin portcullis";
/// The peer key's path: the Deployment's `PORTCULLIS_PEER_KEY_FILE` (checked in `kubernetes`).
const PEER_KEY: &str = "/etc/portcullis/peer/key";
/// The sandbox's pod address (its loopback), for `status.podIP`.
const POD_IP: &str = "127.0.0.1";
/// The binary's default metrics and readiness ports (`config.statsAddr`, `config.readinessAddr`:
/// agentgateway's), the peer port the Deployment and the docs use, and the admin endpoints'
/// default (`localhost:15000`: loopback only, not exposed).
const STATS_PORT: u16 = 15020;
const READY_PORT: u16 = 15021;
const PEER_PORT: u16 = 15030;
const ADMIN_PORT: u16 = 15000;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Written past the harness's capture: a skipped test says so in every run.
fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP deploy::{test}: {why}");
}

/// Visible in every run, like [`skip`], for what a passing test did not cover.
fn note(test: &str, what: &str) {
    let _ = writeln!(std::io::stderr(), "NOTE deploy::{test}: {what}");
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        // Root's tools (ip, chroot) where PATH lacks sbin.
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

/// The binary the Dockerfile ships, built with the Dockerfile's command (a no-op when it is up
/// to date). `PORTCULLIS_DEPLOY_DEBUG=1` takes the debug binary `cargo test` built instead: the
/// same code and libraries, without the fat-LTO release build a source change costs (minutes on
/// a small machine).
fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if std::env::var_os("PORTCULLIS_DEPLOY_DEBUG").is_some() {
            return PathBuf::from(crate::harness::bin());
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args: Vec<&str> = BUILD.split(' ').skip(1).collect();
        args.push("--message-format=json-render-diagnostics");
        // At the lowest priority: the rest of the suite may be running beside it.
        let mut cmd = match which("nice") {
            Some(nice) => {
                let mut c = Command::new(nice);
                c.args(["-n", "19"]).arg(&cargo);
                c
            }
            None => Command::new(&cargo),
        };
        // Without the variables cargo sets for this test process: build scripts (ring's) record
        // CARGO_MANIFEST_DIR, and a build that sees it would be redone by the next one that
        // does not (the README's, a developer's).
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k == "CARGO"
                || k == "OUT_DIR"
                || k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&&*k)
            {
                cmd.env_remove(&*k);
            }
        }
        let out = cmd
            .args(&args)
            .current_dir(repo())
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "`{BUILD}` failed");
        // The executable cargo reports (wherever the target directory is).
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "portcullis")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the portcullis executable")
    })
}

// ---------------------------------------------------------------------------------------------
// Dockerfiles

struct Stage {
    from: String,
    name: Option<String>,
    /// (instruction, arguments), continuation lines joined.
    lines: Vec<(String, String)>,
}

impl Stage {
    fn all(&self, kw: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k == kw)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, kw: &str) -> &str {
        let all = self.all(kw);
        assert_eq!(all.len(), 1, "{} has {} {kw} lines", self.from, all.len());
        all[0]
    }

    /// `USER uid:gid`, numeric (Kubernetes' runAsNonRoot can only check a number).
    fn user(&self) -> (u32, u32) {
        let u = self.one("USER");
        let (uid, gid) = u.split_once(':').unwrap_or((u, u));
        let parse = |s: &str| {
            s.parse::<u32>()
                .unwrap_or_else(|_| panic!("USER {u}: not numeric"))
        };
        (parse(uid), parse(gid))
    }

    fn expose(&self) -> BTreeSet<u16> {
        self.all("EXPOSE")
            .iter()
            .flat_map(|l| l.split_whitespace())
            .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
            .collect()
    }

    fn entrypoint(&self) -> Vec<String> {
        serde_json::from_str(self.one("ENTRYPOINT")).expect("ENTRYPOINT in exec (JSON) form")
    }

    /// `COPY [--from=stage] src... dst` as (from, sources, destination).
    fn copies(&self) -> Vec<(Option<String>, Vec<String>, String)> {
        self.all("COPY")
            .iter()
            .map(|l| {
                let mut from = None;
                let mut paths = Vec::new();
                for w in l.split_whitespace() {
                    match w.strip_prefix("--") {
                        Some(flag) => {
                            if let Some(f) = flag.strip_prefix("from=") {
                                from = Some(f.to_owned());
                            }
                        }
                        None => paths.push(w.to_owned()),
                    }
                }
                let dst = paths.pop().expect("COPY destination");
                (from, paths, dst)
            })
            .collect()
    }

    /// The destination of the one COPY of `src` (from `stage`, or from the context).
    fn copy_of(&self, from: Option<&str>, src: &str) -> String {
        let found: Vec<String> = self
            .copies()
            .into_iter()
            .filter(|(f, s, _)| f.as_deref() == from && s.iter().any(|s| s == src))
            .map(|(_, _, d)| d)
            .collect();
        assert_eq!(found.len(), 1, "COPY {from:?} {src}: {found:?}");
        found[0].clone()
    }
}

/// A Dockerfile's stages, `${ARG}`s of its first lines substituted in `FROM`.
fn dockerfile(name: &str) -> Vec<Stage> {
    let text = std::fs::read_to_string(repo().join(name)).unwrap();
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let t = raw.trim();
        if t.starts_with('#') || (cur.is_empty() && t.is_empty()) {
            continue;
        }
        if let Some(part) = t.strip_suffix('\\') {
            cur.push_str(part);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let line = std::mem::take(&mut cur);
        let (kw, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let (kw, rest) = (kw.to_ascii_uppercase(), rest.trim().to_owned());
        match kw.as_str() {
            "ARG" if stages.is_empty() => {
                let (k, v) = rest.split_once('=').unwrap_or((&rest, ""));
                args.insert(k.to_owned(), v.to_owned());
            }
            "FROM" => {
                let mut from = rest;
                for (k, v) in &args {
                    from = from.replace(&format!("${{{k}}}"), v);
                }
                let words: Vec<&str> = from.split_whitespace().collect();
                let name = match words.as_slice() {
                    [_, a, n] if a.eq_ignore_ascii_case("as") => Some((*n).to_owned()),
                    [_] => None,
                    _ => panic!("{name}: FROM {from}"),
                };
                stages.push(Stage {
                    from: words[0].to_owned(),
                    name,
                    lines: Vec::new(),
                });
            }
            _ => stages
                .last_mut()
                .unwrap_or_else(|| panic!("{name}: {kw} before FROM"))
                .lines
                .push((kw, rest)),
        }
    }
    stages
}

/// What a Dockerfile's runtime image is, as the tests need it.
struct Image {
    runtime: Stage,
    /// The stage that runs `cargo build --release --locked --bin portcullis`.
    build: Stage,
    /// Where the binary is in the image, and the config the entrypoint names.
    binary: String,
    config: String,
    entrypoint: Vec<String>,
}

fn read_image(name: &str) -> Image {
    let mut stages = dockerfile(name);
    let runtime = stages.pop().expect("stages");
    let b = stages
        .iter()
        .position(|s| s.all("RUN").iter().any(|r| r.contains(BUILD)))
        .unwrap_or_else(|| panic!("{name}: no stage runs `{BUILD}`"));
    let build = stages.swap_remove(b);
    let entrypoint = runtime.entrypoint();
    // […, binary, "-f", config]: the config path is fixed by the image.
    let n = entrypoint.len();
    assert!(
        n >= 3 && entrypoint[n - 2] == "-f",
        "{name}: {entrypoint:?}"
    );
    let (binary, config) = (entrypoint[n - 3].clone(), entrypoint[n - 1].clone());
    // The binary is the one the build stage installs, and the config is the repository's.
    let run = build.one("RUN");
    let from = build.name.clone().expect("the build stage is named");
    let (_, srcs, _) = runtime
        .copies()
        .into_iter()
        .find(|(f, _, d)| f.as_deref() == Some(from.as_str()) && *d == binary)
        .unwrap_or_else(|| panic!("{name}: no COPY --from={from} to {binary}"));
    assert!(
        run.contains("target/release/portcullis") && srcs.iter().all(|s| run.contains(s.as_str())),
        "{name}: {srcs:?} is not what `{run}` installs"
    );
    assert_eq!(
        runtime.copy_of(None, "deploy/container/config.yaml"),
        config,
        "{name}: the default config is where the entrypoint reads it"
    );
    Image {
        runtime,
        build,
        binary,
        config,
        entrypoint,
    }
}

/// `.dockerignore` leaves every file `cargo build` and the runtime stage read in the context.
fn check_dockerignore(img: &Image) {
    let text = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let ignored = |path: &str| {
        patterns.iter().any(|p| match p.strip_prefix("**/") {
            Some(name) => path.split('/').any(|c| c == name),
            None => {
                assert!(
                    !p.contains(['*', '?', '[', '!']),
                    "extend this check for the pattern {p}"
                );
                path == *p || path.starts_with(&format!("{p}/"))
            }
        })
    };
    assert!(ignored("target/release") && ignored(".git/HEAD"));
    // What Cargo.toml names: every target's path, and the benches (autobenches = false).
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let mut needed = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()];
    let mut section = String::new();
    for l in manifest.lines().map(str::trim) {
        if l.starts_with('[') {
            section = l.to_owned();
        }
        let value = |key: &str| {
            l.strip_prefix(key)
                .and_then(|r| r.trim_start().strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_owned())
        };
        if let Some(p) = value("path") {
            needed.push(p);
        }
        if section == "[[bench]]" {
            if let Some(n) = value("name") {
                needed.push(format!("benches/{n}.rs"));
            }
        }
    }
    for (from, srcs, _) in img.runtime.copies() {
        if from.is_none() {
            needed.extend(srcs);
        }
    }
    for p in &needed {
        assert!(repo().join(p).exists(), "{p} does not exist");
        assert!(
            !ignored(p),
            ".dockerignore leaves out {p}, which the build reads"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The sandbox: an empty root, namespaces, no privileges

struct Tools {
    unshare: PathBuf,
    nsenter: PathBuf,
    ip: PathBuf,
    mount: PathBuf,
    env: PathBuf,
    setpriv: PathBuf,
    chroot: PathBuf,
    curl: PathBuf,
}

/// The sandbox's tools, if this machine lets the tests use them (root); else why not.
fn sandbox(test: &str) -> Option<&'static Tools> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    let tools = TOOLS.get_or_init(|| {
        let find = |n: &str| which(n).ok_or_else(|| format!("`{n}` not found"));
        let t = Tools {
            unshare: find("unshare")?,
            nsenter: find("nsenter")?,
            ip: find("ip")?,
            mount: find("mount")?,
            env: find("env")?,
            setpriv: find("setpriv")?,
            chroot: find("chroot")?,
            curl: find("curl")?,
        };
        let probe = Command::new(&t.unshare)
            .args(["--net", "--mount", "--pid", "--fork", "--kill-child", "--"])
            .arg(&t.ip)
            .args(["link", "set", "lo", "up"])
            .output()
            .map_err(|e| format!("unshare: {e}"))?;
        if !probe.status.success() {
            return Err(format!(
                "cannot create namespaces (run as root): {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            ));
        }
        Ok(t)
    });
    match tools {
        Ok(t) => Some(t),
        Err(why) => {
            skip(test, why);
            None
        }
    }
}

/// The shared libraries `ldd` lists for `exe` (the dynamic loader included).
fn libraries(exe: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(exe).output().expect("run ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd {}: {text}", exe.display());
    assert!(!text.contains("not found"), "ldd {}: {text}", exe.display());
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, p)) => p.trim(),
                None => l,
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// An empty directory that becomes a root: only what is put into it.
struct Root {
    top: PathBuf,
    dir: PathBuf,
}

impl Root {
    /// `exe` at `at`, its libraries, and the CA bundle (the distroless image's content).
    fn new(exe: &Path, at: &str) -> Root {
        let top = temp_dir();
        let dir = top.join("root");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = Root { top, dir };
        root.program(exe, at);
        root.copy(
            Path::new("/etc/ssl/certs/ca-certificates.crt"),
            "/etc/ssl/certs/ca-certificates.crt",
            0o644,
        );
        root
    }

    fn path(&self, at: &str) -> PathBuf {
        let p = self.dir.join(at.trim_start_matches('/'));
        let parent = p.parent().unwrap();
        std::fs::create_dir_all(parent).unwrap();
        p
    }

    /// `exe` at `at` and its libraries at their own paths.
    fn program(&self, exe: &Path, at: &str) {
        self.copy(exe, at, 0o755);
        for lib in libraries(exe) {
            self.copy(&lib, lib.to_str().unwrap(), 0o755);
        }
    }

    /// Copied by `cp`, not by this process: a child another test thread forks while this one
    /// holds the new file open for writing would keep it open until its exec, and an exec of the
    /// file in that window fails (ETXTBSY).
    fn copy(&self, from: &Path, at: &str, mode: u32) {
        let p = self.path(at);
        let ok = Command::new("cp").arg(from).arg(&p).status().unwrap();
        assert!(ok.success(), "cp {} {}", from.display(), p.display());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A file with `mode`, owned by root and `group` (a Kubernetes volume with fsGroup).
    fn put(&self, at: &str, bytes: &[u8], mode: u32, group: Option<u32>) {
        let p = self.path(at);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&p, None, group).unwrap();
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.top);
    }
}

/// What runs in the sandbox.
struct Spec<'a> {
    root: &'a Root,
    /// uid, gid.
    user: (u32, u32),
    /// The program in the root and its arguments (for the proxy, the image's entrypoint).
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// A host directory mounted writable at `/trace` in the root.
    trace: Option<&'a Path>,
}

/// Run in the namespaces: loopback up, the root bound read-only onto itself, then
/// `env -i … setpriv --no-new-privs chroot --userspec=uid:gid root argv…`.
const JAIL: &str = r#"set -e
root=$1 ip=$2 mount=$3 trace=$4; shift 4
"$ip" link set lo up
"$mount" --bind "$root" "$root"
"$mount" -o remount,bind,ro "$root"
if [ -n "$trace" ]; then "$mount" --bind "$trace" "$root/trace"; fi
exec "$@"
"#;

fn jail_command(t: &Tools, spec: &Spec<'_>) -> Command {
    let mut cmd = Command::new(&t.unshare);
    cmd.args(["--net", "--mount", "--pid", "--fork", "--kill-child", "--"])
        .args(["/bin/sh", "-c", JAIL, "jail"])
        .arg(&spec.root.dir)
        .arg(&t.ip)
        .arg(&t.mount)
        .arg(spec.trace.map(|p| p.as_os_str()).unwrap_or_default())
        .arg(&t.env)
        .arg("-i")
        // The distroless image's PATH; then what the test (the Deployment) adds.
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .args(spec.env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(&t.setpriv)
        .arg("--no-new-privs")
        .arg(&t.chroot)
        .arg(format!("--userspec={}:{}", spec.user.0, spec.user.1))
        .arg(&spec.root.dir)
        .args(&spec.argv);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `spec` to its end: its status and output (at most 30 s).
fn run_to_end(t: &'static Tools, spec: &Spec<'_>) -> (ExitStatus, String) {
    let mut j = Jail::spawn(t, spec);
    let status = j.wait(Duration::from_secs(30));
    (status, j.log())
}

/// A process in the sandbox; killed (with its namespace) if still running when dropped.
struct Jail {
    unshare: Child,
    tools: &'static Tools,
    log: Arc<Mutex<String>>,
    /// The proxy as this test sees it (found by [`Jail::proxy`]).
    pid: u32,
}

impl Jail {
    fn spawn(t: &'static Tools, spec: &Spec<'_>) -> Jail {
        let mut unshare = jail_command(t, spec).spawn().expect("spawn unshare");
        let log = Arc::new(Mutex::new(String::new()));
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            unshare.stdout.take().map(|s| Box::new(s) as _),
            unshare.stderr.take().map(|s| Box::new(s) as _),
        ];
        for pipe in pipes.into_iter().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        Jail {
            unshare,
            tools: t,
            log,
            pid: 0,
        }
    }

    /// Starts the proxy: waits until the process named `portcullis` runs in the namespace.
    fn proxy(t: &'static Tools, spec: &Spec<'_>) -> Jail {
        let mut j = Jail::spawn(t, spec);
        let deadline = Instant::now() + Duration::from_secs(10);
        while j.pid == 0 {
            if let Some(s) = j.unshare.try_wait().unwrap() {
                panic!("the sandbox exited ({s}):\n{}", j.log());
            }
            assert!(Instant::now() < deadline, "no proxy:\n{}", j.log());
            j.pid = descendants(j.unshare.id())
                .into_iter()
                .find(|p| comm(*p).as_deref() == Some("portcullis"))
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(20));
        }
        j
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.unshare.try_wait().unwrap() {
                // The reader threads may still hold the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the proxy; its exit status (unshare passes it on) and how long it took.
    fn terminate(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let s = self.wait(within);
        (s, t0.elapsed())
    }

    /// One request from inside the namespace: `curl … http://127.0.0.1:port{path}`.
    fn request(&self, port: u16, path: &str, extra: &[&str]) -> Result<Response, String> {
        let out = Command::new(&self.tools.nsenter)
            .arg(format!("--net=/proc/{}/ns/net", self.pid))
            .arg("--")
            .arg(&self.tools.curl)
            .args(["-sS", "-i", "--raw", "--max-time", "5"])
            .args(extra)
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        read_response(&mut &out.stdout[..], false).map_err(|e| e.to_string())
    }

    fn get(&self, port: u16, path: &str) -> Response {
        self.request(port, path, &[])
            .unwrap_or_else(|e| panic!("GET :{port}{path}: {e}\n{}", self.log()))
    }

    /// Waits (10 s) until `port` answers `path` as `done` says.
    fn until(&self, port: u16, path: &str, done: impl Fn(&Response) -> bool) -> Response {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.request(port, path, &[]) {
                Ok(r) if done(&r) => return r,
                r => assert!(
                    Instant::now() < deadline,
                    "GET :{port}{path}: {r:?}\n{}",
                    self.log()
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Listening TCP ports: each with the addresses it is bound to (`any`, `loopback`, `other`).
    fn listening(&self) -> BTreeMap<u16, BTreeSet<&'static str>> {
        let mut ports: BTreeMap<u16, BTreeSet<&'static str>> = BTreeMap::new();
        for (file, v6) in [("tcp", false), ("tcp6", true)] {
            let text = std::fs::read_to_string(format!("/proc/{}/net/{file}", self.pid))
                .unwrap_or_default();
            for l in text.lines().skip(1) {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 4 || f[3] != "0A" {
                    continue;
                }
                let (ip, port) = f[1].split_once(':').unwrap();
                let port = u16::from_str_radix(port, 16).unwrap();
                // /proc prints each 32-bit word of the address as a number in host byte order.
                let mut bytes = [0u8; 16];
                for (i, w) in ip.as_bytes().chunks(8).enumerate() {
                    let w = u32::from_str_radix(std::str::from_utf8(w).unwrap(), 16).unwrap();
                    bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
                }
                let kind = if v6 {
                    let a = Ipv6Addr::from(bytes);
                    if a.is_unspecified() {
                        "any"
                    } else if a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v| v.is_loopback())
                    {
                        "loopback"
                    } else {
                        "other"
                    }
                } else if bytes[..4] == [0; 4] {
                    "any"
                } else if bytes[0] == 127 {
                    "loopback"
                } else {
                    "other"
                };
                ports.entry(port).or_default().insert(kind);
            }
        }
        ports
    }

    /// Waits (10 s) until the ports open on every address are `want` (and others only on
    /// loopback): the workers bind theirs just after readiness starts answering.
    fn listens_on(&self, want: &BTreeSet<u16>) -> BTreeMap<u16, BTreeSet<&'static str>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let l = self.listening();
            let open: BTreeSet<u16> = l
                .iter()
                .filter(|(_, k)| !k.iter().all(|k| *k == "loopback"))
                .map(|(p, _)| *p)
                .collect();
            if &open == want || Instant::now() > deadline {
                assert_eq!(&open, want, "ports open beyond loopback: {l:?}");
                return l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The proxy runs as `user`, without capabilities, with no_new_privs, on a read-only root.
    fn check_confined(&self, user: (u32, u32)) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("{k} in /proc/pid/status"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert!(
            field("Uid").iter().all(|u| *u == user.0.to_string()),
            "{status}"
        );
        assert!(
            field("Gid").iter().all(|g| *g == user.1.to_string()),
            "{status}"
        );
        for caps in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            assert_eq!(field(caps), ["0000000000000000"], "{caps}");
        }
        assert_eq!(field("NoNewPrivs"), ["1"]);
        let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid)).unwrap();
        // Mount points as the proxy sees them: the last mount on / is its root.
        let root = mounts
            .lines()
            .rfind(|l| l.split_whitespace().nth(4) == Some("/"))
            .expect("a mount on /");
        let opts = root.split_whitespace().nth(5).unwrap();
        assert!(
            opts.split(',').any(|o| o == "ro"),
            "the root is writable: {root}"
        );
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        if self.unshare.try_wait().ok().flatten().is_none() {
            if self.pid != 0 {
                let _ = Command::new("kill")
                    .args(["-KILL", &self.pid.to_string()])
                    .status();
            }
            // --kill-child: the namespace's first process, and so all of it, dies with unshare.
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Every process under `pid` (the children of all its threads, and theirs).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse().ok()) {
                out.push(k);
                queue.push(k);
            }
        }
    }
    out
}

fn driver(log: &str) -> &'static str {
    if log.contains("driver=\"io_uring\"") || log.contains("\"driver\":\"io_uring\"") {
        "io_uring"
    } else if log.contains("driver=\"epoll\"") || log.contains("\"driver\":\"epoll\"") {
        "epoll"
    } else {
        panic!("no `workers started … driver=` line:\n{log}")
    }
}

// ---------------------------------------------------------------------------------------------
// The image

#[test]
fn image() {
    let img = read_image("Dockerfile");
    assert_eq!(img.build.from, "rust:1-bookworm");
    assert_eq!(img.runtime.from, "gcr.io/distroless/cc-debian12:nonroot");
    assert_eq!(img.entrypoint, [&img.binary, "-f", &img.config]);
    let user = img.runtime.user();
    assert_ne!(user.0, 0, "the image runs as root");
    assert_eq!(img.runtime.one("STOPSIGNAL"), "SIGTERM");
    check_dockerignore(&img);
    let exposed = img.runtime.expose();
    let default_config =
        std::fs::read_to_string(repo().join("deploy/container/config.yaml")).unwrap();
    let cfg: Value = serde_yaml_ng::from_str(&default_config).unwrap();
    let listener = u16::try_from(u64_at(&cfg, "/binds/0/port")).unwrap();
    // The config keeps the binary's defaults for metrics and readiness.
    assert!(cfg["config"]["statsAddr"].is_null() && cfg["config"]["readinessAddr"].is_null());

    let Some(t) = sandbox("image") else { return };
    let root = Root::new(binary(), &img.binary);
    root.copy(
        &repo().join("deploy/container/config.yaml"),
        &img.config,
        0o644,
    );
    root.put(
        PEER_KEY,
        b"an image test's peer key, 32 bytes\n",
        0o440,
        Some(user.1),
    );
    let spec = |args: &[&str]| Spec {
        root: &root,
        user,
        argv: img
            .entrypoint
            .iter()
            .cloned()
            .chain(args.iter().map(|a| a.to_string()))
            .collect(),
        env: vec![
            (
                "PORTCULLIS_PEER_ADDR".into(),
                format!("{POD_IP}:{PEER_PORT}"),
            ),
            ("PORTCULLIS_PEER_KEY_FILE".into(), PEER_KEY.into()),
        ],
        trace: None,
    };

    let (status, out) = run_to_end(t, &spec(&["--validate-only"]));
    assert!(status.success(), "--validate-only: {status}\n{out}");
    assert!(out.contains("configuration is valid"), "{out}");

    let mut p = Jail::proxy(t, &spec(&[]));
    p.until(READY_PORT, "/healthz/ready", |r| r.status == 200);
    // Exactly the exposed ports, on every address; the admin endpoints only on loopback.
    let listening = p.listens_on(&exposed);
    assert!(
        listening
            .iter()
            .all(|(port, k)| exposed.contains(port) || (*port == ADMIN_PORT && k.len() == 1)),
        "{listening:?}"
    );
    let r = p.get(listener, "/");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains(&format!("mount yours at {}", img.config)),
        "{}",
        r.text()
    );
    let m = p.get(STATS_PORT, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.text().contains("portcullis_build_info"));
    // The peer listener serves only requests signed with the key.
    assert_eq!(p.get(PEER_PORT, "/mcp").status, 403);
    p.check_confined(user);
    let (status, _) = p.terminate(Duration::from_secs(10));
    let log = p.log();
    assert!(status.success(), "exit after SIGTERM: {status}\n{log}");
    assert!(log.contains("draining") && log.contains("stopped"), "{log}");
    note("image", &format!("the proxy ran on {}", driver(&log)));
}

#[test]
fn stdio_image() {
    let plain = read_image("Dockerfile");
    let stdio = read_image("Dockerfile.stdio");
    assert_eq!(stdio.runtime.from, "debian:bookworm-slim");
    assert_eq!(stdio.build.from, plain.build.from);
    // tini first, then exactly the distroless image's entrypoint.
    assert_eq!(stdio.entrypoint[..2], ["/usr/bin/tini", "--"]);
    assert_eq!(stdio.entrypoint[2..], plain.entrypoint);
    assert_eq!(stdio.runtime.user(), plain.runtime.user());
    assert_eq!(stdio.runtime.expose(), plain.runtime.expose());
    assert_eq!(stdio.runtime.one("STOPSIGNAL"), "SIGTERM");
    let run = stdio.runtime.all("RUN").join("\n");
    for pkg in ["python3", "tini", "ca-certificates"] {
        assert!(run.contains(pkg), "Dockerfile.stdio installs no {pkg}");
    }
    assert!(
        run.contains("--uid 65532") && run.contains("--gid 65532"),
        "{run}"
    );
    // uv, uvx and node come from their official images; npm and npx are linked.
    let stages = dockerfile("Dockerfile.stdio");
    let named = |n: &str| {
        stages
            .iter()
            .find(|s| s.name.as_deref() == Some(n))
            .unwrap_or_else(|| panic!("no stage {n}"))
            .from
            .clone()
    };
    assert!(
        named("uv").starts_with("ghcr.io/astral-sh/uv:0."),
        "{}",
        named("uv")
    );
    assert!(named("node").starts_with("node:") && named("node").ends_with("-bookworm-slim"));
    assert_eq!(stdio.runtime.copy_of(Some("uv"), "/uv"), "/usr/local/bin/");
    assert_eq!(
        stdio.runtime.copy_of(Some("node"), "/usr/local/bin/node"),
        "/usr/local/bin/node"
    );
    assert!(
        run.contains("npm-cli.js /usr/local/bin/npm")
            && run.contains("npx-cli.js /usr/local/bin/npx")
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

fn kubectl(test: &str) -> Option<PathBuf> {
    let k = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .or_else(|| which("kubectl"));
    if k.is_none() {
        let why = "kubectl not found (Debian: apt-get install kubernetes-client; or set KUBECTL)";
        assert!(
            std::env::var_os("CI").is_none(),
            "{why}: .ci/run installs it"
        );
        skip(test, why);
    }
    k
}

/// The objects `kubectl kustomize deploy/kubernetes/{dir}` renders, sorted by kind and name,
/// without the empty `labels`/`annotations` maps old kustomize versions add.
fn render(kubectl: &Path, dir: &str) -> Vec<Value> {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(repo().join("deploy/kubernetes").join(dir))
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut objs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect();
    for o in &mut objs {
        if let Some(m) = o["metadata"].as_object_mut() {
            m.retain(|_, v| v.as_object().is_none_or(|o| !o.is_empty()));
        }
    }
    objs.sort_by_key(|o| (o["kind"].to_string(), o["metadata"]["name"].to_string()));
    objs
}

fn object<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objs
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind}/{name}");
    found[0]
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer}: not a string in {v}"))
}

fn u64_at(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer}: not a number in {v}"))
}

/// A Go duration (`20s`, `1m30s`, `500ms`).
fn go_duration(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(n);
        let u = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let num: u64 = num.parse().unwrap_or_else(|_| panic!("duration {s}"));
        total += match unit {
            "ms" => Duration::from_millis(num),
            "s" => Duration::from_secs(num),
            "m" => Duration::from_secs(num * 60),
            "h" => Duration::from_secs(num * 3600),
            _ => panic!("duration {s}: unit {unit}"),
        };
        rest = tail;
    }
    total
}

/// What a rendering deploys, as the sandbox needs it.
struct Deployed {
    config: String,
    config_path: String,
    key_path: String,
    key_mode: u32,
    user: (u32, u32),
    fs_group: u32,
    env: Vec<(String, String)>,
    /// Container port numbers by name.
    ports: BTreeMap<String, u16>,
    probe: (u16, String),
    scrape: (u16, String),
    pre_stop: u64,
    grace: u64,
    /// The port the Service sends clients to.
    service_port: u16,
}

/// `$(NAME)` of an earlier variable expanded, `$$` kept as `$`: Kubernetes' dependent variables.
fn expand(value: &str, defined: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$$") {
            out.push('$');
            rest = r;
        } else if let Some((name, r)) = rest.strip_prefix("$(").and_then(|r| r.split_once(')')) {
            let v = defined.iter().rev().find(|(k, _)| k == name);
            out.push_str(
                &v.map(|(_, v)| v.clone())
                    .unwrap_or_else(|| format!("$({name})")),
            );
            rest = r;
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Every static check of one rendering; what it deploys.
fn check_rendering(objs: &[Value], img: &Image, dir: &str) -> Deployed {
    let kinds: BTreeSet<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
    let want: BTreeSet<&str> = [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    ]
    .into();
    assert_eq!(kinds, want, "{dir}");
    let d = object(objs, "Deployment", "portcullis");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(u64_at(d, "/spec/replicas"), 3, "{dir}");
    let pod = &d["spec"]["template"];
    let labels = pod["metadata"]["labels"].as_object().expect("pod labels");
    let selects_pods = |sel: &Value| {
        let m = sel.as_object().unwrap_or_else(|| panic!("selector {sel}"));
        !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(selects_pods(&d["spec"]["selector"]["matchLabels"]));
    let spec = &pod["spec"];
    let c = &spec["containers"][0];
    assert_eq!(spec["containers"].as_array().map(Vec::len), Some(1));
    assert!(
        c["command"].is_null() && c["args"].is_null(),
        "the image's entrypoint runs"
    );
    assert!(str_at(c, "/image").contains("portcullis"), "{}", c["image"]);
    let ports: BTreeMap<String, u16> = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            let n = u64_at(p, "/containerPort");
            (str_at(p, "/name").to_owned(), u16::try_from(n).unwrap())
        })
        .collect();
    let numbers: BTreeSet<u16> = ports.values().copied().collect();
    assert_eq!(
        numbers,
        img.runtime.expose(),
        "{dir}: container ports vs EXPOSE"
    );
    let port = |p: &Value| -> u16 {
        match p {
            Value::String(name) => *ports.get(name).unwrap_or_else(|| panic!("port {name}")),
            v => u16::try_from(v.as_u64().expect("port")).unwrap(),
        }
    };

    // Probes: readiness and liveness on the readiness endpoint.
    let probe = |which: &str| {
        let g = &c[which]["httpGet"];
        (port(&g["port"]), str_at(g, "/path").to_owned())
    };
    let readiness = probe("readinessProbe");
    assert_eq!(readiness, probe("livenessProbe"));
    let a = pod["metadata"]["annotations"]
        .as_object()
        .expect("annotations");
    assert_eq!(a["prometheus.io/scrape"], "true");
    let scrape: u16 = a["prometheus.io/port"].as_str().unwrap().parse().unwrap();
    let scrape = (scrape, a["prometheus.io/path"].as_str().unwrap().to_owned());

    // Security.
    let psc = &spec["securityContext"];
    let csc = &c["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(csc["runAsNonRoot"], true);
    let user = (
        u32::try_from(u64_at(psc, "/runAsUser")).unwrap(),
        u32::try_from(u64_at(psc, "/runAsGroup")).unwrap(),
    );
    assert_eq!(user, img.runtime.user(), "the image's user");
    let fs_group = u32::try_from(u64_at(psc, "/fsGroup")).unwrap();
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_eq!(csc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(csc["capabilities"]["add"].is_null());
    let seccomp = str_at(psc, "/seccompProfile/type");
    assert!(
        ["RuntimeDefault", "Localhost"].contains(&seccomp),
        "{seccomp}"
    );
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["enableServiceLinks"], false);
    let spread = spec["topologySpreadConstraints"]
        .as_array()
        .expect("spread");
    assert!(spread
        .iter()
        .any(|s| s["topologyKey"] == "kubernetes.io/hostname"
            && selects_pods(&s["labelSelector"]["matchLabels"])));

    // The config and the key: one projected volume, mounted where the image reads its config.
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let mount = &mounts[0];
    let mount_path = str_at(mount, "/mountPath");
    assert_eq!(mount["readOnly"], true);
    let vol = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let sources = vol["projected"]["sources"]
        .as_array()
        .expect("a projected volume");
    let item = |kind: &str| {
        let s = sources
            .iter()
            .find(|s| !s[kind].is_null())
            .unwrap_or_else(|| panic!("no {kind} source"));
        let items = s[kind]["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        (str_at(&s[kind], "/name").to_owned(), items[0].clone())
    };
    let (cm_name, cm_item) = item("configMap");
    let config_path = format!("{mount_path}/{}", str_at(&cm_item, "/path"));
    assert_eq!(
        config_path, img.config,
        "the ConfigMap is where the image reads its config"
    );
    let cm = object(objs, "ConfigMap", &cm_name);
    let config = str_at(cm, &format!("/data/{}", str_at(&cm_item, "/key"))).to_owned();
    let (_, key_item) = item("secret");
    let key_path = format!("{mount_path}/{}", str_at(&key_item, "/path"));
    let key_mode = u32::try_from(u64_at(&key_item, "/mode")).unwrap();
    assert_eq!(
        key_mode, 0o440,
        "the key is readable by its group (fsGroup) only"
    );

    // The environment, as the kubelet resolves it.
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().expect("env") {
        let name = str_at(e, "/name").to_owned();
        let value = match e["value"].as_str() {
            Some(v) => expand(v, &env),
            None => {
                assert_eq!(str_at(e, "/valueFrom/fieldRef/fieldPath"), "status.podIP");
                POD_IP.to_owned()
            }
        };
        env.push((name, value));
    }
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert_eq!(
        var("PORTCULLIS_PEER_ADDR"),
        format!("{POD_IP}:{}", ports["peer"])
    );
    assert_eq!(var("PORTCULLIS_PEER_KEY_FILE"), key_path);
    assert_eq!(key_path, PEER_KEY);

    // Drain: the grace period covers the preStop sleep, the config's termination deadline and
    // the 2 s the process waits for its workers after it.
    let pre_stop = u64_at(c, "/lifecycle/preStop/sleep/seconds");
    let grace = u64_at(spec, "/terminationGracePeriodSeconds");
    let cfg: Value = serde_yaml_ng::from_str(&config).expect("the ConfigMap's config is YAML");
    let deadline = cfg["config"]["connectionTerminationDeadline"]
        .as_str()
        .map(go_duration)
        .unwrap_or(Duration::from_secs(5));
    assert!(
        Duration::from_secs(grace) > Duration::from_secs(pre_stop + 2) + deadline,
        "{dir}: terminationGracePeriodSeconds {grace} <= preStop {pre_stop}s + {deadline:?} + 2s"
    );
    // One worker per CPU of the limit.
    let cpus = str_at(c, "/resources/limits/cpu");
    assert_eq!(cfg["config"]["workerThreads"].to_string(), cpus, "{dir}");
    assert!(!c["resources"]["requests"]["memory"].is_null());

    // Services: the listener, and the peers' headless one.
    let svc = object(objs, "Service", "portcullis");
    assert!(selects_pods(&svc["spec"]["selector"]));
    let service_port = port(&svc["spec"]["ports"][0]["targetPort"]);
    let binds: Vec<u64> = cfg["binds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["port"].as_u64().unwrap())
        .collect();
    assert_eq!(
        binds,
        [u64::from(service_port)],
        "the Service targets the config's listener"
    );
    let peers = object(objs, "Service", "portcullis-peers");
    assert!(selects_pods(&peers["spec"]["selector"]));
    assert_eq!(peers["spec"]["clusterIP"], "None");
    assert_eq!(peers["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(
        port(&peers["spec"]["ports"][0]["targetPort"]),
        ports["peer"]
    );
    assert_eq!(
        u64_at(peers, "/spec/ports/0/port"),
        u64::from(ports["peer"])
    );

    let pdb = object(objs, "PodDisruptionBudget", "portcullis");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert!(selects_pods(&pdb["spec"]["selector"]["matchLabels"]));
    assert!(!pdb["spec"]["maxUnavailable"].is_null());

    let hpa = object(objs, "HorizontalPodAutoscaler", "portcullis");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "portcullis");
    assert_eq!(u64_at(hpa, "/spec/minReplicas"), 3);
    assert!(hpa["spec"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["resource"]["name"] == "cpu"));

    // The peer port takes connections from this Deployment's pods only; the listener from all.
    let np = object(objs, "NetworkPolicy", "portcullis");
    assert!(selects_pods(&np["spec"]["podSelector"]["matchLabels"]));
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    let rules = np["spec"]["ingress"].as_array().expect("ingress rules");
    let covers = |r: &Value, p: u16| {
        r["ports"]
            .as_array()
            .is_none_or(|ps| ps.iter().any(|x| port(&x["port"]) == p))
    };
    let peer_rules: Vec<&Value> = rules.iter().filter(|r| covers(r, ports["peer"])).collect();
    assert!(!peer_rules.is_empty(), "the peer port is closed");
    for r in peer_rules {
        let from = r["from"].as_array().expect("a peer rule names its sources");
        assert!(
            !from.is_empty()
                && from.iter().all(|f| {
                    f.as_object().is_some_and(|o| o.len() == 1)
                        && selects_pods(&f["podSelector"]["matchLabels"])
                }),
            "the peer port is open beyond the replicas: {r}"
        );
    }
    assert!(rules
        .iter()
        .any(|r| covers(r, service_port) && r["from"].is_null()));

    Deployed {
        config,
        config_path,
        key_path,
        key_mode,
        user,
        fs_group,
        env,
        ports,
        probe: readiness,
        scrape,
        pre_stop,
        grace,
        service_port,
    }
}

/// Runs the ConfigMap's config as the Deployment would: checks the ports it listens on, the
/// probe and scrape paths, the MCP route's challenge and metadata, and the drain.
fn run_deployed(t: &'static Tools, img: &Image, d: &Deployed, dir: &str) {
    let root = Root::new(binary(), &img.binary);
    root.put(&d.config_path, d.config.as_bytes(), 0o644, None);
    root.put(
        &d.key_path,
        b"a kubernetes test's peer key, 32 bytes\n",
        d.key_mode,
        Some(d.fs_group),
    );
    let spec = |args: &[&str]| Spec {
        root: &root,
        user: d.user,
        argv: img
            .entrypoint
            .iter()
            .cloned()
            .chain(args.iter().map(|a| a.to_string()))
            .collect(),
        env: d.env.clone(),
        trace: None,
    };
    let (status, out) = run_to_end(t, &spec(&["--validate-only"]));
    assert!(
        status.success(),
        "{dir}: the ConfigMap's config: {status}\n{out}"
    );

    let mut p = Jail::proxy(t, &spec(&[]));
    // The probes' endpoint: 503 `no key set loaded yet` (the example identity provider is out
    // of reach), or 200 before the key source is registered; a wrong path would be 404.
    let (probe_port, probe_path) = (d.probe.0, d.probe.1.as_str());
    let keys_only = |r: &Response| {
        r.text()
            .lines()
            .skip(1)
            .all(|l| l.starts_with("no key set loaded yet"))
    };
    let r = p.until(probe_port, probe_path, |r| r.status == 200 || keys_only(r));
    assert!(
        r.status == 200 || (r.status == 503 && r.text().starts_with("not ready\n")),
        "{dir}: {probe_path} on {probe_port}: {} {}",
        r.status,
        r.text()
    );

    let want: BTreeSet<u16> = d.ports.values().copied().collect();
    let listening = p.listens_on(&want);
    assert!(
        listening
            .keys()
            .all(|k| want.contains(k) || *k == ADMIN_PORT),
        "{listening:?}"
    );
    let m = p.get(d.scrape.0, &d.scrape.1);
    assert_eq!(m.status, 200, "{dir}: the scrape annotations");
    assert!(m.text().contains("portcullis_build_info"));

    // The MCP route: 401 naming the metadata at the public URL, and that document.
    let cfg: Value = serde_yaml_ng::from_str(&d.config).unwrap();
    let route = &cfg["binds"][0]["listeners"][0]["routes"][0];
    let path = str_at(route, "/matches/0/path/exact");
    let auth = &route["policies"]["mcpAuthentication"];
    let resource = str_at(auth, "/resourceMetadata/resource");
    let (origin, rpath) = resource
        .strip_prefix("https://")
        .and_then(|r| r.split_once('/'))
        .map(|(host, p)| (format!("https://{host}"), format!("/{p}")))
        .expect("an https resource URL");
    let metadata = format!("/.well-known/oauth-protected-resource{rpath}");
    let r = p
        .request(
            d.service_port,
            path,
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-H",
                "accept: application/json, text/event-stream",
                "--data-binary",
                "{}",
            ],
        )
        .unwrap();
    assert_eq!(r.status, 401, "{dir}: {}", r.text());
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{origin}{metadata}\"")),
        "{dir}: {challenge}"
    );
    let doc = p.get(d.service_port, &metadata);
    assert_eq!(doc.status, 200);
    let doc: Value = serde_json::from_slice(&doc.body).unwrap();
    assert_eq!(doc["resource"], resource);
    assert_eq!(doc["authorization_servers"][0], str_at(auth, "/issuer"));
    assert_eq!(p.get(d.ports["peer"], "/mcp").status, 403);
    p.check_confined(d.user);

    // SIGTERM comes after the preStop sleep; the rest of the grace period is the drain's.
    let (status, took) = p.terminate(Duration::from_secs(d.grace - d.pre_stop));
    assert!(status.success(), "{dir}: {status}\n{}", p.log());
    assert!(took < Duration::from_secs(d.grace - d.pre_stop));
}

#[test]
fn kubernetes() {
    let Some(kubectl) = kubectl("kubernetes") else {
        return;
    };
    let img = read_image("Dockerfile");
    let base = render(&kubectl, "base");
    let deployed = check_rendering(&base, &img, "base");
    let readiness_path = "/healthz/ready";
    assert_eq!(deployed.probe, (READY_PORT, readiness_path.into()));
    assert_eq!(deployed.scrape, (STATS_PORT, "/metrics".into()));
    let d = object(&base, "Deployment", "portcullis");
    assert_eq!(
        d.pointer("/spec/template/spec/securityContext/seccompProfile"),
        Some(&serde_json::json!({"type": "RuntimeDefault"}))
    );

    // io-uring: the base with a Localhost seccomp profile shipped beside it, nothing else.
    let uring = render(&kubectl, "overlays/io-uring");
    check_rendering(&uring, &img, "overlays/io-uring");
    let profile = str_at(
        object(&uring, "Deployment", "portcullis"),
        "/spec/template/spec/securityContext/seccompProfile/localhostProfile",
    );
    let file = Path::new(profile).file_name().unwrap();
    assert!(
        repo()
            .join("deploy/kubernetes/overlays/io-uring")
            .join(file)
            .is_file(),
        "{profile} is not in the overlay"
    );
    let mut expected = base.clone();
    for o in &mut expected {
        if o["kind"] == "Deployment" {
            o["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] =
                serde_json::json!({"type": "Localhost", "localhostProfile": profile});
        }
    }
    assert_eq!(
        uring, expected,
        "overlays/io-uring changes more than the seccomp profile"
    );

    // keycloak: the base with another config.
    let kc = render(&kubectl, "overlays/keycloak");
    let kc_deployed = check_rendering(&kc, &img, "overlays/keycloak");
    let cfg: Value = serde_yaml_ng::from_str(&kc_deployed.config).unwrap();
    let auth = &cfg["binds"][0]["listeners"][0]["routes"][0]["policies"]["mcpAuthentication"];
    assert!(auth["provider"]["keycloak"].is_object(), "{auth}");
    assert!(str_at(auth, "/issuer").contains("/realms/"));
    let strip = |objs: &[Value]| -> Vec<Value> {
        objs.iter()
            .cloned()
            .map(|mut o| {
                if o["kind"] == "ConfigMap" {
                    o["data"] = Value::Null;
                }
                o
            })
            .collect()
    };
    assert_eq!(
        strip(&kc),
        strip(&base),
        "overlays/keycloak changes more than the config"
    );

    let Some(t) = sandbox("kubernetes (running the ConfigMaps' configs)") else {
        return;
    };
    run_deployed(t, &img, &deployed, "base");
    run_deployed(t, &img, &kc_deployed, "overlays/keycloak");
}

// ---------------------------------------------------------------------------------------------
// The io_uring seccomp profile

/// The profile's rules: names allowed (by an unconditional or an argument-filtered rule), and
/// names refused with an errno of their own.
fn profile_rules() -> (BTreeSet<String>, BTreeMap<String, u64>) {
    let path = repo().join("deploy/kubernetes/overlays/io-uring/io-uring.json");
    let p: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(p["defaultErrnoRet"], 1);
    let arches = p["architectures"].as_array().expect("architectures");
    for a in ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"] {
        assert!(arches.iter().any(|x| x == a), "{a}");
    }
    let mut allowed = BTreeSet::new();
    let mut errno = BTreeMap::new();
    for rule in p["syscalls"].as_array().unwrap() {
        // The OCI format only: Docker's includes/excludes would be ignored by containerd.
        let keys: BTreeSet<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.is_subset(&["names", "action", "args", "errnoRet"].into()),
            "{rule}"
        );
        for n in rule["names"].as_array().unwrap() {
            let n = n.as_str().unwrap().to_owned();
            match rule["action"].as_str().unwrap() {
                "SCMP_ACT_ALLOW" => {
                    allowed.insert(n);
                }
                "SCMP_ACT_ERRNO" => {
                    errno.insert(n, rule["errnoRet"].as_u64().expect("errnoRet"));
                }
                a => panic!("action {a}"),
            }
        }
    }
    (allowed, errno)
}

/// The names of the system calls in an strace log, from the proxy's execve on, and those whose
/// failure strace injected.
fn syscalls(trace: &str, exe: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let start = trace
        .lines()
        .position(|l| l.contains(&format!("execve(\"{exe}\"")) && l.ends_with("= 0"))
        .expect("the proxy's execve in the trace");
    let mut used = BTreeSet::new();
    let mut injected = BTreeSet::new();
    for l in trace.lines().skip(start) {
        let l = l
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let l = l.strip_prefix("<... ").unwrap_or(l);
        let name: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // +++ exited, --- signal
        }
        if l.contains("(INJECTED)") {
            injected.insert(name.clone());
        }
        used.insert(name);
    }
    (used, injected)
}

/// The proxy on the base config under an emulated seccomp profile (`allowed`; `clone3` answered
/// ENOSYS as the profile does): what it used, what was refused, and its log.
fn under_profile(
    t: &'static Tools,
    strace: &Path,
    allowed: &BTreeSet<String>,
) -> (BTreeSet<String>, BTreeSet<String>, String) {
    let img = read_image("Dockerfile");
    let user = img.runtime.user();
    let root = Root::new(binary(), &img.binary);
    root.program(strace, "/usr/bin/strace");
    root.copy(
        &repo().join("deploy/kubernetes/base/config.yaml"),
        &img.config,
        0o644,
    );
    root.put(
        PEER_KEY,
        b"a seccomp test's peer key, 32 bytes\n",
        0o440,
        Some(user.1),
    );
    // The trace goes to a directory beside the root (removed with it), mounted at /trace.
    std::fs::create_dir(root.dir.join("trace")).unwrap();
    let out = root.top.join("trace");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Everything outside the allowlist fails with EPERM (the default action); `?` tolerates the
    // names this strace does not know.
    let mut keep: Vec<String> = allowed.iter().map(|n| format!("?{n}")).collect();
    keep.push("?clone3".into());
    let mut argv: Vec<String> = [
        "/usr/bin/strace",
        "-f",
        "-qq",
        "-o",
        "/trace/strace.txt",
        "-e",
        "inject=clone3:error=ENOSYS",
        "-e",
    ]
    .map(String::from)
    .into();
    argv.push(format!("inject=!{}:error=EPERM", keep.join(",")));
    argv.push("--".into());
    argv.extend(img.entrypoint.iter().cloned());
    let spec = Spec {
        root: &root,
        user,
        argv,
        env: vec![
            (
                "PORTCULLIS_PEER_ADDR".into(),
                format!("{POD_IP}:{PEER_PORT}"),
            ),
            ("PORTCULLIS_PEER_KEY_FILE".into(), PEER_KEY.into()),
        ],
        trace: Some(&out),
    };
    let mut p = Jail::proxy(t, &spec);
    let r = p.until(READY_PORT, "/healthz/ready", |r| {
        r.status == 503 || r.status == 200
    });
    assert!(
        r.text().starts_with("not ready\nno key set loaded yet"),
        "{}",
        r.text()
    );
    let r = p
        .request(
            3000,
            "/mcp",
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "--data-binary",
                "{}",
            ],
        )
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        p.get(3000, "/.well-known/oauth-protected-resource/mcp")
            .status,
        200
    );
    assert_eq!(p.get(STATS_PORT, "/metrics").status, 200);
    assert_eq!(p.get(PEER_PORT, "/mcp").status, 403);
    let (status, _) = p.terminate(Duration::from_secs(30));
    let log = p.log();
    assert!(status.success(), "{status}\n{log}");
    let trace = std::fs::read_to_string(out.join("strace.txt")).unwrap();
    // glibc falls back from clone3 to clone, which the profile allows without namespace flags.
    for l in trace.lines().filter(|l| l.contains(" clone(")) {
        assert!(!l.contains("CLONE_NEW"), "{l}");
    }
    let (used, injected) = syscalls(&trace, &img.binary);
    (used, injected, log)
}

#[test]
fn seccomp_profile() {
    let (allowed, errno) = profile_rules();
    let uring = ["io_uring_setup", "io_uring_enter", "io_uring_register"];
    for n in uring {
        assert!(allowed.contains(n), "{n}");
    }
    assert_eq!(
        errno,
        [("clone3".to_owned(), 38)].into(),
        "clone3 is ENOSYS: glibc uses clone"
    );
    // What the runtime default refuses a container without capabilities stays refused.
    for n in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "chroot",
        "pivot_root",
        "bpf",
        "perf_event_open",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "reboot",
        "keyctl",
        "add_key",
        "request_key",
        "userfaultfd",
        "open_by_handle_at",
        "clock_settime",
        "settimeofday",
        "iopl",
        "ioperm",
        "swapon",
        "acct",
        "fsopen",
        "fsmount",
        "move_mount",
        "open_tree",
        "lookup_dcookie",
        "quotactl",
        "syslog",
        "vhangup",
        "kcmp",
    ] {
        assert!(!allowed.contains(n), "{n} is allowed");
    }

    let Some(t) = sandbox("seccomp_profile") else {
        return;
    };
    let strace = match which("strace") {
        Some(s) => s,
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "strace not found: .ci/run installs it"
            );
            return skip(
                "seccomp_profile",
                "strace not found (apt-get install strace)",
            );
        }
    };

    // The overlay's profile: io_uring, and nothing the proxy calls is refused.
    let (used, injected, log) = under_profile(t, &strace, &allowed);
    assert!(
        injected.is_subset(&["clone3".to_owned()].into()),
        "refused: {injected:?}\n{log}"
    );
    let outside: Vec<&String> = used
        .difference(&allowed)
        .filter(|n| *n != "clone3")
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    match driver(&log) {
        "io_uring" => assert!(used.contains("io_uring_setup") && used.contains("io_uring_enter")),
        _ => note(
            "seccomp_profile",
            "this machine refuses io_uring itself: the profile's io_uring path was not exercised",
        ),
    }

    // The runtime's default (the profile without io_uring): epoll, by itself, and it serves.
    let default: BTreeSet<String> = allowed
        .iter()
        .filter(|n| !uring.contains(&n.as_str()))
        .cloned()
        .collect();
    let (used, injected, log) = under_profile(t, &strace, &default);
    assert_eq!(driver(&log), "epoll", "{log}");
    assert!(
        injected.is_subset(&["clone3".to_owned(), "io_uring_setup".to_owned()].into()),
        "refused: {injected:?}\n{log}"
    );
    assert!(!used.contains("io_uring_enter"));
}
