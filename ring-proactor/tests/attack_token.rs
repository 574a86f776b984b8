//! Attacks on the driver token (src/drive/token.rs) by safe code in the
//! process: a holder that re-enters the Proactor while stepped out (its
//! `block_on` future, a waker or a drop its turn runs, on its own thread),
//! user code that panics while the token is held, hostile durations, many
//! threads taking the token over from each other at once, and the tokio
//! drive task (feature `tokio`).
//!
//! After each attack the token must still be sound: other threads' ops
//! complete, another thread can drive, and the fallback thread completes
//! ops that are only polled. Progress-based, not timed: user code that
//! holds on waits for another thread's progress at most [`LIMIT`], and
//! giving up fails the test; every wait of the test itself has a watchdog
//! ([`within`], [`eventually`]) that fails it rather than hanging.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_proactor::{Proactor, ProactorConfig, block_on};

/// How long user code holds on at most, waiting for another thread.
const LIMIT: Duration = Duration::from_secs(10);

/// How long a step of the test itself may take before it fails (longer
/// than [`LIMIT`]: user code that gave up lets the step finish, and the
/// step's own assertion says what went wrong).
const WATCHDOG: Duration = Duration::from_secs(25);

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

/// Runs `f` on a thread; fails the test if it does not return within
/// [`WATCHDOG`] (the thread is left behind, stuck), or panics with its
/// panic.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("{what}: sent nothing"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still blocked after {WATCHDOG:?}")
        }
    }
}

/// Waits until `cond` holds; fails the test after [`WATCHDOG`].
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Unparks the thread that polls.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls a NOP of `p` on this thread until it completes, never driving
/// (an executor that only polls, as tokio's): the fallback thread, or a
/// takeover by it, must complete it. Fails the test after [`LIMIT`].
fn polled_only_nop(p: &Proactor) {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let start = Instant::now();
    let mut op = p.nop();
    loop {
        if let Poll::Ready(res) = Pin::new(&mut op).poll(&mut cx) {
            res.expect("a polled NOP");
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "an op only polled never completed: {:?}",
            p.stats()
        );
        thread::park_timeout(Duration::from_millis(50));
    }
}

/// Ten NOPs waited on by this thread, then `done` set.
fn waits_then_done(p: &Proactor, done: &AtomicBool) {
    for _ in 0..10 {
        p.nop().wait().expect("this thread's NOP");
    }
    done.store(true, Ordering::Release);
}

/// The token is sound after an attack: on other threads, waits complete,
/// an op only polled completes (the fallback thread drives), and a
/// non-blocking drive gets the token (once the fallback lets it go).
fn sound_after(p: &Proactor) {
    let q = p.clone();
    within("another thread's waits", move || {
        for _ in 0..10 {
            q.nop().wait().expect("a NOP");
        }
    });
    let q = p.clone();
    within("an op only polled", move || polled_only_nop(&q));
    let q = p.clone();
    within("a drive by another thread", move || {
        eventually("the token to be free for a drive", || q.drive());
    });
    // And this thread too.
    p.nop().wait().expect("a NOP of the test's thread");
}

/// A thread in `block_on` that drives (an op of its own completes), then
/// runs `reenter` from its future (stepped out, holding the token), then
/// computes until `done` is set; its result says whether `done` was set
/// before it gave up. Returns once it computes.
fn reenter_then_compute(
    p: &Proactor,
    done: Arc<AtomicBool>,
    reenter: impl FnOnce(&Proactor) + Send + 'static,
) -> thread::JoinHandle<bool> {
    let p = p.clone();
    let (started, rx) = mpsc::channel();
    let busy = thread::spawn(move || {
        block_on(async {
            p.nop().await.expect("a NOP");
            reenter(&p);
            started.send(()).unwrap();
            let seen = spin_until(&done);
            p.nop().await.expect("a NOP after");
            seen
        })
    });
    rx.recv_timeout(WATCHDOG).expect("the future re-entered");
    busy
}

/// Runs the re-entry attack: while the thread that re-entered computes,
/// an op only polled and another thread's waits complete.
fn reentry_holds_up_nobody(reenter: impl FnOnce(&Proactor) + Send + 'static) {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let busy = reenter_then_compute(&p, done.clone(), reenter);
    let q = p.clone();
    within("ops of others while the re-entered thread computes", move || {
        polled_only_nop(&q);
        waits_then_done(&q, &done);
    });
    assert!(
        busy.join().unwrap(),
        "others' ops completed only after the thread that re-entered gave up computing: {:?}",
        p.stats()
    );
    assert!(p.stats().token_takeovers > 0, "{:?}", p.stats());
    sound_after(&p);
}

#[test]
fn a_future_that_drove_the_ring_itself_then_computes_holds_up_nobody() {
    reentry_holds_up_nobody(|p| {
        p.drive();
    });
}

#[test]
fn a_future_that_parked_then_computes_holds_up_nobody() {
    reentry_holds_up_nobody(|p| {
        p.park(Some(Duration::ZERO));
        p.park(Some(Duration::from_millis(1)));
    });
}

#[test]
fn a_future_that_waited_on_an_op_then_computes_holds_up_nobody() {
    reentry_holds_up_nobody(|p| p.nop().wait().expect("a nested wait"));
}

#[test]
fn a_future_that_ran_a_nested_block_on_then_computes_holds_up_nobody() {
    reentry_holds_up_nobody(|p| {
        let q = p.clone();
        block_on(async move {
            q.nop().await.expect("a NOP");
            q.nop().await.expect("a NOP");
        });
    });
}

#[test]
fn a_future_that_waited_on_a_stream_then_computes_holds_up_nobody() {
    reentry_holds_up_nobody(|p| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepts = p.accept_multi(listener);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        // An old kernel fails the stream: a wait all the same.
        let _ = accepts.wait_next().expect("an item");
    });
}

#[test]
fn a_future_whose_nested_panicking_block_on_it_caught_then_computes_holds_up_nobody() {
    reentry_holds_up_nobody(|p| {
        let q = p.clone();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            block_on(async move {
                q.nop().await.expect("a NOP");
                panic!("the nested future panics");
            })
        }));
        assert!(caught.is_err());
    });
}

#[test]
fn a_nested_block_on_taken_over_while_it_computes() {
    // The nested future computes until another thread's ops complete: that
    // thread takes the token over from the nested step out. Neither the
    // nested nor the outer `block_on` may then turn or let the token go
    // (it is another's), and the outer one goes on with ops of its own.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let inner_done = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered) = mpsc::channel();
    let nested = {
        let p = p.clone();
        let inner_done = inner_done.clone();
        thread::spawn(move || {
            block_on(async {
                p.nop().await.expect("a NOP");
                let q = p.clone();
                let seen = block_on(async move {
                    q.nop().await.expect("a NOP");
                    entered_tx.send(()).unwrap();
                    let seen = spin_until(&inner_done);
                    q.nop().await.expect("a NOP after");
                    seen
                });
                // The outer future goes on with ops of its own.
                for _ in 0..10 {
                    p.nop().await.expect("an outer NOP");
                }
                seen
            })
        })
    };
    entered.recv_timeout(WATCHDOG).unwrap();
    let q = p.clone();
    within("ops of others while the nested future computes", move || {
        waits_then_done(&q, &inner_done);
    });
    assert!(nested.join().unwrap(), "the nested future gave up");
    assert!(p.stats().token_takeovers > 0, "{:?}", p.stats());
    sound_after(&p);
}

#[test]
fn a_panic_of_the_future_in_block_on_while_it_holds_the_token() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let q = p.clone();
    within("a panicking block_on", move || {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            block_on(async {
                q.nop().await.expect("a NOP");
                panic!("the future panics while stepped out");
            })
        }));
        assert!(caught.is_err());
        // The same thread goes on using the Proactor.
        q.nop().wait().expect("a NOP after the panic");
    });
    sound_after(&p);
}

#[test]
fn a_thread_that_ends_in_a_panic_of_its_block_on() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let q = p.clone();
    let thread = thread::spawn(move || {
        block_on(async {
            q.nop().await.expect("a NOP");
            panic!("the future panics while stepped out");
        })
    });
    assert!(thread.join().is_err());
    sound_after(&p);
}

/// A waker that runs `f` when woken (once).
struct RunOnWake(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl Wake for RunOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let f = self.0.lock().unwrap().take();
        if let Some(f) = f {
            f();
        }
    }
}

/// Polls a NOP of `p` once with a waker that runs `f` when woken; returns
/// the op (to keep alive).
fn nop_waking(p: &Proactor, f: impl FnOnce() + Send + 'static) -> impl Future + Unpin {
    let waker = Waker::from(Arc::new(RunOnWake(Mutex::new(Some(Box::new(f))))));
    let mut op = p.nop();
    assert!(
        Pin::new(&mut op)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    op
}

#[test]
fn a_waker_on_the_fallback_thread_that_waits_then_blocks_holds_up_nobody() {
    // Nobody waits on the op: the fallback thread completes it and runs
    // its waker, which waits on an op of its own (re-entering the token on
    // the fallback thread), then blocks.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (seen_tx, seen) = mpsc::channel();
    let (entered_tx, entered) = mpsc::channel();
    let _op = {
        let q = p.clone();
        let done = done.clone();
        nop_waking(&p, move || {
            q.nop().wait().expect("the waker's NOP");
            q.drive();
            entered_tx.send(()).unwrap();
            seen_tx.send(spin_until(&done)).unwrap();
        })
    };
    entered.recv_timeout(WATCHDOG).expect("the waker ran");
    let q = p.clone();
    within("ops of others while the waker blocks", move || {
        waits_then_done(&q, &done);
    });
    assert!(
        seen.recv_timeout(WATCHDOG).unwrap(),
        "others' ops completed only after the waker gave up: {:?}",
        p.stats()
    );
    sound_after(&p);
}

#[test]
fn a_waker_that_panics_or_drops_the_proactor_while_the_holder_buries() {
    // Wakers run by the token's holder (stepped out): one panics, one
    // drives and panics, one drops a handle of the Proactor.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let q = p.clone();
    within("wakers that panic", move || {
        for _ in 0..20 {
            let _a = nop_waking(&q, || panic!("a waker panics"));
            let r = q.clone();
            let _b = nop_waking(&q, move || {
                r.drive();
                panic!("a waker drives, then panics");
            });
            let r = q.clone();
            let _c = nop_waking(&q, move || drop(r));
            q.nop().wait().expect("a NOP");
            q.park(Some(Duration::from_millis(1)));
            q.drive();
        }
    });
    sound_after(&p);
}

/// A panic payload whose drop panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the payload's drop panics");
    }
}

#[test]
fn a_waker_whose_panic_payload_panics_on_drop_on_the_fallback_thread() {
    // The fallback thread runs the waker: whatever it panics with must
    // not take the fallback thread (or the token it holds) down.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (ran_tx, ran) = mpsc::channel();
    let _op = nop_waking(&p, move || {
        ran_tx.send(()).unwrap();
        std::panic::panic_any(PanicsOnDrop);
    });
    ran.recv_timeout(WATCHDOG).expect("the waker ran");
    sound_after(&p);
}

#[test]
fn a_waker_whose_panic_payload_panics_on_drop_on_a_driving_thread() {
    // A thread that drives runs the waker in its turn: whichever way the
    // panic comes out, the thread goes on driving afterwards, and the
    // token must not stay its own.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let q = p.clone();
    within("drives whose waker's panic payload panics on drop", move || {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let _op = nop_waking(&q, move || {
            r.store(true, Ordering::Release);
            std::panic::panic_any(PanicsOnDrop);
        });
        while !ran.load(Ordering::Acquire) {
            let _ = catch_unwind(AssertUnwindSafe(|| q.drive()));
        }
        // The thread drives again after the panic.
        let _ = catch_unwind(AssertUnwindSafe(|| q.drive()));
    });
    sound_after(&p);
}
