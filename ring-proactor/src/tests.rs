//! Unit tests of the slot table, credit and driver without a kernel thread.
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
    let null = || File::open("/dev/null").unwrap();
    Arc::new(Shared {
        state: CacheLine(Mutex::new(State::default())),
        driver: Mutex::new(None),
        idle: Condvar::new(),
        more: Condvar::new(),
        stopped: Condvar::new(),
        wake: null(),
        probe: Probe::from_supported(ops, Some(KernelVersion::new(5, 10, 0))),
        budget,
        sq_entries: 4,
        ring_fd: OwnedFd::from(null()),
        fixed: None,
        activity: AtomicU64::new(0),
        cells: Arc::new(crate::cells::Cells::new()),
        panicked: std::sync::atomic::AtomicBool::new(false),
        tenure: AtomicU64::new(0),
        handover: crate::drive::Handover::new(),
    })
}

fn op(shared: &Arc<Shared>, entry: Entry) -> Op<io::Result<u32>> {
    Op {
        shared: shared.clone(),
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
    // The thread reaps both queued ops: the two waiters are woken,
    // first come first.
    let mut wakers = Vec::new();
    shared.lock().release_credit(2, &mut wakers);
    assert_eq!(wakers.len(), 2);
    assert!(shared.lock().credit_waiters.is_empty());
    // The waiting op takes its credit when polled again.
    assert!(Pin::new(&mut ops[2]).poll(&mut cx).is_pending());
    assert_eq!(shared.lock().queue.len(), 3);
    drop(chain);
}

/// A NOP of `shared`, submitted, with a simulated ring as its driver on
/// which the request posts nothing and its first cancellation fails with
/// ENOENT (Linux 6.1 answers so while the request is still armed), the
/// second succeeds.
fn submit_one_whose_first_cancellation_fails(shared: &Arc<Shared>) -> Op<io::Result<u32>> {
    use ring_io_core::{Geometry, SimCompletion, SimConfig};
    let mut op = op(shared, ring_io_ops::Nop::new().build());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut op).poll(&mut cx).is_pending());
    let Stage::Submitted(ud) = op.stage else {
        panic!("submitted")
    };
    let cancel = ud | u64::from(CANCEL_BIT);
    let g = Geometry::new(
        8,
        16,
        ring_io_sys::SetupFlags::empty(),
        ring_io_sys::Features::NODROP,
    )
    .unwrap();
    let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
    let sim = ring.sim_mut().inner_mut();
    sim.script(ud, []);
    sim.script(cancel, [SimCompletion::new(-libc::ENOENT, 0)]);
    sim.script(cancel, [SimCompletion::new(0, 0)]);
    let efd = OwnedFd::from(File::open("/dev/null").unwrap());
    let driver = Driver::new(ring, efd, &ProactorConfig::new(8));
    *shared.driver.lock().unwrap() = Some(Box::new(driver));
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
                p.nop().await.unwrap();
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
    assert!(p.stats().token_takeovers > 0);
}
