//! Drives a [`Proactor`] from a tokio runtime: [`spawn_driver`].
//!
//! On its own, a Proactor polled by tokio tasks is driven by its fallback
//! thread (tokio never blocks on the Proactor), so every batch crosses
//! threads twice. [`spawn_driver`] spawns a *drive task* on the runtime
//! instead, which from then on drives the ring:
//!
//! - **Submissions.** An op that a task polls, on any worker, is queued;
//!   queueing wakes the drive task (its `Waker`, no system call), which
//!   runs non-blocking ring turns: push what was queued, submit it with one
//!   `io_uring_enter`, reap what completed and wake the ops' tasks.
//! - **Completions.** The ring's file descriptor is readable while its
//!   completion queue holds entries. The drive task watches it through
//!   [`AsyncFd`] (tokio's epoll), so a completion the kernel posts wakes it
//!   like any socket would, on whichever worker is free.
//! - **The fallback thread** stays out while the drive task is attached: it
//!   is woken only if a cancellation the kernel refused has to be sent
//!   again later (the drive task keeps no timer; rare), and then it only
//!   wakes the drive task. [`ProactorStats::fallback_takeovers`] stays
//!   where it was. Unless the drive task gets stuck in user code its turn
//!   runs (a waker that blocks its worker thread) with work to do: after
//!   50 ms of that, the fallback thread takes the ring over for a turn
//!   (counted in [`ProactorStats::token_takeovers`]).
//! - **Threads that block** on the Proactor ([`Op::wait`], [`block_on`],
//!   [`Proactor::park`]) still drive the ring themselves: the drive task
//!   holds the ring only for the length of one non-blocking turn, and lets
//!   a waiting thread have it; it takes it back when that thread is done.
//!
//! The drive task never blocks its worker: its turns never wait in the
//! kernel, [`ProactorConfig::submit_delay`] does not hold them, and after
//! 16 turns in a row it yields to other tasks.
//!
//! # When it stops
//!
//! The drive task ends when the runtime shuts down, when
//! [`DriverHandle::abort`] or [`DriverHandle::stop`] is called, or when the
//! Proactor shuts down. From then on the fallback thread drives again
//! (at once if work is queued or in flight): nothing queued or in flight
//! is lost. The kernel ties a request to the thread that submitted it,
//! here a worker of the runtime, and fails those still waiting with
//! `ECANCELED` when the worker exits; the Proactor submits them again
//! ([`ProactorStats::resubmitted`]), except the few kinds its
//! [Limits](Proactor#limits-today) name (linked chains, `connect`,
//! timeouts).
//!
//! # Runtimes
//!
//! - **Multi-thread**: the drive task runs on any worker, each turn on
//!   whichever worker polls it; tasks on every worker are served by it.
//! - **Current-thread**: the same, but the drive task runs only while the
//!   runtime runs (inside `Runtime::block_on`). Meanwhile ops polled
//!   elsewhere without blocking (another executor, say) wait for it; a
//!   thread that blocks on an op drives the ring itself.
//!
//! The runtime needs its I/O driver (`enable_io`, or `enable_all`).
//!
//! # Why the ring's fd and not an eventfd
//!
//! A registered eventfd (`IORING_REGISTER_EVENTFD`) would do the same, but
//! before Linux 5.18 registering one quiesces the ring: it waits until no
//! request is in flight, and the Proactor always has one (the read that
//! wakes its driver). Polling the ring's fd needs no registration and works
//! on every kernel the Proactor supports (tokio-uring does the same).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use ring_io_proactor::{Proactor, ProactorConfig};
//!
//! let rt = tokio::runtime::Builder::new_multi_thread().enable_io().build()?;
//! let proactor = Arc::new(Proactor::new(ProactorConfig::new(64))?);
//! rt.block_on(async {
//!     let driver = ring_io_proactor::tokio::spawn_driver(&proactor)?;
//!     let tasks: Vec<_> = (0..8)
//!         .map(|_| {
//!             let p = proactor.clone();
//!             tokio::spawn(async move { p.nop().await })
//!         })
//!         .collect();
//!     for task in tasks {
//!         task.await.expect("the task ran")?;
//!     }
//!     // The drive task did the work, not the fallback thread.
//!     assert_eq!(proactor.stats().fallback_takeovers, 0);
//!     driver.stop().await;
//!     Ok::<(), std::io::Error>(())
//! })?;
//! // The fallback thread drives from here on.
//! proactor.nop().wait()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`Op::wait`]: crate::Op::wait
//! [`block_on`]: crate::block_on
//! [`ProactorStats::fallback_takeovers`]: crate::ProactorStats::fallback_takeovers
//! [`ProactorStats::token_takeovers`]: crate::ProactorStats::token_takeovers
//! [`ProactorStats::resubmitted`]: crate::ProactorStats::resubmitted
//! [`ProactorConfig::submit_delay`]: crate::ProactorConfig::submit_delay

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;
use ::tokio::runtime::Handle;
use ::tokio::task::JoinHandle;

use crate::Proactor;
use crate::drive::{Turned, acquire, ask, release, turn_with};
use crate::driver::Wait;
use crate::state::{External, Graveyard, Shared};

/// The most ring turns one poll of the drive task runs before it yields.
const TURNS_PER_POLL: u32 = 16;

/// Tests: how long the drive task dawdles after a turn before it looks for
/// more work (a preempted worker thread, made deterministic).
#[cfg(test)]
pub(crate) static DAWDLE: std::sync::Mutex<std::time::Duration> =
    std::sync::Mutex::new(std::time::Duration::ZERO);

/// Spawns the task that drives `proactor` on the current tokio runtime
/// (see the [module docs](self)), and returns its handle. Dropping the
/// handle leaves the task running. Call it where tokio's `spawn` works: in
/// a task, in `Runtime::block_on`, or under `Runtime::enter`'s guard.
///
/// # Errors
///
/// - Called outside a tokio runtime: `ErrorKind::Other`, with tokio's
///   message.
/// - A drive task already drives this Proactor: `ErrorKind::AlreadyExists`.
/// - The Proactor has shut down: `ErrorKind::NotConnected`.
/// - Registering the ring's fd with the runtime failed (or duplicating
///   it): the system's error.
///
/// # Panics
///
/// If the runtime was built without its I/O driver (as tokio's own I/O
/// types do).
pub fn spawn_driver(proactor: &Proactor) -> io::Result<DriverHandle> {
    spawn_on(&proactor.shared)
}

/// [`spawn_driver`] for a Proactor's shared state.
pub(crate) fn spawn_on(shared: &Arc<Shared>) -> io::Result<DriverHandle> {
    let runtime = Handle::try_current().map_err(io::Error::other)?;
    let ring_fd = shared.ring_fd.try_clone()?;
    // Deprecated in tokio 1.54 for its unsafe replacement, which older
    // tokio versions lack; the replacement's contract holds: an `OwnedFd`
    // stays open, the same fd, for as long as the `AsyncFd` owns it.
    #[allow(deprecated)]
    let fd = AsyncFd::with_interest(ring_fd, Interest::READABLE)?;
    let shared = shared.clone();
    let mut st = shared.lock();
    if st.shutdown {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "the proactor has shut down",
        ));
    }
    if st.external.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a drive task already drives this proactor",
        ));
    }
    st.external = Some(External::default());
    // A driver waiting in the kernel (the fallback thread, say) ends its
    // wait and lets the ring go to the drive task.
    let sleeping = st.take_sleeping(&shared);
    let overflows = st.stats.overflow_pauses;
    drop(st);
    // From here on, dropping the task detaches it.
    let task = DriveTask {
        shared,
        fd,
        grave: Graveyard::default(),
        overflows,
    };
    if sleeping {
        task.shared.wake_driver();
    }
    Ok(DriverHandle {
        task: runtime.spawn(task),
    })
}

/// The handle of a drive task ([`spawn_driver`]). Dropping it leaves the
/// task running (as tokio's `JoinHandle` does).
#[derive(Debug)]
pub struct DriverHandle {
    task: JoinHandle<()>,
}

impl DriverHandle {
    /// Stops the drive task (soon: tokio drops it at its next
    /// scheduling). Then the fallback thread drives the Proactor again.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Stops the drive task and returns once it is gone: from then on the
    /// fallback thread drives the Proactor (at once if work is queued or
    /// in flight).
    pub async fn stop(self) {
        self.task.abort();
        // Cancelled, or finished first (the Proactor shut down): gone
        // either way.
        let _ = self.task.await;
    }

    /// The task has ended (stopped, or the Proactor shut down).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// The drive task: runs non-blocking ring turns when work is queued or the
/// ring's fd shows completions.
struct DriveTask {
    shared: Arc<Shared>,
    /// A duplicate of the ring's fd, registered with the runtime.
    fd: AsyncFd<OwnedFd>,
    /// Reused by every turn (its vectors keep their capacity).
    grave: Graveyard,
    /// `ProactorStats::overflow_pauses` as last seen: a turn that paused
    /// for a CQ overflow is followed by another at once.
    overflows: u64,
}

/// What one try at a turn did.
enum Step {
    /// Ran a turn; `again`: more to do at once (work queued meanwhile, or
    /// a CQ overflow to drain).
    Ran { again: bool },
    /// Another thread holds the ring.
    Busy,
    /// The Proactor is shutting down or has stopped: the task ends.
    Done,
}

/// Lets the driver token go, even if the turn panics.
struct Held<'a>(&'a Shared);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        release(self.0, true);
    }
}

/// One non-blocking ring turn, if the ring is free.
fn step(shared: &Arc<Shared>, grave: &mut Graveyard, overflows: &mut u64) -> Step {
    if !acquire(shared) {
        return Step::Busy;
    }
    let held = Held(shared);
    let stopped = match turn_with(shared, Wait::No, false, grave) {
        Turned::Stopped => true,
        Turned::Kept => false,
        Turned::Lost => {
            // Taken over while the turn's wakers ran: the token is
            // another's now, not this task's to let go.
            std::mem::forget(held);
            return Step::Busy;
        }
    };
    let due = if stopped {
        None
    } else {
        // SAFETY: this task holds the token and is back from the turn's
        // step out (`Turned::Kept`); reading the retries runs no user code.
        unsafe {
            shared
                .driver
                .with(|d| d.as_ref().and_then(|d| d.next_retry()))
        }
    };
    let mut st = shared.lock();
    let again =
        !st.queue.is_empty() || !st.cancels.is_empty() || st.stats.overflow_pauses != *overflows;
    *overflows = st.stats.overflow_pauses;
    let done = stopped || st.shutdown;
    // A cancellation to retry: the fallback thread wakes this task when
    // it is due (told of each new time; retries are rare).
    let mut tell = false;
    if let Some(external) = st.external.as_mut() {
        tell = due.is_some() && due != external.due;
        external.due = due;
    }
    drop(st);
    if tell {
        shared.idle.notify_one();
    }
    drop(held);
    if done {
        Step::Done
    } else {
        Step::Ran { again }
    }
}

impl Future for DriveTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let DriveTask {
            shared,
            fd,
            grave,
            overflows,
        } = &mut *self;
        for _ in 0..TURNS_PER_POLL {
            // Completions posted since readiness was last cleared. Looked
            // at before the turn: one posted after the turn's reap sets the
            // readiness again, so clearing it below loses nothing.
            let ready = match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => Some(guard),
                // The runtime is shutting down: the fallback thread takes
                // over.
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => None,
            };
            match step(shared, grave, overflows) {
                Step::Done => return Poll::Ready(()),
                Step::Busy => {
                    // Ask for the ring when its holder lets it go (once:
                    // each wake-up by the fd would otherwise add a waker).
                    let waker = cx.waker().clone();
                    let mut st = shared.lock();
                    if st.shutdown || st.stopped {
                        return Poll::Ready(());
                    }
                    // (Asked once: each wake-up by the fd would otherwise
                    // add a waker. A holder that steps out after the ask
                    // wakes it.)
                    if st.owner.is_none() || !ask(shared, &mut st, &waker) {
                        // Let go meanwhile, or its holder stepped out (it
                        // runs user code, maybe for long): try again.
                        drop(st);
                        continue;
                    }
                    return Poll::Pending;
                }
                Step::Ran { again } => {
                    if let Some(mut guard) = ready {
                        // The turn reaped the completion queue.
                        guard.clear_ready();
                    }
                    if again {
                        continue;
                    }
                }
            }
            #[cfg(test)]
            std::thread::sleep(*DAWDLE.lock().unwrap());
            // Wait for work: queued (its kick takes this waker) or
            // completed (the fd).
            let waker = cx.waker().clone();
            let mut st = shared.lock();
            // A retry whose time has passed (the fallback thread leaves it
            // to this task when the task is not waiting) is a turn now.
            let due = st.external.as_ref().and_then(|e| e.due);
            let overdue = due.is_some_and(|due| due <= Instant::now());
            if !st.queue.is_empty() || !st.cancels.is_empty() || overdue {
                continue;
            }
            let old = st.external.as_mut().and_then(|e| e.waker.replace(waker));
            drop(st);
            drop(old);
            match fd.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(_)) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
            }
        }
        // Yield to other tasks, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for DriveTask {
    /// Detaches: the fallback thread drives again, at once if work is
    /// queued or in flight (no caller is about to drive it).
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let external = st.external.take();
        st.caller_drove = false;
        drop(st);
        self.shared.idle.notify_all();
        drop(external);
    }
}
