//! The load engine: one monoio runtime per generator thread (optionally pinned), each running
//! its share of the virtual users (one keep-alive connection each).
//!
//! Closed loop: every virtual user sends its next request as soon as the previous answer is in.
//! Open loop (`rate`): each thread owns a schedule of intended send times (`start + k/rate`);
//! a free virtual user takes the next slot and sleeps until it. Latency is measured from the
//! intended time whenever the user was still busy at that time (coordinated-omission
//! correction, as wrk2: a stalled server is charged for the queueing it caused) and from the
//! actual send when the user was idle and only its timer woke it late. On io_uring the wait
//! is a timerfd read (see [`Pacer`]), so that the requests of one millisecond leave spread over
//! it rather than in one burst; on epoll it is monoio's 1 ms timer wheel.
//! Does not: print (see `report`), or sign tokens while measuring (see `plan`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::client::{Conn, IoFail, Reply};
use crate::plan::{TokenConfig, TokenPlan};
use crate::scenario::{judge, Expect, Scenario, Target, Vu};
use crate::stats::Op;
use crate::stats::{new_hist, ErrClass, Outcome, Stats, Tick};

pub struct RunConfig {
    pub scenario: Scenario,
    pub target: Target,
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub tokens: TokenConfig,
    /// Where sessions are opened, when not at `target.addr` (`--open-at`).
    pub open_at: Option<std::net::SocketAddr>,
    /// Processes whose CPU time over the measured window is reported (the generator first).
    pub watch: Vec<crate::cpu::Watch>,
}

/// What a run produced.
pub struct RunResult {
    pub stats: Stats,
    /// CPU nanoseconds each watched process used in the measured window.
    pub cpu: Vec<(crate::cpu::Watch, Option<crate::cpu::Used>)>,
    pub minted: u64,
    pub wraps: u64,
}

struct ThreadOut {
    stats: Stats,
    minted: u64,
    wraps: u64,
}

/// Runs the load; `on_tick` is called about once a second with the merged progress of all
/// threads and the time since the start.
pub fn run(cfg: Arc<RunConfig>, mut on_tick: impl FnMut(Duration, &Tick)) -> Result<RunResult> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let (tick_tx, tick_rx) = mpsc::channel::<Tick>();
    // Generator threads (and their rings' kernel workers) stay alive until the CPU sampler has
    // taken its last reading: a thread gone by then takes its CPU time with it.
    let sampled = Arc::new(Signal::default());
    let mut starts = Vec::new();
    let mut joins = Vec::new();
    for tid in 0..cfg.threads {
        let (start_tx, start_rx) = mpsc::channel::<Instant>();
        starts.push(start_tx);
        let (cfg, ready_tx, tick_tx) = (cfg.clone(), ready_tx.clone(), tick_tx.clone());
        let sampled = sampled.clone();
        let j = std::thread::Builder::new()
            .name(format!("mcp-load-{tid}"))
            .spawn(move || {
                let ready = ready_tx.clone();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    thread_main(cfg, tid, ready_tx, start_rx, tick_tx, &sampled)
                }));
                // Unblocks the main thread if the panic came before the thread was ready.
                r.unwrap_or_else(|_| {
                    let _ = ready.send(Err(format!("generator thread {tid} panicked")));
                    Err(anyhow!("generator thread {tid} panicked"))
                })
            })?;
        joins.push(j);
    }
    drop((ready_tx, tick_tx));
    for _ in 0..cfg.threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(anyhow!(e)),
            Err(_) => return Err(anyhow!("a generator thread died during set-up")),
        }
    }
    let start = Instant::now() + Duration::from_millis(5);
    for s in &starts {
        let _ = s.send(start);
    }
    let sampler = {
        let (w, from, until) = (
            cfg.watch.clone(),
            start + cfg.warmup,
            start + cfg.warmup + cfg.duration,
        );
        std::thread::Builder::new()
            .name("mcp-load-cpu".into())
            .spawn(move || {
                let used = crate::cpu::sample_window(&w, from, until);
                sampled.set();
                used
            })?
    };
    let mut acc = Tick {
        answered: 0,
        errors: 0,
        hist: new_hist(),
    };
    let mut got = 0;
    for t in tick_rx.iter() {
        acc.answered += t.answered;
        acc.errors += t.errors;
        let _ = acc.hist.add(&t.hist);
        got += 1;
        if got == cfg.threads {
            on_tick(start.elapsed(), &acc);
            acc.answered = 0;
            acc.errors = 0;
            acc.hist.reset();
            got = 0;
        }
    }
    let mut out = RunResult {
        stats: Stats::default(),
        cpu: Vec::new(),
        minted: 0,
        wraps: 0,
    };
    for j in joins {
        let t = j
            .join()
            .map_err(|_| anyhow!("a generator thread panicked"))??;
        out.stats.merge(&t.stats);
        out.minted += t.minted;
        out.wraps += t.wraps;
    }
    out.cpu = sampler
        .join()
        .map_err(|_| anyhow!("the CPU sampler panicked"))?;
    Ok(out)
}

fn thread_main(
    cfg: Arc<RunConfig>,
    tid: usize,
    ready: Sender<Result<(), String>>,
    start: Receiver<Instant>,
    ticks: Sender<Tick>,
    sampled: &Signal,
) -> Result<ThreadOut> {
    if let Some(cpus) = &cfg.cpus {
        let cpu = cpus[tid % cpus.len()];
        if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
            let _ = ready.send(Err(format!("cannot pin thread {tid} to CPU {cpu}: {e}")));
            return Err(anyhow!("pinning failed"));
        }
    }
    let mut rt = match portcullis::build_runtime(monoio::utils::detect_uring(), 1024) {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot build the runtime: {e}")));
            return Err(e.into());
        }
    };
    let window_end = cfg.warmup + cfg.duration;
    let out = rt.block_on(thread_async(cfg, tid, ready, start, ticks));
    // Keep this thread and its runtime until the sampler's last reading (bounded).
    sampled.wait(window_end + Duration::from_secs(5));
    drop(rt);
    out
}

/// A one-shot flag threads can wait on.
#[derive(Default)]
struct Signal {
    done: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Signal {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    fn wait(&self, at_most: Duration) {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.cv.wait_timeout_while(done, at_most, |d| !*d);
    }
}

/// Per-thread state shared by its virtual users (single-threaded: `Rc`, `Cell`, `RefCell`;
/// no borrow is held across an `.await`).
struct Ctx {
    cfg: Arc<RunConfig>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    interval_ns: Option<f64>,
    next_slot: Cell<u64>,
    plan: RefCell<TokenPlan>,
    stats: RefCell<Stats>,
    tick: RefCell<Tick>,
}

async fn thread_async(
    cfg: Arc<RunConfig>,
    tid: usize,
    ready: Sender<Result<(), String>>,
    start_rx: Receiver<Instant>,
    ticks: Sender<Tick>,
) -> Result<ThreadOut> {
    let plan = match TokenPlan::build(&cfg.tokens, tid, cfg.threads) {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    let n = cfg.connections / cfg.threads + usize::from(tid < cfg.connections % cfg.threads);
    // Set-up (not measured): connect every virtual user and, for `call`, open its session.
    let valid = plan.valid().map(str::to_owned);
    let mut setups = Vec::with_capacity(n);
    for i in 0..n {
        let (cfg, valid) = (cfg.clone(), valid.clone());
        setups.push(monoio::spawn(async move {
            setup_vu(&cfg, valid.as_deref(), (tid * 1_000_000 + i) as u64).await
        }));
    }
    let mut vus = Vec::with_capacity(n);
    for s in setups {
        vus.push(s.await);
    }
    let _ = ready.send(Ok(()));
    let Ok(start) = start_rx.recv() else {
        return Err(anyhow!("the main thread went away"));
    };
    let interval_ns = cfg.rate.map(|r| 1e9 * cfg.threads as f64 / r);
    let ctx = Rc::new(Ctx {
        start,
        measure_from: start + cfg.warmup,
        end: start + cfg.warmup + cfg.duration,
        interval_ns,
        next_slot: Cell::new(0),
        plan: RefCell::new(plan),
        stats: RefCell::new(Stats::default()),
        tick: RefCell::new(Tick {
            answered: 0,
            errors: 0,
            hist: new_hist(),
        }),
        cfg,
    });
    let ticker = monoio::spawn(ticker(ctx.clone(), ticks));
    let mut tasks = Vec::with_capacity(n);
    for vu in vus {
        tasks.push(monoio::spawn(vu_loop(ctx.clone(), vu)));
    }
    for t in tasks {
        t.await;
    }
    ticker.await;
    let stats = ctx.stats.borrow().clone();
    let plan = ctx.plan.borrow();
    Ok(ThreadOut {
        stats,
        minted: plan.minted,
        wraps: if ctx.cfg.tokens.unique { plan.wraps } else { 0 },
    })
}

struct VuState {
    conn: Option<Conn>,
    reply: Reply,
    vu: Vu,
    pacer: Option<Pacer>,
}

/// A sub-millisecond wait for the open-loop schedule. monoio's timer wheel ticks in whole
/// milliseconds, so every user whose slot falls in one tick would send at once: a burst of
/// rate/1000 requests that queues at the server and inflates its latency in proportion to its
/// service time (a proxy more than the backend behind it). A timerfd armed for the slot and
/// read through io_uring wakes within tens of microseconds of it. On the epoll driver the read
/// would block the thread, so there the wheel is used. Two descriptors per open-loop user (the
/// timer, and the copy the ring reads: monoio's `File` lends no `AsFd`); a user that cannot get
/// them falls back to the wheel.
struct Pacer {
    timer: std::os::fd::OwnedFd,
    file: monoio::fs::File,
    buf: Option<Vec<u8>>,
}

impl Pacer {
    fn new() -> Option<Pacer> {
        use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
        if !monoio::utils::detect_uring() {
            return None;
        }
        let timer = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC).ok()?;
        let file = monoio::fs::File::from_std(std::fs::File::from(timer.try_clone().ok()?)).ok()?;
        Some(Pacer {
            timer,
            file,
            buf: Some(vec![0; 8]),
        })
    }

    /// Returns at `at` or later; whether the timerfd did the waiting (else the 1 ms wheel did).
    async fn sleep_until(&mut self, at: Instant) -> bool {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        let d = at.saturating_duration_since(Instant::now());
        if d.is_zero() {
            return true;
        }
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let when = Itimerspec {
            it_interval: zero,
            it_value: Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos().into(),
            },
        };
        let armed = timerfd_settime(&self.timer, TimerfdTimerFlags::empty(), &when).is_ok();
        match self.buf.take() {
            Some(buf) if armed => {
                let (res, buf) = self.file.read_at(buf, 0).await;
                self.buf = Some(buf);
                if res.is_ok() {
                    return true;
                }
            }
            other => self.buf = other,
        }
        monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
        false
    }
}

async fn setup_vu(cfg: &RunConfig, token: Option<&str>, seed: u64) -> VuState {
    let mut st = VuState {
        conn: None,
        reply: Reply::default(),
        vu: Vu::new(1 + (seed % 1000) * 1_000_000_000),
        pacer: cfg.rate.and_then(|_| Pacer::new()),
    };
    let at = cfg.open_at.unwrap_or(cfg.target.addr);
    let Ok(Ok(conn)) = monoio::time::timeout(cfg.timeout, Conn::connect(at)).await else {
        return st; // the measured loop retries and counts the failure
    };
    st.conn = Some(conn);
    if matches!(cfg.scenario, Scenario::Call | Scenario::List) {
        for _ in 0..2 {
            let op = st.vu.next_op(cfg.scenario, &cfg.target);
            let out = exchange(cfg, &mut st, op, token, Expect::Accept).await;
            st.vu.advance(cfg.scenario, &cfg.target, op, out, &st.reply);
            if out != Outcome::Ok {
                break;
            }
        }
        if cfg.open_at.is_some() {
            // The measured requests connect to the URL's address.
            st.conn = None;
        }
    }
    st
}

/// One request and its judged answer; drops the connection when it cannot be reused.
async fn exchange(
    cfg: &RunConfig,
    st: &mut VuState,
    op: Op,
    token: Option<&str>,
    expect: Expect,
) -> Outcome {
    if st.conn.is_none() {
        match monoio::time::timeout(cfg.timeout, Conn::connect(cfg.target.addr)).await {
            Ok(Ok(c)) => st.conn = Some(c),
            Ok(Err(_)) => return Outcome::Err(ErrClass::Connect),
            Err(_) => return Outcome::Err(ErrClass::Timeout),
        }
    }
    let Some(c) = st.conn.as_mut() else {
        return Outcome::Err(ErrClass::Connect);
    };
    let id = st.vu.write(op, &cfg.target, token, &mut c.wbuf);
    let res = monoio::time::timeout(cfg.timeout, c.exchange(&mut st.reply, id, false)).await;
    let out = match res {
        Err(_) => Outcome::Err(ErrClass::Timeout),
        Ok(Err(IoFail::Connect)) => Outcome::Err(ErrClass::Connect),
        Ok(Err(IoFail::Io)) => Outcome::Err(ErrClass::Io),
        Ok(Err(IoFail::Http)) => Outcome::Err(ErrClass::Http),
        Ok(Ok(())) => judge(op, expect, id, &st.reply),
    };
    if !matches!(res, Ok(Ok(()))) || !c.reusable {
        st.conn = None;
    }
    out
}

async fn vu_loop(ctx: Rc<Ctx>, mut st: VuState) {
    let cfg = &ctx.cfg;
    let mut token = String::new();
    loop {
        let now = Instant::now();
        if now >= ctx.end {
            break;
        }
        let base = match ctx.interval_ns {
            None => now,
            Some(iv) => {
                let k = ctx.next_slot.get();
                ctx.next_slot.set(k + 1);
                let intended = ctx.start + Duration::from_nanos((k as f64 * iv) as u64);
                if intended >= ctx.end {
                    break;
                }
                if intended > now {
                    match st.pacer.as_mut() {
                        Some(p) => {
                            p.sleep_until(intended).await;
                        }
                        None => {
                            monoio::time::sleep_until(monoio::time::Instant::from_std(intended))
                                .await
                        }
                    }
                    Instant::now() // idle until the slot: charge from the actual send
                } else {
                    intended // busy past the slot: charge the queueing too
                }
            }
        };
        let op = st.vu.next_op(cfg.scenario, &cfg.target);
        let expect = if cfg.scenario.uses_tokens() {
            let mut plan = ctx.plan.borrow_mut();
            let (t, e) = plan.pick();
            token.clear();
            token.push_str(t.unwrap_or(""));
            e
        } else {
            Expect::Accept
        };
        let tok = (!token.is_empty() && cfg.scenario.uses_tokens()).then_some(token.as_str());
        let out = exchange(cfg, &mut st, op, tok, expect).await;
        let done = if matches!(out, Outcome::Ok | Outcome::Rejected) {
            st.reply.answered
        } else {
            Instant::now()
        };
        st.vu.advance(cfg.scenario, &cfg.target, op, out, &st.reply);
        if base >= ctx.measure_from {
            let ns = done.saturating_duration_since(base).as_nanos() as u64;
            let mut stats = ctx.stats.borrow_mut();
            stats.record(op, ns, out);
            if op == Op::Delete && out == Outcome::Ok {
                stats.sessions += 1;
            }
        }
        {
            let mut tick = ctx.tick.borrow_mut();
            match out {
                Outcome::Err(_) => tick.errors += 1,
                _ => {
                    tick.answered += 1;
                    let ns = done.saturating_duration_since(base).as_nanos() as u64;
                    let _ = tick.hist.record(ns.clamp(1, 60_000_000_000));
                }
            }
        }
        if matches!(out, Outcome::Err(ErrClass::Connect)) {
            // Do not spin on a refused port; the pause is part of the failure.
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn ticker(ctx: Rc<Ctx>, ticks: Sender<Tick>) {
    let mut next = ctx.start;
    loop {
        next += Duration::from_secs(1);
        let stop = next >= ctx.end;
        let at = if stop { ctx.end } else { next };
        monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
        let t = {
            let mut t = ctx.tick.borrow_mut();
            let out = Tick {
                answered: t.answered,
                errors: t.errors,
                hist: t.hist.clone(),
            };
            t.answered = 0;
            t.errors = 0;
            t.hist.reset();
            out
        };
        if ticks.send(t).is_err() || stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn pacer_wakes_at_the_slot_not_before() {
        let uring = monoio::utils::detect_uring();
        let mut rt = portcullis::build_runtime(uring, 64).unwrap();
        rt.block_on(async move {
            let Some(mut p) = super::Pacer::new() else {
                // Only on io_uring: on epoll a timerfd read would block the thread.
                assert!(!uring);
                return;
            };
            for us in [40u64, 350, 1700, 0] {
                let at = Instant::now() + Duration::from_micros(us);
                assert!(p.sleep_until(at).await, "the timerfd waited");
                assert!(Instant::now() >= at);
            }
        });
    }
}
