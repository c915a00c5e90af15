//! stdio MCP servers: one child process per session, newline-delimited JSON-RPC on its stdin
//! and stdout, stderr forwarded to the log under the target's name.
//!
//! The child's stdio are Unix socket pairs, so the worker's monoio runtime reads and writes them
//! like any socket (io_uring or epoll) without helper threads. Messages are routed by JSON-RPC
//! id: the response to a pending request ends it; notifications and server requests go to the
//! newest pending request (as SSE events) or, when none is pending, to the session's
//! server-to-client stream. When the child exits, every pending request gets a JSON-RPC error and
//! the owner ends the session. Termination: close stdin, SIGTERM, SIGKILL after a grace period,
//! and always reap (no zombies, no leaked descriptors).
//! Not here: which target a message goes to (`relay::call`).

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::UnixStream;

use crate::mcp::jsonrpc;
use crate::relay::target::shared_stream::{Pending, TargetMsg};
use crate::relay::MAX_MESSAGE;

/// How long a child gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

pub(crate) struct Proc {
    pub target: String,
    child: RefCell<Option<Child>>,
    to_stdin: UnboundedSender<Vec<u8>>,
    pending: Pending,
    alive: Cell<bool>,
    /// Whether the child ever wrote a line on stdout.
    answered: Cell<bool>,
    /// The child's last stderr line (at most [`STDERR_TAIL`] bytes) and whether stderr ended:
    /// when a child exits before it answered anything (a wrong path, a missing module), the
    /// logged error quotes what it printed, the cause the operator needs. The client is told
    /// only that the server exited before answering: stderr may hold paths or secrets.
    stderr_tail: RefCell<String>,
    stderr_done: Cell<bool>,
}

/// The most of a child's stderr that its start-up failure error quotes.
const STDERR_TAIL: usize = 300;

fn pair() -> std::io::Result<(UnixStream, OwnedFd)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    Ok((UnixStream::from_std(ours)?, OwnedFd::from(theirs)))
}

impl Proc {
    /// Starts the child. `unsolicited` receives server-initiated messages.
    pub(crate) fn spawn(
        target: &str,
        cmd: &str,
        args: &[String],
        env: &[(String, String)],
        clear_env: bool,
        unsolicited: UnboundedSender<Vec<u8>>,
    ) -> Result<Rc<Proc>, String> {
        let (stdin_ours, stdin_theirs) = pair().map_err(|e| e.to_string())?;
        let (stdout_ours, stdout_theirs) = pair().map_err(|e| e.to_string())?;
        let (stderr_ours, stderr_theirs) = pair().map_err(|e| e.to_string())?;
        let mut command = Command::new(cmd);
        if clear_env {
            // The program is still found on the default search path (`/bin:/usr/bin`) unless
            // `env` sets `PATH`.
            command.env_clear();
        }
        let child = command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::from(stdin_theirs))
            .stdout(Stdio::from(stdout_theirs))
            .stderr(Stdio::from(stderr_theirs))
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?} for target {target}: {e}"))?;
        tracing::info!(
            target_name = target,
            pid = child.id(),
            "mcp stdio server started"
        );
        let (to_stdin, stdin_rx) = unbounded();
        let proc = Rc::new(Proc {
            target: target.to_owned(),
            child: RefCell::new(Some(child)),
            to_stdin,
            pending: Pending::new(unsolicited),
            alive: Cell::new(true),
            answered: Cell::new(false),
            stderr_tail: RefCell::new(String::new()),
            stderr_done: Cell::new(false),
        });
        monoio::spawn(write_loop(stdin_ours, stdin_rx));
        monoio::spawn(read_loop(Rc::downgrade(&proc), stdout_ours));
        monoio::spawn(stderr_loop(Rc::downgrade(&proc), stderr_ours));
        Ok(proc)
    }

    pub(crate) fn alive(&self) -> bool {
        self.alive.get()
    }

    /// Sends a request; its events and response arrive on the returned receiver.
    pub(crate) fn request(&self, id: &str, msg: Vec<u8>) -> UnboundedReceiver<TargetMsg> {
        if !self.alive.get() {
            let (tx, rx) = unbounded();
            let why = format!("the MCP server {} has exited", self.target);
            let _ = tx.unbounded_send(TargetMsg::Failed(why));
            return rx;
        }
        let (_, rx) = self.pending.add(id);
        self.send(msg);
        rx
    }

    /// Stops waiting for request `id`; whether it was waiting.
    pub(crate) fn forget(&self, id: &str) -> bool {
        self.pending.forget(id)
    }

    /// Sends a notification or a response (no answer expected).
    pub(crate) fn send(&self, mut msg: Vec<u8>) {
        // One message per line: JSON may not contain raw newlines outside strings anyway.
        msg.retain(|b| *b != b'\n' && *b != b'\r');
        msg.push(b'\n');
        let _ = self.to_stdin.unbounded_send(msg);
    }

    fn fail_all(&self, why: &str) {
        self.alive.set(false);
        self.pending.fail_all(why);
    }

    /// Ends the child: close stdin, SIGTERM, SIGKILL after the grace period; always reaped.
    pub(crate) async fn terminate(&self) {
        self.alive.set(false);
        self.to_stdin.close_channel();
        let Some(mut child) = self.child.borrow_mut().take() else {
            return;
        };
        let pid = child.id();
        if matches!(child.try_wait(), Ok(None)) {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
            let mut waited = Duration::ZERO;
            while matches!(child.try_wait(), Ok(None)) && waited < GRACE {
                monoio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
        }
        // Reap without blocking the worker for long: the child is dead or dying.
        for _ in 0..250 {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.wait();
        tracing::info!(target_name = %self.target, pid, "mcp stdio server stopped");
        self.fail_all("the session ended");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Last resort (a panic or a path that skipped terminate): never leave a child behind.
        if let Some(mut c) = self.child.get_mut().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn write_loop(mut s: UnixStream, mut rx: UnboundedReceiver<Vec<u8>>) {
    while let Some(msg) = rx.next().await {
        let (res, _) = s.write_all(msg).await;
        if res.is_err() {
            return;
        }
    }
    // Channel closed: the child sees EOF on stdin.
    let _ = monoio::io::AsyncWriteRent::shutdown(&mut s).await;
}

async fn read_lines(s: &mut UnixStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 8192 {
        buf.reserve(64 * 1024);
    }
    let b = std::mem::take(buf);
    let (len, cap) = (b.len(), b.capacity());
    let (res, slice) = s.read(SliceMut::new(b, len, cap)).await;
    *buf = slice.into_inner();
    res
}

async fn read_loop(proc: std::rc::Weak<Proc>, mut s: UnixStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut skipping = false;
    loop {
        let n = read_lines(&mut s, &mut buf).await;
        let Some(p) = proc.upgrade() else { return };
        match n {
            Ok(0) | Err(_) => {
                if !p.alive.get() {
                    // The session ended and the relay stopped the child: nothing went wrong.
                    tracing::debug!(target_name = %p.target, "mcp stdio server closed its stdout");
                    return;
                }
                let mut why = format!("the MCP server {} has exited", p.target);
                let mut logged = why.clone();
                if !p.answered.get() {
                    // It never started: wait briefly for its last words on stderr.
                    for _ in 0..20 {
                        if p.stderr_done.get() {
                            break;
                        }
                        monoio::time::sleep(Duration::from_millis(10)).await;
                    }
                    why.push_str(" before answering (the proxy's log has its error output)");
                    let tail = p.stderr_tail.borrow();
                    logged = match tail.is_empty() {
                        true => format!("{logged} before answering; it printed nothing on stderr"),
                        false => format!("{logged} before answering; it printed: {tail}"),
                    };
                }
                tracing::warn!(target_name = %p.target, "{logged}");
                p.fail_all(&why);
                return;
            }
            Ok(_) => {}
        }
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
            let line = &buf[start..start + nl];
            start += nl + 1;
            if skipping {
                skipping = false;
                continue;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                p.answered.set(true);
                p.pending.dispatch(&p.target, line.to_vec());
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_MESSAGE {
            // Too large: drop it up to its newline and tell the waiting request.
            tracing::warn!(target_name = %p.target, limit = MAX_MESSAGE, "mcp server message over the limit; dropped");
            let tx = p.pending.pop_newest();
            if let Some((id, tx)) = tx {
                let err = jsonrpc::error_object(
                    Some(&id),
                    jsonrpc::INTERNAL_ERROR,
                    "the MCP server's answer is larger than 16 MiB",
                    None,
                );
                let _ = tx.unbounded_send(TargetMsg::Final(err));
            }
            buf.clear();
            skipping = true;
        }
    }
}

async fn stderr_loop(proc: std::rc::Weak<Proc>, mut s: UnixStream) {
    let Some(target) = proc.upgrade().map(|p| p.target.clone()) else {
        return;
    };
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let eof = matches!(read_lines(&mut s, &mut buf).await, Ok(0) | Err(_));
        if eof && !buf.is_empty() && buf.last() != Some(&b'\n') {
            buf.push(b'\n'); // the last line had no newline
        }
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
            let line = String::from_utf8_lossy(&buf[start..start + nl]);
            let line = line.trim_end();
            tracing::info!(target: "mcp_stderr", target_name = %target, "{line}");
            if let Some(p) = proc
                .upgrade()
                .filter(|p| !p.answered.get() && !line.is_empty())
            {
                let mut tail = p.stderr_tail.borrow_mut();
                tail.clear();
                let mut end = line.len().min(STDERR_TAIL);
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                tail.push_str(&line[..end]);
            }
            start += nl + 1;
        }
        if eof {
            if let Some(p) = proc.upgrade() {
                p.stderr_done.set(true);
            }
            return;
        }
        buf.drain(..start);
        if buf.len() > 64 * 1024 {
            buf.clear();
        }
    }
}
