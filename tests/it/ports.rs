//! Listening ports are exclusive unless asked otherwise: a second instance (or any other program)
//! on a port is an error at start naming the port and the fix; `--reuse-port` shares on purpose.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;

fn direct_cfg(body: &str) -> String {
    format!("{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: main\n      policies:\n        directResponse: {{body: {body}, status: 200}}\n")
}

/// Runs the binary on `config` and expects it to refuse to start: returns its stderr.
fn refused(config: &str, driver: Driver) -> String {
    let dir = temp_dir();
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("-f").arg(&path).args(["--workers", "2"]);
    cmd.env("PORTCULLIS_BIND_ADDR", "127.0.0.1")
        .env("RUST_LOG", "info");
    if driver == Driver::Epoll {
        cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second instance on a taken port kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status.code(), Some(1), "exit status; stderr:\n{err}");
    assert!(!err.contains("serving"), "nothing is served first:\n{err}");
    err
}

both_drivers!(a_taken_port_is_an_error_at_start, |d| {
    let a = Proxy::start(&direct_cfg("first"), d);
    // The same proxy port, other admin ports: the port is named with the fix.
    let cfg = direct_cfg("second")
        .replace("{PORT}", &a.port.to_string())
        .replace("{STATS}", &free_port().to_string())
        .replace("{READY}", &free_port().to_string());
    let err = refused(&cfg, d);
    let want = format!("binds[0].port: port {} is already in use", a.port);
    assert!(err.contains(&want), "{want:?} in:\n{err}");
    assert!(err.contains("--reuse-port"), "the fix is named:\n{err}");
    // The same config as the running one: every taken port is reported in one go.
    let err = refused(&a.render(&direct_cfg("second")), d);
    for what in [
        want,
        format!("config.statsAddr: cannot listen on 127.0.0.1:{}", a.stats),
        format!(
            "config.readinessAddr: cannot listen on 127.0.0.1:{}",
            a.ready
        ),
    ] {
        assert!(err.contains(&what), "{what:?} in:\n{err}");
    }
    // The first instance answered alone all along.
    for _ in 0..8 {
        assert_eq!(a.get("/").text(), "first");
    }
    // A port held by another program (no SO_REUSEPORT) is refused the same way.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port();
    let cfg = direct_cfg("third")
        .replace("{PORT}", &port.to_string())
        .replace("{STATS}", &free_port().to_string())
        .replace("{READY}", &free_port().to_string());
    let err = refused(&cfg, d);
    assert!(
        err.contains(&format!("port {port} is already in use")),
        "{err}"
    );
});

both_drivers!(reuse_port_shares_on_purpose, |d| {
    // The admin addresses are shared only between instances that both ask for it.
    let a = Proxy::start_with(&direct_cfg("old"), d, &[], &["--reuse-port"]);
    // Same ports, admin included: the new instance joins with --reuse-port.
    let mut b = Proxy::start_sharing(&a, &direct_cfg("new"), d, &["--reuse-port"]);
    // Readiness on the shared admin port may be answered by the old instance: wait for the new
    // one's own word that it listens.
    assert!(b.wait_log("serving", 20), "{}", b.log());
    // Both answer on the one port (SO_REUSEPORT spreads connections by their address).
    let mut seen = std::collections::HashSet::new();
    for _ in 0..64 {
        seen.insert(a.get("/").text());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "both instances serve: {seen:?}");
    // The old one stops; the new one serves every request after that.
    let mut a = a;
    assert!(a.terminate().success());
    for _ in 0..16 {
        match try_request(
            b.addr(),
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        ) {
            Ok(r) => assert_eq!(r.text(), "new"),
            Err(e) => panic!("DEBUG {e}\nA:\n{}\nB:\n{}", a.log(), b.log()),
        }
    }
    assert!(b.terminate().success());
});

#[test]
fn an_admin_port_that_is_also_a_proxy_port_is_an_error() {
    let port = free_port();
    let cfg = format!("config:\n  statsAddr: 127.0.0.1:{port}\n  readinessAddr: 127.0.0.1:{}\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - policies:\n        directResponse: {{body: x, status: 200}}\n", free_port());
    let err = refused(&cfg, Driver::Epoll);
    let want = format!("config.statsAddr: port {port} is also binds[0].port");
    assert!(err.contains(&want), "{want:?} in:\n{err}");
}

both_drivers!(a_reload_onto_a_taken_port_is_rejected, |d| {
    let p = Proxy::start(&direct_cfg("v1"), d);
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = other.local_addr().unwrap().port();
    let two = format!(
        "{}- port: {taken}\n  listeners:\n  - routes:\n    - policies:\n        directResponse: {{body: second, status: 200}}\n",
        direct_cfg("v2")
    );
    std::fs::write(&p.config_path, p.render(&two)).unwrap();
    assert!(
        p.wait_log(
            &format!("binds[1].port: port {taken} is already in use"),
            10
        ),
        "the reload names the taken port:\n{}",
        p.log()
    );
    assert!(p.log_contains("reload rejected"));
    assert_eq!(p.get("/").text(), "v1", "the old config keeps serving");
});
