//! Tasks of a LocalProactor (`LocalProactor::spawn`, `LocalTask`): join
//! values and detached tasks, wake-ups from other threads, one poll per
//! wake-up however many tasks wait, the tasks dropped (their ops cancelled,
//! their buffers and fds released, `Rc` cycles broken) when the outermost
//! `block_on` returns, panics, and user code that re-enters the
//! LocalProactor from every place a task lets it run (a poll, a drop, a
//! waker, a nested `block_on`).
//!
//! Tests that count fds or dropped buffers take the process-wide lock.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

mod adversary;

use std::cell::{Cell, RefCell};
use std::future::{Future, pending, poll_fn};
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use adversary::*;
use ring_io_proactor::{LocalProactor, LocalTask, MsgFlags, ProactorConfig};

fn local() -> LocalProactor {
    LocalProactor::new(ProactorConfig::new(256)).expect("a LocalProactor")
}

const HOUR: Duration = Duration::from_secs(3600);

/// `inner`, counting its polls.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Rc<Cell<u32>>,
}

fn counted<F: Future>(polls: &Rc<Cell<u32>>, inner: F) -> Counted<F> {
    Counted {
        inner: Box::pin(inner),
        polls: polls.clone(),
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}

/// Pending once, having woken itself.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Runs `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// A count that other threads raise, and the waker of the task waiting
/// for it to reach a value.
#[derive(Default)]
struct Signal {
    count: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    fn raise(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    async fn reached(&self, n: u64) {
        poll_fn(|cx| {
            if self.count.load(Ordering::SeqCst) >= n {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.count.load(Ordering::SeqCst) >= n {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// `catch_unwind`, for a panic the test expects: the panic hook (message,
/// and a backtrace under `RUST_BACKTRACE`, seconds under AddressSanitizer)
/// is skipped on this thread meanwhile.
fn expect_panic<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let out = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    out
}

/// The panic message of a caught panic.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn tasks_return_their_values_to_their_handles() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    let p = local();
    let out = p.block_on(async {
        let p1 = p.clone();
        let a = p.spawn(async move {
            p1.nop().await.unwrap();
            1
        });
        // A task that spawns and awaits another.
        let p2 = p.clone();
        let b = p.spawn(async move {
            let p3 = p2.clone();
            let inner = p2.spawn(async move {
                p3.timeout(Duration::from_millis(2)).await.unwrap();
                40
            });
            inner.await + 1
        });
        // Ready at its first poll; a handle awaited after its task ended.
        let c = p.spawn(async { String::from("three") });
        while !c.is_finished() {
            yield_now().await;
        }
        assert!(!b.is_finished());
        (a.await, b.await, c.await)
    });
    assert_eq!(out, (1, 41, "three".to_owned()));
}

#[test]
fn a_dropped_handle_detaches_its_task_which_runs_to_the_end() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    let p = local();
    let steps = Rc::new(Cell::new(0));
    p.block_on(async {
        let (p2, s) = (p.clone(), steps.clone());
        drop(p.spawn(async move {
            for _ in 0..5 {
                p2.nop().await.unwrap();
                s.set(s.get() + 1);
            }
            "dropped unread"
        }));
        while steps.get() < 5 {
            yield_now().await;
        }
    });
    assert_eq!(steps.get(), 5);
}

#[test]
fn wake_ups_from_other_threads_end_the_wait_and_none_is_lost() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    // Four tasks, each answering 2,000 rounds of its own thread: a task
    // waits for the thread's count, then raises its own, which the thread
    // waits for. A lost wake-up leaves a pair stuck.
    const ROUNDS: u64 = 2_000;
    within(Duration::from_secs(60), "ping-pong with 4 threads", || {
        let p = local();
        let pairs: Vec<(Arc<Signal>, Arc<Signal>)> =
            (0..4).map(|_| (Arc::default(), Arc::default())).collect();
        let threads: Vec<_> = pairs
            .iter()
            .map(|(ping, pong)| {
                let (ping, pong) = (ping.clone(), pong.clone());
                thread::spawn(move || {
                    for round in 1..=ROUNDS {
                        ping.raise();
                        while pong.count.load(Ordering::SeqCst) < round {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let polls = Rc::new(Cell::new(0));
        let sum = p.block_on(async {
            let tasks: Vec<LocalTask<u64>> = pairs
                .iter()
                .map(|(ping, pong)| {
                    let (ping, pong) = (ping.clone(), pong.clone());
                    p.spawn(counted(&polls, async move {
                        for round in 1..=ROUNDS {
                            ping.reached(round).await;
                            pong.count.fetch_add(1, Ordering::SeqCst);
                        }
                        ROUNDS
                    }))
                })
                .collect();
            let mut sum = 0;
            for t in tasks {
                sum += t.await;
            }
            sum
        });
        assert_eq!(sum, 4 * ROUNDS);
        for t in threads {
            t.join().unwrap();
        }
        // At most one poll per round and a few more: a wake-up polls its
        // task, not every task.
        assert!(
            u64::from(polls.get()) <= 4 * (ROUNDS + 2),
            "{} polls",
            polls.get()
        );
    });
}

#[test]
fn a_wake_up_polls_only_the_woken_task_among_a_thousand_idle_ones() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    const IDLE: usize = 1_000;
    const STEPS: u32 = 100;
    let p = local();
    let idle_polls: Vec<Rc<Cell<u32>>> = (0..IDLE).map(|_| Rc::default()).collect();
    let (main_polls, busy_polls, remote_polls) = (Rc::default(), Rc::default(), Rc::default());
    let signal = Arc::new(Signal::default());
    p.block_on(counted(&main_polls, async {
        let idle: Vec<_> = idle_polls
            .iter()
            .map(|polls| {
                let p2 = p.clone();
                p.spawn(counted(polls, async move {
                    let _ = p2.timeout(HOUR).await;
                }))
            })
            .collect();
        yield_now().await;
        assert!(idle_polls.iter().all(|c| c.get() == 1), "each polled once");
        // 100 completions of one task's ops, one after another.
        let p2 = p.clone();
        p.spawn(counted(&busy_polls, async move {
            for _ in 0..STEPS {
                p2.nop().await.unwrap();
            }
        }))
        .await;
        // And a wake-up from another thread.
        let s = signal.clone();
        let remote = p.spawn(counted(&remote_polls, async move { s.reached(1).await }));
        let s = signal.clone();
        let thread = thread::spawn(move || {
            thread::sleep(Duration::from_millis(5));
            s.raise();
        });
        remote.await;
        thread.join().unwrap();
        drop(idle);
    }));
    // The 1,000 idle tasks were polled once each, whatever woke the thread.
    assert!(idle_polls.iter().all(|c| c.get() == 1));
    // The busy task: once per completion (and its first poll).
    assert!(busy_polls.get() <= STEPS + 2, "{}", busy_polls.get());
    assert!(remote_polls.get() <= 3, "{}", remote_polls.get());
    // The main future: only when its waker is used (its own yield, a
    // handle's task ending), not for the rounds that only woke a task (the
    // busy task's 100 completions).
    assert!(main_polls.get() <= 10, "{}", main_polls.get());
}

#[test]
fn the_outermost_block_on_drops_its_tasks_their_buffers_and_fds_go_and_no_cycle_keeps_the_ring() {
    const TASKS: usize = 16;
    let _serial = serial();
    let fds_before = fds().len();
    let graves_before = graves_untouched();
    let p = local();
    let dropped = Rc::new(Cell::new(0));
    let (mut handles, peers) = p.block_on(async {
        let mut peers = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..TASKS {
            let (mine, theirs) = UnixStream::pair().unwrap();
            peers.push(theirs);
            let mine = Arc::new(OwnedFd::from(mine));
            // Each task holds a clone of the LocalProactor: an `Rc` cycle
            // while it is in the LocalProactor's table.
            let (p2, d) = (p.clone(), dropped.clone());
            handles.push(p.spawn(async move {
                let _count = OnDrop(move || d.set(d.get() + 1));
                let (res, _buf) = p2.recv(&mine, Canary::new(), MsgFlags::empty()).await;
                res.unwrap()
            }));
        }
        // Their receives reach the kernel.
        while p.stats().max_in_ring < TASKS as u32 {
            yield_now().await;
        }
        (handles, peers)
    });
    assert_eq!(
        dropped.get(),
        TASKS,
        "every task dropped as block_on returned"
    );
    // Their receives were cancelled: the buffers come back as the
    // cancellations complete (at once here, on a current kernel: the end of
    // block_on submits them and reaps what completes).
    if p.defers_task_work() {
        assert_eq!(
            graves_untouched(),
            graves_before + TASKS,
            "the buffers released as block_on returned"
        );
    }
    park_until(&p, "the buffers of the dropped receives", || {
        graves_untouched() == graves_before + TASKS
    });
    // A handle of a dropped task panics when awaited.
    let last = handles.pop().unwrap();
    let caught = expect_panic(|| p.block_on(last)).unwrap_err();
    assert!(message(&*caught).contains("after its task was dropped"));
    // No cycle is left: the last handle closes the ring and every fd.
    drop((p, handles, peers));
    assert_eq!(fds().len(), fds_before, "an fd was left open");
}

#[test]
fn spawn_outside_block_on_panics_and_leaves_the_local_proactor_usable() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    let p = local();
    let caught = expect_panic(|| drop(p.spawn(async { 1 }))).unwrap_err();
    assert!(message(&*caught).contains("outside block_on"));
    assert_eq!(p.block_on(async { p.spawn(async { 2 }).await }), 2);
    // After block_on, outside again.
    assert!(expect_panic(|| drop(p.spawn(async {}))).is_err());
}

#[test]
fn a_tasks_panic_propagates_out_of_block_on_and_the_local_proactor_stays_usable() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    let p = local();
    let dropped = Rc::new(Cell::new(0));
    let bad_handle = Rc::new(RefCell::new(None));
    let caught = expect_panic(|| {
        p.block_on(async {
            let (p2, d) = (p.clone(), dropped.clone());
            drop(p.spawn(async move {
                let _count = OnDrop(move || d.set(d.get() + 1));
                let _ = p2.timeout(HOUR).await;
            }));
            let p3 = p.clone();
            let bad = p.spawn(async move {
                p3.nop().await.unwrap();
                panic!("a task's panic");
            });
            *bad_handle.borrow_mut() = Some(bad);
            pending::<()>().await;
        })
    })
    .unwrap_err();
    assert_eq!(message(&*caught), "a task's panic");
    assert_eq!(
        dropped.get(),
        1,
        "the other task is dropped as block_on unwinds"
    );
    // The panicked task's handle says so.
    let bad = bad_handle.borrow_mut().take().unwrap();
    assert!(bad.is_finished());
    let caught = expect_panic(|| p.block_on(bad)).unwrap_err();
    assert!(message(&*caught).contains("the task panicked"));
    // Usable: new tasks run.
    let p2 = p.clone();
    let n = p.block_on(async {
        p.spawn(async move {
            p2.nop().await.unwrap();
            3
        })
        .await
    });
    assert_eq!(n, 3);
}

#[test]
fn a_panic_of_a_tasks_drop_at_the_end_propagates_once_every_task_is_dropped() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    let p = local();
    let dropped = Rc::new(Cell::new(0));
    let caught = expect_panic(|| {
        p.block_on(async {
            for i in 0..3 {
                let d = dropped.clone();
                drop(p.spawn(async move {
                    let _count = OnDrop(move || {
                        d.set(d.get() + 1);
                        if i == 0 {
                            panic!("a task's drop");
                        }
                    });
                    pending::<()>().await;
                }));
            }
            yield_now().await;
        })
    })
    .unwrap_err();
    assert_eq!(message(&*caught), "a task's drop");
    assert_eq!(
        dropped.get(),
        3,
        "every task dropped, the panicking one first"
    );
    assert_eq!(p.block_on(async { p.spawn(async { 5 }).await }), 5);
}

#[test]
fn a_panic_out_of_a_nested_block_on_loses_no_other_tasks_wake_up() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    within(
        Duration::from_secs(20),
        "tasks after a nested panic",
        || {
            let p = local();
            let out = p.block_on(async {
                // Tasks queued with the one that panics, some after it.
                let mut before = Vec::new();
                for _ in 0..4 {
                    let p2 = p.clone();
                    before.push(p.spawn(async move {
                        for _ in 0..10 {
                            p2.nop().await.unwrap();
                        }
                        1
                    }));
                }
                let caught = expect_panic(|| {
                    p.block_on(async {
                        p.spawn(async { panic!("nested") }).await;
                    })
                });
                assert!(caught.is_err());
                let mut after = Vec::new();
                for _ in 0..4 {
                    let p2 = p.clone();
                    after.push(p.spawn(async move {
                        p2.nop().await.unwrap();
                        1
                    }));
                }
                let mut n = 0;
                for t in before.into_iter().chain(after) {
                    n += t.await;
                }
                n
            });
            assert_eq!(out, 8);
        },
    );
}

#[test]
fn drops_of_tasks_at_the_end_may_spawn_drop_handles_and_wait_on_ops_and_tasks() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    within(Duration::from_secs(20), "drops that wait", || {
        let p = local();
        let (dropped, spawned_dropped, waited) = (
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0)),
        );
        p.block_on(async {
            let mut handles = Vec::new();
            for i in 0..10 {
                let (p2, d, sd, w) = (
                    p.clone(),
                    dropped.clone(),
                    spawned_dropped.clone(),
                    waited.clone(),
                );
                // A handle of the previous task, dropped with this one.
                let previous: Option<LocalTask<()>> = handles.pop();
                let on_drop = OnDrop(move || {
                    d.set(d.get() + 1);
                    // An op waited on (a nested block_on).
                    p2.nop().wait().unwrap();
                    // A task spawned and waited for, in a nested block_on.
                    let p3 = p2.clone();
                    let n = p2.block_on(async {
                        p2.spawn(async move {
                            p3.nop().await.unwrap();
                            1
                        })
                        .await
                    });
                    w.set(w.get() + n);
                    // A task spawned and left: dropped at the end.
                    let sd = sd.clone();
                    let count = OnDrop(move || sd.set(sd.get() + 1));
                    drop(p2.spawn(async move {
                        let _count = count;
                        pending::<()>().await;
                    }));
                });
                handles.push(p.spawn(async move {
                    let _on_drop = on_drop;
                    let _previous = previous;
                    if i % 2 == 0 {
                        pending::<()>().await;
                    }
                }));
            }
            yield_now().await;
        });
        // The five pending tasks were dropped at the end, the five finished
        // ones as they finished; every drop got its nested task's value;
        // what they left was dropped at the end.
        assert_eq!(dropped.get(), 10);
        assert_eq!(waited.get(), 10);
        assert_eq!(spawned_dropped.get(), 10);
        assert_eq!(p.block_on(async { p.spawn(async { 4 }).await }), 4);
    });
}

/// A flag, and the waker of whoever waits for it.
type Gate = (Rc<Cell<bool>>, Rc<RefCell<Option<Waker>>>);

/// Pending until `go` is set, keeping its waker in `waker`.
async fn wait_for(go: Rc<Cell<bool>>, waker: Rc<RefCell<Option<Waker>>>) {
    poll_fn(|cx| {
        if go.get() {
            Poll::Ready(())
        } else {
            *waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await;
}

#[test]
fn a_park_in_a_task_takes_no_other_tasks_wake_up() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    within(Duration::from_secs(20), "a park in a task", || {
        let p = local();
        let gates: Vec<Gate> = (0..3).map(|_| Default::default()).collect();
        let [(go_a, wa), (go_b, wb), (go_c, wc)] = &gates[..] else {
            unreachable!()
        };
        p.block_on(async {
            let b = p.spawn(wait_for(go_b.clone(), wb.clone()));
            let (go, w, go_b, wb) = (go_c.clone(), wc.clone(), go_b.clone(), wb.clone());
            let c = p.spawn(async move {
                wait_for(go, w).await;
                go_b.set(true);
                let waker = wb.borrow_mut().take().unwrap();
                waker.wake();
            });
            let (go, w, p2) = (go_a.clone(), wa.clone(), p.clone());
            let a = p.spawn(async move {
                wait_for(go, w).await;
                // Takes the thread's wake-up flag, which `c` set for `b`
                // (queued, not yet polled), in this same pass.
                p2.park(Some(Duration::ZERO));
                b.await;
            });
            yield_now().await;
            // One pass: `c` (which wakes `b`), then `a` (which parks).
            go_c.set(true);
            let waker = wc.borrow_mut().take().unwrap();
            waker.wake();
            go_a.set(true);
            let waker = wa.borrow_mut().take().unwrap();
            waker.wake();
            // Nothing is in the kernel: if `b`'s wake-up were lost, the
            // turn would wait for ever.
            a.await;
            c.await;
        });
    });
}

#[test]
fn a_park_in_a_task_takes_no_wake_up_of_the_main_future() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    within(Duration::from_secs(20), "a park in a task", || {
        let p = local();
        let gates: Vec<Gate> = (0..3).map(|_| Default::default()).collect();
        let [(go_a, wa), (go_main, wmain), (go_c, wc)] = &gates[..] else {
            unreachable!()
        };
        p.block_on(async {
            let (go, w, go_main2, wmain2) =
                (go_c.clone(), wc.clone(), go_main.clone(), wmain.clone());
            let c = p.spawn(async move {
                wait_for(go, w).await;
                go_main2.set(true);
                let waker = wmain2.borrow_mut().take().unwrap();
                waker.wake();
            });
            let (go, w, p2) = (go_a.clone(), wa.clone(), p.clone());
            let a = p.spawn(async move {
                wait_for(go, w).await;
                // Takes the thread's wake-up flag, which `c` set for the
                // main future, in this same pass.
                p2.park(Some(Duration::ZERO));
            });
            yield_now().await;
            // One pass: `c` (which wakes this future), then `a` (parks).
            go_c.set(true);
            let waker = wc.borrow_mut().take().unwrap();
            waker.wake();
            go_a.set(true);
            let waker = wa.borrow_mut().take().unwrap();
            waker.wake();
            // Nothing is in the kernel: if this future's wake-up were lost,
            // the turn would wait for ever.
            wait_for(go_main.clone(), wmain.clone()).await;
            a.await;
            c.await;
        });
    });
}

thread_local! {
    static SPAWNER: RefCell<Option<LocalProactor>> = const { RefCell::new(None) };
    static SPAWNED: Cell<u32> = const { Cell::new(0) };
}

/// A waker that spawns a task on this thread's LocalProactor, then wakes
/// its parent.
struct SpawningWaker {
    parent: Waker,
}

impl Wake for SpawningWaker {
    fn wake(self: Arc<Self>) {
        SPAWNER.with(|p| {
            let p = p.borrow();
            let p = p.as_ref().unwrap();
            drop(p.spawn(async { SPAWNED.with(|s| s.set(s.get() + 1)) }));
        });
        self.parent.wake_by_ref();
    }
}

#[test]
fn a_waker_that_spawns_runs_from_a_turn_without_a_borrow_error() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    let p = local();
    SPAWNER.with(|s| *s.borrow_mut() = Some(p.clone()));
    p.block_on(async {
        // Ops of the main future and of a task, polled with the spawning
        // waker: each completion spawns a task.
        let p2 = p.clone();
        let task = p.spawn(async move {
            let mut op = p2.nop();
            poll_fn(|cx| {
                let w = Waker::from(Arc::new(SpawningWaker {
                    parent: cx.waker().clone(),
                }));
                Pin::new(&mut op).poll(&mut Context::from_waker(&w))
            })
            .await
        });
        let mut op = p.nop();
        poll_fn(|cx| {
            let w = Waker::from(Arc::new(SpawningWaker {
                parent: cx.waker().clone(),
            }));
            Pin::new(&mut op).poll(&mut Context::from_waker(&w))
        })
        .await
        .unwrap();
        task.await.unwrap();
        while SPAWNED.with(Cell::get) < 2 {
            yield_now().await;
        }
    });
    SPAWNER.with(|s| s.borrow_mut().take());
    assert_eq!(SPAWNED.with(Cell::get), 2);
}

#[test]
fn a_block_on_nested_in_a_task_runs_the_other_tasks_it_waits_for() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    within(Duration::from_secs(20), "a nested block_on", || {
        let p = local();
        let value = Rc::new(Cell::new(0));
        let waiter: Rc<RefCell<Option<Waker>>> = Rc::default();
        let out = p.block_on(async {
            // `a` is queued first: its nested block_on must poll `b`, queued
            // behind it in the same round.
            let (p2, v, w) = (p.clone(), value.clone(), waiter.clone());
            let a = p.spawn(async move {
                p2.block_on(poll_fn(|cx| {
                    if v.get() != 0 {
                        return Poll::Ready(v.get());
                    }
                    *w.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }))
            });
            let (p3, v, w) = (p.clone(), value.clone(), waiter.clone());
            let b = p.spawn(async move {
                p3.nop().await.unwrap();
                v.set(42);
                if let Some(w) = w.borrow_mut().take() {
                    w.wake();
                }
            });
            b.await;
            a.await
        });
        assert_eq!(out, 42);
    });
}

#[test]
fn a_task_woken_while_a_nested_block_on_runs_in_it_is_polled_again() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    within(
        Duration::from_secs(20),
        "a task woken in its own poll",
        || {
            let p = local();
            let polls = p.block_on(async {
                let p2 = p.clone();
                p.spawn(async move {
                    let mut polls = 0;
                    poll_fn(|cx| {
                        polls += 1;
                        if polls == 3 {
                            return Poll::Ready(polls);
                        }
                        // Queued now, and found by the nested block_on's round
                        // while this poll runs.
                        cx.waker().wake_by_ref();
                        p2.nop().wait().unwrap();
                        Poll::Pending
                    })
                    .await
                })
                .await
            });
            assert_eq!(polls, 3);
        },
    );
}

#[test]
fn a_task_that_always_wakes_itself_starves_neither_the_main_future_nor_other_tasks() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    within(Duration::from_secs(20), "a spinning task", || {
        let p = local();
        let spins = Rc::new(Cell::new(0u32));
        p.block_on(async {
            let s = spins.clone();
            drop(p.spawn(async move {
                loop {
                    s.set(s.get() + 1);
                    yield_now().await;
                }
            }));
            let p2 = p.clone();
            let other = p.spawn(async move {
                for _ in 0..50 {
                    p2.nop().await.unwrap();
                }
            });
            for _ in 0..50 {
                p.nop().await.unwrap();
            }
            other.await;
        });
        // Polled once per round, not in a loop of its own.
        assert!(spins.get() < 1_000, "{} spins", spins.get());
    });
}

#[test]
fn a_stale_waker_polls_no_later_task_of_its_slot_and_outlives_the_local_proactor() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    let p = local();
    let stale: Rc<RefCell<Option<Waker>>> = Rc::default();
    let later = Rc::new(Cell::new(0));
    let sent = p.block_on(async {
        let s = stale.clone();
        p.spawn(poll_fn(move |cx| {
            *s.borrow_mut() = Some(cx.waker().clone());
            Poll::Ready(())
        }))
        .await;
        // The same slot, a new generation.
        let p2 = p.clone();
        let t = p.spawn(counted(&later, async move {
            p2.timeout(Duration::from_millis(20)).await.unwrap();
        }));
        yield_now().await;
        let stale = stale.borrow_mut().take().unwrap();
        for _ in 0..10 {
            stale.wake_by_ref();
            yield_now().await;
        }
        assert_eq!(
            later.get(),
            1,
            "the later task was not polled by the stale waker"
        );
        // A waker of a live task, kept past the LocalProactor's life.
        let keep = Arc::new(Mutex::new(None));
        let k = keep.clone();
        drop(p.spawn(poll_fn(move |cx| {
            *k.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        })));
        yield_now().await;
        t.await;
        stale.wake();
        keep
    });
    drop(p);
    let waker = sent.lock().unwrap().take().unwrap();
    thread::spawn(move || {
        waker.wake_by_ref();
        waker.wake();
    })
    .join()
    .unwrap();
}

/// A write to one socket of many wakes the one task reading it: the
/// example of `spawn`'s docs, at scale, with each task's fd released.
#[test]
fn a_task_per_socket_reads_what_its_peer_writes() {
    // One test at a time: one of them counts the fds of the process.
    let _serial = serial();
    let p = local();
    let mut peers = Vec::new();
    let total = p.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (a, b) = UnixStream::pair().unwrap();
                peers.push(b);
                let (p2, a) = (p.clone(), Arc::new(OwnedFd::from(a)));
                p.spawn(async move {
                    let (n, _) = p2.recv(&a, vec![0u8; 64], MsgFlags::empty()).await;
                    n.unwrap()
                })
            })
            .collect();
        for (i, peer) in peers.iter_mut().enumerate() {
            peer.write_all(&vec![b'x'; i % 64 + 1]).unwrap();
        }
        let mut total = 0;
        for t in tasks {
            total += t.await;
        }
        total
    });
    assert_eq!(total, (1..=64).sum::<usize>());
}
