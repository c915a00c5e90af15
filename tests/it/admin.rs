//! The admin endpoints on `config.adminAddr`: `/config_dump` (secrets redacted), `/logging`
//! (the log filter changed at run time), `/quitquitquit` (a graceful stop), and what they refuse.
use std::net::SocketAddr;

use crate::both_drivers;
use crate::harness::*;

fn config() -> String {
    format!(
        "{CONFIG_HEAD}  adminAddr: 127.0.0.1:{{PORT2}}\nbinds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: tools\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: t\n            stdio:\n              cmd: python3\n              args: ['{}']\n              env: {{GITHUB_TOKEN: ghp_supersecret}}\n    - name: direct\n      policies:\n        directResponse: {{body: hi, status: 200}}\n",
        crate::mcp::mini_server()
    )
}

fn admin(p: &Proxy, method: &str, target: &str, extra: &str) -> Response {
    request(
        SocketAddr::from(([127, 0, 0, 1], p.port2)),
        format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
}

both_drivers!(admin_endpoints, |d| {
    // `config.adminAddr` (the harness's `ADMIN_ADDR`, which would win, emptied).
    let mut p = Proxy::start_env(&config(), d, &[], &[], &[("ADMIN_ADDR", "")]);

    let index = admin(&p, "GET", "/", "");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("/quitquitquit"), "{}", index.text());

    let dump = admin(&p, "GET", "/config_dump", "");
    assert_eq!(dump.status, 200, "{}", dump.text());
    assert_eq!(dump.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&dump.text()).unwrap();
    assert_eq!(v["generation"], 1);
    let route = &v["config"]["binds"][0]["listeners"][0]["routes"][1];
    assert_eq!(route["name"], "direct", "{v}");
    let env = &v["config"]["binds"][0]["listeners"][0]["routes"][0]["backends"][0]["mcp"]
        ["targets"][0]["stdio"]["env"];
    assert_eq!(env["GITHUB_TOKEN"], "<redacted>", "{v}");
    assert!(!dump.text().contains("ghp_supersecret"));

    // The log filter, changed at run time: a debug event appears only while it is on.
    let now = admin(&p, "POST", "/logging", "");
    assert_eq!(now.status, 200);
    assert_eq!(now.text(), "current log filter is info\n");
    let bad_head = || {
        let _ = try_request(p.addr(), b"GET / HTTP/1.1\r\nBad Header\r\n\r\n");
    };
    bad_head();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!p.log_contains("rejected request head"), "{}", p.log());
    let set = admin(&p, "POST", "/logging?level=info,portcullis%3Ddebug", "");
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.text(), "current log filter is portcullis=debug,info\n");
    bad_head();
    assert!(p.wait_log("rejected request head", 5), "{}", p.log());
    let wrong = admin(&p, "POST", "/logging?level=info,=%3D%3D", "");
    assert_eq!(wrong.status, 400, "{}", wrong.text());
    let reset = admin(&p, "POST", "/logging?reset", "");
    assert_eq!(reset.text(), "current log filter is info\n");

    // What the admin endpoints refuse: the wrong method, a browser's cross-origin request.
    assert_eq!(admin(&p, "GET", "/quitquitquit", "").status, 405);
    assert_eq!(admin(&p, "GET", "/logging", "").status, 405);
    let csrf = admin(
        &p,
        "POST",
        "/quitquitquit",
        "Origin: http://evil.example\r\n",
    );
    assert_eq!(csrf.status, 403, "{}", csrf.text());
    assert_eq!(p.get("/").status, 200, "the proxy still serves");
    // The stats port does not serve them, the admin port does not serve metrics.
    assert_eq!(
        request(
            SocketAddr::from(([127, 0, 0, 1], p.stats)),
            b"GET /config_dump HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        .status,
        404
    );
    assert_eq!(admin(&p, "GET", "/metrics", "").status, 404);

    // A graceful stop, as SIGTERM.
    let quit = admin(&p, "POST", "/quitquitquit", "");
    assert_eq!(quit.status, 200);
    assert_eq!(quit.text(), "shutdown now\n");
    let status = p.wait_exit();
    assert!(status.success(), "{status:?}\n{}", p.log());
    assert!(
        p.log_contains("stop requested on the admin endpoint"),
        "{}",
        p.log()
    );
});

both_drivers!(an_admin_address_that_is_taken, |d| {
    // The default (agentgateway's localhost:15000) taken by another program: the proxy serves
    // without admin endpoints and says so.
    let default = std::net::TcpListener::bind("127.0.0.1:15000").ok();
    let p = Proxy::start_env(
        "config:\n  statsAddr: 127.0.0.1:{STATS}\n  readinessAddr: 127.0.0.1:{READY}\nbinds:\n- port: {PORT}\n  listeners:\n  - routes:\n    - policies:\n        directResponse: {body: hi, status: 200}\n",
        d,
        &[],
        &[],
        &[("ADMIN_ADDR", "")],
    );
    assert_eq!(p.get("/").status, 200);
    if default.is_some() {
        assert!(
            p.wait_log(
                "admin endpoints (/config_dump, /logging, /quitquitquit) not served",
                5
            ),
            "{}",
            p.log()
        );
    }
    drop(p);
    drop(default);

    // Configured and taken: an error at start naming the key, as for the stats address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = temp_dir();
    let path = dir.join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "config:\n  adminAddr: 127.0.0.1:{port}\n  statsAddr: 127.0.0.1:{}\n  readinessAddr: 127.0.0.1:{}\nbinds:\n- port: {}\n  listeners:\n  - routes:\n    - policies:\n        directResponse: {{body: hi, status: 200}}\n",
            free_port(),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("-f")
        .arg(&path)
        .env("PORTCULLIS_BIND_ADDR", "127.0.0.1");
    if d == Driver::Epoll {
        cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "config.adminAddr: cannot listen on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(dir);
});
