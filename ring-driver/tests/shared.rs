//! `SharedRing` on the running kernel: many threads pushing, submitting and
//! reaping on one ring; back-pressure; waits from several threads; close
//! with work in flight; the setup flags a shared ring refuses.
//!
//! The stress test runs `RING_STRESS_OPS` NOPs per thread on 4 threads
//! (default: 1,000,000 in release builds, 50,000 in debug builds).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ring_driver::{Builder, Cqe, PushError, SetupError, SharedRing};
use ring_ops::{Entry, Fd, Nop, Read, Timeout, Write};
use ring_sys::__kernel_timespec;

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
        !flags.contains(ring_sys::SetupFlags::COOP_TASKRUN),
        "{flags:?}"
    );
    assert!(
        !flags.contains(ring_sys::SetupFlags::SINGLE_ISSUER),
        "{flags:?}"
    );
    if common::kernel().at_least(5, 18) {
        assert!(ring.defaults().contains(ring_sys::SetupFlags::SUBMIT_ALL));
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
    if !ring.params().has(ring_sys::Features::EXT_ARG) {
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
            .all(|c| c.result() == Err(ring_sys::Errno::ETIME)),
        "timeouts expire with -ETIME"
    );
    assert!(blocked > 0, "no waiter ever blocked in the kernel");
    assert_eq!(ring.in_flight(), 0);
    drop(ring);
    drop(times);
}

#[test]
fn last_handle_drop_cancels_what_is_in_flight_and_waits() {
    if !common::kernel().at_least(5, 19) {
        skip!(
            "last_handle_drop_cancels",
            "IORING_ASYNC_CANCEL_ANY needs 5.19"
        );
    }
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
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [rd, wr] = fds;
    let data = *b"abc";
    let ring = SharedRing::new(8).unwrap();
    // SAFETY: `data` and `wr` outlive the ring, whose drop waits for the write.
    unsafe { ring.push(Write::new(Fd(wr), data.as_ptr(), 3).build().user_data(1)) }.unwrap();
    assert_eq!(ring.pending(), 1);
    drop(ring);
    let mut back = [0u8; 8];
    // SAFETY: valid buffer; fds owned by this test. The pipe is
    // non-empty if the close submitted the write, so this does not block
    // (O_NONBLOCK guards a failure from hanging).
    unsafe {
        libc::fcntl(rd, libc::F_SETFL, libc::O_NONBLOCK);
        assert_eq!(libc::read(rd, back.as_mut_ptr().cast(), 8), 3);
        libc::close(rd);
        libc::close(wr);
    }
    assert_eq!(&back[..3], b"abc");
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
    if !ring.params().has(ring_sys::Features::EXT_ARG) {
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
    assert_eq!(ring.defaults(), ring_sys::SetupFlags::empty());
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
