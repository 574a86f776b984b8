//! Attacks on what the other adversarial suites leave alone: linked chains
//! (`Op::link`, `LocalOp::link`, `link_timeout`), fixed buffers
//! (`FixedBuf`, `read_fixed`, `write_fixed`), the LocalProactor's
//! multishot receive, and the typed handles generic over `Runtime` (with
//! the `Transfer`s of `read_exact` / `write_all`), on both runtimes. The
//! attacker is code in the process with only the safe API (plus, for the
//! forged completions, an `unsafe` `MSG_RING` push standing for buggy
//! `unsafe` code): it drops, forgets and re-links futures at every point,
//! runs hostile code in wakers and `Drop`s, and passes sizes and durations
//! at the edges of their types.
//!
//! What must hold: the kernel writes no memory after it was handed back
//! (read buffers are [`Canary`]s, which keep their memory after the drop
//! to show a late write; CI also runs this file under AddressSanitizer),
//! no fd leaks, every completion is delivered once, a panic stays in its
//! task, nothing hangs (progress-based limits), errors say what is wrong.
//!
//! The tests run one at a time (a process-wide lock): some count fds.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::pipe;
use ring_io_proactor::fs::{File, OpenOptions};
use ring_io_proactor::net::{TcpStream as RtTcpStream, UnixStream as RtUnixStream};
use ring_io_proactor::{
    CURRENT_POSITION, IoBuf, IoBufMut, LocalProactor, MsgFlags, Proactor, ProactorConfig, Runtime,
};

/// One test at a time: fd counts must not see other tests' fds.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn poll_with<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    poll_with(f, Waker::noop())
}

/// The process's open fds.
fn fds() -> Vec<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn write_all(fd: &OwnedFd, bytes: &[u8]) {
    std::fs::File::from(fd.try_clone().unwrap())
        .write_all(bytes)
        .unwrap();
}

/// Parks `p` (1 ms at a time) until `cond` holds; fails after 10 s
/// without it (each call waits for one event, not for a whole test).
fn park_until(p: &LocalProactor, what: &str, mut cond: impl FnMut() -> bool) {
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

/// Polls `f` (a waker that wakes nothing) and parks `p` until `f` is
/// ready; fails after `limit` without it.
fn drive_until<F: Future + Unpin>(
    p: &LocalProactor,
    f: &mut F,
    limit: Duration,
    what: &str,
) -> F::Output {
    let start = Instant::now();
    loop {
        if let Poll::Ready(out) = poll_once(f) {
            return out;
        }
        assert!(start.elapsed() < limit, "{what}: {:?}", p.stats());
        p.park(Some(Duration::from_millis(1)));
    }
}

/// Waits (at most 10 s) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
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
fn within<T: Send + 'static>(
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

fn errno(res: &io::Result<impl Sized>) -> Option<i32> {
    res.as_ref().err().and_then(io::Error::raw_os_error)
}

// ---------------------------------------------------------------------------
// Buffers that show a write after they were handed back.

/// Memory of dropped [`Canary`] buffers, filled with [`DEAD`] and kept
/// (leaked, reachable from here) so that a write into it after the drop
/// shows.
static GRAVES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
const DEAD: u8 = 0xAA;
const CANARY_LEN: usize = 64;

/// A read buffer that, when dropped, fills its memory with [`DEAD`] and
/// leaves it to [`GRAVES`] instead of freeing it: if the kernel wrote it
/// after the runtime let it go, the graves show it.
struct Canary {
    bytes: Box<[u8]>,
}

impl Canary {
    fn new() -> Canary {
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
fn graves_untouched() -> usize {
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

// ---------------------------------------------------------------------------
// Re-linking: a chain that cannot be linked is never submitted.

/// A chain waits for credit (its first op holds the ticket, the others are
/// new) and is then linked again, with an op already in the kernel after
/// it. The new chain cannot be linked: the op in the kernel must not be
/// submitted a second time (two requests would then read into its buffer,
/// the one it does not wait for after the buffer was handed back), and an
/// op refused before the kernel must not run as the NOP that stands in for
/// it (its error would become `Ok(0)`, an end of file).
#[test]
fn local_a_chain_relinked_while_it_waits_for_credit_submits_no_op_twice_and_no_refused_op() {
    let _serial = serial();
    let p = LocalProactor::new(ProactorConfig::new(16).max_in_flight(6)).unwrap();
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let (r1, r2) = (Arc::new(r1), Arc::new(r2));
    // In the kernel: the victim read (its own pipe) and four that hold
    // the budget with it.
    let mut victim = p.read(&r1, Canary::new(), CURRENT_POSITION);
    assert!(poll_once(&mut victim).is_pending());
    let mut held: Vec<_> = (0..4)
        .map(|_| p.read(&r2, vec![0u8; 1], CURRENT_POSITION))
        .collect();
    for h in &mut held {
        assert!(poll_once(h).is_pending());
    }
    p.drive();
    // A chain of two waits for credit (5 of 6 taken).
    let mut waiting = p.nop().link(p.nop());
    assert!(poll_once(&mut waiting).is_pending());
    p.drive();
    let completed = p.stats().completed;
    // Linked again: after it, the victim (in the kernel), a read refused
    // before the kernel (no room) and a new read.
    let mut relinked = waiting
        .link(victim)
        .link(p.read(&r2, Vec::new(), CURRENT_POSITION))
        .link(p.read(&r2, vec![0u8; 4], CURRENT_POSITION));
    assert!(poll_once(&mut relinked).is_pending());
    // The budget frees up: the held reads complete and are taken.
    write_all(&w2, b"abcd");
    for mut h in held {
        let (n, _) = drive_until(&p, &mut h, Duration::from_secs(10), "a held read");
        assert_eq!(n.unwrap(), 1);
    }
    // Bytes for the victim, and more for a read that should not run.
    write_all(&w1, &[7u8; CANARY_LEN]);
    write_all(&w2, b"cdef");
    let ((((a, b), (victim_n, victim_buf)), (refused, empty)), (never, _)) = drive_until(
        &p,
        &mut relinked,
        Duration::from_secs(3),
        "the re-linked chain (its victim submitted twice waits on the copy the data did not go to)",
    );
    // The op that waited for credit runs alone; the ops that were new fail.
    a.unwrap();
    let b = b.unwrap_err();
    assert_eq!(b.kind(), io::ErrorKind::InvalidInput, "{b}");
    assert_eq!(b.to_string(), "a started or polled op cannot be linked");
    let refused = refused.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "{refused}");
    assert!(refused.to_string().contains("no room"), "{refused}");
    assert!(empty.is_empty());
    assert_eq!(errno(&never), Some(libc::ECANCELED), "{never:?}");
    // The victim completed once, with its own data.
    assert_eq!(victim_n.unwrap(), CANARY_LEN);
    assert!(victim_buf.bytes.iter().all(|&b| b == 7));
    drop(victim_buf);
    // Only the NOP and the victim completed in the kernel (plus the held
    // reads): nothing was submitted twice.
    assert_eq!(p.stats().completed, completed + 4 + 2, "{:?}", p.stats());
    // Nothing is left reading: the bytes written now stay in the pipe.
    drop(relinked);
    write_all(&w1, &[8u8; CANARY_LEN]);
    p.park(Some(Duration::from_millis(5)));
    let start = Instant::now();
    drop(p);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    graves_untouched();
    let (n, buf) = LocalProactor::new(ProactorConfig::new(4))
        .unwrap()
        .read(&r2, vec![0u8; 8], CURRENT_POSITION)
        .wait();
    assert_eq!(
        (n.unwrap(), &buf[..4]),
        (4, &b"cdef"[..]),
        "the new read took nothing"
    );
    drop((w1, w2));
}

/// The same attack on the Proactor.
#[test]
fn a_chain_relinked_while_it_waits_for_credit_submits_no_op_twice_and_no_refused_op() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(16).max_in_flight(6)).unwrap();
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let (r1, r2) = (Arc::new(r1), Arc::new(r2));
    let mut victim = p.read(&r1, Canary::new(), CURRENT_POSITION);
    assert!(poll_once(&mut victim).is_pending());
    let mut held: Vec<_> = (0..4)
        .map(|_| p.read(&r2, vec![0u8; 1], CURRENT_POSITION))
        .collect();
    for h in &mut held {
        assert!(poll_once(h).is_pending());
    }
    eventually("five reads in the ring", || p.stats().max_in_ring >= 6);
    let mut waiting = p.nop().link(p.nop());
    assert!(poll_once(&mut waiting).is_pending());
    let relinked = waiting
        .link(victim)
        .link(p.read(&r2, Vec::new(), CURRENT_POSITION))
        .link(p.read(&r2, vec![0u8; 4], CURRENT_POSITION));
    write_all(&w2, b"abcd");
    for h in held {
        assert_eq!(h.wait().0.unwrap(), 1);
    }
    let completed = p.stats().completed;
    write_all(&w1, &[7u8; CANARY_LEN]);
    write_all(&w2, b"cdef");
    let ((((a, b), (victim_n, victim_buf)), (refused, empty)), (never, _)) = within(
        Duration::from_secs(3),
        "the re-linked chain (its victim submitted twice waits on the copy the data did not go to)",
        move || relinked.wait(),
    );
    a.unwrap();
    let b = b.unwrap_err();
    assert_eq!(b.kind(), io::ErrorKind::InvalidInput, "{b}");
    assert_eq!(b.to_string(), "a started or polled op cannot be linked");
    let refused = refused.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "{refused}");
    assert!(refused.to_string().contains("no room"), "{refused}");
    assert!(empty.is_empty());
    assert_eq!(errno(&never), Some(libc::ECANCELED), "{never:?}");
    assert_eq!(victim_n.unwrap(), CANARY_LEN);
    assert!(victim_buf.bytes.iter().all(|&b| b == 7));
    drop(victim_buf);
    eventually("the NOP counted", || p.stats().completed >= completed + 2);
    write_all(&w1, &[8u8; CANARY_LEN]);
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(p)
    });
    graves_untouched();
    assert_eq!(
        p2_read(&r2, 8),
        b"cdef",
        "the new read linked after the chain took nothing"
    );
    drop((w1, w2));
}

/// What a fresh Proactor reads from `fd` (at most `n` bytes).
fn p2_read(fd: &Arc<OwnedFd>, n: usize) -> Vec<u8> {
    let p = Proactor::new(ProactorConfig::new(4)).unwrap();
    let (got, mut buf) = p.read(fd, vec![0u8; n], CURRENT_POSITION).wait();
    buf.truncate(got.unwrap());
    buf
}

/// A chain waiting for credit linked again with an op in the kernel after
/// it, the new chain longer than the budget: that error must not fail the
/// op in the kernel (it would hand back a buffer the kernel still reads
/// into, and a write to the pipe would then land in it).
#[test]
fn local_a_chain_relinked_past_the_budget_hands_back_no_buffer_the_kernel_still_uses() {
    let _serial = serial();
    let p = LocalProactor::new(ProactorConfig::new(16).max_in_flight(2)).unwrap();
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let (r1, r2) = (Arc::new(r1), Arc::new(r2));
    let mut victim = p.read(&r1, Canary::new(), CURRENT_POSITION);
    assert!(poll_once(&mut victim).is_pending());
    let mut held = p.read(&r2, vec![0u8; 1], CURRENT_POSITION);
    assert!(poll_once(&mut held).is_pending());
    p.drive();
    let mut waiting = p.nop();
    assert!(poll_once(&mut waiting).is_pending());
    // Three ops, the budget two.
    let mut relinked = waiting.link(victim).link(p.nop());
    assert!(
        poll_once(&mut relinked).is_pending(),
        "the victim is still in the kernel"
    );
    write_all(&w2, b"x");
    let (n, _) = drive_until(&p, &mut held, Duration::from_secs(10), "the held read");
    assert_eq!(n.unwrap(), 1);
    write_all(&w1, &[7u8; CANARY_LEN]);
    let ((nop, (n, buf)), after) =
        drive_until(&p, &mut relinked, Duration::from_secs(10), "the chain");
    nop.unwrap();
    assert_eq!(n.unwrap(), CANARY_LEN, "the victim completes with its data");
    assert!(buf.bytes.iter().all(|&b| b == 7));
    assert_eq!(after.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    drop((buf, relinked));
    write_all(&w1, &[8u8; CANARY_LEN]);
    p.park(Some(Duration::from_millis(5)));
    drop(p);
    graves_untouched();
}

/// The same on the Proactor.
#[test]
fn a_chain_relinked_past_the_budget_hands_back_no_buffer_the_kernel_still_uses() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(16).max_in_flight(2)).unwrap();
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let (r1, r2) = (Arc::new(r1), Arc::new(r2));
    let mut victim = p.read(&r1, Canary::new(), CURRENT_POSITION);
    assert!(poll_once(&mut victim).is_pending());
    let mut held = p.read(&r2, vec![0u8; 1], CURRENT_POSITION);
    assert!(poll_once(&mut held).is_pending());
    let mut waiting = p.nop();
    assert!(poll_once(&mut waiting).is_pending());
    let mut relinked = waiting.link(victim).link(p.nop());
    assert!(
        poll_once(&mut relinked).is_pending(),
        "the victim is still in the kernel"
    );
    write_all(&w2, b"x");
    assert_eq!(held.wait().0.unwrap(), 1);
    write_all(&w1, &[7u8; CANARY_LEN]);
    let ((nop, (n, buf)), after) = within(Duration::from_secs(10), "the chain", move || {
        relinked.wait()
    });
    nop.unwrap();
    assert_eq!(n.unwrap(), CANARY_LEN, "the victim completes with its data");
    assert!(buf.bytes.iter().all(|&b| b == 7));
    assert_eq!(after.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    drop(buf);
    write_all(&w1, &[8u8; CANARY_LEN]);
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(p)
    });
    graves_untouched();
}
