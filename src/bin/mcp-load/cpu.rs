//! CPU time spent by processes during the measured window, read from Linux's per-thread
//! `/proc/<pid>/task/<tid>/schedstat` (nanoseconds on CPU, user and kernel together, including
//! the process's io_uring worker threads). Divided by the answered requests this gives CPU
//! microseconds per request: the per-core cost of a server, which stays meaningful when the
//! server shares its core with another process (a benchmark backend) and is far steadier than a
//! rate on a noisy machine.
//!
//! The kernel's share of that time comes from the threads' `stat` (user and system clock ticks):
//! on loopback most of a proxy's cost is the TCP stack, which no user-space change removes.
//!
//! Does not: sample during the run (two readings: window start and end), or attribute kernel
//! work done in interrupt context on behalf of another process (loopback TCP receive work is
//! charged to whichever task was running, usually the sender).

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A process to watch, named for the report (`name=pid`; the generator itself is `self`).
#[derive(Debug, Clone)]
pub struct Watch {
    pub name: String,
    pub pid: u32,
}

pub fn parse_watch(s: &str) -> Result<Watch> {
    let (name, pid) = match s.split_once('=') {
        Some((n, p)) => (n.to_owned(), p),
        None => (format!("pid{s}"), s),
    };
    let pid: u32 = pid
        .parse()
        .with_context(|| format!("--watch {s:?}: expected NAME=PID or PID"))?;
    if name.is_empty() {
        bail!("--watch {s:?}: the name before '=' is empty");
    }
    if total_ns(pid).is_none() {
        bail!("--watch {s:?}: no readable /proc/{pid}/task/*/schedstat (is the process running, on Linux?)");
    }
    Ok(Watch { name, pid })
}

/// Nanoseconds on CPU of all threads of `pid` (threads that already exited are not counted).
pub fn total_ns(pid: u32) -> Option<u64> {
    Some(per_thread_ns(pid)?.values().map(|t| t[0]).sum())
}

/// For each live thread of `pid`, by thread id: nanoseconds on CPU, then user and system clock
/// ticks.
fn per_thread_ns(pid: u32) -> Option<std::collections::HashMap<u64, [u64; 3]>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut by_tid = std::collections::HashMap::new();
    for t in dir.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let mut p = t.path();
        p.push("schedstat");
        if let Ok(s) = std::fs::read_to_string(&p) {
            let ns = s
                .split_ascii_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            p.set_file_name("stat");
            let ticks = std::fs::read_to_string(&p).ok().and_then(|st| {
                // Fields after the command name (which may hold spaces, in parentheses):
                // utime and stime are the 12th and 13th.
                let rest = &st[st.rfind(')')? + 1..];
                let mut f = rest.split_ascii_whitespace().skip(11);
                Some([f.next()?.parse().ok()?, f.next()?.parse().ok()?])
            });
            let [user, sys] = ticks.unwrap_or([0, 0]);
            by_tid.insert(tid, [ns, user, sys]);
        }
    }
    Some(by_tid)
}

/// CPU used by one watched process over the window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CpuUse {
    pub name: String,
    pub pid: u32,
    /// CPU seconds used in the measured window.
    pub cpu_s: f64,
    /// Average number of cores busy (cpu_s / window).
    pub cores: f64,
    /// CPU microseconds per answered request (absent when nothing was answered).
    pub us_per_request: Option<f64>,
    /// The kernel's share of that CPU time, 0–1 (from clock ticks; absent when too few ticks
    /// passed to tell).
    pub kernel_share: Option<f64>,
}

/// One process's use over the window: CPU nanoseconds, user and system ticks.
pub type Used = [u64; 3];

/// Reads the watched processes at the window start, sleeps until its end, reads again: the CPU
/// nanoseconds each used in between (None for a process that went away).
pub fn sample_window(
    watches: &[Watch],
    from: std::time::Instant,
    until: std::time::Instant,
) -> Vec<(Watch, Option<Used>)> {
    std::thread::sleep(from.saturating_duration_since(std::time::Instant::now()));
    let begin: Vec<_> = watches.iter().map(|w| per_thread_ns(w.pid)).collect();
    std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()));
    watches
        .iter()
        .zip(begin)
        .map(|(w, b)| {
            // Per thread: a thread that exited in between (an io_uring kernel worker, say) must
            // not make the total shrink; one that started in between counts from zero.
            let used = per_thread_ns(w.pid).zip(b).map(|(end, b)| {
                let mut sum = [0u64; 3];
                for (tid, e) in &end {
                    let b = b.get(tid).copied().unwrap_or([0; 3]);
                    for k in 0..3 {
                        sum[k] += e[k].saturating_sub(b[k]);
                    }
                }
                sum
            });
            (w.clone(), used)
        })
        .collect()
}

/// The report rows for [`sample_window`]'s readings.
pub fn usage(used: Vec<(Watch, Option<Used>)>, window: Duration, answered: u64) -> Vec<CpuUse> {
    used.into_iter()
        .filter_map(|(w, used)| {
            let [used, user, sys] = used?;
            let cpu_s = used as f64 / 1e9;
            Some(CpuUse {
                cores: round3(cpu_s / window.as_secs_f64().max(1e-9)),
                us_per_request: (answered > 0).then(|| round3(used as f64 / 1e3 / answered as f64)),
                kernel_share: (user + sys >= 20).then(|| round3(sys as f64 / (user + sys) as f64)),
                cpu_s: round3(cpu_s),
                name: w.name,
                pid: w.pid,
            })
        })
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_parsing() {
        let me = std::process::id();
        let w = parse_watch(&format!("proxy={me}")).unwrap();
        assert_eq!((w.name.as_str(), w.pid), ("proxy", me));
        assert_eq!(
            parse_watch(&me.to_string()).unwrap().name,
            format!("pid{me}")
        );
        assert!(parse_watch("proxy=abc").is_err());
        assert!(parse_watch(&format!("={me}")).is_err());
        // No such process (pid_max is at most 2^22).
        let e = parse_watch("x=4294967294").unwrap_err().to_string();
        assert!(e.contains("schedstat"), "{e}");
    }

    #[test]
    fn busy_thread_is_counted() {
        let me = std::process::id();
        let w = [Watch {
            name: "self".into(),
            pid: me,
        }];
        let t0 = std::time::Instant::now();
        let (from, until) = (t0, t0 + Duration::from_millis(80));
        let spin = std::thread::spawn(move || {
            let mut x = 0u64;
            // Longer than the window: a thread that exited before the last reading is not counted.
            while t0.elapsed() < Duration::from_millis(150) {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            x
        });
        let used = sample_window(&w, from, until);
        std::hint::black_box(spin.join().unwrap());
        let u = usage(used, Duration::from_millis(80), 1000);
        assert_eq!(u.len(), 1);
        // The spin was counted. (On a busy 2-CPU machine it gets as little as ~40% of the 80 ms
        // window, so only a clear floor is asserted; other test threads may add more.)
        assert!(u[0].cpu_s >= 0.01, "{u:?}");
        let per = u[0].us_per_request.unwrap();
        assert!((per - u[0].cpu_s * 1e6 / 1000.0).abs() < 1.0, "{u:?}");
        // A process that is gone yields no row.
        let gone = vec![(w[0].clone(), None)];
        assert!(usage(gone, Duration::from_secs(1), 1).is_empty());
    }

    #[test]
    fn kernel_share_from_ticks() {
        let w = Watch {
            name: "p".into(),
            pid: 1,
        };
        let u = usage(
            vec![(w.clone(), Some([4_000_000, 30, 10]))],
            Duration::from_secs(1),
            4,
        );
        assert_eq!(
            (u[0].us_per_request, u[0].kernel_share),
            (Some(1000.0), Some(0.25))
        );
        // Too few ticks to tell.
        let u = usage(
            vec![(w, Some([4_000_000, 3, 1]))],
            Duration::from_secs(1),
            4,
        );
        assert_eq!(u[0].kernel_share, None);
    }
}
