//! Parsers for scalar config values whose syntax agentgateway defines: Go durations and
//! `workerThreads`. Pure functions on strings, shared by validation and lowering.
//!
//! Does not know about paths or the model tree.

use std::time::Duration;

use crate::schema::WorkerThreads;

/// Parses a Go `time.ParseDuration` string: `"10s"`, `"1m30s"`, `"1.5h"`, `"100ms"`, `"500us"`,
/// `"500µs"`, `"0"`. Units: `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`. Negative durations are
/// rejected (a std `Duration` cannot hold them and no agentgateway setting needs them).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = |why: &str| {
        format!("invalid duration {s:?}: {why} (expected e.g. \"10s\", \"1m30s\", \"100ms\")")
    };
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err("empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err(&format!("unknown unit {unit:?}"))),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err("number too large"))?
        };
        let mut value = int.checked_mul(nanos_per).ok_or_else(|| err("overflow"))?;
        // Fraction: at most 30 significant digits matter for nanosecond precision.
        let mut scale = nanos_per;
        for d in frac_part.chars().take(30) {
            scale /= 10;
            let digit = u128::from(d.to_digit(10).unwrap_or(0)) * scale;
            value = value.checked_add(digit).ok_or_else(|| err("overflow"))?;
        }
        total = total.checked_add(value).ok_or_else(|| err("overflow"))?;
        rest = after;
    }
    if negative && total != 0 {
        return Err(err("negative durations are not allowed"));
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err("overflow"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Interprets `workerThreads`: an integer > 0, the same as a string, or `"NN%"` with 1 ≤ NN ≤ 100.
pub(crate) fn parse_worker_threads(
    w: &WorkerThreads,
) -> Result<crate::snapshot::WorkerThreads, String> {
    use crate::snapshot::WorkerThreads as Count;
    let bad = || "workerThreads must be an integer > 0 or a percentage like \"50%\"".to_owned();
    match w {
        WorkerThreads::Number(n) if *n > 0 => {
            usize::try_from(*n).map(Count::Count).map_err(|_| bad())
        }
        WorkerThreads::Number(_) => Err(bad()),
        WorkerThreads::Text(t) => {
            let t = t.trim();
            if let Some(p) = t.strip_suffix('%') {
                match p.trim().parse::<u8>() {
                    Ok(p @ 1..=100) => Ok(Count::Percent(u32::from(p))),
                    _ => Err(bad()),
                }
            } else {
                match t.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(Count::Count(n)),
                    _ => Err(bad()),
                }
            }
        }
    }
}

/// A sampling setting (`config.tracing.randomSampling`/`clientSampling`): a probability from 0
/// to 1, `true` (1) or `false` (0), or a string holding one of those. agentgateway also takes
/// CEL expressions there; Portcullis takes constants only and says so.
pub(crate) fn sampling(v: &serde_json::Value) -> Result<f64, String> {
    use serde_json::Value;
    let p = match v {
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.trim() {
            "true" => Some(1.0),
            "false" => Some(0.0),
            t => t.parse::<f64>().ok(),
        },
        _ => None,
    };
    match p {
        Some(p) if (0.0..=1.0).contains(&p) => Ok(p),
        Some(p) => Err(format!("{p} is not a probability (0 to 1)")),
        None => Err(format!(
            "{v} is not a probability: Portcullis takes a number from 0 to 1 or true/false here (CEL sampling expressions are not supported)"
        )),
    }
}
