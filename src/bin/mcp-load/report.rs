//! Turns a run's merged measurements into the final table, the `--json` document and the live
//! progress line. Latencies are reported in microseconds (JSON) and milliseconds (table).
//! Does not: measure anything.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::{RunConfig, RunResult};
use crate::stats::Op;
use crate::stats::{ErrClass, Tick};

#[derive(Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let us = |ns: u64| (ns as f64 / 1000.0 * 10.0).round() / 10.0;
        Latency {
            count: h.len(),
            mean: (h.mean() / 100.0).round() / 10.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Requests {
    pub answered: u64,
    pub ok: u64,
    pub rejected: u64,
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct Tokens {
    pub mode: &'static str,
    pub minted: u64,
    pub pool_wraps: u64,
    pub invalid_share: f64,
    pub expired_share: f64,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    pub mode: &'static str,
    pub threads: usize,
    pub connections: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Requests per second asked for (open loop only).
    pub offered_rps: Option<f64>,
    /// Answers (expected ones, including deliberate rejections) per second.
    pub achieved_rps: f64,
    pub requests: Requests,
    pub errors: BTreeMap<&'static str, u64>,
    pub latency_us: Latency,
    pub ops: BTreeMap<&'static str, Latency>,
    pub sessions_completed: u64,
    pub tokens: Tokens,
    /// CPU used in the measured window: the generator (`mcp-load`) and each `--watch` process.
    pub cpu: Vec<crate::cpu::CpuUse>,
}

impl Report {
    pub fn new(cfg: &RunConfig, url: &str, r: &RunResult) -> Report {
        let s = &r.stats;
        let secs = cfg.duration.as_secs_f64();
        let ops = Op::ALL
            .iter()
            .zip(&s.ops)
            .filter_map(|(op, h)| h.as_ref().map(|h| (op.name(), Latency::of(h))))
            .collect();
        Report {
            scenario: cfg.scenario.name(),
            target: url.to_owned(),
            mode: if cfg.rate.is_some() { "open" } else { "closed" },
            threads: cfg.threads,
            connections: cfg.connections,
            duration_s: secs,
            warmup_s: cfg.warmup.as_secs_f64(),
            offered_rps: cfg.rate,
            achieved_rps: (s.answered() as f64 / secs * 10.0).round() / 10.0,
            requests: Requests {
                answered: s.answered(),
                ok: s.ok,
                rejected: s.rejected,
                errors: s.error_total(),
            },
            errors: ErrClass::ALL
                .iter()
                .zip(s.errors)
                .map(|(c, n)| (c.name(), n))
                .collect(),
            latency_us: Latency::of(&s.all),
            ops,
            sessions_completed: s.sessions,
            cpu: crate::cpu::usage(r.cpu.clone(), cfg.duration, s.answered()),
            tokens: Tokens {
                mode: cfg.tokens.mode(),
                minted: r.minted,
                pool_wraps: r.wraps,
                invalid_share: cfg.tokens.invalid_share,
                expired_share: cfg.tokens.expired_share,
            },
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "mcp-load: {} -> {} ({} loop, {} thread(s), {} connection(s), {:.1} s after {:.1} s warm-up)",
            self.scenario,
            self.target,
            self.mode,
            self.threads,
            self.connections,
            self.duration_s,
            self.warmup_s
        );
        let offered = self
            .offered_rps
            .map_or_else(|| "- (closed loop)".to_owned(), |r| format!("{r:.1} req/s"));
        let _ = writeln!(o, "  offered   {offered}");
        let _ = writeln!(o, "  achieved  {:.1} req/s", self.achieved_rps);
        let r = &self.requests;
        let _ = writeln!(
            o,
            "  answers   {} ({} ok, {} rejected as intended), errors {}",
            r.answered, r.ok, r.rejected, r.errors
        );
        if self.sessions_completed > 0 {
            let _ = writeln!(
                o,
                "  sessions  {} completed ({:.1}/s)",
                self.sessions_completed,
                self.sessions_completed as f64 / self.duration_s
            );
        }
        if self.tokens.minted > 0 {
            let _ = writeln!(
                o,
                "  tokens    {} ({} minted before the run, pool wrapped {} times)",
                self.tokens.mode, self.tokens.minted, self.tokens.pool_wraps
            );
        }
        let _ = writeln!(
            o,
            "  {:<28}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency (ms)", "p50", "p90", "p99", "p99.9", "max", "count"
        );
        let mut row = |name: &str, l: &Latency| {
            let ms = |us: f64| format!("{:.3}", us / 1000.0);
            let _ = writeln!(
                o,
                "  {:<28}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                name,
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.p999),
                ms(l.max),
                l.count
            );
        };
        row("all", &self.latency_us);
        if self.ops.len() > 1 {
            for op in Op::ALL {
                if let Some(l) = self.ops.get(op.name()) {
                    row(op.name(), l);
                }
            }
        }
        for c in &self.cpu {
            let mut per = c
                .us_per_request
                .map_or_else(|| "-".to_owned(), |u| format!("{u:.2} µs/request"));
            if let Some(k) = c.kernel_share {
                per.push_str(&format!(" ({:.0}% kernel)", k * 100.0));
            }
            let _ = writeln!(
                o,
                "  cpu       {:<12} {:>8.3} s ({:.2} cores)  {per}",
                c.name, c.cpu_s, c.cores
            );
        }
        let errs: Vec<String> = self
            .errors
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(c, n)| format!("{c}={n}"))
            .collect();
        let _ = writeln!(
            o,
            "  errors    {}",
            if errs.is_empty() {
                "none".to_owned()
            } else {
                errs.join(" ")
            }
        );
        o
    }
}

/// The live line (one per second, on a TTY).
pub fn progress_line(elapsed: Duration, warmup: Duration, t: &Tick) -> String {
    let phase = if elapsed <= warmup + Duration::from_millis(500) {
        " warm-up"
    } else {
        ""
    };
    let ms = |q: f64| t.hist.value_at_quantile(q) as f64 / 1e6;
    format!(
        "[{:>5.1}s{phase}] {:>9} req/s  errors {:>6}  p50 {:.3} ms  p99 {:.3} ms",
        elapsed.as_secs_f64(),
        t.answered,
        t.errors,
        ms(0.5),
        ms(0.99)
    )
}
