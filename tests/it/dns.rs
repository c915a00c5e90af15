//! Host names of backends follow DNS while the proxy runs: a name's answer changes (through
//! `PORTCULLIS_HOSTS_FILE`, an `/etc/hosts`-format file the resolver thread consults first) and
//! requests go to the new address without a restart; every address of a name is tried in order
//! (failover past one that refuses); a name that does not resolve is a 502.
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;

fn route(port: u16) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: app\n      matches: [{{path: {{pathPrefix: /app}}}}]\n      backends: [{{host: 'app.test:{port}'}}]\n    - name: gone\n      matches: [{{path: {{pathPrefix: /gone}}}}]\n      backends: [{{host: 'no-such-name.invalid:{port}'}}]\n"
    )
}

/// Requests `/app` until the body is `want` (at most 10 s, 20 ms apart); every answer must be
/// a 200 from one of the two servers. How many requests that took.
fn until(p: &Proxy, want: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 1.. {
        let r = p.get("/app");
        assert_eq!(r.status, 200, "{}\n{}", r.text(), p.log());
        if r.text() == want {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "never reached {want}:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unreachable!()
}

both_drivers!(a_changed_name_is_followed_without_a_restart, |d| {
    let a = Upstream::named("127.0.0.1:0", "A");
    // The same port on another loopback address: what a name moving between hosts looks like.
    let b = Upstream::named(&format!("127.0.0.2:{}", a.port), "B");
    let dir = temp_dir();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 app.test\n").unwrap();
    let hosts_env = hosts.display().to_string();
    let p = Proxy::start_env(
        &route(a.port),
        d,
        &[],
        &[],
        &[
            ("PORTCULLIS_HOSTS_FILE", &hosts_env),
            ("PORTCULLIS_DNS_REFRESH", "200ms"),
        ],
    );
    assert_eq!(until(&p, "A"), 1);
    let pid = p.pid();
    // The name moves: requests follow within two refresh intervals, none fails.
    std::fs::write(&hosts, "127.0.0.2 app.test\n").unwrap();
    until(&p, "B");
    // Each worker keeps its own answers: past two intervals every one has looked again.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(p.get("/app").text(), "B");
    }
    // Failover: the first address refuses, the next one answers.
    std::fs::write(&hosts, "127.0.0.3 app.test\n127.0.0.1 app.test\n").unwrap();
    until(&p, "A");
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(p.get("/app").text(), "A");
    }
    assert_eq!(p.pid(), pid);
    // A name that does not resolve: 502, and the proxy serves on.
    let r = p.get("/gone");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(p.get("/app").status, 200);
    drop((a, b));
    let _ = std::fs::remove_dir_all(dir);
});
