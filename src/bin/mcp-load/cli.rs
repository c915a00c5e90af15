//! The command line (clap) and its validation into a [`RunConfig`]: every bad combination is
//! refused here with a message that names the flag.
//! Does not: run anything.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::engine::RunConfig;
use crate::plan::TokenConfig;
use crate::scenario::{Scenario, Target};
use crate::tokens::{Alg, Claims, SignKey};

#[derive(Parser, Debug)]
#[command(
    name = "mcp-load",
    version,
    about = "Streamable-HTTP MCP load generator, MCP backend and JWKS server for benchmarking MCP authentication"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Generate load against a URL and report rate, latency and errors.
    Run(Box<RunArgs>),
    /// Serve a fast streamable-HTTP MCP backend (initialize, tools/list, tools/call echo).
    Backend(BackendArgs),
    /// Serve the public JWKS of a signing key.
    Jwks(JwksArgs),
    /// Print access tokens signed with a key (one per line).
    Token(TokenCmd),
    /// Generate an ES256, ES384 or EdDSA private key (PKCS#8 PEM).
    Keygen(KeygenArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Target URL of the MCP endpoint (http only), e.g. http://127.0.0.1:3000/mcp
    #[arg(short, long)]
    pub url: String,
    #[arg(short, long, value_enum, default_value = "call")]
    pub scenario: Scenario,
    /// Concurrent connections (virtual users) in total, split between threads.
    #[arg(short, long, default_value_t = 32)]
    pub connections: usize,
    /// Generator threads, one monoio runtime each.
    #[arg(short, long, default_value_t = 1)]
    pub threads: usize,
    /// Pin generator thread i to the i-th CPU of this list (e.g. 1 or 2,3).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
    /// Measured time (e.g. 10s, 500ms, 1m).
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time before the measurement starts; requests are sent but not recorded.
    #[arg(short, long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: total requests per second, scheduled by intended send time (latency corrected
    /// for coordinated omission; each request timed by a timerfd on io_uring, by the 1 ms timer
    /// wheel on epoll). Without it the loop is closed (fixed concurrency).
    #[arg(short, long)]
    pub rate: Option<f64>,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// tools/call requests per session in the `session` scenario.
    #[arg(short = 'k', long, default_value_t = 3)]
    pub calls: u32,
    #[arg(long, default_value = "echo")]
    pub tool: String,
    /// Tool arguments (a JSON object).
    #[arg(long, default_value = r#"{"message":"hello"}"#)]
    pub tool_args: String,
    #[arg(long, default_value = "2025-06-18")]
    pub protocol_version: String,
    /// Path of the protected-resource metadata (default: /.well-known/oauth-protected-resource
    /// followed by the URL's path).
    #[arg(long)]
    pub metadata_path: Option<String>,
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Fresh token per request (pre-minted pool; measures cache-miss verification).
    #[arg(long, requires = "sign_key")]
    pub unique_tokens: bool,
    /// Size of the unique-token pool (Portcullis caches 10000 tokens per worker; a larger pool
    /// used in order never hits).
    #[arg(long, default_value_t = 20_000)]
    pub token_pool: usize,
    /// Read tokens from a file, one per line, used round-robin.
    #[arg(long, conflicts_with_all = ["sign_key", "token"])]
    pub token_file: Option<PathBuf>,
    /// A bearer token (repeat for round-robin).
    #[arg(long, conflicts_with = "sign_key")]
    pub token: Vec<String>,
    /// Share of requests (0..1) sent with a corrupted signature; they must get 401.
    #[arg(long, default_value_t = 0.0)]
    pub invalid_share: f64,
    /// Share of requests (0..1) sent with an expired token (needs --sign-key); they must get 401.
    #[arg(long, default_value_t = 0.0)]
    pub expired_share: f64,
    /// Also report the CPU time another process used during the measured window, per answered
    /// request (NAME=PID or PID; repeatable), e.g. --watch proxy=$(pidof portcullis). The
    /// generator's own CPU is always reported.
    #[arg(long, value_parser = crate::cpu::parse_watch)]
    pub watch: Vec<crate::cpu::Watch>,
    /// `call` and `list`: open the sessions at this address (ip:port of another replica of
    /// the proxy at --url, with the same Host and path); the measured requests then go to --url,
    /// which forwards each to the session's owner. What a cross-replica hop costs.
    #[arg(long, value_name = "IP:PORT")]
    pub open_at: Option<SocketAddr>,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No live progress line (it is shown only on a terminal anyway).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct TokenCmd {
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// How many distinct tokens to print (each has its own jti), e.g. a --token-file pool.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
}

/// Minting options, shared by `run` and `token`.
#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    /// Private key to sign tokens with: PKCS#8 PEM (RSA, EC P-256, Ed25519), PKCS#1 RSA PEM,
    /// or a private JWK. The algorithm (RS256, ES256, ES384, EdDSA) follows from the key.
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    #[arg(long, default_value = "http://127.0.0.1/mcp-load")]
    pub iss: String,
    #[arg(long, default_value = "mcp-load")]
    pub aud: String,
    #[arg(long, default_value = "mcp-load-user")]
    pub sub: String,
    #[arg(long, default_value = "openid profile")]
    pub scope: String,
    /// Key id put in the token header and the JWKS (default: the JWK's kid, else
    /// mcp-load-<alg>, e.g. mcp-load-rs256, as `mcp-load jwks` names it).
    #[arg(long)]
    pub kid: Option<String>,
    /// Token lifetime in seconds (negative: already expired).
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    pub ttl: i64,
}

#[derive(Args, Debug)]
pub struct BackendArgs {
    #[arg(short, long)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Answer with text/event-stream instead of application/json.
    #[arg(long)]
    pub sse: bool,
    /// Enforce the client side of the transport (Accept, Mcp-Session-Id, MCP-Protocol-Version).
    #[arg(long)]
    pub strict: bool,
    /// Speak the 2025 revisions only: a 2026-07-28 request gets 400 with -32022.
    #[arg(long)]
    pub legacy: bool,
    /// Answer POSTs without Authorization with 401 and this resource_metadata URL.
    #[arg(long)]
    pub auth_challenge: Option<String>,
    /// Tools in the tools/list answer: `echo`, then `tool_1` … `tool_<N-1>` (each ~230 B).
    #[arg(long, default_value_t = 1)]
    pub tools: usize,
    #[arg(short, long, default_value_t = 1)]
    pub threads: usize,
    #[arg(long, value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
}

#[derive(Args, Debug)]
pub struct JwksArgs {
    /// Private key(s) whose public halves are served (repeat for several; kids must differ).
    #[arg(long, required = true)]
    pub sign_key: Vec<PathBuf>,
    #[arg(short, long)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Key id (only with a single --sign-key).
    #[arg(long)]
    pub kid: Option<String>,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// ES256, ES384 or EdDSA (ring cannot generate RSA keys).
    #[arg(long)]
    pub alg: String,
    #[arg(long)]
    pub out: PathBuf,
}

/// Parses `10s`, `250ms`, `2m`, `1.5s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() => Ok(Duration::from_secs_f64(n * mult)),
        _ => Err(format!("{s:?} is not a duration (e.g. 10s, 500ms, 2m)")),
    }
}

pub fn load_key(t: &TokenArgs) -> Result<Option<Arc<SignKey>>> {
    let Some(path) = &t.sign_key else {
        return Ok(None);
    };
    let path = path.to_string_lossy();
    Ok(Some(Arc::new(SignKey::load(&path, t.kid.as_deref())?)))
}

pub fn claims(t: &TokenArgs) -> Claims {
    Claims {
        iss: t.iss.clone(),
        aud: t.aud.clone(),
        sub: t.sub.clone(),
        scope: t.scope.clone(),
        ttl: t.ttl,
    }
}

/// `http://host[:port][/path]` → (socket address, Host header, path).
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--url {url:?}: only http:// URLs are supported");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("--url {url:?} has no host");
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("--url {url:?}: cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("--url {url:?}: {authority} has no address"))?;
    Ok((addr, authority.to_owned(), path.to_owned()))
}

impl RunArgs {
    pub fn into_config(self) -> Result<RunConfig> {
        if self.threads == 0 {
            bail!("--threads must be at least 1");
        }
        if self.connections < self.threads {
            bail!(
                "--connections ({}) must be at least --threads ({})",
                self.connections,
                self.threads
            );
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                bail!("--rate must be a positive number of requests per second");
            }
        }
        if self.duration.is_zero() {
            bail!("--duration must be positive");
        }
        if self.timeout.is_zero() {
            bail!("--timeout must be positive");
        }
        for (name, v) in [
            ("--invalid-share", self.invalid_share),
            ("--expired-share", self.expired_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("{name} must be between 0 and 1 (got {v})");
            }
        }
        if self.invalid_share + self.expired_share > 1.0 {
            bail!("--invalid-share plus --expired-share exceeds 1");
        }
        if let Some(cpus) = &self.cpus {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            if let Some(c) = cpus.iter().find(|&&c| c >= n) {
                bail!("--cpus: CPU {c} does not exist (this machine has {n})");
            }
        }
        let args: serde_json::Value = serde_json::from_str(&self.tool_args)
            .with_context(|| format!("--tool-args {:?} is not JSON", self.tool_args))?;
        if !args.is_object() {
            bail!("--tool-args must be a JSON object");
        }
        let (addr, host, path) = parse_url(&self.url)?;
        if self.open_at.is_some() && !matches!(self.scenario, Scenario::Call | Scenario::List) {
            bail!("--open-at applies to the call and list scenarios only");
        }
        let metadata_path = self.metadata_path.clone().unwrap_or_else(|| {
            let p = if path == "/" { "" } else { path.as_str() };
            format!("/.well-known/oauth-protected-resource{p}")
        });
        let key = load_key(&self.tokens)?;
        let mut fixed = self.token.clone();
        if let Some(f) = &self.token_file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--token-file {}", f.display()))?;
            fixed.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
            if fixed.is_empty() {
                bail!("--token-file {} holds no token", f.display());
            }
        }
        let has_tokens = key.is_some() || !fixed.is_empty();
        if !self.scenario.uses_tokens()
            && (self.invalid_share > 0.0 || self.expired_share > 0.0 || self.unique_tokens)
        {
            bail!(
                "--invalid-share, --expired-share and --unique-tokens apply to the session, call and get scenarios, not {}",
                self.scenario.name()
            );
        }
        if self.invalid_share > 0.0 && !has_tokens {
            bail!("--invalid-share needs a token to corrupt: give --token, --token-file or --sign-key");
        }
        if self.expired_share > 0.0 && key.is_none() {
            bail!("--expired-share needs --sign-key (expired tokens are minted)");
        }
        if self.unique_tokens && self.token_pool == 0 {
            bail!("--token-pool must be at least 1");
        }
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(RunConfig {
            scenario: self.scenario,
            target: Target {
                addr,
                host,
                path,
                metadata_path,
                protocol_version: self.protocol_version.clone(),
                tool_json: serde_json::Value::String(self.tool.clone()).to_string(),
                tool_header: header_value(&self.tool),
                args_json: args.to_string(),
                calls: self.calls,
            },
            threads: self.threads,
            cpus: self.cpus.clone(),
            connections: self.connections,
            duration: self.duration,
            warmup: self.warmup,
            rate: self.rate,
            timeout: self.timeout,
            open_at: self.open_at,
            watch: {
                let mut w = vec![crate::cpu::Watch {
                    name: "mcp-load".into(),
                    pid: std::process::id(),
                }];
                w.extend(self.watch.iter().cloned());
                w
            },
            tokens: TokenConfig {
                fixed,
                claims: claims(&self.tokens),
                key,
                unique: self.unique_tokens,
                pool: self.token_pool,
                invalid_share: self.invalid_share,
                expired_share: self.expired_share,
                nonce,
            },
        })
    }
}

/// A value as a 2026-07-28 mirrored header carries it: as is when plain visible ASCII, else
/// `=?base64?…?=` (also when it looks like that form itself).
fn header_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && !(v.starts_with("=?base64?") && v.ends_with("?="));
    if plain {
        v.to_owned()
    } else {
        format!("=?base64?{}?=", portcullis::mint::b64std(v.as_bytes()))
    }
}

pub fn parse_alg(s: &str) -> Result<Alg> {
    Alg::parse(s)
}
