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

mod adversary;

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use adversary::*;
use common::pipe;
use ring_io_proactor::fs::{File, OpenOptions};
use ring_io_proactor::net::{TcpStream as RtTcpStream, UnixStream as RtUnixStream};
use ring_io_proactor::{
    CURRENT_POSITION, IoBuf, IoBufMut, LocalProactor, Proactor, ProactorConfig, ProactorStats,
    Runtime,
};

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

fn errno(res: &io::Result<impl Sized>) -> Option<i32> {
    res.as_ref().err().and_then(io::Error::raw_os_error)
}

// ---------------------------------------------------------------------------
// Buffers that show a write after they were handed back.

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

// ---------------------------------------------------------------------------
// Chains at the edges of the SQ, the CQ and the budget.

/// Many NOPs and chains pushed in one pass into a 2-entry SQ with a 4-entry
/// CQ: each push into the full SQ submits, completions pile up past the CQ
/// (the kernel's backlog), and every chain still goes in whole: a chain
/// whose head fails cancels its NOP, whatever the SQ held.
#[test]
fn local_chains_pushed_into_a_full_sq_and_cq_go_in_whole_and_nothing_hangs() {
    let _serial = serial();
    let dog = Watchdog::new("chains into a full SQ and CQ");
    let p = LocalProactor::new(ProactorConfig::new(2)).unwrap();
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let mut nops: Vec<_> = (0..24).map(|_| p.nop()).collect();
    // A write to a pipe's read end fails (EBADF): the NOP after it must be
    // cancelled, never run alone.
    let mut chains: Vec<_> = (0..8)
        .map(|_| p.write(&r, b"x".to_vec(), CURRENT_POSITION).link(p.nop()))
        .collect();
    let mut ok = Vec::new();
    for (i, nop) in nops.iter_mut().enumerate() {
        assert!(poll_once(nop).is_pending());
        if i % 3 == 0 {
            let chain = &mut chains[i / 3];
            assert!(poll_once(chain).is_pending());
            let mut good = p.nop().link(p.nop());
            assert!(poll_once(&mut good).is_pending());
            ok.push(good);
        }
        dog.step();
    }
    for mut chain in chains {
        let ((w, _), n) = drive_until(&p, &mut chain, Duration::from_secs(10), "a chain");
        assert_eq!(errno(&w), Some(libc::EBADF));
        assert_eq!(errno(&n), Some(libc::ECANCELED), "the chain was cut: {n:?}");
        dog.step();
    }
    for mut nop in nops {
        drive_until(&p, &mut nop, Duration::from_secs(10), "a NOP").unwrap();
        dog.step();
    }
    for mut chain in ok {
        let (a, b) = drive_until(&p, &mut chain, Duration::from_secs(10), "a chain of NOPs");
        a.and(b).unwrap();
        dog.step();
    }
    let stats = p.stats();
    assert_eq!(
        (stats.cq_overflow, stats.unexpected_cqes),
        (0, 0),
        "{stats:?}"
    );
    // A chain longer than the SQ is refused, clearly, and submits nothing.
    let ((a, b), (c, d)) = drive_until(
        &p,
        &mut p.nop().link(p.nop()).link(p.nop().link(p.nop())),
        Duration::from_secs(10),
        "a chain of four",
    );
    for e in [a, b, c, d] {
        let e = e.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            "a linked chain longer than the Proactor's budget or SQ"
        );
    }
    let (a, b) = p.nop().link(p.nop()).wait();
    a.and(b).unwrap();
}

/// Link timeouts of zero and of `Duration::MAX`, two in a row, at the head
/// of a chain and alone: every op completes once, with the kernel's answer,
/// and a chain bounded by an endless timeout ends when its op does.
#[test]
fn link_timeouts_at_their_limits_complete_every_op_once() {
    let _serial = serial();
    let dog = Watchdog::new("link timeouts at their limits");
    let p = LocalProactor::new(ProactorConfig::new(16)).unwrap();
    let q = Proactor::new(ProactorConfig::new(16)).unwrap();
    let (r, w) = pipe();
    let r = Arc::new(r);
    // Zero: the read is cancelled at once, its buffer back untouched.
    let ((n, buf), t) = p
        .read(&r, Canary::new(), CURRENT_POSITION)
        .link(p.link_timeout(Duration::ZERO))
        .wait();
    assert_eq!(
        (errno(&n), errno(&t)),
        (Some(libc::ECANCELED), Some(libc::ETIME))
    );
    assert!(buf.bytes.iter().all(|&b| b == 0));
    let ((n, _), t) = q
        .read(&r, Canary::new(), CURRENT_POSITION)
        .link(q.link_timeout(Duration::ZERO))
        .wait();
    assert_eq!(
        (errno(&n), errno(&t)),
        (Some(libc::ECANCELED), Some(libc::ETIME))
    );
    dog.step();
    // MAX: clamped, never ends first; the read ends it.
    let mut bounded = p
        .read(&r, vec![0u8; 4], CURRENT_POSITION)
        .link(p.link_timeout(Duration::MAX));
    assert!(poll_once(&mut bounded).is_pending());
    p.park(Some(Duration::from_millis(5)));
    assert!(
        poll_once(&mut bounded).is_pending(),
        "an endless timeout ended"
    );
    write_all(&w, b"1234");
    let ((n, buf), t) = drive_until(&p, &mut bounded, Duration::from_secs(10), "the read");
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"1234"[..]));
    assert_eq!(errno(&t), Some(libc::ECANCELED));
    let bounded = q
        .read(&r, vec![0u8; 4], CURRENT_POSITION)
        .link(q.link_timeout(Duration::MAX));
    write_all(&w, b"5678");
    let ((n, buf), t) = within(Duration::from_secs(5), "the read", move || bounded.wait());
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"5678"[..]));
    assert_eq!(errno(&t), Some(libc::ECANCELED));
    dog.step();
    // An endless chain dropped: cancelled, its buffer kept until the end.
    let mut dropped = p
        .read(&r, Canary::new(), CURRENT_POSITION)
        .link(p.link_timeout(Duration::MAX));
    assert!(poll_once(&mut dropped).is_pending());
    p.drive();
    let freed = p.stats().orphans_freed;
    drop(dropped);
    park_until(&p, "the dropped chain's CQEs", || {
        p.stats().orphans_freed >= freed + 2
    });
    let mut dropped = q
        .read(&r, Canary::new(), CURRENT_POSITION)
        .link(q.link_timeout(Duration::MAX));
    assert!(poll_once(&mut dropped).is_pending());
    let freed = q.stats().orphans_freed;
    drop(dropped);
    eventually("the dropped chain's CQEs", || {
        q.stats().orphans_freed >= freed + 2
    });
    write_all(&w, &[9u8; CANARY_LEN]);
    dog.step();
    // Two in a row, a timeout at the head, one alone: whatever the kernel
    // answers, each op completes once and nothing is left in flight.
    let ((nop, t1), t2) = p
        .nop()
        .link(p.link_timeout(Duration::from_secs(60)))
        .link(p.link_timeout(Duration::from_secs(60)))
        .wait();
    assert!(
        nop.is_ok() || errno(&nop) == Some(libc::ECANCELED),
        "{nop:?}"
    );
    assert!(t1.is_err() && t2.is_err(), "{t1:?} {t2:?}");
    let ((nop, t1), t2) = q
        .nop()
        .link(q.link_timeout(Duration::from_secs(60)))
        .link(q.link_timeout(Duration::from_secs(60)))
        .wait();
    assert!(
        nop.is_ok() || errno(&nop) == Some(libc::ECANCELED),
        "{nop:?}"
    );
    assert!(t1.is_err() && t2.is_err(), "{t1:?} {t2:?}");
    let (t, nop) = p.link_timeout(Duration::ZERO).link(p.nop()).wait();
    assert_eq!(errno(&t), Some(libc::EINVAL), "{t:?}");
    assert!(nop.is_err(), "{nop:?}");
    let (t, nop) = q.link_timeout(Duration::MAX).link(q.nop()).wait();
    assert_eq!(errno(&t), Some(libc::EINVAL), "{t:?}");
    assert!(nop.is_err(), "{nop:?}");
    assert_eq!(
        errno(&q.link_timeout(Duration::MAX).wait()),
        Some(libc::EINVAL)
    );
    dog.step();
    // Nothing is left reading the pipe, and both still run.
    p.nop().wait().unwrap();
    q.nop().wait().unwrap();
    let (n, buf) = p.read(&r, vec![0u8; 128], CURRENT_POSITION).wait();
    assert_eq!(&buf[..n.unwrap()], &[9u8; CANARY_LEN][..]);
    let start = Instant::now();
    drop(p);
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(q)
    });
    assert!(start.elapsed() < Duration::from_secs(3));
    graves_untouched();
}

// ---------------------------------------------------------------------------
// Chains dropped at every point.

/// Chains of `read -> read -> link_timeout`, and chains that make fds
/// (open, accept), dropped at every point: never polled, in the SQ, in the
/// kernel, after the kernel completed the first op, after it completed all
/// of them (never taken), after the Link took its first op's output, and
/// while waiting for credit; then the handle dropped with a chain in
/// flight, the last chain ending the LocalProactor. No buffer is written
/// after it was let go, no fd is left open, the drop is quick. (Each chain
/// reads its own pipe: a dropped read whose cancellation has not reached
/// the kernel yet may take what is written next, as documented.)
#[test]
fn local_chains_dropped_at_every_point_leak_no_fd_and_free_no_buffer_early() {
    let _serial = serial();
    let dog = Watchdog::new("local chains dropped at every point");
    let before = fds().len();
    let p = LocalProactor::new(ProactorConfig::new(16).max_in_flight(1024)).unwrap();
    let tight = LocalProactor::new(ProactorConfig::new(16).max_in_flight(4)).unwrap();
    let mut listeners = Vec::new();
    let read_only = OpenOptions::new().read(true).clone();
    let mut clients = Vec::new();
    let mut pipes = Vec::new();
    let mut chain = |p: &LocalProactor| {
        let (r, w) = pipe();
        let r = Arc::new(r);
        let c = p
            .read(&r, Canary::new(), CURRENT_POSITION)
            .link(p.read(&r, Canary::new(), CURRENT_POSITION))
            .link(p.link_timeout(Duration::from_secs(60)));
        pipes.push(w.try_clone().unwrap());
        (c, w)
    };
    for i in 0..20 {
        // Never polled.
        drop(chain(&p));
        // In the SQ.
        let (mut c, _w) = chain(&p);
        assert!(poll_once(&mut c).is_pending());
        drop(c);
        // In the kernel.
        let (mut c, _w) = chain(&p);
        assert!(poll_once(&mut c).is_pending());
        p.drive();
        drop(c);
        // The first op completed (a full read: the chain goes on).
        let (mut c, w) = chain(&p);
        assert!(poll_once(&mut c).is_pending());
        p.drive();
        let done = p.stats().completed;
        write_all(&w, &[1u8; CANARY_LEN]);
        park_until(&p, "the first read", || p.stats().completed > done);
        if i % 2 == 0 {
            // The Link takes the first output (its buffer) and holds it.
            assert!(poll_once(&mut c).is_pending());
        }
        drop(c);
        // All completed, never taken.
        let (mut c, w) = chain(&p);
        assert!(poll_once(&mut c).is_pending());
        p.drive();
        let done = p.stats().completed;
        write_all(&w, &[2u8; 2 * CANARY_LEN]);
        park_until(&p, "the whole chain", || p.stats().completed >= done + 3);
        drop(c);
        // Ops that make fds: completed, never taken.
        let mut c = p.open("/dev/null", &read_only).link(p.nop());
        assert!(poll_once(&mut c).is_pending());
        let done = p.stats().completed;
        park_until(&p, "the open", || p.stats().completed >= done + 2);
        drop(c);
        // (A listener each time: a dropped accept whose cancellation is
        // still on its way may take the next connection, as documented.)
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        listeners.push(listener.clone());
        let mut c = p.accept(&listener).link(p.nop());
        assert!(poll_once(&mut c).is_pending());
        p.drive();
        clients.push(TcpStream::connect(addr).unwrap());
        if i % 2 == 0 {
            let done = p.stats().completed;
            park_until(&p, "the accept", || p.stats().completed >= done + 2);
        }
        drop(c);
        // Waiting for credit: the budget held by timeouts.
        if i % 5 == 0 {
            let mut full: Vec<_> = (0..2)
                .map(|_| tight.timeout(Duration::from_secs(60)))
                .collect();
            for t in &mut full {
                assert!(poll_once(t).is_pending());
            }
            let (mut c, _w) = chain(&tight);
            assert!(poll_once(&mut c).is_pending());
            tight.drive();
            assert!(poll_once(&mut c).is_pending());
            drop(c);
            drop(full);
        }
        dog.step();
    }
    // The handles go while a chain is in the kernel: the chain keeps the
    // LocalProactor, and its drop ends it (cancelling, waiting for the
    // CQEs).
    let (mut last, last_w) = chain(&p);
    assert!(poll_once(&mut last).is_pending());
    p.drive();
    drop(p);
    drop(tight);
    let start = Instant::now();
    drop(last);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    for w in &pipes {
        // A closed read end: EPIPE, nothing written anywhere.
        let _ = std::fs::File::from(w.try_clone().unwrap()).write_all(&[3u8; 4096]);
    }
    assert!(graves_untouched() >= 20 * 10);
    drop((clients, listeners, pipes, last_w));
    let after = fds().len();
    assert!(
        after <= before,
        "fds leaked: {before} before, {after} after: {}",
        fd_names()
    );
}

/// The bytes waiting in a pipe.
fn pipe_len(fd: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", io::Error::last_os_error());
    n as usize
}

/// What each open fd is (for a leak's message).
fn fd_names() -> String {
    fds()
        .iter()
        .map(|fd| {
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}"));
            format!(
                "{fd}: {}",
                link.map_or("?".into(), |l| l.display().to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The same on the Proactor, and its last clone dropped with a chain in
/// the kernel (each op then ends with `ECANCELED`) and with a chain waiting
/// for credit (each op fails with `NotConnected`).
#[test]
fn chains_dropped_at_every_point_leak_no_fd_and_free_no_buffer_early() {
    let _serial = serial();
    let before = fds().len();
    let p = Proactor::new(ProactorConfig::new(16).max_in_flight(1024)).unwrap();
    let mut listeners = Vec::new();
    let read_only = OpenOptions::new().read(true).clone();
    let mut clients = Vec::new();
    let mut pipes = Vec::new();
    let mut chain = |p: &Proactor| {
        let (r, w) = pipe();
        let r = Arc::new(r);
        let c = p
            .read(&r, Canary::new(), CURRENT_POSITION)
            .link(p.read(&r, Canary::new(), CURRENT_POSITION))
            .link(p.link_timeout(Duration::from_secs(60)));
        pipes.push(w.try_clone().unwrap());
        (c, w)
    };
    for i in 0..20 {
        drop(chain(&p));
        // Queued (or in the kernel already: the fallback thread drives).
        let (mut c, _w) = chain(&p);
        assert!(poll_once(&mut c).is_pending());
        drop(c);
        // The first op completed.
        let (mut c, w) = chain(&p);
        assert!(poll_once(&mut c).is_pending());
        let done = p.stats().completed;
        write_all(&w, &[1u8; CANARY_LEN]);
        eventually("the first read", || p.stats().completed > done);
        if i % 2 == 0 {
            assert!(poll_once(&mut c).is_pending());
        }
        drop(c);
        // All completed, never taken.
        let (mut c, w) = chain(&p);
        assert!(poll_once(&mut c).is_pending());
        let done = p.stats().completed;
        write_all(&w, &[2u8; 2 * CANARY_LEN]);
        eventually("the whole chain", || p.stats().completed >= done + 3);
        drop(c);
        // Ops that make fds (the fallback thread may complete them before
        // the first poll returns: then the Link holds the outputs).
        let done = p.stats().completed;
        let mut c = p.open("/dev/null", &read_only).link(p.nop());
        let _ = poll_once(&mut c);
        eventually("the open", || p.stats().completed >= done + 2);
        drop(c);
        // (A listener each time: a dropped accept whose cancellation is
        // still on its way may take the next connection, as documented.)
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        listeners.push(listener.clone());
        let mut c = p.accept(&listener).link(p.nop());
        assert!(poll_once(&mut c).is_pending());
        let done = p.stats().completed;
        clients.push(TcpStream::connect(addr).unwrap());
        if i % 2 == 0 {
            eventually("the accept", || p.stats().completed >= done + 2);
        }
        drop(c);
    }
    // The last clone dropped: a chain in the kernel is cancelled, a chain
    // waiting for credit fails clearly.
    let tight = Proactor::new(ProactorConfig::new(16).max_in_flight(5)).unwrap();
    let mut in_kernel = chain(&tight);
    assert!(poll_once(&mut in_kernel.0).is_pending());
    let mut timeout = tight.timeout(Duration::from_secs(60));
    assert!(poll_once(&mut timeout).is_pending());
    let mut waiting = chain(&tight);
    assert!(poll_once(&mut waiting.0).is_pending());
    eventually("the chain in the ring", || tight.stats().max_in_ring >= 4);
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(tight)
    });
    let (c, w) = in_kernel;
    drop(w);
    let (((a, _), (b, _)), t) = within(Duration::from_secs(3), "the cancelled chain", move || {
        c.wait()
    });
    for res in [a.map(drop), b.map(drop), t] {
        assert_eq!(errno(&res), Some(libc::ECANCELED), "{res:?}");
    }
    assert_eq!(errno(&timeout.wait()), Some(libc::ECANCELED));
    let (c, w) = waiting;
    drop(w);
    let (((a, _), (b, _)), t) = within(Duration::from_secs(3), "the waiting chain", move || {
        c.wait()
    });
    for e in [a.unwrap_err(), b.unwrap_err(), t.unwrap_err()] {
        assert_eq!(e.kind(), io::ErrorKind::NotConnected, "{e}");
        assert_eq!(e.to_string(), "the proactor has shut down");
    }
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(p)
    });
    for w in &pipes {
        let _ = std::fs::File::from(w.try_clone().unwrap()).write_all(&[3u8; 4096]);
    }
    assert!(graves_untouched() >= 20 * 8);
    drop((clients, listeners, pipes));
    let after = fds().len();
    assert!(
        after <= before,
        "fds leaked: {before} before, {after} after: {}",
        fd_names()
    );
}

// ---------------------------------------------------------------------------
// Wakers of chains that run hostile code.

thread_local! {
    /// What a local [`Hook`] waker runs when woken (once).
    static LOCAL_ACTION: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
}

/// A waker that counts its wake-ups and runs an action on the first one:
/// this thread's [`LOCAL_ACTION`] if `local`, else its own.
struct Hook {
    wakes: AtomicU32,
    local: bool,
    action: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Hook {
    fn new(local: bool, action: Option<Box<dyn FnOnce() + Send>>) -> Arc<Hook> {
        Arc::new(Hook {
            wakes: AtomicU32::new(0),
            local,
            action: Mutex::new(action),
        })
    }
    fn wakes(&self) -> u32 {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for Hook {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if self.local {
            if let Some(f) = LOCAL_ACTION.with(|a| a.borrow_mut().take()) {
                f();
            }
        } else if let Some(f) = self.action.lock().unwrap().take() {
            f();
        }
    }
}

/// A LocalProactor chain's waker that drops the chain when its first op
/// completes (the second in the kernel), one that panics, and one that
/// starts a new chain: the dropped chain's buffers wait for their CQEs,
/// the panic ends only the wake-up, the new chain runs.
#[test]
fn local_chain_wakers_that_drop_the_chain_panic_or_start_chains_break_nothing() {
    let _serial = serial();
    let dog = Watchdog::new("local chain wakers");
    let p = Rc::new(LocalProactor::new(ProactorConfig::new(16)).unwrap());
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let (r1, r2) = (Arc::new(r1), Arc::new(r2));
    // 1. Dropped by its own waker, mid-chain.
    let hook = Hook::new(true, None);
    let waker = Waker::from(hook.clone());
    let chain = Rc::new(RefCell::new(Some(
        p.read(&r1, Canary::new(), CURRENT_POSITION).link(p.read(
            &r2,
            Canary::new(),
            CURRENT_POSITION,
        )),
    )));
    assert!(poll_with(chain.borrow_mut().as_mut().unwrap(), &waker).is_pending());
    let victim = chain.clone();
    LOCAL_ACTION.with(|a| {
        *a.borrow_mut() = Some(Box::new(move || drop(victim.borrow_mut().take())));
    });
    p.drive();
    let freed = p.stats().orphans_freed;
    write_all(&w1, &[1u8; CANARY_LEN]);
    park_until(&p, "the waker's drop", || chain.borrow().is_none());
    park_until(&p, "the second read's CQE", || {
        p.stats().orphans_freed > freed
    });
    write_all(&w2, &[2u8; CANARY_LEN]);
    p.park(Some(Duration::from_millis(2)));
    graves_untouched();
    // The second read took nothing: the bytes are still there.
    let (n, buf) = p.read(&r2, vec![0u8; 128], CURRENT_POSITION).wait();
    assert_eq!(&buf[..n.unwrap()], &[2u8; CANARY_LEN][..]);
    dog.step();
    // 2. A waker that panics: the turn goes on, the chain completes when
    // polled, another task's op completes too.
    let hook = Hook::new(true, None);
    let waker = Waker::from(hook.clone());
    let mut chain = p.read(&r1, vec![0u8; 4], CURRENT_POSITION).link(p.nop());
    assert!(poll_with(&mut chain, &waker).is_pending());
    let mut other = p.read(&r2, vec![0u8; 4], CURRENT_POSITION);
    assert!(poll_once(&mut other).is_pending());
    LOCAL_ACTION.with(|a| *a.borrow_mut() = Some(Box::new(|| panic!("a chain's waker panics"))));
    write_all(&w1, b"abcd");
    write_all(&w2, b"efgh");
    park_until(&p, "the panicking wake-up", || hook.wakes() > 0);
    let ((n, buf), nop) = drive_until(&p, &mut chain, Duration::from_secs(10), "the chain");
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"abcd"[..]));
    nop.unwrap();
    let (n, buf) = drive_until(&p, &mut other, Duration::from_secs(10), "the other op");
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"efgh"[..]));
    dog.step();
    // 3. A waker that starts a chain on the same LocalProactor (inside the
    // turn that woke it) and leaves it for later.
    let started = Rc::new(RefCell::new(None));
    let (q, s) = (p.clone(), started.clone());
    LOCAL_ACTION.with(|a| {
        *a.borrow_mut() = Some(Box::new(move || {
            let mut c = q.nop().link(q.nop());
            assert!(poll_once(&mut c).is_pending());
            *s.borrow_mut() = Some(c);
        }))
    });
    let hook = Hook::new(true, None);
    let waker = Waker::from(hook.clone());
    let mut chain = p.nop().link(p.nop());
    assert!(poll_with(&mut chain, &waker).is_pending());
    park_until(&p, "the waker", || started.borrow().is_some());
    let (a, b) = drive_until(&p, &mut chain, Duration::from_secs(10), "the chain");
    a.and(b).unwrap();
    let mut inner = started.borrow_mut().take().unwrap();
    let (a, b) = drive_until(
        &p,
        &mut inner,
        Duration::from_secs(10),
        "the chain its waker started",
    );
    a.and(b).unwrap();
    let stats = p.stats();
    assert_eq!(
        (stats.unexpected_cqes, stats.cq_overflow),
        (0, 0),
        "{stats:?}"
    );
    drop((w1, w2));
}

/// A Proactor chain's waker that drops the Proactor's last clone (on the
/// thread that drives), and one that panics.
#[test]
fn chain_wakers_that_drop_the_proactor_or_panic_break_nothing() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(16)).unwrap();
    let (r, w) = pipe();
    let r = Arc::new(r);
    // A waker that panics, and another task's op.
    let hook = Hook::new(false, Some(Box::new(|| panic!("a chain's waker panics"))));
    let waker = Waker::from(hook.clone());
    let mut chain = p.read(&r, vec![0u8; 4], CURRENT_POSITION).link(p.nop());
    assert!(poll_with(&mut chain, &waker).is_pending());
    write_all(&w, b"abcd");
    eventually("the panicking wake-up", || hook.wakes() > 0);
    // (The Proactor's thread runs the waker, panic hook included, before
    // it hands the ring to a caller: under AddressSanitizer with
    // RUST_BACKTRACE set, the hook's backtrace takes seconds.)
    let other = p.nop();
    within(Duration::from_secs(60), "another op", move || other.wait()).unwrap();
    let ((n, buf), nop) = within(Duration::from_secs(60), "the chain", move || chain.wait());
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"abcd"[..]));
    nop.unwrap();
    // A waker that drops the last clone of the Proactor.
    let last = Arc::new(Mutex::new(Some(p)));
    let take = last.clone();
    let hook = Hook::new(
        false,
        Some(Box::new(move || drop(take.lock().unwrap().take()))),
    );
    let waker = Waker::from(hook.clone());
    let mut chain = {
        let guard = last.lock().unwrap();
        let p = guard.as_ref().unwrap();
        p.read(&r, vec![0u8; 4], CURRENT_POSITION).link(p.nop())
    };
    assert!(poll_with(&mut chain, &waker).is_pending());
    write_all(&w, b"efgh");
    eventually("the Proactor dropped by the waker", || {
        last.lock().unwrap().is_none()
    });
    let ((n, buf), nop) = within(Duration::from_secs(60), "the chain", move || chain.wait());
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"efgh"[..]));
    nop.unwrap();
}

// ---------------------------------------------------------------------------
// Fixed buffers.

/// A file in the temp dir, open for reading and writing, its name removed.
fn temp_file(name: &str) -> Arc<std::fs::File> {
    let path = std::env::temp_dir().join(format!("ring-attack-{}-{name}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    Arc::new(file)
}

/// Configs at the limits: errors (never a panic or an abort), each saying
/// what is wrong; what no kernel registers is refused before a byte is
/// allocated (a 2 GiB buffer was zeroed, twice, before the kernel's bare
/// `EFAULT`).
#[test]
fn fixed_buffer_configs_at_their_limits_are_clear_errors() {
    let _serial = serial();
    let before = fds().len();
    for (count, size) in [
        (0, 4096),
        (1, 0),
        (1, (1 << 30) + 1),
        (1, u32::MAX as usize + 1),
        (u16::MAX, usize::MAX),
        (u16::MAX, 4096),
        (16385, 1),
        (2, 1 << 31),
    ] {
        let config = ProactorConfig::new(8).fixed_buffers(count, size);
        let start = Instant::now();
        for e in [
            LocalProactor::new(config.clone()).map(drop),
            Proactor::new(config).map(drop),
        ] {
            let e = io::Error::from(e.expect_err("refused"));
            assert_eq!(
                e.kind(),
                io::ErrorKind::InvalidInput,
                "{count} x {size}: {e:?}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains("fixed buffers") && msg.contains("1 GiB"),
                "{count} x {size}: {msg}"
            );
            assert!(!msg.contains("map the ring"), "{count} x {size}: {msg}");
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{count} x {size}: refused only after {:?}",
            start.elapsed()
        );
    }
    // The largest count and size the kernel takes are still accepted (or
    // refused by the kernel: RLIMIT_MEMLOCK, or 1024 buffers before 5.13).
    for (count, size) in [(16384, 1), (1, 1 << 20)] {
        let config = ProactorConfig::new(8).fixed_buffers(count, size);
        if let Err(e) = LocalProactor::new(config) {
            let e = io::Error::from(e);
            assert!(e.raw_os_error().is_some(), "{count} x {size}: {e:?}");
        }
    }
    assert_eq!(fds().len(), before, "a refused setup left fds open");
}

/// Fixed buffers attacked on both runtimes: used after their runtime is
/// gone, on a runtime of the other kind, sliced out of range, at offsets
/// past `i64::MAX`, empty, and dropped in flight (alone and in chains).
#[test]
fn fixed_buffers_survive_hostile_use_on_both_runtimes() {
    let _serial = serial();
    let dog = Watchdog::new("fixed buffers");
    let file = temp_file("fixed");
    let local = LocalProactor::new(ProactorConfig::new(16).fixed_buffers(4, 4096)).unwrap();
    let shared = Proactor::new(ProactorConfig::new(16).fixed_buffers(4, 4096)).unwrap();
    // Out of range slices: a clear panic, and the buffer goes back.
    for (lo, hi) in [(0, 4097), (5, 3), (4096, usize::MAX)] {
        let buf = local.fixed_buffer().unwrap();
        let panic = std::panic::catch_unwind(AssertUnwindSafe(move || {
            let _ = buf.slice(lo..hi);
        }))
        .expect_err("an out of range slice panics");
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("slice"), "{lo}..{hi}: {msg}");
    }
    let all: Vec<_> = std::iter::from_fn(|| local.fixed_buffer()).collect();
    assert_eq!(all.len(), 4, "a panicking slice kept its buffer");
    drop(all);
    // The other kind's buffer: refused, handed back whole.
    let mut theirs = shared.fixed_buffer().unwrap();
    theirs.extend_from_slice(b"shared's");
    let (res, theirs) = local.write_fixed(&file, theirs, 0).wait();
    let e = res.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("another"), "{e}");
    let (res, mut mine) = shared
        .read_fixed(&file, local.fixed_buffer().unwrap(), 0)
        .wait();
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    // As plain buffers, any runtime takes them (a slice too).
    mine.extend_from_slice(b"0123456789");
    let (n, mine) = shared.write(&file, mine.slice(2..6), 0).wait();
    assert_eq!(n.unwrap(), 4);
    let (n, theirs) = local.read(&file, theirs.slice(1..3), 0).wait();
    assert_eq!(n.unwrap(), 2);
    let theirs = theirs.into_inner();
    assert_eq!(&theirs[..], b"s23red's");
    dog.step();
    // Offsets: past i64::MAX (not the current position) the kernel says
    // EINVAL; the buffer comes back untouched. An empty write is Ok(0).
    let mine = mine.into_inner();
    for (name, res, buf) in [
        (
            "local read",
            local.read_fixed(&file, mine, u64::MAX - 1).wait(),
        ),
        (
            "shared write",
            shared.write_fixed(&file, theirs, u64::MAX - 1).wait(),
        ),
    ]
    .map(|(name, (res, buf))| (name, res, buf))
    {
        assert_eq!(errno(&res), Some(libc::EINVAL), "{name}: {res:?}");
        assert!(!buf.is_empty(), "{name}: handed back as it was");
        drop(buf);
    }
    let (n, empty) = local
        .write_fixed(&file, local.fixed_buffer().unwrap(), 0)
        .wait();
    assert_eq!((n.unwrap(), empty.len()), (0, 0));
    drop(empty);
    assert_eq!(
        file.metadata().unwrap().len(),
        4,
        "nothing else was written"
    );
    dog.step();
    // Dropped in flight, alone and as the second op of a chain: each
    // buffer stays out of the pool until its CQE, and the kernel writes
    // none after it is back.
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut alone = local.read_fixed(&r, local.fixed_buffer().unwrap(), CURRENT_POSITION);
    assert!(poll_once(&mut alone).is_pending());
    let mut chain =
        local
            .nop()
            .link(local.read_fixed(&r, local.fixed_buffer().unwrap(), CURRENT_POSITION));
    assert!(poll_once(&mut chain).is_pending());
    local.drive();
    let freed = local.stats().orphans_freed;
    drop(alone);
    drop(chain);
    let free = |p: &LocalProactor| {
        std::iter::from_fn(|| p.fixed_buffer())
            .collect::<Vec<_>>()
            .len()
    };
    assert!(free(&local) <= 2, "a buffer came back before its CQE");
    park_until(&local, "the dropped reads' CQEs", || {
        local.stats().orphans_freed >= freed + 2
    });
    assert_eq!(free(&local), 4);
    write_all(&w, &[0xEE; 4096]);
    local.park(Some(Duration::from_millis(2)));
    let bufs: Vec<_> = std::iter::from_fn(|| local.fixed_buffer()).collect();
    for mut b in bufs {
        // SAFETY: the pool's memory is initialized (zeroed at setup).
        unsafe { b.set_init(b.capacity()) };
        assert!(
            !b.contains(&0xEE),
            "the kernel wrote buffer {} after it came back",
            b.index()
        );
    }
    dog.step();
    assert_eq!(pipe_len(&r), 4096, "a dropped read took bytes");
    // The same on the Proactor, and with the Proactor dropped meanwhile:
    // the buffers outlive it.
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut alone = shared.read_fixed(&r, shared.fixed_buffer().unwrap(), CURRENT_POSITION);
    assert!(poll_once(&mut alone).is_pending());
    let mut kept = shared.fixed_buffer().unwrap();
    eventually("the read in the ring", || shared.stats().max_in_ring >= 2);
    let freed = shared.stats().orphans_freed;
    drop(alone);
    eventually("the dropped read's CQE", || {
        shared.stats().orphans_freed > freed
    });
    write_all(&w, &[0xDD; 4096]);
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(shared)
    });
    // SAFETY: as above.
    unsafe { kept.set_init(kept.capacity()) };
    assert!(!kept.contains(&0xDD));
    assert_eq!(pipe_len(&r), 4096, "the dropped read took bytes");
    // Still a buffer, for any runtime's plain ops.
    kept.clear();
    let (n, kept) = local.read(&r, kept, CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 4096);
    assert!(kept.iter().all(|&b| b == 0xDD));
    drop((w, local));
}

// ---------------------------------------------------------------------------
// The LocalProactor's multishot receive.

/// Sizes at their limits, one-byte buffers that run dry all the time, and
/// streams dropped at every point (by their own waker too, and after their
/// LocalProactor's handle): clear errors, no byte lost or reordered by a
/// live stream, no fd left open (a stream's buffer ring holds a duplicate
/// of the ring's fd where it has one).
#[test]
fn local_recv_multi_at_its_limits_and_dropped_everywhere() {
    let test = "local_recv_multi_at_its_limits_and_dropped_everywhere";
    let _serial = serial();
    if !common::kernel().at_least(6, 0) {
        skip!(test, "multishot recv needs Linux 6.0");
    }
    let dog = Watchdog::new("local recv_multi");
    let before = fds().len();
    let p = Rc::new(LocalProactor::new(ProactorConfig::new(16)).unwrap());
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let b = Arc::new(b);
    // Sizes: refused clearly, at once.
    for (count, len, what) in [
        (0, 64, "at least one"),
        (3, 64, "power of two"),
        (u16::MAX, 64, "power of two"),
        (4, 0, "empty"),
    ] {
        let mut stream = p.recv_multi(&b, count, len);
        match stream.wait_next() {
            Some(Err(e)) => {
                assert_eq!(
                    e.kind(),
                    io::ErrorKind::InvalidInput,
                    "{count} x {len}: {e}"
                );
                assert!(e.to_string().contains(what), "{count} x {len}: {e}");
            }
            other => panic!("{count} x {len}: {other:?}"),
        }
        assert!(stream.wait_next().is_none(), "ended after its error");
    }
    // More buffer memory than the address space holds: the mapping fails
    // (ENOMEM), at once. (A ring of a few 4 GiB buffers is mapped and
    // populated whole: seconds, and that much memory.)
    let mut huge = p.recv_multi(&b, 1 << 15, u32::MAX);
    let start = Instant::now();
    match huge.wait_next() {
        Some(Err(e)) => assert!(e.raw_os_error().is_some(), "{e:?}"),
        other => panic!("32768 x 4 GiB: {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    drop(huge);
    dog.step();
    // One-byte buffers, two of them: the ring runs dry at every byte, the
    // stream re-arms; every byte comes, in order.
    let data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let mut stream = p.recv_multi(&b, 2, 1);
    let writer = {
        let (a, data) = (a.try_clone().unwrap(), data.clone());
        thread::spawn(move || (&a).write_all(&data).unwrap())
    };
    let mut got = Vec::new();
    while got.len() < data.len() {
        let chunk = stream.wait_next().expect("not ended").unwrap();
        assert_eq!(chunk.len(), 1);
        got.extend_from_slice(&chunk);
        if got.len() % 500 == 0 {
            dog.step();
        }
    }
    writer.join().unwrap();
    assert!(got == data, "bytes lost or reordered");
    drop(stream);
    dog.step();
    // Dropped: never polled, in the SQ, in the kernel, with chunks queued.
    drop(p.recv_multi(&b, 4, 64));
    let mut s = p.recv_multi(&b, 4, 64);
    assert!(poll_once(&mut s.next_item()).is_pending());
    drop(s);
    let mut s = p.recv_multi(&b, 4, 64);
    assert!(poll_once(&mut s.next_item()).is_pending());
    p.drive();
    drop(s);
    let mut s = p.recv_multi(&b, 4, 64);
    assert!(poll_once(&mut s.next_item()).is_pending());
    p.drive();
    let done = p.stats().completed;
    for _ in 0..3 {
        (&a).write_all(b"queued").unwrap();
        thread::sleep(Duration::from_millis(1));
        p.drive();
    }
    park_until(&p, "chunks queued", || p.stats().completed > done);
    drop(s);
    dog.step();
    // Dropped by its own waker when its first chunk comes.
    let s = Rc::new(RefCell::new(Some(p.recv_multi(&b, 4, 64))));
    let hook = Hook::new(true, None);
    let waker = Waker::from(hook.clone());
    {
        let mut guard = s.borrow_mut();
        let stream = guard.as_mut().unwrap();
        assert!(poll_with(&mut stream.next_item(), &waker).is_pending());
    }
    let victim = s.clone();
    LOCAL_ACTION
        .with(|x| *x.borrow_mut() = Some(Box::new(move || drop(victim.borrow_mut().take()))));
    (&a).write_all(b"wake").unwrap();
    park_until(&p, "the waker's drop", || s.borrow().is_none());
    dog.step();
    // Outliving its LocalProactor's handle: still receives, and its drop
    // ends the LocalProactor.
    let mut s = p.recv_multi(&b, 4, 64);
    assert!(poll_once(&mut s.next_item()).is_pending());
    drop(p);
    (&a).write_all(b"after").unwrap();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    while !chunks.concat().ends_with(b"after") {
        chunks.push(s.wait_next().unwrap().unwrap());
    }
    // Whatever the dropped streams left in the socket comes first.
    assert!(chunks.concat().ends_with(b"after"), "{chunks:?}");
    drop(a);
    while let Some(item) = s.wait_next() {
        item.unwrap();
    }
    let start = Instant::now();
    drop(s);
    assert!(start.elapsed() < Duration::from_secs(1));
    drop(b);
    let after = fds().len();
    assert!(
        after <= before,
        "fds leaked: {before} before, {after} after: {}",
        fd_names()
    );
}

// ---------------------------------------------------------------------------
// The typed handles, generic over the runtime.

/// Gives a runtime's ops a moment to reach the kernel (and its
/// completions to be reaped): a LocalProactor is driven, a Proactor's
/// threads are left a moment.
trait Settle {
    fn settle(&self);
    fn stats(&self) -> ProactorStats;

    /// Settles until the runtime has freed more than `freed` dropped ops
    /// (`orphans_freed`), and a moment more: what they held (a handle's
    /// file) is released by then. A dropped op holds its file until the
    /// kernel is done with it, which can take a cancellation retried
    /// after a backoff (a receive the kernel runs in a worker thread).
    fn settle_orphans(&self, freed: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.stats().orphans_freed <= freed {
            assert!(Instant::now() < deadline, "a dropped op was never freed");
            self.settle();
        }
        self.settle();
    }
}

impl Settle for LocalProactor {
    fn settle(&self) {
        self.park(Some(Duration::from_millis(1)));
    }
    fn stats(&self) -> ProactorStats {
        LocalProactor::stats(self)
    }
}

impl Settle for Proactor {
    fn settle(&self) {
        thread::sleep(Duration::from_millis(1));
    }
    fn stats(&self) -> ProactorStats {
        Proactor::stats(self)
    }
}

/// What `handles_attacked` checks on one runtime: files, sockets and
/// transfers dropped, forgotten and mis-sized at every point.
fn handles_attacked<R: Runtime + Settle>(rt: &R, name: &str) {
    use futures_util::StreamExt;
    let path = std::env::temp_dir().join(format!("ring-attack-{}-{name}", std::process::id()));
    // Opens dropped before polling, in flight, and completed, never taken.
    drop(File::create(rt, &path));
    let mut open = File::create(rt, &path);
    let _ = poll_once(&mut open);
    drop(open);
    let mut open = File::open(rt, &path);
    let _ = poll_once(&mut open);
    for _ in 0..5 {
        rt.settle();
    }
    drop(open);
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .clone();
    let file = rt.block_on(rw.open(rt, &path)).unwrap();
    std::fs::remove_file(&path).unwrap();
    // Transfers at the edges: nothing to do, past i64::MAX, the end.
    let (res, buf) = rt.block_on(file.write_all_at(Vec::new(), 0));
    assert!(res.is_ok() && buf.is_empty());
    let (res, buf) = rt.block_on(file.write_all_at(b"0123456789".to_vec(), u64::MAX - 3));
    assert_eq!(errno(&res), Some(libc::EINVAL), "{name}: {res:?}");
    assert_eq!(buf, b"0123456789", "{name}: handed back");
    rt.block_on(file.write_all_at(b"0123456789".to_vec(), 0))
        .0
        .unwrap();
    let (res, buf) = rt.block_on(file.read_exact_at(Vec::with_capacity(16), 4));
    let e = res.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{name}: {e}");
    assert_eq!(e.to_string(), "the end came after 6 of 16 bytes");
    assert_eq!(buf, b"456789", "{name}: what was read is kept");
    let (res, buf) = rt.block_on(file.read_exact_at(Vec::new(), 0));
    assert!(res.is_ok() && buf.is_empty());
    // A transfer dropped mid-way (part of its buffer filled, the rest in
    // the kernel) and one whose handle is dropped first.
    let (a, b) = RtUnixStream::pair(rt).unwrap();
    let mut reading = b.read_exact(Canary::new());
    assert!(poll_once(&mut reading).is_pending());
    rt.block_on(a.write_all(vec![1u8; 10])).0.unwrap();
    for _ in 0..5 {
        rt.settle();
        assert!(poll_once(&mut reading).is_pending());
    }
    // Until its request is done, the dropped transfer holds `b`'s file
    // open (and could take bytes written meanwhile).
    let freed = Settle::stats(rt).orphans_freed;
    drop(reading);
    rt.settle_orphans(freed);
    rt.block_on(a.write_all(vec![2u8; 3 * CANARY_LEN]))
        .0
        .unwrap();
    let reading = b.read_exact(vec![0u8; 2 * CANARY_LEN]);
    drop(b);
    let (res, buf) = rt.block_on(reading);
    res.unwrap();
    assert!(
        buf.iter().all(|&x| x == 2),
        "{name}: the dropped transfer took bytes"
    );
    // A write to the closed peer: the kernel's EPIPE, the buffer back.
    let (res, buf) = rt.block_on(a.write_all(vec![3u8; 16]));
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe, "{name}");
    assert_eq!(buf.len(), 16);
    // A write_all that fills the socket, dropped mid-way.
    let (a, _peer) = RtUnixStream::pair(rt).unwrap();
    let mut writing = a.write_all(vec![3u8; 8 << 20]);
    for _ in 0..5 {
        if poll_once(&mut writing).is_ready() {
            panic!("{name}: 8 MiB written into an idle socket");
        }
        rt.settle();
    }
    drop(writing);
    drop(a);
    // Accepts dropped in flight and completed (a connection nobody takes
    // is closed), and a stream of them with connections queued.
    let listener = ring_io_proactor::net::TcpListener::bind(rt, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::new();
    let mut accept = listener.accept();
    assert!(poll_once(&mut accept).is_pending());
    rt.settle();
    drop(accept);
    let mut accept = listener.accept();
    assert!(poll_once(&mut accept).is_pending());
    clients.push(TcpStream::connect(addr).unwrap());
    for _ in 0..5 {
        rt.settle();
    }
    drop(accept);
    let mut incoming = listener.incoming();
    assert!(poll_once(&mut incoming.next()).is_pending());
    for _ in 0..3 {
        clients.push(TcpStream::connect(addr).unwrap());
    }
    for _ in 0..5 {
        rt.settle();
    }
    drop(incoming);
    // A refused connection says so; the listener still accepts.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = rt.block_on(RtTcpStream::connect(rt, closed)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{name}: {e}");
    // (Connections a dropped accept left in the backlog come first: before
    // 5.19 the stream accepts one at a time.)
    let client = TcpStream::connect(addr).unwrap();
    let mut accepted = 0;
    loop {
        let (stream, peer) = rt.block_on(listener.accept()).unwrap();
        accepted += 1;
        if peer == client.local_addr().unwrap() {
            break;
        }
        assert!(accepted < 5, "{name}: the client's connection never came");
        drop(stream);
    }
    drop((client, listener, file));
    // Every connection was closed (by the runtime, or with the listener's
    // backlog): each client sees the end, none hangs.
    for mut c in clients.drain(..) {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut byte = [0u8; 1];
        let n = io::Read::read(&mut c, &mut byte);
        assert!(
            matches!(n, Ok(0))
                || n.as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
            "{name}: {n:?}"
        );
    }
}

/// The handles of `fs` and `net`, and their transfers, attacked on both
/// runtimes; then the runtimes are dropped (the LocalProactor by its last
/// handle's drop), leaving no fd open and no buffer written after its drop.
#[test]
fn handles_and_transfers_attacked_on_both_runtimes_leak_nothing() {
    let _serial = serial();
    let dog = Watchdog::new("handles");
    let before = fds().len();
    let local = LocalProactor::new(ProactorConfig::new(16)).unwrap();
    handles_attacked(&local, "local");
    dog.step();
    let shared = Proactor::new(ProactorConfig::new(16)).unwrap();
    handles_attacked(&shared, "shared");
    dog.step();
    // A handle outlives its runtime's handle, and its last op ends the
    // runtime.
    let (a, b) = RtUnixStream::pair(&local).unwrap();
    drop(local);
    let mut reading = b.read_exact(vec![0u8; 4]);
    assert!(poll_once(&mut reading).is_pending());
    drop(b);
    let rt = a.proactor().clone();
    rt.block_on(a.write_all("last")).0.unwrap();
    let (res, buf) = rt.block_on(reading);
    res.unwrap();
    assert_eq!(buf, b"last");
    drop((a, rt));
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(shared)
    });
    thread::sleep(Duration::from_millis(2));
    graves_untouched();
    let after = fds().len();
    assert!(
        after <= before,
        "fds leaked: {before} before, {after} after: {}",
        fd_names()
    );
}

// ---------------------------------------------------------------------------
// Forgotten futures.

/// `mem::forget` of a chain, a transfer and a fixed-buffer read in flight
/// (safe, and a leak by definition): what they own is leaked, never
/// freed, so the kernel may finish with it; the runtime runs on with the
/// rest of its budget and buffers, and a Proactor still shuts down. (The
/// CI's LeakSanitizer is told about these leaks: `.ci/lsan.supp`.)
#[test]
fn forgotten_ops_chains_and_transfers_leak_but_break_nothing() {
    let _serial = serial();
    let dog = Watchdog::new("forgotten futures");
    let p = LocalProactor::new(
        ProactorConfig::new(16)
            .max_in_flight(6)
            .fixed_buffers(2, 64),
    )
    .unwrap();
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut chain = p.read(&r, Canary::new(), CURRENT_POSITION).link(p.read(
        &r,
        Canary::new(),
        CURRENT_POSITION,
    ));
    assert!(poll_once(&mut chain).is_pending());
    let mut fixed = p.read_fixed(&r, p.fixed_buffer().unwrap(), CURRENT_POSITION);
    assert!(poll_once(&mut fixed).is_pending());
    let (a, b) = RtUnixStream::pair(&p).unwrap();
    let mut transfer = b.read_exact(Canary::new());
    assert!(poll_once(&mut transfer).is_pending());
    p.drive();
    std::mem::forget(chain);
    std::mem::forget(fixed);
    std::mem::forget(transfer);
    // The kernel completes them into leaked memory.
    write_all(&w, &[5u8; 3 * CANARY_LEN]);
    p.block_on(a.write_all(vec![6u8; CANARY_LEN])).0.unwrap();
    for _ in 0..5 {
        p.park(Some(Duration::from_millis(1)));
    }
    dog.step();
    // One of two fixed buffers is gone for good; the credits of the
    // forgotten ops whose last CQE came are back (a forgotten op done
    // holds no room; a stream never told to stop keeps its own), and the
    // rest work.
    let (x, y) = p.nop().link(p.nop()).wait();
    x.and(y).unwrap();
    let bufs: Vec<_> = std::iter::from_fn(|| p.fixed_buffer()).collect();
    assert_eq!(
        bufs.len(),
        1,
        "the forgotten read's buffer never comes back"
    );
    drop(bufs);
    let stats = p.stats();
    assert_eq!(
        (stats.unexpected_cqes, stats.cq_overflow),
        (0, 0),
        "{stats:?}"
    );
    graves_untouched();
    dog.step();
    // The Proactor: a forgotten op in flight does not stop its shutdown.
    let q = Proactor::new(ProactorConfig::new(16)).unwrap();
    let (r2, w2) = pipe();
    let mut op = q
        .read(Arc::new(r2), Canary::new(), CURRENT_POSITION)
        .link(q.nop());
    assert!(poll_once(&mut op).is_pending());
    std::mem::forget(op);
    q.nop().wait().unwrap();
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(q)
    });
    write_all(&w2, &[7u8; CANARY_LEN]);
    drop((w, w2, a));
}

// ---------------------------------------------------------------------------
// Forged completions (an `unsafe` MSG_RING push: buggy unsafe code).

const FORGED_RESULTS: [i32; 6] = [
    0,
    1,
    CANARY_LEN as i32,
    i32::MAX,
    -libc::ECANCELED,
    -libc::ETIME,
];
const FORGED_FLAGS: [u32; 3] = [
    0,
    ring_io_sys::IORING_CQE_F_MORE,
    ring_io_sys::IORING_CQE_F_BUFFER | (1 << ring_io_sys::IORING_CQE_BUFFER_SHIFT),
];

/// Forged completions sprayed at a Proactor with a chain bounded by a link
/// timeout and a fixed-buffer read in flight: none completes early, each
/// is counted, the real completions come after.
#[test]
fn forged_completions_finish_no_chain_member_nor_fixed_read_early() {
    let _serial = serial();
    let Some(mut forger) = Forger::new() else {
        skip!("forged_chains", "IORING_OP_MSG_RING needs Linux 5.18");
    };
    let before = ring_fds();
    let p = Proactor::new(ProactorConfig::new(32).fixed_buffers(2, 64)).unwrap();
    let targets: Vec<RawFd> = ring_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    assert!(!targets.is_empty());
    let (r, w) = pipe();
    let r = Arc::new(r);
    let (r2, w2) = pipe();
    let mut chain = p
        .read(&r, Canary::new(), CURRENT_POSITION)
        .link(p.read(&r, Canary::new(), CURRENT_POSITION))
        .link(p.link_timeout(Duration::from_secs(60)));
    assert!(poll_once(&mut chain).is_pending());
    let mut fixed = p.read_fixed(Arc::new(r2), p.fixed_buffer().unwrap(), CURRENT_POSITION);
    assert!(poll_once(&mut fixed).is_pending());
    eventually("the reads in the ring", || p.stats().max_in_ring >= 5);
    let landed = forger.spray(&targets, &guesses(), &FORGED_RESULTS, &FORGED_FLAGS);
    assert!(landed > 0);
    eventually("every forgery counted", || {
        p.stats().unexpected_cqes >= landed
    });
    assert_eq!(p.stats().unexpected_cqes, landed);
    assert_eq!(p.stats().completed, 0, "{:?}", p.stats());
    assert!(poll_once(&mut chain).is_pending() && poll_once(&mut fixed).is_pending());
    write_all(&w, &[1u8; 2 * CANARY_LEN]);
    write_all(&w2, b"fixed");
    let (((a, buf_a), (b, buf_b)), t) = chain.wait();
    assert_eq!((a.unwrap(), b.unwrap()), (CANARY_LEN, CANARY_LEN));
    assert!(
        buf_a
            .bytes
            .iter()
            .chain(buf_b.bytes.iter())
            .all(|&x| x == 1)
    );
    assert_eq!(errno(&t), Some(libc::ECANCELED));
    let (n, buf) = fixed.wait();
    assert_eq!(&buf[..n.unwrap()], b"fixed");
    within(Duration::from_secs(3), "dropping the Proactor", move || {
        drop(p)
    });
}

/// The same at a LocalProactor whose ring has an fd, with a multishot
/// receive in flight too (forged buffer ids among the flags).
#[test]
fn local_forged_completions_finish_no_chain_member_fixed_read_or_stream_early() {
    let _serial = serial();
    let Some(mut forger) = Forger::new() else {
        skip!("local_forged_chains", "IORING_OP_MSG_RING needs Linux 5.18");
    };
    // Since 6.5 a ring has no fd while the thread's 16 registered-ring
    // slots last: made (and kept) until one has an fd.
    let mut keep = Vec::new();
    let (p, targets) = loop {
        let before = ring_fds();
        let p = LocalProactor::new(ProactorConfig::new(32).fixed_buffers(2, 64)).unwrap();
        if !p.has_no_fd() {
            let fds: Vec<RawFd> = ring_fds()
                .into_iter()
                .filter(|fd| !before.contains(fd))
                .collect();
            break (p, fds);
        }
        keep.push(p);
        assert!(keep.len() <= 16, "17 LocalProactors without an fd");
    };
    assert!(!targets.is_empty());
    let (r, w) = pipe();
    let r = Arc::new(r);
    let (r2, w2) = pipe();
    let (sa, sb) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut chain = p
        .read(&r, Canary::new(), CURRENT_POSITION)
        .link(p.read(&r, Canary::new(), CURRENT_POSITION))
        .link(p.link_timeout(Duration::from_secs(60)));
    assert!(poll_once(&mut chain).is_pending());
    let mut fixed = p.read_fixed(Arc::new(r2), p.fixed_buffer().unwrap(), CURRENT_POSITION);
    assert!(poll_once(&mut fixed).is_pending());
    let mut stream = (common::kernel().at_least(6, 0)).then(|| p.recv_multi(Arc::new(sb), 4, 64));
    if let Some(s) = &mut stream {
        assert!(poll_once(&mut s.next_item()).is_pending());
    }
    p.drive();
    let landed = forger.spray(&targets, &guesses(), &FORGED_RESULTS, &FORGED_FLAGS);
    assert!(landed > 0);
    park_until(&p, "every forgery counted", || {
        p.stats().unexpected_cqes >= landed
    });
    assert_eq!(p.stats().unexpected_cqes, landed);
    assert!(poll_once(&mut chain).is_pending() && poll_once(&mut fixed).is_pending());
    if let Some(s) = &mut stream {
        assert!(
            poll_once(&mut s.next_item()).is_pending(),
            "the stream got a forged item"
        );
    }
    write_all(&w, &[1u8; 2 * CANARY_LEN]);
    write_all(&w2, b"fixed");
    (&sa).write_all(b"chunk").unwrap();
    let (((a, _), (b, _)), t) = drive_until(&p, &mut chain, Duration::from_secs(10), "the chain");
    assert_eq!((a.unwrap(), b.unwrap()), (CANARY_LEN, CANARY_LEN));
    assert_eq!(errno(&t), Some(libc::ECANCELED));
    let (n, buf) = drive_until(&p, &mut fixed, Duration::from_secs(10), "the fixed read");
    assert_eq!(&buf[..n.unwrap()], b"fixed");
    if let Some(mut s) = stream {
        assert_eq!(s.wait_next().unwrap().unwrap(), b"chunk");
    }
    drop((keep, sa));
}
