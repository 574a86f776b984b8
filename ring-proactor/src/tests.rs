//! Unit tests of the slot table, credit and driver without a kernel thread,
//! and of the ops' result checks against completions no kernel gives.
use std::fs::File;
use std::future::Future;
use std::io::{self};
use std::os::fd::{FromRawFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Waker};
use std::thread::{self};
use std::time::{Duration, Instant};

use ring_io_ops::Entry;

use ring_io_driver::{Probe, Ring};

use crate::CURRENT_POSITION;
use crate::config::*;
use crate::driver::*;
use crate::op::*;
use crate::proactor::*;
use crate::state::*;

use ring_io_ops::KernelVersion;

/// A Proactor's shared state with no thread, over a probe that supports
/// only `ops`.
fn shared_with(ops: &[u8], budget: u32) -> Arc<Shared> {
    shared_probing(
        Probe::from_supported(ops, Some(KernelVersion::new(5, 10, 0))),
        budget,
    )
}

/// A Proactor's shared state with no thread, over `probe`.
fn shared_probing(probe: Probe, budget: u32) -> Arc<Shared> {
    let null = || File::open("/dev/null").unwrap();
    Arc::new(Shared {
        state: CacheLine(Mutex::new(State {
            budget,
            ..State::default()
        })),
        driver: DriverCell::new(None),
        idle: Condvar::new(),
        more: Condvar::new(),
        stopped: Condvar::new(),
        wake: null(),
        probe,
        budget,
        sq_entries: 4,
        ring_fd: OwnedFd::from(null()),
        fixed: None,
        activity: AtomicU64::new(0),
        cells: Arc::new(crate::cells::Cells::new()),
        panicked: std::sync::atomic::AtomicBool::new(false),
        tenure: AtomicU64::new(0),
        handover: crate::drive::Handover::new(),
        no_thread_registration: std::sync::atomic::AtomicBool::new(false),
        direct: std::sync::atomic::AtomicBool::new(false),
    })
}

fn op(shared: &Arc<Shared>, entry: Entry) -> Op<io::Result<u32>> {
    Op {
        shared: crate::op::OpShared::new(shared.clone()),
        entry,
        stage: Stage::New,
        finish: Some(crate::op::Finisher::new(|res: io::Result<u32>, _| res)),
        waker: (0, 0),
    }
}

#[test]
fn a_panic_of_the_thread_fails_waiters_and_leaks_what_the_kernel_may_use() {
    let p = Proactor::new(ProactorConfig::new(8)).expect("a proactor");
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new fds that nothing else owns.
    let (r, _w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let r = Arc::new(r);
    let mut cx = Context::from_waker(Waker::noop());
    // Two reads in the kernel that nothing will complete.
    let mut waited = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
    let mut dropped = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(Pin::new(&mut waited).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut dropped).poll(&mut cx).is_pending());
    while p.stats().max_in_ring < 3 {
        thread::sleep(Duration::from_millis(1));
    }
    p.shared.lock().inject_panic = true;
    p.shared.wake_driver();
    while !p.shared.lock().panicked {
        thread::sleep(Duration::from_millis(1));
    }
    // The waiter panics instead of hanging, and leaks its buffer (and
    // so its clone of the file), even polled with the waker its slot holds
    // (which needs no lock to see the op pending: the thread's death must
    // be seen all the same).
    let panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
        Pin::new(&mut waited).poll(&mut cx).is_ready()
    }))
    .expect_err("polling an op of a dead thread panics");
    let msg = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("thread panicked"), "{msg}");
    // A dropped op leaks its resources too: the kernel may still use them.
    drop(dropped);
    assert_eq!(Arc::strong_count(&r), 3, "both reads' resources are leaked");
    // New ops fail at once with a clear error.
    let err = p.nop().wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    assert_eq!(err.to_string(), "the proactor's thread panicked");
    // Dropping the Proactor does not hang.
    drop(p);
}

#[test]
fn an_op_the_kernel_lacks_fails_with_unsupported_and_queues_nothing() {
    let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 2);
    let entry = ring_io_ops::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build();
    let err = op(&shared, entry).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert_eq!(
        err.to_string(),
        "Socket needs Linux 5.19; this kernel is 5.10"
    );
    let st = shared.lock();
    assert!(st.queue.is_empty());
    assert_eq!(st.in_flight, 0);
}

#[test]
fn ops_past_the_budget_wait_for_credit_and_are_woken_in_order() {
    let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 2);
    let mut cx = Context::from_waker(Waker::noop());
    let nop = || op(&shared, ring_io_ops::Nop::new().build());
    let mut ops: Vec<_> = (0..4).map(|_| nop()).collect();
    for op in &mut ops {
        assert!(Pin::new(op).poll(&mut cx).is_pending());
    }
    {
        let st = shared.lock();
        assert_eq!(st.queue.len(), 2, "the budget is 2");
        assert_eq!(st.in_flight, 2);
        assert_eq!(st.credit_waiters.len(), 2);
    }
    // A dropped waiter leaves the queue.
    drop(ops.pop());
    assert_eq!(shared.lock().credit_waiters.len(), 1);
    // A chain of two waits for two credits.
    let mut chain = nop().link(nop());
    assert!(Pin::new(&mut chain).poll(&mut cx).is_pending());
    assert_eq!(shared.lock().credit_waiters.len(), 2);
    // The thread reaps both queued ops: their credit is granted to the
    // waiters it covers, first come first: the op, not the chain behind
    // it (two credits, one left).
    let mut wakers = Vec::new();
    shared.lock().release_credit(2, &mut wakers);
    assert_eq!(wakers.len(), 1);
    {
        let st = shared.lock();
        assert_eq!(st.credit_waiters.len(), 1, "the chain waits on");
        assert_eq!((st.in_flight, st.reserved), (0, 1));
    }
    // A new op takes the credit left, not the granted one.
    let mut late = nop();
    assert!(Pin::new(&mut late).poll(&mut cx).is_pending());
    let mut later = nop();
    assert!(Pin::new(&mut later).poll(&mut cx).is_pending());
    assert_eq!(shared.lock().queue.len(), 3);
    assert!(format!("{later:?}").contains("waiting for credit"));
    // The woken op takes its granted credit when polled again.
    assert!(Pin::new(&mut ops[2]).poll(&mut cx).is_pending());
    {
        let st = shared.lock();
        assert_eq!(st.queue.len(), 4);
        assert_eq!((st.in_flight, st.reserved), (2, 0));
    }
    drop((chain, later));
}

/// A grant not taken within `CREDIT_LAPSE` (its op was kept, never polled
/// again) goes on to the next waiter; the op whose grant lapsed waits
/// again in its place when polled. A woken op dropped passes its grant on
/// at once.
#[test]
fn granted_credit_lapses_to_the_next_waiter_or_passes_on_when_its_op_is_dropped() {
    let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 1);
    let mut cx = Context::from_waker(Waker::noop());
    let nop = || op(&shared, ring_io_ops::Nop::new().build());
    let mut first = nop();
    assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
    let mut ops: Vec<_> = (0..3).map(|_| nop()).collect();
    for op in &mut ops {
        assert!(Pin::new(op).poll(&mut cx).is_pending());
    }
    let mut wakers = Vec::new();
    shared.lock().release_credit(1, &mut wakers);
    assert_eq!(wakers.len(), 1);
    // Not yet lapsed: nothing moves.
    let now = Instant::now();
    let next = shared.lock().lapse_grants(now, &mut wakers);
    assert_eq!(wakers.len(), 1);
    let due = next.expect("a grant is left");
    assert!(due > now && due <= now + crate::CREDIT_LAPSE);
    // Lapsed: the next waiter is granted it, and the lapse is counted.
    let next = shared.lock().lapse_grants(due, &mut wakers);
    assert_eq!(wakers.len(), 2);
    assert!(next.is_some_and(|at| at > due));
    {
        let st = shared.lock();
        assert_eq!(st.stats.credit_lapses, 1);
        assert_eq!(st.reserved, 1);
        assert_eq!(st.credit_waiters.len(), 1);
    }
    // The op whose grant lapsed finds no room: it waits again, first.
    assert!(Pin::new(&mut ops[0]).poll(&mut cx).is_pending());
    assert!(format!("{:?}", ops[0]).contains("waiting for credit"));
    assert_eq!(shared.lock().credit_waiters.len(), 2);
    // The op granted it now is dropped: the grant goes on at once, to the
    // first in line (the op whose grant lapsed).
    drop(ops.remove(1));
    {
        let st = shared.lock();
        assert_eq!(st.reserved, 1);
        assert_eq!(st.credit_waiters.len(), 1);
    }
    assert!(Pin::new(&mut ops[0]).poll(&mut cx).is_pending());
    {
        let st = shared.lock();
        assert_eq!(st.queue.len(), 2, "the first op and the one granted");
        assert_eq!((st.in_flight, st.reserved), (1, 0));
    }
    drop((first, ops));
}

/// Polls `op` once (it must stay pending) and returns its request's
/// `user_data` (slot and tag).
fn poll_submitted<O: 'static>(op: &mut Op<O>) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut *op).poll(&mut cx).is_pending());
    let Stage::Submitted(ud) = op.stage else {
        panic!("submitted")
    };
    ud
}

/// Makes a simulated ring (8 SQ, 16 CQ entries), scripted by `script`,
/// `shared`'s driver.
fn install_sim_driver(shared: &Shared, script: impl FnOnce(&mut ring_io_core::SimKernel)) {
    use ring_io_core::{Geometry, SimConfig};
    let g = Geometry::new(
        8,
        16,
        ring_io_sys::SetupFlags::empty(),
        ring_io_sys::Features::NODROP,
    )
    .unwrap();
    let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
    script(ring.sim_mut().inner_mut());
    let efd = OwnedFd::from(File::open("/dev/null").unwrap());
    let driver = Driver::new(ring, efd, &ProactorConfig::new(8));
    // SAFETY: no thread drives `shared` (it has no fallback thread, and
    // the test has not started driving it).
    unsafe { shared.driver.with(|d| *d = Some(Box::new(driver))) };
}

/// A NOP of `shared`, submitted, with a simulated ring as its driver on
/// which the request posts nothing and its first cancellation fails with
/// ENOENT (Linux 6.1 answers so while the request is still armed), the
/// second succeeds.
fn submit_one_whose_first_cancellation_fails(shared: &Arc<Shared>) -> Op<io::Result<u32>> {
    use ring_io_core::SimCompletion;
    let mut op = op(shared, ring_io_ops::Nop::new().build());
    let ud = poll_submitted(&mut op);
    let cancel = ud | u64::from(CANCEL_BIT);
    install_sim_driver(shared, |sim| {
        sim.script(ud, []);
        sim.script(cancel, [SimCompletion::new(-libc::ENOENT, 0)]);
        sim.script(cancel, [SimCompletion::new(0, 0)]);
    });
    op
}

#[test]
fn a_cancellation_the_kernel_refuses_is_sent_again_until_one_succeeds() {
    let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 4);
    // A request the kernel keeps (it posts nothing), dropped: its first
    // cancellation fails with ENOENT (Linux 6.1 answers so while the
    // request is still armed), the second succeeds.
    let op = submit_one_whose_first_cancellation_fails(&shared);
    let fallback = shared.clone();
    let thread = thread::spawn(move || crate::drive::fallback(fallback));
    drop(op);
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.lock().stats.cancel_retries < 1 {
        assert!(
            Instant::now() < deadline,
            "the cancellation was not retried"
        );
        thread::sleep(Duration::from_millis(1));
    }
    // The second one succeeded: no third (the backoff is 2 ms).
    thread::sleep(Duration::from_millis(30));
    let stats = shared.lock().stats;
    assert_eq!((stats.cancels, stats.cancel_retries), (1, 1), "{stats:?}");
    assert_eq!(stats.unexpected_cqes, 0);
    // The request never ends: stop the thread (its ring is leaked).
    shared.lock().inject_panic = true;
    assert!(thread.join().is_err());
}

#[test]
fn a_chain_longer_than_the_budget_fails_at_once() {
    let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 1);
    let (a, b) = op(&shared, ring_io_ops::Nop::new().build())
        .link(op(&shared, ring_io_ops::Nop::new().build()))
        .wait();
    assert_eq!(a.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert_eq!(b.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert!(shared.lock().queue.is_empty());
}

#[test]
fn the_fallback_thread_stops_watching_once_callers_stop_driving() {
    // A caller drove (and let the token go) while the fallback thread was
    // waiting: it watches for a grace period, then, with no work and no
    // caller since, goes back to an untimed wait (no wake-up every 5 ms
    // forever).
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    // The fallback thread waits (untimed: no caller drove yet).
    while !p.shared.lock().fallback_idle {
        thread::sleep(Duration::from_millis(1));
    }
    // A caller drives (and lets the token go), then another one does while
    // the fallback thread looks.
    p.nop().wait().unwrap();
    p.shared.lock().releases += 1;
    p.shared.idle.notify_all();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        {
            let st = p.shared.lock();
            if !st.caller_drove && st.fallback_idle && !st.fallback_timed {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the fallback thread keeps watching"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn tags_differ_between_proactors_and_from_one_to_the_next() {
    let (mut a, mut b) = (crate::state::Tags::default(), crate::state::Tags::default());
    let (a1, a2, b1, b2) = (a.next(), a.next(), b.next(), b.next());
    // Each false failure has a chance of 2^-64.
    assert!((a1, a2) != (b1, b2), "two seeds drew the same tags");
    let c = crate::state::Tags::default().next();
    assert!((a1, b1) != (c, c));
}

#[cfg(feature = "tokio")]
#[test]
fn a_tokio_drive_task_retries_a_refused_cancellation_when_the_fallback_says_it_is_due() {
    // As above, with a drive task attached: it never waits in the kernel,
    // so the fallback thread wakes it when the retry is due (and drives
    // nothing itself). The task dawdles 3 ms after each turn, past the
    // retry's time (1 ms): the fallback thread finds it not waiting then,
    // and the task must see for itself that the time has passed (it slept
    // on, the retry lost, when the fallback thread took the time as done:
    // seen under TCG on Linux 6.1).
    *crate::tokio::DAWDLE.lock().unwrap() = Duration::from_millis(3);
    let mut shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 4);
    // The drive task watches the ring's fd: an eventfd nothing writes
    // stands in for the simulated ring's.
    // SAFETY: eventfd(2) takes no pointers; the result is checked.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(efd >= 0);
    // SAFETY: a new fd that nothing else owns.
    Arc::get_mut(&mut shared).unwrap().ring_fd = unsafe { OwnedFd::from_raw_fd(efd) };
    let op = submit_one_whose_first_cancellation_fails(&shared);
    let rt = ::tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .build()
        .unwrap();
    let task = {
        let _in = rt.enter();
        crate::tokio::spawn_on(&shared).unwrap()
    };
    // Started once the task is attached (it would drive the queued NOP).
    let fallback = shared.clone();
    let thread = thread::spawn(move || crate::drive::fallback(fallback));
    // The queued NOP is pushed by the drive task, then dropped: its
    // cancellation is refused once, and sent again 1 ms later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shared.lock().queue.is_empty() {
        assert!(Instant::now() < deadline, "the drive task did not run");
        thread::sleep(Duration::from_millis(1));
    }
    drop(op);
    while shared.lock().stats.cancel_retries < 1 {
        assert!(
            Instant::now() < deadline,
            "the cancellation was not retried: {:?}",
            shared.lock().stats
        );
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(30));
    let stats = shared.lock().stats;
    assert_eq!((stats.cancels, stats.cancel_retries), (1, 1), "{stats:?}");
    assert_eq!(stats.fallback_takeovers, 0, "{stats:?}");
    assert!(!task.is_finished());
    // The request never ends: stop the task, then the fallback thread,
    // which takes over the ring and panics in its turn (the ring is leaked).
    rt.block_on(task.stop());
    shared.lock().inject_panic = true;
    shared.idle.notify_all();
    assert!(thread.join().is_err());
}

#[test]
fn a_holder_stepped_out_past_the_48_bit_tenure_is_still_taken_over() {
    // A step out's value keeps the tenure's low 48 bits: past 2^48 tokens
    // taken (a busy `drive` loop of years), a holder running user code must
    // still be taken over (and the value must never be 0: "not out").
    use std::sync::atomic::{AtomicBool, Ordering};
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    // The next take is the 2^48th.
    p.shared
        .tenure
        .store((1 << 48) - 1, std::sync::atomic::Ordering::Relaxed);
    let done = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = std::sync::mpsc::channel();
    let busy = {
        let (p, done) = (p.clone(), done.clone());
        thread::spawn(move || {
            crate::block_on(async {
                // Until this thread holds the token: on a loaded machine
                // the fallback thread may drive its first NOP (its grace
                // period passing before this thread asks), and a holder
                // that does not hold it is taken over by nobody.
                let me = thread::current().id();
                for _ in 0..1000 {
                    p.nop().await.unwrap();
                    if p.shared.lock().owner == Some(me) {
                        break;
                    }
                }
                assert_eq!(p.shared.lock().owner, Some(me), "never drove");
                started_tx.send(()).unwrap();
                // Computes until the other thread's ops completed.
                let start = Instant::now();
                while !done.load(Ordering::Acquire) {
                    if start.elapsed() > Duration::from_secs(10) {
                        return false;
                    }
                    std::hint::spin_loop();
                }
                true
            })
        })
    };
    started.recv().unwrap();
    for _ in 0..10 {
        p.nop().wait().unwrap();
    }
    done.store(true, Ordering::Release);
    assert!(
        busy.join().unwrap(),
        "the other thread's ops completed only after the holder gave up"
    );
    let stats = p.stats();
    assert!(stats.token_takeovers > 0, "{stats:?}");
}

// ---------------------------------------------------------------------------
// Completions that carry an op's real user_data and a result no kernel
// gives for it (a MSG_RING forgery that guessed the 32-bit tag, or a
// kernel bug): the result checks, not the tag, must hold them.

/// A Proactor with no thread over a probe of every opcode (Linux 6.18);
/// its driver is installed by [`complete_with`].
fn sim_proactor() -> Proactor {
    let all: Vec<u8> = (0..ring_io_sys::IORING_OP_LAST).collect();
    let probe = Probe::from_supported(&all, Some(KernelVersion::new(6, 18, 0)));
    Proactor::from_shared(shared_probing(probe, 8))
}

/// `op`'s output when its request completes with `res`: `op` (of a fresh
/// [`sim_proactor`]) is submitted, then a simulated ring becomes the
/// Proactor's driver, scripted to answer the request's real `user_data`
/// (slot and tag) with one CQE of result `res`.
fn complete_with<O: 'static>(p: &Proactor, mut op: Op<O>, res: i32) -> O {
    use ring_io_core::SimCompletion;
    let ud = poll_submitted(&mut op);
    install_sim_driver(&p.shared, |sim| {
        sim.script(ud, [SimCompletion::new(res, 0)]);
    });
    let out = op.wait();
    let stats = p.stats();
    assert_eq!(stats.unexpected_cqes, 0, "the CQE was the op's: {stats:?}");
    out
}

/// `complete_with` on a fresh Proactor, `make` building the op.
fn hostile<O: 'static>(res: i32, make: impl FnOnce(&Proactor) -> Op<O>) -> O {
    let p = sim_proactor();
    let op = make(&p);
    complete_with(&p, op, res)
}

/// A file for the ops to name (the simulated ring never touches it).
fn null() -> Arc<File> {
    Arc::new(File::open("/dev/null").unwrap())
}

#[track_caller]
fn assert_invalid_data<T: std::fmt::Debug>(res: io::Result<T>, what: &str) {
    let err = res.expect_err(what);
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
}

#[test]
fn a_read_whose_completion_claims_more_than_its_room_fails_and_keeps_its_buffer() {
    // A read into a Vec of capacity 8 holding 3 bytes: a result past the
    // capacity would have `set_len` it past its allocation.
    for res in [9, 4096, i32::MAX] {
        let (n, buf) = hostile(res, |p| {
            let mut buf = Vec::with_capacity(8);
            buf.extend_from_slice(b"abc");
            p.read(null(), buf, 0)
        });
        assert!(
            buf.len() <= buf.capacity(),
            "{} > {}",
            buf.len(),
            buf.capacity()
        );
        assert_invalid_data(n, &format!("a read of 8 bytes completing with {res}"));
        assert_eq!(buf, b"abc", "the buffer is unchanged");
        let (n, buf) = hostile(res, |p| {
            p.recv(null(), Vec::with_capacity(8), crate::MsgFlags::empty())
        });
        assert!(buf.len() <= buf.capacity());
        assert_invalid_data(n, &format!("a recv of 8 bytes completing with {res}"));
        assert!(buf.is_empty());
        let (n, buf) = hostile(res, |p| p.recv_from(null(), Vec::with_capacity(8)));
        assert!(buf.len() <= buf.capacity());
        assert_invalid_data(n, &format!("a recv_from of 8 bytes completing with {res}"));
        assert!(buf.is_empty());
        let (n, bufs) = hostile(res, |p| {
            p.readv(
                null(),
                vec![Vec::with_capacity(4), Vec::with_capacity(4)],
                0,
            )
        });
        assert!(
            bufs.iter().all(|b| b.is_empty()),
            "readv's buffers unchanged"
        );
        assert_invalid_data(n, &format!("a readv of 8 bytes completing with {res}"));
    }
    // The most the op could read is taken as it is.
    let (n, buf) = hostile(8, |p| p.read(null(), room(8), 0));
    assert_eq!((n.unwrap(), buf.len()), (8, 8));
    let (n, bufs) = hostile(6, |p| p.readv(null(), vec![room(4), room(4)], 0));
    assert_eq!(n.unwrap(), 6);
    assert_eq!((bufs[0].len(), bufs[1].len()), (4, 2));
}

#[test]
fn a_write_whose_completion_claims_more_than_it_sent_fails() {
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    for res in [5, i32::MAX] {
        let what = |op: &str| format!("a {op} of 4 bytes completing with {res}");
        let (n, _) = hostile(res, |p| p.write(null(), b"abcd".to_vec(), 0));
        assert_invalid_data(n, &what("write"));
        let (n, _) = hostile(res, |p| {
            p.send(null(), b"abcd".to_vec(), crate::MsgFlags::empty())
        });
        assert_invalid_data(n, &what("send"));
        let (n, _) = hostile(res, |p| p.send_to(null(), b"abcd".to_vec(), addr));
        assert_invalid_data(n, &what("send_to"));
        let (n, _) = hostile(res, |p| {
            p.writev(null(), vec![b"ab".to_vec(), b"cd".to_vec()], 0)
        });
        assert_invalid_data(n, &what("writev"));
        let n = hostile(res, |p| p.splice(null(), None, null(), None, 4));
        assert_invalid_data(n, &what("splice"));
    }
    let (n, _) = hostile(4, |p| p.write(null(), b"abcd".to_vec(), 0));
    assert_eq!(n.unwrap(), 4);
}

/// Whether `fd` is open in this process.
fn is_open(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer; a closed fd fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

#[test]
fn a_completion_naming_an_fd_hands_out_or_closes_nothing_for_an_op_that_makes_none() {
    // The result is the number of a file the test owns: an op that makes
    // no fd must not take it as one (an `OwnedFd` of it would close the
    // test's file when dropped).
    use std::os::fd::AsRawFd;
    let mine = File::open("/dev/null").unwrap();
    let res = mine.as_raw_fd();
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    hostile(res, |p| p.fsync(null(), false)).unwrap();
    hostile(res, |p| p.connect(null(), addr)).unwrap();
    hostile(res, |p| p.shutdown(null(), std::net::Shutdown::Both)).unwrap();
    // A positive count for an op that returns none is no count either.
    hostile(i32::MAX, |p| p.fsync(null(), true)).unwrap();
    assert!(is_open(res), "the test's file was closed");
    drop(mine);
}

/// `op` of a LocalProactor, completed by the kernel with `res` and the
/// op's real user_data: its entry is swapped, before it is submitted, for
/// a NOP that injects `res` (`IORING_NOP_INJECT_RESULT`), so the op's own
/// finish gets a result its request could never give. `None` on kernels
/// before 6.10, which lack the flag (a skip line for `test`, counted by
/// the kernel matrix).
fn local_hostile<O: 'static>(
    test: &str,
    res: i32,
    make: impl FnOnce(&crate::LocalProactor) -> crate::LocalOp<O>,
) -> Option<O> {
    let p = crate::LocalProactor::new(ProactorConfig::new(8)).unwrap();
    if p.probe().kernel().is_some_and(|k| !k.at_least(6, 10)) {
        eprintln!("ring-skip: {test}: IORING_NOP_INJECT_RESULT needs Linux 6.10");
        return None;
    }
    let mut op = make(&p);
    op.entry = ring_io_ops::Nop::new().inject_result(res).build();
    let out = op.wait();
    assert_eq!(p.stats().unexpected_cqes, 0);
    Some(out)
}

/// A Vec of capacity `n` whose `n` bytes are initialized (empty): a
/// result that claims the whole room without a kernel writing it (the
/// simulated ring, an injected NOP) hands back bytes that are still
/// initialized.
fn room(n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    v.clear();
    v
}

#[test]
fn a_local_op_whose_completion_claims_more_than_its_buffer_fails_and_keeps_it() {
    const TEST: &str = "a_local_op_whose_completion_claims_more_than_its_buffer_fails_and_keeps_it";
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    for res in [9, i32::MAX] {
        let Some((n, buf)) = local_hostile(TEST, res, |p| {
            let mut buf = Vec::with_capacity(8);
            buf.extend_from_slice(b"abc");
            p.read(null(), buf, 0)
        }) else {
            return;
        };
        assert!(
            buf.len() <= buf.capacity(),
            "{} > {}",
            buf.len(),
            buf.capacity()
        );
        assert_invalid_data(n, &format!("a local read of 8 bytes completing with {res}"));
        assert_eq!(buf, b"abc", "the buffer is unchanged");
        let (n, buf) =
            local_hostile(TEST, res, |p| p.recv_from(null(), Vec::with_capacity(8))).unwrap();
        assert!(buf.is_empty());
        assert_invalid_data(n, "a local recv_from");
        let (n, bufs) = local_hostile(TEST, res, |p| {
            p.readv(
                null(),
                vec![Vec::with_capacity(4), Vec::with_capacity(4)],
                0,
            )
        })
        .unwrap();
        assert!(bufs.iter().all(|b| b.is_empty()));
        assert_invalid_data(n, "a local readv");
        let (n, _) = local_hostile(TEST, res, |p| p.send_to(null(), vec![0; 8], addr)).unwrap();
        assert_invalid_data(n, "a local send_to");
    }
    // The full count is taken as it is.
    let (n, buf) = local_hostile(TEST, 8, |p| p.read(null(), room(8), 0)).unwrap();
    assert_eq!((n.unwrap(), buf.len()), (8, 8));
    // A count (or fd number) for an op that has none changes nothing.
    use std::os::fd::AsRawFd;
    let mine = File::open("/dev/null").unwrap();
    local_hostile(TEST, mine.as_raw_fd(), |p| p.fsync(null(), false))
        .unwrap()
        .unwrap();
    assert!(is_open(mine.as_raw_fd()));
}

/// The kernel fails the next request of a linked chain, unrun, with
/// `EFAULT` when the thread that submitted the chain has exited (its task
/// work runs on the kernel's fallback, which may not submit). After a
/// thread that drove exited, such an `EFAULT` of a chain member is the
/// `ECANCELED` the docs promise; before it, or for a request alone, an
/// `EFAULT` stays what it is.
#[test]
fn a_chain_member_failed_with_efault_after_a_driver_exited_ends_with_ecanceled() {
    use ring_io_core::SimCompletion;
    for (linked, exited, want) in [
        (true, true, libc::ECANCELED),
        (true, false, libc::EFAULT),
        (false, true, libc::EFAULT),
    ] {
        let p = sim_proactor();
        let mut cx = Context::from_waker(Waker::noop());
        let mut chain = std::pin::pin!(p.nop().link(p.nop()));
        let mut alone = p.nop();
        if linked {
            assert!(chain.as_mut().poll(&mut cx).is_pending());
        } else {
            assert!(Pin::new(&mut alone).poll(&mut cx).is_pending());
        }
        let uds: Vec<u64> = p
            .shared
            .lock()
            .queue
            .iter()
            .map(|e| e.get_user_data())
            .collect();
        if exited {
            p.shared.lock().driver_exited();
        }
        install_sim_driver(&p.shared, |sim| {
            if let [first, second] = uds[..] {
                sim.script(first, [SimCompletion::new(0, 0)]);
                sim.script(second, [SimCompletion::new(-libc::EFAULT, 0)]);
            } else {
                sim.script(uds[0], [SimCompletion::new(-libc::EFAULT, 0)]);
            }
        });
        let res = if linked {
            let (first, second) = crate::block_on(chain.as_mut());
            first.expect("the first NOP");
            second
        } else {
            alone.wait()
        };
        let got = res.expect_err("failed").raw_os_error();
        assert_eq!(got, Some(want), "linked {linked}, exited {exited}");
    }
}

/// A xorshift generator seeded with `seed`: each call, a number below its
/// argument (for the randomized tests of the credit and the slab).
pub(crate) fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    }
}

/// Credit under random interleavings of ops that come, wait, are polled
/// again, are dropped, complete, and grants that lapse: what is granted is
/// what is reserved, in flight and reserved stay within the budget, no op
/// is both waiting and granted, no room is left free while the first
/// waiter fits, and in the end every op completes.
#[test]
fn credit_grants_keep_their_invariants_under_random_interleavings() {
    for seed in 1..=200u64 {
        let mut next = seeded(seed);
        let budget = 1 + next(4) as u32;
        let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], budget);
        let mut cx = Context::from_waker(Waker::noop());
        let mut ops: Vec<Op<io::Result<u32>>> = Vec::new();
        let check = |shared: &Shared, what: &str| {
            let st = shared.lock();
            let granted: u32 = st.grants.values().map(|&(need, _)| need).sum();
            assert_eq!(st.reserved, granted, "seed {seed}, {what}");
            assert!(st.in_flight + st.reserved <= budget, "seed {seed}, {what}");
            assert!(
                st.grants.keys().all(|t| !st.credit_waiters.contains_key(t)),
                "seed {seed}, {what}: a waiter both queued and granted"
            );
            if let Some((_, &(_, need))) = st.credit_waiters.first_key_value() {
                assert!(!st.has_room(need), "seed {seed}, {what}: room left free");
            }
        };
        // Completes op `i` (submitted): its slot and credit come back.
        let complete = |ops: &mut Vec<Op<io::Result<u32>>>, i: usize| {
            let mut op = ops.swap_remove(i);
            let Stage::Submitted(ud) = op.stage else {
                unreachable!("submitted")
            };
            let mut wakers = Vec::new();
            let old = shared.lock().release_slot(ud, &mut wakers);
            drop(old);
            wake_all(&mut wakers);
            // Its slot is gone: the op ends as if it had taken its output
            // (its drop then releases nothing).
            op.stage = Stage::Finished;
            op.finish = None;
            drop(op);
        };
        let waiting = |op: &Op<io::Result<u32>>| matches!(op.stage, Stage::Credit(_));
        for step in 0..60 {
            match next(6) {
                0 | 1 if ops.len() < 12 => {
                    let mut op = op(&shared, ring_io_ops::Nop::new().build());
                    assert!(Pin::new(&mut op).poll(&mut cx).is_pending());
                    ops.push(op);
                }
                2 => {
                    if let Some(i) = (0..ops.len()).find(|&i| waiting(&ops[i])) {
                        assert!(Pin::new(&mut ops[i]).poll(&mut cx).is_pending());
                    }
                }
                3 => {
                    let at = next(ops.len().max(1) as u64) as usize;
                    if ops.get(at).is_some_and(waiting) {
                        drop(ops.swap_remove(at));
                    }
                }
                4 => {
                    let submitted: Vec<_> = (0..ops.len()).filter(|&i| !waiting(&ops[i])).collect();
                    if !submitted.is_empty() {
                        let i = submitted[next(submitted.len() as u64) as usize];
                        complete(&mut ops, i);
                    }
                }
                _ => {
                    let later = Instant::now() + crate::CREDIT_LAPSE * 2;
                    let at = if next(2) == 0 { Instant::now() } else { later };
                    let mut wakers = Vec::new();
                    shared.lock().lapse_grants(at, &mut wakers);
                    wake_all(&mut wakers);
                }
            }
            check(&shared, &format!("step {step}"));
        }
        // The end: grants lapse, waiting ops are polled, submitted ones
        // complete, until none is left.
        for _ in 0..100 {
            if ops.is_empty() {
                break;
            }
            let mut wakers = Vec::new();
            let later = Instant::now() + crate::CREDIT_LAPSE * 2;
            shared.lock().lapse_grants(later, &mut wakers);
            wake_all(&mut wakers);
            for op in ops.iter_mut().filter(|op| waiting(op)) {
                assert!(Pin::new(op).poll(&mut cx).is_pending());
            }
            while let Some(i) = (0..ops.len()).find(|&i| !waiting(&ops[i])) {
                complete(&mut ops, i);
            }
            check(&shared, "draining");
        }
        assert!(
            ops.is_empty(),
            "seed {seed}: {} ops never got credit",
            ops.len()
        );
        let st = shared.lock();
        assert_eq!((st.in_flight, st.reserved), (0, 0), "seed {seed}");
    }
}
