//! The driver token is never held hostage by user code. A thread that
//! holds it (a `block_on` between its turns, a driver running the wakers
//! and drops its turn collected) runs user code that may take long (a
//! CPU-bound future, a waker or a `Drop` that blocks); meanwhile every
//! other thread's ops must go on completing: a thread about to block takes
//! the token over, and the fallback thread takes it over for ops nobody
//! waits on.
//!
//! The tests are progress-based, not timed: the user code that holds on
//! runs until the other thread's op has completed, or gives up after
//! [`LIMIT`]; giving up fails the test (before the fix, each gave up).

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_proactor::{Proactor, ProactorConfig, block_on};

/// How long user code holds on at most, waiting for another thread's op.
const LIMIT: Duration = Duration::from_secs(10);

/// Spins until `flag` is set or [`LIMIT`] has passed: true if it was set.
fn spin_until(flag: &AtomicBool) -> bool {
    let start = Instant::now();
    while !flag.load(Ordering::Acquire) {
        if start.elapsed() > LIMIT {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// Ten ops of this thread, each waited on, then `done` set: the user
/// code holding on elsewhere gave up if they could not complete.
fn waits_then_done(p: &Proactor, done: &AtomicBool) {
    for _ in 0..10 {
        p.nop().wait().expect("this thread's NOP");
    }
    done.store(true, Ordering::Release);
}

/// A thread in `block_on` that drove the ring (an op of its own
/// completed) and then computes until `done` is set; its result says
/// whether `done` was set before it gave up. Returns once it computes.
fn busy_block_on(p: &Proactor, done: Arc<AtomicBool>) -> thread::JoinHandle<bool> {
    busy_block_on_after(p, 1, done)
}

/// [`busy_block_on`] after `ops` ops of its own, one at a time.
fn busy_block_on_after(
    p: &Proactor,
    ops: usize,
    done: Arc<AtomicBool>,
) -> thread::JoinHandle<bool> {
    let p = p.clone();
    let (started, rx) = mpsc::channel();
    let busy = thread::spawn(move || {
        block_on(async {
            for _ in 0..ops {
                p.nop().await.expect("a NOP");
            }
            started.send(()).unwrap();
            let seen = spin_until(&done);
            p.nop().await.expect("a NOP after");
            seen
        })
    });
    rx.recv().unwrap();
    busy
}

#[test]
fn a_cpu_bound_future_in_block_on_does_not_hold_up_another_threads_wait() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let busy = busy_block_on(&p, done.clone());
    waits_then_done(&p, &done);
    assert!(
        busy.join().unwrap(),
        "this thread's ops completed only after the busy thread gave up computing"
    );
}

/// Counts its wake-ups and unparks the thread that polls.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

#[test]
fn a_cpu_bound_future_in_block_on_does_not_hold_up_an_op_nobody_waits_on() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let busy = busy_block_on(&p, done.clone());
    // An executor that only polls (tokio's, say): the fallback thread
    // must take the ring over.
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let start = Instant::now();
    for _ in 0..10 {
        let mut op = p.nop();
        loop {
            if let Poll::Ready(res) = Pin::new(&mut op).poll(&mut cx) {
                res.expect("a NOP");
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "the op never completed: {:?}",
                p.stats()
            );
            thread::park_timeout(Duration::from_millis(100));
        }
    }
    done.store(true, Ordering::Release);
    assert!(
        busy.join().unwrap(),
        "the polled ops completed only after the busy thread gave up computing"
    );
}

/// A waker that, the first time it is woken, blocks until `done` is set
/// (at most [`LIMIT`]) and records whether it was; `entered` is told when
/// it starts blocking.
struct Blocker {
    entered: Mutex<Option<mpsc::Sender<()>>>,
    done: Arc<AtomicBool>,
    seen: mpsc::Sender<bool>,
}

impl Wake for Blocker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let Some(entered) = self.entered.lock().unwrap().take() else {
            return;
        };
        entered.send(()).unwrap();
        let seen = spin_until(&self.done);
        self.seen.send(seen).unwrap();
    }
}

/// Polls a NOP of `p` once with a [`Blocker`] waker; returns the channels
/// saying when the waker blocks and whether it saw `done`, and the op.
fn blocked_waker(
    p: &Proactor,
    done: &Arc<AtomicBool>,
) -> (
    mpsc::Receiver<()>,
    mpsc::Receiver<bool>,
    impl Future + Unpin,
) {
    let (entered_tx, entered) = mpsc::channel();
    let (seen_tx, seen) = mpsc::channel();
    let waker = Waker::from(Arc::new(Blocker {
        entered: Mutex::new(Some(entered_tx)),
        done: done.clone(),
        seen: seen_tx,
    }));
    let mut op = p.nop();
    assert!(
        Pin::new(&mut op)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    (entered, seen, op)
}

#[test]
fn a_waker_that_blocks_on_the_fallback_thread_does_not_hold_up_another_threads_wait() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // Nobody waits on the op: the fallback thread completes it and runs
    // its waker, which blocks.
    let (entered, seen, _op) = blocked_waker(&p, &done);
    entered.recv_timeout(LIMIT).expect("the waker was run");
    waits_then_done(&p, &done);
    assert!(
        seen.recv().unwrap(),
        "this thread's ops completed only after the blocking waker gave up"
    );
}

#[test]
fn a_waker_that_blocks_on_a_driving_thread_does_not_hold_up_another_threads_wait() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (entered, seen, _op) = blocked_waker(&p, &done);
    // A thread that drives again and again: its turn completes the op and
    // runs the blocking waker (or the fallback thread does; either way the
    // token's holder blocks).
    let driver = {
        let (p, done) = (p.clone(), done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                p.nop().wait().expect("the driver's NOP");
            }
        })
    };
    entered.recv_timeout(LIMIT).expect("the waker was run");
    waits_then_done(&p, &done);
    assert!(
        seen.recv().unwrap(),
        "this thread's ops completed only after the blocking waker gave up"
    );
    driver.join().unwrap();
}

/// A file whose drop blocks until `done` is set (at most [`LIMIT`]) and
/// records whether it was.
struct SlowDrop {
    fd: OwnedFd,
    done: Arc<AtomicBool>,
    seen: mpsc::Sender<bool>,
    /// The thread the drop runs on, sent when it starts.
    entered: mpsc::Sender<String>,
}

impl std::os::fd::AsFd for SlowDrop {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        let me = thread::current();
        let _ = self
            .entered
            .send(me.name().unwrap_or("<unnamed>").to_string());
        let seen = spin_until(&self.done);
        let _ = self.seen.send(seen);
    }
}

#[test]
fn a_resource_whose_drop_blocks_does_not_hold_up_another_threads_wait() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (seen_tx, seen) = mpsc::channel();
    let (entered_tx, entered) = mpsc::channel();
    let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
    let file = Arc::new(SlowDrop {
        fd: r.into(),
        done: done.clone(),
        seen: seen_tx,
        entered: entered_tx,
    });
    // A read polled once and dropped: the op keeps the file until its
    // CQE, and whoever reaps that CQE drops the file.
    let mut read = p.read(&file, Vec::with_capacity(8), 0);
    assert!(
        Pin::new(&mut read)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    // The test's handle first: the op's is then the last (dropped by
    // this thread after the reaper freed the op's, the drop would block
    // this thread itself, seen under AddressSanitizer in 2 of 15 runs).
    drop(file);
    drop(read);
    // The drop's cancel or this byte completes the read, whichever comes
    // first; if the cancel did, the read end may be closed already and the
    // write fails with EPIPE, which is fine.
    let _ = std::io::Write::write_all(&mut w, b"x");
    let dropper = entered.recv_timeout(LIMIT).expect("the file was dropped");
    waits_then_done(&p, &done);
    assert!(
        seen.recv().unwrap(),
        "this thread's ops completed only after the blocking drop (on thread {dropper}) gave up: {:?}",
        p.stats()
    );
}

/// Whether the kernel registers rings in a thread's table
/// (`IORING_REGISTER_RING_FDS`, 5.18).
fn kernel_registers_rings() -> bool {
    ring_io_driver::kernel_version().is_some_and(|v| v.at_least(5, 18))
}

#[test]
fn a_long_block_on_registers_the_ring_in_its_thread_for_its_hold_only() {
    let test = "a_long_block_on_registers_the_ring_in_its_thread_for_its_hold_only";
    let registers = kernel_registers_rings();
    // A fresh thread: its table of rings (16 slots) starts empty. Forty
    // Proactors, one after another, each driven for 200 turns by this
    // thread's `block_on`, each register their ring there; a registration
    // kept past its hold of the token (past the `block_on`, or past the
    // Proactor, which every other one drops inside its future) would fill
    // the table by the 17th, whose registration would fail.
    thread::spawn(move || {
        for i in 0..40 {
            let p = Proactor::new(ProactorConfig::new(8)).unwrap();
            let kept = block_on(async {
                for _ in 0..200 {
                    p.nop().await.expect("a NOP");
                }
                (i % 2 == 0).then_some(p)
            });
            if let Some(p) = kept {
                let n = p.stats().thread_registrations;
                if registers {
                    assert!(n >= 1, "Proactor {i} did not register its ring: {n}");
                } else {
                    assert_eq!(n, 0, "Proactor {i} registered on a kernel without it");
                }
            }
        }
    })
    .join()
    .unwrap();
    if !registers {
        eprintln!("ring-skip: {test}: no IORING_REGISTER_RING_FDS (5.18)");
    }
}

#[test]
fn a_thread_that_registered_the_ring_and_computes_is_taken_over_by_one_without() {
    // The busy thread drives for 200 turns (and registers the ring in its
    // table), then computes; this thread takes the token over and enters
    // by the ring's fd: the busy thread's index means nothing here.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let busy = busy_block_on_after(&p, 200, done.clone());
    waits_then_done(&p, &done);
    assert!(busy.join().unwrap(), "this thread's waits completed");
    let stats = p.stats();
    assert!(stats.token_takeovers >= 1, "{stats:?}");
    if kernel_registers_rings() {
        assert!(stats.thread_registrations >= 1, "{stats:?}");
    }
    // And both threads go on.
    block_on(async {
        for _ in 0..100 {
            p.nop().await.expect("a NOP");
        }
    });
}

/// Runs `f` on a thread of its own; `None` if it has not returned after
/// `limit` (the thread is left behind).
fn returns_within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn one_block_on_awaits_ops_of_two_proactors_one_after_the_other() {
    // `block_on` drives one Proactor at a time. After the first op it
    // holds the first Proactor's token; the next op is the second's,
    // queued as this thread's to drive (nobody woken): `block_on` must
    // let the first go and drive the second, back and forth.
    let p0 = Proactor::new(ProactorConfig::new(8)).unwrap();
    let p1 = Proactor::new(ProactorConfig::new(8)).unwrap();
    // Both fallback threads asleep, with no work.
    thread::sleep(Duration::from_millis(20));
    let (q0, q1) = (p0.clone(), p1.clone());
    let done = returns_within(LIMIT, move || {
        block_on(async {
            for _ in 0..50 {
                q1.nop().await.expect("p1's NOP");
                q0.nop().await.expect("p0's NOP");
            }
        })
    });
    assert!(
        done.is_some(),
        "ops of two Proactors awaited in turn in one block_on still wait: {:?} {:?}",
        p0.stats(),
        p1.stats()
    );
}

#[test]
fn one_block_on_waiting_on_two_proactors_completes_the_op_of_the_one_it_does_not_drive() {
    // The future waits for whichever comes first: a NOP on `p0` or a
    // receive on `p1` that never completes. `block_on` drives `p1` (noted
    // last); the NOP, queued as this thread's to drive, must be driven by
    // `p0`'s fallback thread, woken when `p1` was noted after it.
    let p0 = Proactor::new(ProactorConfig::new(8)).unwrap();
    let p1 = Proactor::new(ProactorConfig::new(8)).unwrap();
    thread::sleep(Duration::from_millis(20));
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (q0, q1) = (p0.clone(), p1.clone());
    let done = returns_within(LIMIT, move || {
        let nop = q0.nop();
        let never = q1.recv(Arc::new(a), Vec::with_capacity(8), Default::default());
        match block_on(futures_util::future::select(nop, never)) {
            futures_util::future::Either::Left((res, _recv)) => res.is_ok(),
            futures_util::future::Either::Right(_) => false,
        }
    });
    assert_eq!(
        done,
        Some(true),
        "the NOP on the Proactor block_on did not drive: {:?} {:?}",
        p0.stats(),
        p1.stats()
    );
}
