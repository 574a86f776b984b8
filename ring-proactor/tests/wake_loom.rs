//! Loom models of the LocalProactor's wake-up protocol (`src/wake.rs`,
//! included here as is): a waker that finds the flag set skips the eventfd
//! write, so the thread must see its change without it. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p ring-io-proactor --profile loom --test wake_loom`
//! in its own `CARGO_TARGET_DIR` (CI runs it in the same cargo invocation
//! as ring-core's and ring-driver's models: see `.ci/run`; the library
//! itself is empty under `--cfg loom`).
//!
//! The main thread plays the LocalProactor's thread: it clears the flag,
//! looks at the work (every waker's change), and sleeps in the "kernel"
//! (an eventfd: a count under a mutex, waited on with a condvar) unless
//! the flag is set. It also plays a task that wakes itself while polled (a
//! `set` by the thread, as a waker run during a poll or `block_on`'s
//! hand-over does). Wakers on other threads make a change, then `set`, and
//! write the eventfd if they found the flag clear. A lost wake-up is a
//! thread asleep with every waker done: loom reports the deadlock.
#![cfg(loom)]

#[allow(dead_code)]
#[path = "../src/wake.rs"]
mod wake;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use ring_io_core::loom_model::{Bound, check};
use wake::WakeFlag;

/// The eventfd: a count the thread's wait consumes.
#[derive(Default)]
struct EventFd {
    count: Mutex<u64>,
    cv: Condvar,
}

impl EventFd {
    fn write(&self) {
        *self.count.lock().unwrap() += 1;
        self.cv.notify_one();
    }

    /// The thread's wait in the kernel: returns once the count is non-zero
    /// (and takes it), as the armed read's completion ends the wait.
    fn wait(&self) {
        let mut count = self.count.lock().unwrap();
        while *count == 0 {
            count = self.cv.wait(count).unwrap();
        }
        *count = 0;
    }
}

/// `wakers` threads each make their change (a store to their own flag in
/// `work`, Relaxed: only the protocol orders it) and wake; the thread loops until it has seen
/// every change, waking itself during its first look if `self_wake`.
fn model(bound: Bound, wakers: usize, self_wake: bool) {
    check(bound, move || {
        let flag = Arc::new(WakeFlag::new());
        let efd = Arc::new(EventFd::default());
        let work: Arc<Vec<AtomicBool>> =
            Arc::new((0..wakers).map(|_| AtomicBool::new(false)).collect());
        let handles: Vec<_> = (0..wakers)
            .map(|i| {
                let (flag, efd, work) = (flag.clone(), efd.clone(), work.clone());
                thread::spawn(move || {
                    work[i].store(true, Ordering::Relaxed);
                    if flag.set() {
                        efd.write();
                    }
                })
            })
            .collect();
        let mut first = true;
        loop {
            flag.take();
            if work.iter().all(|w| w.load(Ordering::Relaxed)) {
                break;
            }
            if std::mem::take(&mut first) && self_wake {
                // Tasks woken by the thread itself, twice in one look: no
                // eventfd write (the thread is not asleep).
                flag.set();
                flag.set();
            }
            if flag.is_set() {
                // A turn that does not sleep, then another look.
                thread::yield_now();
            } else {
                efd.wait();
            }
        }
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// Two wakers on other threads, the second skipping its eventfd write when
/// it finds the first's flag. Bound: 3 preemptions, 3 threads.
// Catches: `take` with Relaxed, `set` without Release (the thread misses
// the skipped waker's change and sleeps with nobody left to write), `set`
// as a load and a plain store (two wakers both find the flag clear... or
// both set).
#[test]
fn a_waker_that_finds_the_flag_set_is_seen_without_its_write() {
    model(Bound::preemptions(3).threads(3), 2, false);
}

/// One waker on another thread against the thread's own wake-up: its
/// `set` finds the thread's, so it does not write. Bound: 3 preemptions, 2
/// threads.
// Catches: `set` as a load and a plain store (not an RMW: a waker's
// release sequence ends at the thread's store, so its change is not seen).
#[test]
fn a_waker_that_finds_the_threads_own_flag_is_seen() {
    model(Bound::preemptions(3).threads(2), 1, true);
}

/// The foreign queue of a LocalProactor's tasks (`src/local/task.rs`,
/// `Ready`): a waker on another thread pushes its task's id onto a
/// `Mutex<VecDeque>` and sets `foreign_pending` (Relaxed) under the lock,
/// then wakes the thread (`set`, and the eventfd if it found the flag
/// clear). The thread takes the flag, then looks at `foreign_pending`
/// (Relaxed, outside the lock) and takes the lock only if it is set,
/// clearing it under the lock. No id may be left in the queue with the
/// thread asleep.
fn tasks_model(bound: Bound, wakers: usize) {
    check(bound, move || {
        let flag = Arc::new(WakeFlag::new());
        let efd = Arc::new(EventFd::default());
        let queue = Arc::new(Mutex::new(Vec::new()));
        let pending = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..wakers)
            .map(|i| {
                let (flag, efd) = (flag.clone(), efd.clone());
                let (queue, pending) = (queue.clone(), pending.clone());
                thread::spawn(move || {
                    {
                        let mut q = queue.lock().unwrap();
                        q.push(i);
                        pending.store(true, Ordering::Relaxed);
                    }
                    if flag.set() {
                        efd.write();
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        loop {
            flag.take();
            if pending.load(Ordering::Relaxed) {
                let mut q = queue.lock().unwrap();
                pending.store(false, Ordering::Relaxed);
                seen.append(&mut q);
            }
            if seen.len() == wakers {
                break;
            }
            if flag.is_set() {
                thread::yield_now();
            } else {
                efd.wait();
            }
        }
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// Two wakers of tasks on other threads: every id is taken, none waits in
/// the queue with the thread asleep. Bound: 3 preemptions, 3 threads.
// Catches: `foreign_pending` set after the wake-up instead of before it
// (checked: loom finds the thread asleep with an id left in the queue).
#[test]
fn a_task_woken_from_another_thread_is_taken_from_the_foreign_queue() {
    tasks_model(Bound::preemptions(3).threads(3), 2);
}
