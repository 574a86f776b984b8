//! `SharedRing` on the running kernel: many threads pushing, submitting and
//! reaping on one ring; back-pressure; waits from several threads; close
//! with work in flight; the setup flags a shared ring refuses.
//!
//! The stress test runs `RING_STRESS_OPS` NOPs per thread on 4 threads
//! (default: 1,000,000 in release builds, 50,000 in debug builds).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use ring_io_driver::{Builder, Cqe, PushError, SetupError, SharedRing};
use ring_io_ops::{
    Close, DirectSlot, Entry, Entry128, Fd, Fixed, MsgRingData, MsgRingSendFd, Nop, OpenAt, Read,
    SendZc, Timeout,
};
use ring_io_sys::{__kernel_timespec, SqeFlags};

fn nop(user_data: u64) -> Entry {
    Nop::new().build().user_data(user_data)
}

fn stress_ops() -> u64 {
    std::env::var("RING_STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            50_000
        } else {
            1_000_000
        })
}

/// `threads` threads each push `per` NOPs (user_data = thread << 32 | i), in
/// batches, submit and reap whatever completions they find (anyone's).
/// Checks that every user_data is seen exactly once, with result 0, that the
/// CQ never overflowed and that all credit came back.
fn run_stress(ring: &SharedRing, threads: u64, per: u64, batch: u64) {
    let total = threads * per;
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (ring, seen, done) = (ring.clone(), seen.clone(), done.clone());
            std::thread::spawn(move || {
                let mut next = 0u64;
                let mut entries = Vec::with_capacity(batch as usize);
                let mut got: Vec<Cqe> = Vec::with_capacity(256);
                let mut refused = 0u64;
                while done.load(Ordering::Relaxed) < total {
                    while next < per {
                        let k = batch.min(per - next);
                        entries.clear();
                        entries.extend((next..next + k).map(|i| nop((t << 32) | i)));
                        // SAFETY: NOPs carry no pointers.
                        match unsafe { ring.push_batch(&entries) } {
                            Ok(()) => next += k,
                            Err(_) => {
                                refused += 1;
                                break;
                            }
                        }
                    }
                    ring.submit().expect("submit");
                    got.clear();
                    let n = ring.reap(&mut got, 256);
                    for cqe in &got {
                        assert_eq!(cqe.result(), Ok(0), "{cqe:?}");
                        let id = cqe.user_data();
                        let (owner, i) = (id >> 32, id & 0xffff_ffff);
                        assert!(owner < threads && i < per, "unknown user_data {id:#x}");
                        let was = seen[(owner * per + i) as usize].swap(true, Ordering::Relaxed);
                        assert!(!was, "user_data {id:#x} completed twice");
                    }
                    done.fetch_add(n as u64, Ordering::Relaxed);
                    if n == 0 {
                        std::thread::yield_now();
                    }
                }
                refused
            })
        })
        .collect();
    let refused: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(done.load(Ordering::Relaxed), total);
    let missing = seen.iter().filter(|s| !s.load(Ordering::Relaxed)).count();
    assert_eq!(missing, 0, "completions never seen");
    assert_eq!(ring.overflow(), 0, "the CQ overflowed");
    assert_eq!(ring.in_flight(), 0, "credit not returned");
    assert_eq!(ring.pending(), 0);
    eprintln!("stress: {threads} threads x {per} NOPs, {refused} pushes refused (back-pressure)");
}

#[test]
fn stress_four_threads_every_user_data_exactly_once() {
    let ring = SharedRing::new(64).expect("shared ring");
    let per = stress_ops();
    let start = Instant::now();
    run_stress(&ring, 4, per, 16);
    eprintln!("stress: {:?}", start.elapsed());
}

#[test]
fn stress_small_ring_single_pushes_cross_the_wrap_many_times() {
    // A 4-slot SQ, 8-slot CQ (budget 7): claims collide constantly.
    let ring = SharedRing::new(4).expect("shared ring");
    assert_eq!(ring.credit_budget(), ring.params().cq_entries() - 1);
    run_stress(&ring, 4, stress_ops() / 20, 1);
}

#[test]
fn stress_under_sqpoll() {
    let ring = match Builder::new(32).sqpoll(20).build_shared() {
        Ok(r) => r,
        Err(SetupError::Setup(e)) => skip!("stress_under_sqpoll", "SQPOLL setup: {e}"),
        Err(e) => panic!("{e}"),
    };
    run_stress(&ring, 4, stress_ops() / 20, 8);
}

#[test]
fn one_thread_push_submit_reap() {
    let ring = SharedRing::new(8).unwrap();
    // SAFETY: NOPs carry no pointers.
    unsafe { ring.push(nop(7)) }.unwrap();
    assert_eq!(ring.pending(), 1);
    assert_eq!(ring.in_flight(), 1);
    assert_eq!(ring.submit_and_wait(1).unwrap(), 1);
    assert_eq!(ring.pending(), 0);
    let cqe = ring.pop().expect("a completion");
    assert_eq!((cqe.user_data(), cqe.result()), (7, Ok(0)));
    assert_eq!(ring.pop(), None);
    assert_eq!(ring.in_flight(), 0);
    // The fast defaults minus COOP_TASKRUN.
    let flags = ring.params().flags();
    assert!(
        !flags.contains(ring_io_sys::SetupFlags::COOP_TASKRUN),
        "{flags:?}"
    );
    assert!(
        !flags.contains(ring_io_sys::SetupFlags::SINGLE_ISSUER),
        "{flags:?}"
    );
    if common::kernel().at_least(5, 18) {
        assert!(
            ring.defaults()
                .contains(ring_io_sys::SetupFlags::SUBMIT_ALL)
        );
    }
}

#[test]
fn full_sq_and_spent_credit_hand_the_entry_back() {
    // SQ 4, CQ 8: budget 7.
    let ring = SharedRing::new(4).unwrap();
    assert_eq!(ring.credit_budget(), 7);
    for i in 0..4 {
        // SAFETY: NOPs carry no pointers.
        unsafe { ring.push(nop(i)) }.unwrap();
    }
    // SAFETY: as above.
    match unsafe { ring.push(nop(4)) } {
        Err(PushError::SqFull(e)) => assert_eq!(e.get_user_data(), 4),
        other => panic!("expected SqFull, got {other:?}"),
    }
    // The refused push gave its credit back.
    assert_eq!(ring.in_flight(), 4);
    assert_eq!(ring.submit().unwrap(), 4);
    for i in 4..7 {
        // SAFETY: as above.
        unsafe { ring.push(nop(i)) }.unwrap();
    }
    // SAFETY: as above.
    match unsafe { ring.push(nop(7)) } {
        Err(PushError::NoCredit(e)) => assert_eq!(e.get_user_data(), 7),
        other => panic!("expected NoCredit, got {other:?}"),
    }
    assert_eq!(ring.in_flight(), 7);
    ring.submit().unwrap();
    let mut out = Vec::new();
    assert_eq!(ring.reap(&mut out, 2), 2);
    assert_eq!(ring.in_flight(), 5);
    // SAFETY: as above.
    unsafe { ring.push(nop(7)) }.unwrap();
    ring.submit().unwrap();
    while ring.reap(&mut out, 16) > 0 {}
    let mut ids: Vec<u64> = out.iter().map(|c| c.user_data()).collect();
    ids.sort();
    assert_eq!(ids, (0..8).collect::<Vec<_>>());
    assert_eq!(ring.overflow(), 0);
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn refuses_flags_that_bind_the_ring_to_one_task() {
    for (name, builder, needle) in [
        (
            "single_issuer",
            Builder::new(8).single_issuer(),
            "SINGLE_ISSUER",
        ),
        (
            "defer_taskrun",
            Builder::new(8).defer_taskrun(),
            "SINGLE_ISSUER",
        ),
        (
            "coop_taskrun",
            Builder::new(8).coop_taskrun(),
            "COOP_TASKRUN",
        ),
        (
            "registered_fd_only",
            Builder::new(8).registered_fd_only(),
            "REGISTERED_FD_ONLY",
        ),
        ("cqe_mixed", Builder::new(8).cqe_mixed(), "CQE_MIXED"),
    ] {
        match builder.build_shared() {
            Err(e @ SetupError::Invalid(_)) => {
                let text = e.to_string();
                assert!(text.contains(needle), "{name}: {text}");
                let io: std::io::Error = e.into();
                assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput, "{name}");
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
    // DEFER_TASKRUN alone (without the SINGLE_ISSUER its setter adds) is
    // refused by name too.
    let text = Builder::new(8)
        .defer_taskrun()
        .build_shared()
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("one task") || text.contains("one issuer"),
        "{text}"
    );
}

#[test]
fn concurrent_submitters_never_submit_an_entry_twice() {
    // All threads push, then all submit at once; the consumed counts add up
    // to exactly what was pushed.
    let ring = SharedRing::new(256).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let (ring, barrier) = (ring.clone(), barrier.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    // SAFETY: NOPs carry no pointers.
                    unsafe { ring.push(nop(t * 100 + i)) }.unwrap();
                }
                barrier.wait();
                ring.submit().unwrap()
            })
        })
        .collect();
    let consumed: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(consumed, 200);
    let mut out = Vec::new();
    while ring.reap(&mut out, 64) > 0 {}
    assert_eq!(out.len(), 200);
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn one_submit_per_push_leaves_nothing_unsubmitted() {
    // Each thread pushes one entry and calls submit once for it, never
    // again: a submit that finds another thread submitting returns at once
    // and leaves the entry to it (the submit gate). When all are done, no
    // entry may be left pending, and every completion is there without a
    // further submit.
    const THREADS: u64 = 4;
    const PER: u64 = if cfg!(debug_assertions) { 500 } else { 5000 };
    let ring = SharedRing::new(64).unwrap();
    let reaped = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ring, reaped) = (ring.clone(), reaped.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..PER {
                    let mut refused_since = None;
                    // SAFETY: NOPs carry no pointers.
                    while unsafe { ring.push(nop((t << 32) | i)) }.is_err() {
                        // Out of SQ slots or credit: completions of entries
                        // other threads submit will come; take them. If none
                        // come for long, entries were stranded in the SQ.
                        got.clear();
                        let n = ring.reap(&mut got, 64);
                        reaped.fetch_add(n as u64, Ordering::Relaxed);
                        let since = *refused_since.get_or_insert_with(Instant::now);
                        if n > 0 {
                            refused_since = None;
                        } else if since.elapsed() > Duration::from_secs(5) {
                            panic!(
                                "an entry was left unsubmitted: pushes refused for 5 s, \
                                 {} pending",
                                ring.pending()
                            );
                        }
                        std::thread::yield_now();
                    }
                    ring.submit().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(ring.pending(), 0, "an entry was left unsubmitted");
    let mut out = Vec::new();
    while ring.reap(&mut out, 64) > 0 {}
    assert_eq!(
        reaped.load(Ordering::Relaxed) + out.len() as u64,
        THREADS * PER,
        "completions missing"
    );
    assert_eq!(ring.in_flight(), 0);
    assert_eq!(ring.overflow(), 0);
}

#[test]
fn several_threads_wait_for_completions_pushed_by_another() {
    // Waiters block in io_uring_enter(GETEVENTS); a producer pushes timeouts
    // that fire later. Each completion is taken exactly once; waiters time
    // out their last wait when the others took everything.
    const N: u64 = 32;
    let ring = SharedRing::new(64).unwrap();
    if !ring.params().has(ring_io_sys::Features::EXT_ARG) {
        skip!("several_threads_wait", "no IORING_FEAT_EXT_ARG (5.11)");
    }
    let taken = Arc::new(AtomicU64::new(0));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let (ring, taken) = (ring.clone(), taken.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut blocked = 0u32;
                while taken.load(Ordering::Relaxed) < N {
                    let t0 = Instant::now();
                    match ring.submit_and_wait_timeout(1, Duration::from_millis(50)) {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(e) => panic!("wait: {e}"),
                    }
                    if t0.elapsed() >= Duration::from_millis(5) {
                        blocked += 1;
                    }
                    let n = ring.reap(&mut mine, 4);
                    taken.fetch_add(n as u64, Ordering::Relaxed);
                }
                (mine, blocked)
            })
        })
        .collect();
    // Relative timeouts of 10..=41 ms, kept alive until every completion
    // (and the close) is done.
    let times: Vec<__kernel_timespec> = (0..N)
        .map(|i| __kernel_timespec {
            tv_sec: 0,
            tv_nsec: ((10 + i) * 1_000_000) as i64,
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    for (i, ts) in times.iter().enumerate() {
        // SAFETY: `times` outlives every completion (the waiters are joined
        // below before it is dropped).
        unsafe { ring.push(Timeout::new(ts).build().user_data(i as u64)) }.unwrap();
    }
    ring.submit().unwrap();
    let mut all = Vec::new();
    let mut blocked = 0;
    for w in waiters {
        let (mine, b) = w.join().unwrap();
        all.extend(mine);
        blocked += b;
    }
    let mut ids: Vec<u64> = all.iter().map(|c| c.user_data()).collect();
    ids.sort();
    assert_eq!(ids, (0..N).collect::<Vec<_>>());
    assert!(
        all.iter()
            .all(|c| c.result() == Err(ring_io_sys::Errno::ETIME)),
        "timeouts expire with -ETIME"
    );
    assert!(blocked > 0, "no waiter ever blocked in the kernel");
    assert_eq!(ring.in_flight(), 0);
    drop(ring);
    drop(times);
}

#[test]
fn last_handle_drop_cancels_what_is_in_flight_and_waits() {
    // On every kernel: the ring's exit cancels what is in flight, and the
    // drop waits until the kernel has freed the ring.
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [rd, wr] = fds;
    let mut buf = vec![0u8; 16];
    let ts = __kernel_timespec {
        tv_sec: 3600,
        tv_nsec: 0,
    };
    let ring = SharedRing::new(8).unwrap();
    let other = ring.clone();
    // SAFETY: `buf`, `ts` and `rd` outlive the ring (dropped below, which
    // waits for both requests).
    unsafe {
        ring.push(Read::new(Fd(rd), buf.as_mut_ptr(), 16).build().user_data(1))
            .unwrap();
        ring.push(Timeout::new(&ts).build().user_data(2)).unwrap();
    }
    ring.submit().unwrap();
    assert_eq!(ring.in_flight(), 2);
    drop(ring);
    // Still open: `other` is a handle.
    assert_eq!(other.in_flight(), 2);
    let t0 = Instant::now();
    // The last handle dropped on another thread.
    std::thread::spawn(move || drop(other)).join().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "close waited for the hour-long timeout: {:?}",
        t0.elapsed()
    );
    // The read was cancelled, not left pending: data written now stays in
    // the pipe, and nothing was written into `buf`.
    // SAFETY: valid pointers and lengths; fds owned by this test.
    unsafe {
        assert_eq!(libc::write(wr, b"hello".as_ptr().cast(), 5), 5);
        let mut back = [0u8; 8];
        assert_eq!(libc::read(rd, back.as_mut_ptr().cast(), 8), 5);
        assert_eq!(&back[..5], b"hello");
        libc::close(rd);
        libc::close(wr);
    }
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn drop_submits_what_was_pushed_but_not_submitted() {
    // The close submits what was pushed, then cancels whatever has not
    // completed: the entry must be one that completes when submitted. A
    // MSG_RING to another ring does (5.18+); before, a write to a pipe
    // (which completes at once there: 5.10 takes it inline).
    if common::kernel().at_least(5, 18) {
        let other = SharedRing::new(8).unwrap();
        let ring = SharedRing::new(8).unwrap();
        let msg = MsgRingData::new(Fd(other.as_raw_fd()), 5, 77).build();
        // SAFETY: a MSG_RING data message carries no pointers; `other`
        // outlives the ring.
        unsafe { ring.push(msg.user_data(1)) }.unwrap();
        assert_eq!(ring.pending(), 1);
        drop(ring);
        let cqe = other.pop().expect("the close submitted the message");
        assert_eq!((cqe.user_data(), cqe.result()), (77, Ok(5)));
        return;
    }
    // A send on a connected socket with room completes at submission
    // (sockets take non-blocking issue on 5.10; a pipe write may go to an
    // io-wq worker there, which the close's cancel can stop first).
    let (tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
    rx.set_nonblocking(true).unwrap();
    let data = *b"abc";
    let ring = SharedRing::new(8).unwrap();
    // SAFETY: `data` and `tx` outlive the ring, whose drop waits for the send.
    unsafe {
        ring.push(
            ring_io_ops::Send::new(Fd(tx.as_raw_fd()), data.as_ptr(), 3)
                .build()
                .user_data(1),
        )
    }
    .unwrap();
    assert_eq!(ring.pending(), 1);
    drop(ring);
    let mut back = [0u8; 8];
    // Non-blocking: an error here (WouldBlock) means the close never
    // submitted the send.
    let n = std::io::Read::read(&mut &rx, &mut back).expect("the close submitted the send");
    assert_eq!(&back[..n], b"abc");
}

#[test]
fn a_blocked_submitters_completion_reaches_a_waiter_on_another_thread() {
    // Thread A submits a read on an empty pipe (the kernel arms a poll; the
    // completion runs as task work of A) and then blocks in a futex. The
    // main thread writes to the pipe and waits on the ring. Without
    // COOP_TASKRUN (refused for shared rings) the kernel interrupts A to run
    // the task work, and the completion arrives; with it, it would wait for
    // A's next system call.
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [rd, wr] = fds;
    let ring = SharedRing::new(8).unwrap();
    if !ring.params().has(ring_io_sys::Features::EXT_ARG) {
        skip!(
            "a_blocked_submitters_completion",
            "bounded waits need IORING_FEAT_EXT_ARG (5.11)"
        );
    }
    let (submitted_tx, submitted_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let a = {
        let ring = ring.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4];
            // SAFETY: `buf` lives until `done_rx` says the completion has
            // been reaped.
            unsafe { ring.push(Read::new(Fd(rd), buf.as_mut_ptr(), 4).build().user_data(9)) }
                .unwrap();
            assert_eq!(ring.submit().unwrap(), 1);
            submitted_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            buf
        })
    };
    submitted_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: a valid buffer; `wr` is owned by this test.
    assert_eq!(unsafe { libc::write(wr, b"ping".as_ptr().cast(), 4) }, 4);
    let t0 = Instant::now();
    let cqe = loop {
        if let Some(cqe) = ring.pop() {
            break cqe;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the completion never reached the waiting thread"
        );
        match ring.submit_and_wait_timeout(1, Duration::from_millis(500)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("wait: {e}"),
        }
    };
    assert_eq!((cqe.user_data(), cqe.result()), (9, Ok(4)));
    done_tx.send(()).unwrap();
    assert_eq!(&a.join().unwrap(), b"ping");
    // SAFETY: fds owned by this test.
    unsafe {
        libc::close(rd);
        libc::close(wr);
    }
}

#[test]
fn no_defaults_gives_a_plain_shared_ring() {
    let ring = Builder::new(8).no_defaults().build_shared().unwrap();
    assert_eq!(ring.defaults(), ring_io_sys::SetupFlags::empty());
    assert!(
        ring.params().flags().is_empty(),
        "{:?}",
        ring.params().flags()
    );
    // SAFETY: NOPs carry no pointers.
    unsafe { ring.push(nop(1)) }.unwrap();
    ring.submit_and_wait(1).unwrap();
    assert_eq!(ring.pop().map(|c| c.user_data()), Some(1));
}

#[test]
fn sqe128_and_cqe32_strides_across_the_wrap() {
    for (name, builder) in [
        ("sqe128", Builder::new(4).sqe128()),
        ("cqe32", Builder::new(4).cqe32()),
    ] {
        let ring = match builder.build_shared() {
            Ok(r) => r,
            Err(SetupError::Unsupported(u)) => skip!("sqe128_and_cqe32_strides", "{name}: {u}"),
            Err(e) => panic!("{name}: {e}"),
        };
        let mut out = Vec::new();
        // 4-slot SQ, 8-slot CQ: five rounds wrap both several times.
        for round in 0..5u64 {
            let ids: Vec<u64> = (0..4).map(|i| round * 10 + i).collect();
            let entries: Vec<Entry> = ids.iter().map(|&id| nop(id)).collect();
            // SAFETY: NOPs carry no pointers.
            unsafe { ring.push_batch(&entries) }.unwrap();
            ring.submit_and_wait(4).unwrap();
            out.clear();
            while ring.reap(&mut out, 3) > 0 {}
            let got: Vec<u64> = out.iter().map(|c| c.user_data()).collect();
            assert_eq!(got, ids, "{name} round {round}");
            assert!(
                out.iter().all(|c| c.result() == Ok(0) && c.big() == [0, 0]),
                "{name}"
            );
        }
        assert_eq!(ring.in_flight(), 0, "{name}");
    }
}

#[test]
fn push128_fills_128_byte_slots_and_a_64_byte_ring_hands_the_entry_back() {
    // A 64-byte ring: refused as such, handed back, nothing pushed.
    let small = SharedRing::new(4).unwrap();
    let entry = Entry128::from(nop(7));
    // SAFETY: a NOP carries no pointers (and is refused anyway).
    match unsafe { small.push128(entry) } {
        Err(PushError::Refused(back, why)) => {
            assert_eq!(back.get_user_data(), 7);
            assert!(why.contains("SQE128"), "{why}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!((small.pending(), small.in_flight()), (0, 0));
    // A 128-byte ring: each entry in its own 128-byte slot, across the
    // wrap (a 64-byte stride would hand the kernel half-entries from the
    // second slot on), until the SQ is full.
    let ring = match Builder::new(4).sqe128().build_shared() {
        Ok(r) => r,
        Err(SetupError::Unsupported(u)) => skip!("push128_fills_128_byte_slots", "{u}"),
        Err(e) => panic!("{e}"),
    };
    let mut out = Vec::new();
    for round in 0..3u64 {
        for i in 0..4 {
            // SAFETY: as above.
            unsafe { ring.push128(Entry128::from(nop(round * 10 + i))) }.unwrap();
        }
        // SAFETY: as above.
        match unsafe { ring.push128(Entry128::from(nop(99))) } {
            Err(PushError::SqFull(back)) => assert_eq!(back.get_user_data(), 99),
            other => panic!("expected SqFull, got {other:?}"),
        }
        ring.submit_and_wait(4).unwrap();
        out.clear();
        while ring.reap(&mut out, 8) > 0 {}
        let got: Vec<u64> = out.iter().map(|c| c.user_data()).collect();
        let want: Vec<u64> = (0..4).map(|i| round * 10 + i).collect();
        assert_eq!(got, want, "round {round}");
        assert!(out.iter().all(|c| c.result() == Ok(0)), "{out:?}");
    }
    assert_eq!(ring.in_flight(), 0);
}

/// Pushes NOPs until the SQ refuses one; returns how many went in.
fn fill_sq(ring: &SharedRing, first: u64) -> u64 {
    let mut n = 0;
    loop {
        // SAFETY: NOPs carry no pointers.
        match unsafe { ring.push(nop(first + n)) } {
            Ok(()) => n += 1,
            Err(PushError::SqFull(_)) => return n,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn sq_wait_without_sqpoll_submits_to_make_room() {
    let ring = SharedRing::new(4).unwrap();
    ring.sq_wait().unwrap();
    assert_eq!(fill_sq(&ring, 0), 4);
    ring.sq_wait().unwrap();
    assert_eq!(ring.pending(), 0, "the wait submitted the full SQ");
    // SAFETY: a NOP carries no pointers.
    unsafe { ring.push(nop(4)) }.unwrap();
    ring.submit_and_wait(5).unwrap();
    let mut out = Vec::new();
    while ring.reap(&mut out, 8) > 0 {}
    assert_eq!(out.len(), 5);
}

#[test]
fn sq_wait_under_sqpoll_wakes_the_thread_and_waits_until_it_makes_room() {
    // The kernel thread sleeps after 1 ms without work; pushes do not wake
    // it, so the SQ fills. sq_wait must wake it (IORING_ENTER_SQ_WAKEUP)
    // and wait (IORING_ENTER_SQ_WAIT) until it has consumed entries: a
    // wait that did not wake it would sleep forever.
    let ring = match Builder::new(4).sqpoll(1).build_shared() {
        Ok(r) => r,
        Err(SetupError::Setup(e)) => skip!("sq_wait_under_sqpoll", "SQPOLL setup: {e}"),
        Err(e) => panic!("{e}"),
    };
    if !common::kernel().at_least(5, 10) {
        skip!(
            "sq_wait_under_sqpoll",
            "IORING_ENTER_SQ_WAIT needs Linux 5.10"
        );
    }
    let ring = within(Duration::from_secs(10), "sq_wait under SQPOLL", move || {
        let mut pushed = 0;
        for round in 0..5 {
            // Let the thread go to sleep, then fill the SQ behind its back.
            std::thread::sleep(Duration::from_millis(20));
            pushed += fill_sq(&ring, pushed);
            ring.sq_wait().unwrap();
            // SAFETY: a NOP carries no pointers.
            match unsafe { ring.push(nop(pushed)) } {
                Ok(()) => pushed += 1,
                Err(e) => panic!("round {round}: no room after sq_wait: {e}"),
            }
            ring.submit().unwrap();
            let mut out = Vec::new();
            while ring.in_flight() > 0 {
                ring.submit_and_wait(1).unwrap();
                ring.reap(&mut out, 16);
            }
        }
        assert!(pushed >= 5 * 5, "{pushed}");
        ring
    });
    assert_eq!(ring.in_flight(), 0);
    assert_eq!(ring.overflow(), 0);
}

// --- Completions the credit cannot account for, and the close (issue 13,
// defect 7), and timed waits (defect 5).

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

fn close(fd: i32) {
    // SAFETY: fds owned by the calling test, not used again.
    unsafe { libc::close(fd) };
}

/// Runs `f` on a thread and fails the test if it does not return within
/// `limit` (a hang becomes a failure, not a stuck test run).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not return within {limit:?}"),
    }
}

/// A ring that posts completions into `target` with IORING_OP_MSG_RING:
/// CQEs no request of `target` asked for.
fn forge(target: &SharedRing, n: u64) {
    let sender = SharedRing::new(32).unwrap();
    for i in 0..n {
        let msg = MsgRingData::new(Fd(target.as_raw_fd()), 0, 0xf0f0_0000 + i).build();
        // SAFETY: a MSG_RING data message carries no pointers; the target
        // ring outlives the request (it completes inline below).
        unsafe { sender.push(msg.user_data(i)) }.unwrap();
    }
    sender.submit_and_wait(n as u32).unwrap();
    let mut out = Vec::new();
    while sender.reap(&mut out, 16) > 0 {}
    assert_eq!(out.len() as u64, n);
    assert!(out.iter().all(|c| c.result() == Ok(0)), "{out:?}");
}

fn has_msg_ring(test: &str) -> bool {
    if !common::kernel().at_least(5, 18) {
        eprintln!("ring-skip: {test}: IORING_OP_MSG_RING needs 5.18");
        return false;
    }
    true
}

#[test]
fn skip_success_entries_are_refused_and_handed_back() {
    // A CQE_SKIP_SUCCESS entry posts nothing when it succeeds: its credit
    // would never come back and the close would wait for it forever
    // (hence the watchdog: before, the drop of the ring hung).
    within(
        Duration::from_secs(10),
        "the test and the ring's drop",
        skip_success_refused_body,
    );
}

fn skip_success_refused_body() {
    let ring = SharedRing::new(8).unwrap();
    let entry = nop(5).flags(SqeFlags::CQE_SKIP_SUCCESS);
    // SAFETY: a NOP carries no pointers.
    match unsafe { ring.push(entry) } {
        Err(e @ PushError::Refused(..)) => {
            assert!(e.to_string().contains("IOSQE_CQE_SKIP_SUCCESS"), "{e}");
            assert_eq!(e.into_inner().get_user_data(), 5);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A batch with one such entry pushes none of them.
    let batch = [nop(1), nop(2).flags(SqeFlags::CQE_SKIP_SUCCESS)];
    // SAFETY: NOPs carry no pointers.
    let err = unsafe { ring.push_batch(&batch) }.unwrap_err();
    assert!(matches!(err, PushError::Refused((), _)), "{err:?}");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!((ring.in_flight(), ring.pending()), (0, 0));
}

#[test]
fn entries_that_would_touch_the_fixed_file_table_are_refused() {
    // The one fixed file of a SharedRing is the barrier its close waits on:
    // nothing pushed may use, replace or send it.
    let ring = SharedRing::new(8).unwrap();
    let mut byte = 0u8;
    let entries = [
        (
            "fixed file",
            Read::new(Fixed(0), &mut byte, 1).build(),
            "IOSQE_FIXED_FILE",
        ),
        (
            "close of a slot",
            Close::new(Fixed(0)).build(),
            "direct descriptor",
        ),
        (
            "open into a slot",
            OpenAt::new(Fd(libc::AT_FDCWD), c"/".as_ptr())
                .direct(DirectSlot::at(0).unwrap())
                .build(),
            "direct descriptor",
        ),
        (
            "send of a fixed file",
            MsgRingSendFd::new(Fd(0), Fixed(0), DirectSlot::at(0).unwrap(), 1).build(),
            "IORING_MSG_SEND_FD",
        ),
    ];
    for (name, entry, needle) in entries {
        // SAFETY: refused before any slot is written; nothing reaches the
        // kernel.
        match unsafe { ring.push(entry.user_data(9)) } {
            Err(PushError::Refused(e, why)) => {
                assert!(why.contains(needle), "{name}: {why}");
                assert_eq!(e.get_user_data(), 9, "{name}");
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!((ring.in_flight(), ring.pending()), (0, 0));
}

#[test]
fn msg_ring_to_itself_is_refused_and_in_flight_stays_honest() {
    // MSG_RING to the ring itself posts two completions on success (one
    // on failure): before, the second returned the credit of a read still
    // in flight, and the count read 0.
    if !has_msg_ring("msg_ring_to_itself") {
        return;
    }
    let (rd, wr) = pipe();
    let mut buf = vec![0u8; 8];
    let ring = SharedRing::new(8).unwrap();
    // SAFETY: `buf` and `rd` outlive the ring (dropped below, which waits
    // for the kernel to let go of the read).
    unsafe { ring.push(Read::new(Fd(rd), buf.as_mut_ptr(), 8).build().user_data(1)) }.unwrap();
    let msg = MsgRingData::new(Fd(ring.as_raw_fd()), 7, 3)
        .build()
        .user_data(2);
    // SAFETY: a MSG_RING data message carries no pointers.
    match unsafe { ring.push(msg) } {
        Err(PushError::Refused(e, why)) => {
            assert!(why.contains("itself"), "{why}");
            assert_eq!(e.get_user_data(), 2);
        }
        Ok(()) => {
            ring.submit_and_wait(2).unwrap();
            let mut out = Vec::new();
            while ring.reap(&mut out, 8) > 0 {}
            panic!(
                "MSG_RING to itself accepted: {} completions, in_flight {} with the read pending",
                out.len(),
                ring.in_flight()
            );
        }
        Err(e) => panic!("{e:?}"),
    }
    ring.submit().unwrap();
    assert_eq!(ring.in_flight(), 1);
    within(Duration::from_secs(10), "drop", move || drop(ring));
    // SAFETY: a valid buffer; fds owned by this test.
    assert_eq!(unsafe { libc::write(wr, b"late".as_ptr().cast(), 4) }, 4);
    close(rd);
    close(wr);
    assert!(buf.iter().all(|&b| b == 0), "written after drop: {buf:?}");
}

#[test]
fn forged_completions_release_no_credit_never_underflow_and_are_counted() {
    // Another ring posts completions into this one (MSG_RING naming its
    // fd): with no credit out, they must not underflow the credit (before:
    // a debug_assert panic in reap; in release, a failed release).
    if !has_msg_ring("forged_completions") {
        return;
    }
    let ring = SharedRing::new(4).unwrap();
    forge(&ring, 3);
    let mut out = Vec::new();
    while ring.reap(&mut out, 8) > 0 {}
    assert_eq!(out.len(), 3);
    assert_eq!(ring.in_flight(), 0);
    assert_eq!(ring.unexpected(), 3);
    // The ring still works, with its whole budget.
    let budget = ring.credit_budget();
    let entries: Vec<Entry> = (0..u64::from(budget).min(4)).map(nop).collect();
    // SAFETY: NOPs carry no pointers.
    unsafe { ring.push_batch(&entries) }.unwrap();
    ring.submit_and_wait(entries.len() as u32).unwrap();
    out.clear();
    while ring.reap(&mut out, 8) > 0 {}
    assert_eq!(out.len(), entries.len());
    assert_eq!((ring.in_flight(), ring.unexpected()), (0, 3));
}

#[test]
fn drop_waits_for_the_kernel_even_when_forged_completions_zero_the_count() {
    // A read of an empty pipe is in flight; a forged completion returns its
    // credit, so the count reads 0. Dropping the last handle must still not
    // return while the kernel can complete the read into `buf`: data
    // written right after the drop stays in the pipe.
    if !has_msg_ring("drop_waits_for_the_kernel") {
        return;
    }
    for round in 0..50 {
        let (rd, wr) = pipe();
        let buf = Arc::new(std::sync::Mutex::new(vec![0u8; 4096]));
        let ring = SharedRing::new(8).unwrap();
        let ptr = buf.lock().unwrap().as_mut_ptr();
        // IOSQE_ASYNC: an io-wq worker blocks in the pipe's read, which
        // only the exit work's cancel (after close returns) interrupts.
        let read = Read::new(Fd(rd), ptr, 4096).build().flags(SqeFlags::ASYNC);
        // SAFETY: the Vec's heap block is neither moved nor freed before
        // the ring is dropped (the Arc keeps it; nobody resizes it), and the
        // drop waits for the kernel to let go of the read.
        unsafe { ring.push(read.user_data(1)) }.unwrap();
        ring.submit().unwrap();
        forge(&ring, 1);
        let mut out = Vec::new();
        while ring.reap(&mut out, 8) > 0 {}
        assert_eq!(out.len(), 1, "only the forged completion");
        assert_eq!(ring.in_flight(), 0, "the forged CQE took the read's credit");
        // Drop, then write at once, on the same thread: before, the drop
        // returned with the read still armed and the kernel copied this
        // write into `buf` (or a later one, 100+ MB of them).
        let written = within(Duration::from_secs(10), "drop", move || {
            drop(ring);
            // SAFETY: a valid buffer; `wr` is owned by this test.
            unsafe { libc::write(wr, b"after drop".as_ptr().cast(), 10) }
        });
        assert_eq!(written, 10);
        let mut back = [0u8; 16];
        // SAFETY: valid buffer; fds owned by this test. The pipe holds the
        // 10 bytes unless the read took them (O_NONBLOCK: never blocks).
        let n = unsafe {
            libc::fcntl(rd, libc::F_SETFL, libc::O_NONBLOCK);
            libc::read(rd, back.as_mut_ptr().cast(), 16)
        };
        close(rd);
        close(wr);
        let buf = buf.lock().unwrap();
        assert!(
            buf.iter().all(|&b| b == 0),
            "round {round}: the kernel wrote into the buffer after drop returned"
        );
        assert_eq!(
            n, 10,
            "round {round}: the data written after drop was consumed"
        );
    }
}

#[test]
fn zero_copy_send_keeps_its_credit_until_the_notification() {
    // SEND_ZC posts a completion with F_MORE, then a notification (F_NOTIF,
    // no F_MORE): the credit comes back with the notification only.
    if !common::kernel().at_least(6, 0) {
        skip!("zero_copy_send", "IORING_OP_SEND_ZC needs 6.0");
    }
    let udp = |port| {
        let s = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    };
    let rx = udp(0);
    let tx = udp(0);
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let data = *b"zero-copy";
    let ring = SharedRing::new(8).unwrap();
    use std::os::fd::AsRawFd as _;
    // SAFETY: `data` and the socket outlive the ring (dropped first below).
    unsafe {
        ring.push(
            SendZc::new(Fd(tx.as_raw_fd()), data.as_ptr(), data.len() as u32)
                .build()
                .user_data(4),
        )
    }
    .unwrap();
    ring.submit_and_wait(1).unwrap();
    let mut out = Vec::new();
    let t0 = Instant::now();
    while out
        .iter()
        .all(|c: &Cqe| c.flags().bits() & ring_io_sys::IORING_CQE_F_MORE != 0)
    {
        ring.reap(&mut out, 1);
        if let Some(first) = out.first() {
            if first.flags().bits() & ring_io_sys::IORING_CQE_F_MORE != 0 {
                // The notification is still to come: the credit is out.
                assert!(ring.in_flight() <= 1);
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no final completion: {out:?}"
        );
        let _ = ring.submit_and_wait_timeout(1, Duration::from_millis(50));
    }
    let first = out[0];
    if first.result() == Err(ring_io_sys::Errno::EOPNOTSUPP)
        || first.result() == Err(ring_io_sys::Errno::EINVAL)
    {
        skip!("zero_copy_send", "SEND_ZC refused: {first:?}");
    }
    assert_eq!(first.result(), Ok(data.len() as u32), "{out:?}");
    assert_eq!(out.len(), 2, "a completion and a notification: {out:?}");
    assert!(
        out[1].flags().bits() & ring_io_sys::IORING_CQE_F_NOTIF != 0,
        "{out:?}"
    );
    assert_eq!((ring.in_flight(), ring.unexpected()), (0, 0));
    let mut got = [0u8; 16];
    assert_eq!(rx.recv(&mut got).unwrap(), data.len());
    drop(ring);
}

fn timed_wait_rings() -> Vec<(&'static str, SharedRing)> {
    let mut rings = vec![("plain", SharedRing::new(8).unwrap())];
    match Builder::new(8).sqpoll(20).build_shared() {
        Ok(r) => rings.push(("sqpoll", r)),
        Err(e) => eprintln!("ring-skip: timed waits under SQPOLL: {e}"),
    }
    rings
}

#[test]
fn a_timed_wait_that_submits_times_out_with_too_few_ready_and_loses_nothing() {
    // Before: under SQPOLL the enter that submitted returned the number
    // submitted, hiding ETIME (Ok after the deadline with 1 of 2 ready);
    // without SQPOLL, a timeout request firing woke the wait early with Ok.
    let ring0 = SharedRing::new(8).unwrap();
    if !ring0.params().has(ring_io_sys::Features::EXT_ARG) {
        skip!("a_timed_wait_that_submits", "no IORING_FEAT_EXT_ARG (5.11)");
    }
    drop(ring0);
    let ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 5_000_000,
    };
    for (name, ring) in timed_wait_rings() {
        // SAFETY: NOPs carry no pointers; `ts` outlives the ring.
        unsafe {
            ring.push(nop(1)).unwrap();
            ring.push(Timeout::new(&ts).build().user_data(2)).unwrap();
        }
        let t0 = Instant::now();
        let r = ring.submit_and_wait_timeout(3, Duration::from_millis(60));
        let took = t0.elapsed();
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            other => panic!(
                "{name}: 3 wanted, 2 can come: expected TimedOut, got {other:?} after {took:?}"
            ),
        }
        assert!(
            took >= Duration::from_millis(55),
            "{name}: timed out early: {took:?}"
        );
        assert!(took < Duration::from_secs(2), "{name}: {took:?}");
        // Nothing lost: both completions are there.
        let mut out = Vec::new();
        let t0 = Instant::now();
        while out.len() < 2 && t0.elapsed() < Duration::from_secs(2) {
            ring.reap(&mut out, 8);
        }
        let mut ids: Vec<u64> = out.iter().map(|c| c.user_data()).collect();
        ids.sort();
        assert_eq!(ids, [1, 2], "{name}");
        // Enough ready: Ok.
        // SAFETY: a NOP carries no pointers.
        unsafe { ring.push(nop(3)) }.unwrap();
        ring.submit_and_wait_timeout(1, Duration::from_secs(2))
            .unwrap();
        assert_eq!(ring.pop().map(|c| c.user_data()), Some(3), "{name}");
        assert_eq!(ring.in_flight(), 0, "{name}");
    }
}

#[test]
fn duration_max_waits_without_a_deadline() {
    // Before: the seconds of Duration::MAX were cast to a negative i64 and
    // the kernel refused the wait (EINVAL).
    let ring0 = SharedRing::new(8).unwrap();
    if !ring0.params().has(ring_io_sys::Features::EXT_ARG) {
        skip!("duration_max_waits", "no IORING_FEAT_EXT_ARG (5.11)");
    }
    drop(ring0);
    let ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    for (name, ring) in timed_wait_rings() {
        let ring2 = ring.clone();
        let r = within(Duration::from_secs(10), "a Duration::MAX wait", move || {
            // SAFETY: `ts` lives in this closure until the wait returned
            // with its completion.
            unsafe { ring2.push(Timeout::new(&ts).build().user_data(1)) }.unwrap();
            let r = ring2.submit_and_wait_timeout(1, Duration::MAX);
            let cqe = ring2.pop();
            (r.map_err(|e| e.to_string()), cqe.map(|c| c.user_data()))
        });
        assert!(r.0.is_ok(), "{name}: {r:?}");
        assert_eq!(r.1, Some(1), "{name}");
        drop(ring);
    }
}

#[test]
fn a_wait_for_more_than_the_cq_holds_returns_when_it_is_full() {
    // Forged completions fill the CQ (8 slots) and overflow into the
    // kernel's backlog; a wait for 100 returns with what is there instead
    // of waiting or spinning forever.
    if !has_msg_ring("a_wait_for_more_than_the_cq") {
        return;
    }
    let ring = SharedRing::new(4).unwrap();
    let cq = ring.params().cq_entries();
    forge(&ring, u64::from(cq) + 3);
    let ring2 = ring.clone();
    within(Duration::from_secs(10), "submit_and_wait(100)", move || {
        ring2.submit_and_wait(100).unwrap();
    });
    let mut out = Vec::new();
    let t0 = Instant::now();
    while out.len() < cq as usize + 3 && t0.elapsed() < Duration::from_secs(5) {
        ring.reap(&mut out, 64);
        let _ = ring.submit_and_wait_timeout(1, Duration::from_millis(10));
    }
    assert_eq!(
        out.len(),
        cq as usize + 3,
        "the backlog came in as slots were handed back"
    );
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn a_cq_tail_no_kernel_could_write_is_an_error_not_a_spin_or_a_read_past_the_ring() {
    // A second mapping of the ring's shared words (IORING_OFF_SQ_RING)
    // stands in for a corrupted kernel: it stores a CQ tail 3 rings ahead
    // of the head while nothing is in flight.
    let ring = SharedRing::new(8).unwrap();
    let p = *ring.params().raw();
    if p.features & ring_io_sys::IORING_FEAT_SINGLE_MMAP == 0 {
        skip!(
            "a_cq_tail_no_kernel_could_write_is_an_error",
            "IORING_FEAT_SINGLE_MMAP needs Linux 5.4"
        );
    }
    let len = (p.cq_off.cqes as usize + p.cq_entries as usize * 32)
        .max(p.sq_off.array as usize + p.sq_entries as usize * 4);
    // SAFETY: a shared mapping of the ring fd at the offset the kernel
    // documents for the rings; checked below, unmapped at the end, and only
    // the CQ tail word (inside it, aligned) is written.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            ring.as_raw_fd(),
            ring_io_sys::IORING_OFF_SQ_RING as libc::off_t,
        )
    };
    assert_ne!(
        base,
        libc::MAP_FAILED,
        "{}",
        std::io::Error::last_os_error()
    );
    // SAFETY: cq_off.tail is a u32 word inside the mapping.
    let tail = unsafe {
        &*base
            .cast::<u8>()
            .add(p.cq_off.tail as usize)
            .cast::<AtomicU32>()
    };
    let head = tail.load(Ordering::Acquire);
    tail.store(head.wrapping_add(3 * p.cq_entries), Ordering::Release);

    // Nothing is read past what the kernel could have posted...
    assert!(ring.pop().is_none(), "a CQE read from a corrupted ring");
    // ...and every wait says why instead of spinning on a CQ that always
    // looks ready.
    let err = ring.submit_and_wait(1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let err = ring
        .submit_and_wait_timeout(1, Duration::from_millis(10))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    tail.store(head, Ordering::Release);
    // SAFETY: the mapping made above, no longer used.
    assert_eq!(unsafe { libc::munmap(base, len) }, 0);
}
