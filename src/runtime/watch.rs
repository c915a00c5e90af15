//! The config-file watcher: decides when a changed file is complete enough to load.
//!
//! A file being written is not a config yet: a truncated write can still be valid YAML that
//! drops a route's `jwtAuth`. So a change is handed over only when
//! - its content has stayed the same for [`SETTLE`] (a writer pausing briefly between `write`s,
//!   or a rewrite in several steps, shows up as content that is still changing), and
//! - no writer has the file open: inotify on the file's directory reports `IN_MODIFY` on the
//!   file while a writer works and `IN_CLOSE_WRITE` when it closes it; between the two, the
//!   change waits however long the writer pauses.
//!
//! The recommended way to write the config is still an atomic rename (write a temporary file in
//! the same directory, then `mv` it over the config), which is also what Kubernetes does for a
//! mounted ConfigMap. Where inotify is unavailable, content stability alone decides.
//!
//! Not here: loading, validating or publishing (`runtime::control`).

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a changed content must stay the same before it is loaded.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);
/// After this long waiting for a writer to close the file, say so in the log (once).
const WRITER_WARN: Duration = Duration::from_secs(10);

/// The pure part: what was last handed over, and the change waiting to settle.
#[derive(Debug, Default)]
pub(crate) struct Settle {
    last: Option<Vec<u8>>,
    pending: Option<(Vec<u8>, Instant)>,
}

/// What [`Settle::observe`] concluded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Unchanged,
    /// Changed, but not settled yet (still changing, or too recent).
    Settling,
    /// Changed and settled, but a writer still has the file open; waiting since the instant.
    WriterOpen(Instant),
    /// Load this.
    Ready(Vec<u8>),
}

impl Settle {
    pub(crate) fn new(current: Option<Vec<u8>>) -> Self {
        Settle {
            last: current,
            pending: None,
        }
    }

    /// Feeds one reading of the file at `now`; `writer_open` is whether a writer is known to
    /// have the file open.
    pub(crate) fn observe(&mut self, text: Vec<u8>, now: Instant, writer_open: bool) -> Verdict {
        if self.last.as_deref() == Some(&text[..]) {
            self.pending = None;
            return Verdict::Unchanged;
        }
        match &self.pending {
            Some((t, since)) if *t == text => {
                if writer_open {
                    Verdict::WriterOpen(*since)
                } else if now.duration_since(*since) >= SETTLE {
                    self.pending = None;
                    self.last = Some(text.clone());
                    Verdict::Ready(text)
                } else {
                    Verdict::Settling
                }
            }
            _ => {
                self.pending = Some((text, now));
                Verdict::Settling
            }
        }
    }
}

/// Watches one config file: [`Watcher::poll`] returns a complete, settled change to load.
pub(crate) struct Watcher {
    path: PathBuf,
    settle: Settle,
    notify: Option<Notify>,
    warned: bool,
}

struct Notify {
    fd: OwnedFd,
    name: OsString,
    writer_open: bool,
}

impl Watcher {
    /// Watches `path`, whose content `loaded` is running now.
    pub(crate) fn new(path: &Path, loaded: Vec<u8>) -> Watcher {
        let notify = Notify::start(path)
            .map_err(|e| {
                tracing::info!(error = %e, "inotify is unavailable: config changes are loaded once their content is stable")
            })
            .ok();
        Watcher {
            path: path.to_owned(),
            settle: Settle::new(Some(loaded)),
            notify,
            warned: false,
        }
    }

    /// Checks the file once; `Some` is a change to load now.
    pub(crate) fn poll(&mut self) -> Option<Vec<u8>> {
        let writer_open = match &mut self.notify {
            Some(n) => n.drain(),
            None => false,
        };
        let text = std::fs::read(&self.path).ok()?;
        match self.settle.observe(text, Instant::now(), writer_open) {
            Verdict::Ready(t) => {
                self.warned = false;
                Some(t)
            }
            Verdict::WriterOpen(since) => {
                if !self.warned && since.elapsed() >= WRITER_WARN {
                    self.warned = true;
                    tracing::warn!(path = %self.path.display(), "the config file changed but a writer still has it open; it is loaded once the writer closes it");
                }
                None
            }
            Verdict::Unchanged | Verdict::Settling => None,
        }
    }
}

impl Watcher {
    /// `text` was just loaded outside [`Watcher::poll`] (a reload on SIGHUP): it is the new
    /// baseline.
    pub(crate) fn loaded(&mut self, text: &[u8]) {
        self.settle = Settle::new(Some(text.to_vec()));
    }
}

/// Watches the certificate and key files of HTTPS listeners: renewals by cert-manager (a
/// symlink swap in a mounted Secret) or certbot (files rewritten in place) are loaded without a
/// change to the config text. Polled with the config; a change is handed over once the files
/// have stayed the same for [`SETTLE`] (certbot writes the certificate and the key one after
/// the other).
#[derive(Debug, Default)]
pub(crate) struct CertWatch {
    files: Vec<(PathBuf, Option<Stamp>)>,
    changed_at: Option<Instant>,
}

/// What a file looks like from outside: modification time, length, inode (following symlinks).
type Stamp = (std::time::SystemTime, u64, u64);

fn stamp(p: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

impl CertWatch {
    pub(crate) fn new(files: &[PathBuf]) -> CertWatch {
        CertWatch {
            files: files.iter().map(|p| (p.clone(), stamp(p))).collect(),
            changed_at: None,
        }
    }

    /// Watches `files` from now on. Files already watched keep what was last seen of them, so a
    /// change made while a reload was being loaded is still noticed afterwards.
    pub(crate) fn retarget(&mut self, files: &[PathBuf]) {
        let mut old = std::mem::take(&mut self.files);
        self.files = files
            .iter()
            .map(|p| match old.iter().position(|(q, _)| q == p) {
                Some(i) => old.swap_remove(i),
                None => (p.clone(), stamp(p)),
            })
            .collect();
    }

    /// True once the files have changed and then stayed the same for [`SETTLE`].
    pub(crate) fn settled_change(&mut self, now: Instant) -> bool {
        let mut moved = false;
        for (p, st) in &mut self.files {
            let s = stamp(p);
            if s != *st {
                *st = s;
                moved = true;
            }
        }
        if moved {
            self.changed_at = Some(now);
            return false;
        }
        match self.changed_at {
            Some(t) if now.duration_since(t) >= SETTLE => {
                self.changed_at = None;
                true
            }
            _ => false,
        }
    }
}

impl Notify {
    fn start(path: &Path) -> std::io::Result<Notify> {
        use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("the config path names no file"))?
            .to_owned();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        inotify::add_watch(
            &fd,
            dir,
            WatchFlags::MODIFY
                | WatchFlags::CLOSE_WRITE
                | WatchFlags::MOVED_TO
                | WatchFlags::CREATE
                | WatchFlags::DELETE,
        )?;
        Ok(Notify {
            fd,
            name,
            writer_open: false,
        })
    }

    /// Reads the queued events; returns whether a writer has the file open.
    fn drain(&mut self) -> bool {
        use rustix::fs::inotify::{ReadFlags, Reader};
        use std::mem::MaybeUninit;
        use std::os::unix::ffi::OsStrExt;
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = Reader::new(&self.fd, &mut buf);
        while let Ok(ev) = reader.next() {
            let flags = ev.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                // Events were lost: nothing is known about writers any more.
                self.writer_open = false;
                continue;
            }
            let ours = ev
                .file_name()
                .is_some_and(|n| n.to_bytes() == self.name.as_bytes());
            if !ours {
                continue;
            }
            if flags.contains(ReadFlags::MODIFY) {
                self.writer_open = true;
            }
            if flags.intersects(
                ReadFlags::CLOSE_WRITE
                    | ReadFlags::MOVED_TO
                    | ReadFlags::CREATE
                    | ReadFlags::DELETE,
            ) {
                self.writer_open = false;
            }
        }
        self.writer_open
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn certificate_changes_are_handed_over_once_settled() {
        let dir = std::env::temp_dir().join(format!("portcullis-certwatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (crt, key) = (dir.join("a.crt"), dir.join("a.key"));
        std::fs::write(&crt, "one").unwrap();
        std::fs::write(&key, "one").unwrap();
        let mut w = CertWatch::new(&[crt.clone(), key.clone()]);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert!(!w.settled_change(ms(0)));
        std::fs::write(&crt, "renewed").unwrap();
        assert!(!w.settled_change(ms(10)), "just changed");
        std::fs::write(&key, "renewed!").unwrap();
        assert!(!w.settled_change(ms(300)), "still changing");
        assert!(!w.settled_change(ms(600)), "not settled yet");
        assert!(w.settled_change(ms(900)));
        assert!(!w.settled_change(ms(2000)), "handed over once");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_change_made_before_the_watcher_starts_is_seen() {
        // The file changed between the load at start and the watcher's creation.
        let dir =
            std::env::temp_dir().join(format!("portcullis-watch-start-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.yaml");
        std::fs::write(&path, "new").unwrap();
        let mut w = Watcher::new(&path, b"old".to_vec());
        let deadline = Instant::now() + Duration::from_secs(5);
        let got = loop {
            if let Some(t) = w.poll() {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "the change was never handed over"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(got, b"new");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_change_is_ready_only_once_stable() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Settle::new(Some(b"a".to_vec()));
        assert_eq!(s.observe(b"a".to_vec(), ms(0), false), Verdict::Unchanged);
        assert_eq!(s.observe(b"ab".to_vec(), ms(0), false), Verdict::Settling);
        assert_eq!(s.observe(b"ab".to_vec(), ms(250), false), Verdict::Settling);
        // Still changing: the clock starts again.
        assert_eq!(
            s.observe(b"abc".to_vec(), ms(500), false),
            Verdict::Settling
        );
        assert_eq!(
            s.observe(b"abc".to_vec(), ms(750), false),
            Verdict::Settling
        );
        assert_eq!(
            s.observe(b"abc".to_vec(), ms(1000), false),
            Verdict::Ready(b"abc".to_vec())
        );
        assert_eq!(
            s.observe(b"abc".to_vec(), ms(1250), false),
            Verdict::Unchanged
        );
    }

    #[test]
    fn an_open_writer_holds_a_stable_change() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Settle::new(None);
        assert_eq!(s.observe(b"half".to_vec(), ms(0), true), Verdict::Settling);
        assert_eq!(
            s.observe(b"half".to_vec(), ms(5000), true),
            Verdict::WriterOpen(ms(0))
        );
        assert_eq!(
            s.observe(b"half+rest".to_vec(), ms(5100), false),
            Verdict::Settling
        );
        assert_eq!(
            s.observe(b"half+rest".to_vec(), ms(5600), false),
            Verdict::Ready(b"half+rest".to_vec())
        );
    }

    #[test]
    fn inotify_sees_a_writer_until_it_closes() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("portcullis-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(&path, "a: 1\n").unwrap();
        let Ok(mut n) = Notify::start(&path) else {
            return; // no inotify here (some sandboxes): content stability still applies
        };
        assert!(!n.drain());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"b: 2\n").unwrap();
        assert!(n.drain(), "a writer with the file open");
        assert!(n.drain(), "still open");
        drop(f);
        assert!(!n.drain(), "closed");
        // A write to another file in the directory is not ours.
        let mut g = std::fs::File::create(dir.join("other.yaml")).unwrap();
        g.write_all(b"x").unwrap();
        assert!(!n.drain());
        drop(g);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
