//! `mcp-load`: the streamable-HTTP MCP load generator of Portcullis, with the pieces a
//! benchmark needs and nothing else to install: a fast MCP backend, a JWKS server for its own
//! signing key, and token minting (RS256, ES256, EdDSA).
//!
//! Layout: `cli` (flags → `RunConfig`), `engine` (threads, runtimes, pacing), `client`
//! (HTTP/1.1 + SSE exchange), `scenario` (what to send, how to judge it), `plan` (tokens per
//! request), `tokens` (keys, signing, JWKS), `stats`/`report` (histograms, table, JSON),
//! `server`/`backend` (the built-in peers), `wire` (sans-IO chunked and SSE framing).
//! Not here: TLS, HTTP/2, or anything Portcullis itself does.

// clippy.toml's rules are for the proxy's workers: the generator's own measurement and
// set-up threads may sleep, lock and resolve names.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

mod backend;
mod cli;
mod client;
mod cpu;
mod engine;
mod plan;
mod report;
mod scenario;
mod server;
mod stats;
mod wire;

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Cmd};
// Token minting lives in the library, shared with the integration tests.
use portcullis::mint as tokens;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcp-load: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Run(a) => run(*a),
        Cmd::Backend(a) => {
            let addr = bind_addr(&a.bind, a.port)?;
            let resource = format!("http://{addr}/mcp");
            let nonce = plan::now_unix() as u64 ^ u64::from(std::process::id()) << 32;
            let b = backend::Backend {
                sse: a.sse,
                strict: a.strict,
                legacy: a.legacy,
                challenge: a.auth_challenge,
                resource,
                sessions: AtomicU64::new(1),
                nonce,
                tools: backend::tools_list(a.tools),
            };
            let mode = if a.sse { "sse" } else { "json" };
            server::serve(addr, a.threads, a.cpus, Arc::new(b), || {
                println!("mcp-load backend listening on http://{addr} ({mode})");
                let _ = std::io::stdout().flush();
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Jwks(a) => {
            if a.kid.is_some() && a.sign_key.len() > 1 {
                bail!("jwks: --kid applies to a single --sign-key");
            }
            let mut keys = Vec::new();
            for p in &a.sign_key {
                keys.push(tokens::SignKey::load(
                    &p.to_string_lossy(),
                    a.kid.as_deref(),
                )?);
            }
            let mut kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
            kids.sort_unstable();
            if kids.windows(2).any(|w| w[0] == w[1]) {
                bail!("jwks: two keys share a kid ({kids:?}); give each a distinct kid");
            }
            let what = keys
                .iter()
                .map(|k| format!("{} {}", k.alg().as_str(), k.kid))
                .collect::<Vec<_>>()
                .join(", ");
            let addr = bind_addr(&a.bind, a.port)?;
            let h = backend::JwksHandler {
                body: tokens::SignKey::jwks(&keys),
            };
            server::serve(addr, 1, None, Arc::new(h), || {
                println!("mcp-load jwks listening on http://{addr}/jwks.json ({what})");
                let _ = std::io::stdout().flush();
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Token(t) => {
            let Some(key) = cli::load_key(&t.tokens)? else {
                bail!("token: --sign-key is required");
            };
            let (now, claims) = (plan::now_unix(), cli::claims(&t.tokens));
            let nonce = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for i in 0..t.count {
                writeln!(
                    out,
                    "{}",
                    key.mint(&claims, now, &format!("{nonce:x}-{i}"))?
                )?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Keygen(k) => {
            let alg = cli::parse_alg(&k.alg)?;
            let (_, pem) = tokens::SignKey::generate(alg, None)?;
            std::fs::write(&k.out, pem).with_context(|| format!("writing {}", k.out.display()))?;
            eprintln!(
                "wrote a {} private key to {}",
                alg.as_str(),
                k.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn bind_addr(ip: &str, port: u16) -> Result<SocketAddr> {
    let ip: IpAddr = ip
        .parse()
        .with_context(|| format!("--bind {ip:?} is not an IP address"))?;
    Ok(SocketAddr::new(ip, port))
}

fn run(a: cli::RunArgs) -> Result<ExitCode> {
    let (json, quiet, url) = (a.json, a.quiet, a.url.clone());
    let cfg = Arc::new(a.into_config()?);
    let live = !quiet && std::io::stderr().is_terminal();
    if let (Some(key), true, false) = (&cfg.tokens.key, cfg.tokens.unique, quiet) {
        eprintln!(
            "mcp-load: minting {} unique {} tokens before the run",
            cfg.tokens.pool,
            key.alg().as_str()
        );
    }
    let warmup = cfg.warmup;
    let result = engine::run(cfg.clone(), |elapsed, tick| {
        if live {
            eprint!("\r{}\x1b[K", report::progress_line(elapsed, warmup, tick));
        }
    })?;
    if live {
        eprintln!();
    }
    let rep = report::Report::new(&cfg, &url, &result);
    if json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", rep.table());
    }
    Ok(if rep.requests.answered == 0 {
        eprintln!("mcp-load: no request was answered as expected");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
