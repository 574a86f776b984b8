//! What the adversarial suites (`proactor_adversarial`, `local_adversarial`,
//! `attack_chains`) share: the process-wide test lock, fd scans, waits with
//! a limit, the forger of completions, and buffers that show a write after
//! they were handed back. Each suite uses part of it.
#![allow(dead_code, reason = "each suite uses part of it")]

use std::future::Future;
use std::io::Write as _;
use std::os::fd::{OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_driver::Ring;
use ring_io_proactor::{IoBuf, IoBufMut, LocalProactor};

/// One test at a time: fd scans and fd counts must not see other tests'.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn poll_with<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

pub(crate) fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    poll_with(f, Waker::noop())
}

/// The process's open fds.
pub(crate) fn fds() -> Vec<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The number of this process's open fds once it is back to `before`,
/// waiting up to 5 s for it (a thread may still be closing what the
/// runtime released: a count at once would race it), with what they are
/// (for a failure's message).
pub(crate) fn fds_settled(before: usize) -> (usize, String) {
    let start = std::time::Instant::now();
    while fds().len() != before && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let open: Vec<String> = fds()
        .into_iter()
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
            format!("{fd} {}", target.display())
        })
        .collect();
    (open.len(), open.join(", "))
}

/// The fds of io_uring instances, as an attacker finds them: by trying
/// every fd number.
pub(crate) fn ring_fds() -> Vec<RawFd> {
    fds()
        .into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|l| l.to_string_lossy() == "anon_inode:[io_uring]")
        })
        .collect()
}

/// Whether `fd` is open.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

pub(crate) fn write_all(fd: &OwnedFd, bytes: &[u8]) {
    std::fs::File::from(fd.try_clone().unwrap())
        .write_all(bytes)
        .unwrap();
}

/// Waits (at most 10 s) until `cond` holds.
pub(crate) fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `f` on a thread; fails the test if it does not return within
/// `limit` (the thread is left behind, stuck).
pub(crate) fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what}: still blocked after {limit:?}"),
    }
}

/// Parks `p` (1 ms at a time) until `cond` holds; fails after 10 s
/// without it (each call waits for one event, not for a whole test).
pub(crate) fn park_until(p: &LocalProactor, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}: {:?}",
            p.stats()
        );
        p.park(Some(Duration::from_millis(1)));
    }
}

/// A watchdog for a test that could hang on this thread (a LocalProactor
/// is `!Send`, so the test cannot move to another thread): exits the
/// process if [`step`](Watchdog::step) has not been called for 20 s.
pub(crate) struct Watchdog {
    done: Arc<AtomicBool>,
    progress: Arc<AtomicU32>,
}

impl Watchdog {
    pub(crate) fn new(what: &'static str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU32::new(0));
        let (d, p) = (done.clone(), progress.clone());
        thread::spawn(move || {
            let (mut last, mut since) = (u32::MAX, Instant::now());
            while !d.load(Ordering::SeqCst) {
                let now = p.load(Ordering::SeqCst);
                if now != last {
                    (last, since) = (now, Instant::now());
                } else if since.elapsed() > Duration::from_secs(20) {
                    eprintln!("{what}: no progress for 20 s (at step {now}): a hang");
                    std::process::exit(1);
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog { done, progress }
    }

    pub(crate) fn step(&self) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// Forged completions.

/// The attacker: a ring of its own that posts completions into other rings.
pub(crate) struct Forger {
    ring: Ring,
    /// Whether the kernel lets it choose the target CQE's flags (6.3).
    flags: bool,
}

impl Forger {
    /// `None` if the kernel lacks `IORING_OP_MSG_RING` (Linux 5.18).
    pub(crate) fn new() -> Option<Forger> {
        let ring = Ring::new(64).expect("a ring");
        let probe = ring.probe().expect("a probe");
        if probe.check(ring_io_sys::IORING_OP_MSG_RING).is_err() {
            return None;
        }
        Some(Forger {
            ring,
            flags: crate::common::kernel().at_least(6, 3),
        })
    }

    /// Posts a CQE with `user_data`, `res` and `flags` (if the kernel lets
    /// it pass flags) into the ring `target`; returns whether it landed.
    pub(crate) fn forge(&mut self, target: RawFd, user_data: u64, res: i32, flags: u32) -> bool {
        let mut op = ring_io_ops::MsgRingData::new(ring_io_ops::Fd(target), res, user_data);
        if self.flags {
            op = op.cqe_flags(flags);
        }
        // SAFETY: a MSG_RING data entry carries no pointer: the kernel
        // touches no memory of this process for it.
        unsafe { self.ring.sq().push(op.build()) }.expect("room in the SQ");
        self.ring.submitter().submit_and_wait(1).expect("enter");
        let cqe = self.ring.cq().next().expect("the MSG_RING's own CQE");
        cqe.res() >= 0
    }

    /// Posts a CQE for every `user_data` in `guesses` with each `res` in
    /// `results` and each of `flags` into every ring in `targets`; returns
    /// how many landed.
    pub(crate) fn spray(
        &mut self,
        targets: &[RawFd],
        guesses: &[u64],
        results: &[i32],
        flags: &[u32],
    ) -> u64 {
        let mut landed = 0;
        for &t in targets {
            for &ud in guesses {
                for &res in results {
                    for &f in flags {
                        landed += u64::from(self.forge(t, ud, res, f));
                    }
                }
            }
        }
        landed
    }
}

/// `user_data` values worth guessing: small numbers, slot indexes with
/// small tags, and with the high bit of either word set (the low word's
/// is what marks a cancellation's CQE).
pub(crate) fn guesses() -> Vec<u64> {
    let mut g: Vec<u64> = (0..64).collect();
    for tag in 0..4u64 {
        for index in 0..8u64 {
            for high in [0, 1 << 63, 1 << 31] {
                g.push(high | (tag << 32) | index);
            }
        }
    }
    g.extend([u64::MAX, u64::MAX - 1, 1 << 63, u32::MAX as u64]);
    g.sort_unstable();
    g.dedup();
    g
}

// ---------------------------------------------------------------------------
// Buffers that show a write after they were handed back.

/// Memory of dropped [`Canary`] buffers, filled with [`DEAD`] and kept
/// (leaked, reachable from here) so that a write into it after the drop
/// shows.
static GRAVES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
pub(crate) const DEAD: u8 = 0xAA;
pub(crate) const CANARY_LEN: usize = 64;

/// A read buffer that, when dropped, fills its memory with [`DEAD`] and
/// leaves it to [`GRAVES`] instead of freeing it: if the kernel wrote it
/// after the runtime let it go, the graves show it.
pub(crate) struct Canary {
    pub(crate) bytes: Box<[u8]>,
}

impl Canary {
    pub(crate) fn new() -> Canary {
        Canary {
            bytes: vec![0u8; CANARY_LEN].into_boxed_slice(),
        }
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        bytes.fill(DEAD);
        GRAVES.lock().unwrap().push(bytes.as_mut_ptr() as usize);
    }
}

/// Every grave still holds only [`DEAD`] bytes; how many there are.
pub(crate) fn graves_untouched() -> usize {
    let graves = GRAVES.lock().unwrap();
    for &at in graves.iter() {
        // SAFETY: each grave is a leaked allocation of CANARY_LEN bytes,
        // never freed; the kernel writes it only in the bug looked for.
        let bytes = unsafe { std::slice::from_raw_parts(at as *const u8, CANARY_LEN) };
        assert!(
            bytes.iter().all(|&b| b == DEAD),
            "a buffer was written after the runtime handed it back: {bytes:?}"
        );
    }
    graves.len()
}

// SAFETY: a boxed slice's bytes are on the heap, all initialized, its own
// (the `Drop` above only runs when the value goes).
unsafe impl IoBuf for Canary {
    fn stable_ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.bytes.len()
    }
    fn bytes_total(&self) -> usize {
        self.bytes.len()
    }
}

// SAFETY: as above; every byte is initialized already.
unsafe impl IoBufMut for Canary {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}
