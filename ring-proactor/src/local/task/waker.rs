//! A task's waker ([`TaskWaker`], `Send + Sync`, with a static vtable a
//! turn recognises) and the queues of woken tasks it pushes onto ([`Ready`]:
//! without a lock on the LocalProactor's thread, with one from any other).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{RawWaker, RawWakerVTable, Waker};
use std::thread::ThreadId;

use super::Id;
use crate::local::LocalUnparker;

/// The queues of woken tasks, which their wakers push onto: `own` on the
/// LocalProactor's thread, `foreign` from any other.
pub(super) struct Ready {
    /// The LocalProactor's thread (which made it, and alone uses it).
    pub(super) owner: ThreadId,
    /// Touched on `owner` only (see `unsafe impl Sync`), never borrowed
    /// while user code runs.
    pub(super) own: RefCell<VecDeque<Id>>,
    pub(super) foreign: Mutex<VecDeque<Id>>,
    /// `foreign` may hold ids: set (under its lock) by a push there,
    /// cleared by the thread before it drains it, so a pass takes the lock
    /// only when another thread woke a task.
    pub(super) foreign_pending: AtomicBool,
    pub(super) unparker: LocalUnparker,
}

// SAFETY: `own` (the one field that is not `Sync`) is only touched on the
// thread `owner`: by `Ready::push` after checking that it runs there
// (`crate::drive::me() == owner`; thread ids are never reused), and by `Tasks`, which lives in the
// LocalProactor's `Inner` (`!Send`, made on that thread, as `Ready` is). A
// drop elsewhere (of the last `Arc`, held by a waker) has the field to
// itself. Every other field is `Sync`.
unsafe impl Sync for Ready {}

impl Ready {
    pub(super) fn lock(&self) -> MutexGuard<'_, VecDeque<Id>> {
        // Nothing panics while holding it (but an allocation failure,
        // which aborts): a poisoned queue is intact.
        self.foreign.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `id` and ends the thread's wait (or makes its next turn not
    /// wait), from any thread.
    pub(super) fn push(&self, id: Id) {
        if crate::drive::me() == self.owner {
            self.push_own(id);
        } else {
            {
                let mut foreign = self.lock();
                foreign.push_back(id);
                self.foreign_pending.store(true, Ordering::Relaxed);
            }
            // After the push: the thread that takes the wake-up flag this
            // sets (Release, Acquire) sees `foreign_pending`.
            self.unparker.unpark();
        }
    }

    /// [`push`](Self::push) on the LocalProactor's thread: no lock, no
    /// system call (the thread is not asleep), no atomic operation: a turn
    /// does not wait while a task is queued ([`Tasks::queued`](super::Tasks::queued)), and the
    /// wake-up flag is left alone, so `block_on` does not poll its own
    /// future for a round that only woke tasks.
    pub(super) fn push_own(&self, id: Id) {
        self.own.borrow_mut().push_back(id);
    }

    /// Moves what other threads pushed onto `own` (on the LocalProactor's
    /// thread).
    pub(super) fn take_foreign(&self) {
        if self.foreign_pending.load(Ordering::Relaxed) {
            let mut foreign = self.lock();
            // Under the lock: a push after this sets it again.
            self.foreign_pending.store(false, Ordering::Relaxed);
            self.own.borrow_mut().extend(foreign.drain(..));
        }
    }
}

/// A task's waker: `Send + Sync`, it holds no part of the task.
pub(super) struct TaskWaker {
    pub(super) id: Id,
    /// The task's id is in a ready queue (or is being handed to a poll that
    /// will look at the task anyway), or the task is gone: a wake-up has
    /// nothing to do. Cleared (Acquire) just before the task is polled, so
    /// the poll sees what every skipped waker did before it set the flag
    /// (Release).
    pub(super) queued: AtomicBool,
    pub(super) ready: Arc<Ready>,
}

impl TaskWaker {
    /// Queues the task unless it is queued (runs no user code).
    pub(super) fn wake(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.id);
        }
    }
}

/// The vtable of the tasks' wakers: a static (one address), so that a turn
/// can tell a task's waker ([`wake_if_task`]) and wake it without running
/// user code. Its data pointer is an `Arc<TaskWaker>`'s (`Arc::into_raw`).
static TASK_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

/// The waker of the task `flag` belongs to (it takes that `Arc`).
pub(super) fn task_waker(flag: Arc<TaskWaker>) -> Waker {
    let raw = RawWaker::new(Arc::into_raw(flag).cast(), &TASK_VTABLE);
    // SAFETY: the data pointer is an `Arc<TaskWaker>`'s, whose count this
    // waker now owns; the vtable's functions treat it as such (see theirs),
    // and `TaskWaker` is `Send + Sync`, as a `Waker` must be.
    unsafe { Waker::from_raw(raw) }
}

/// # Safety
///
/// `p` comes from `Arc::into_raw` of an `Arc<TaskWaker>` whose count the
/// waker being cloned owns (alive during the call).
unsafe fn waker_clone(p: *const ()) -> RawWaker {
    // SAFETY: per the contract, `p` is a live `Arc<TaskWaker>`'s.
    unsafe { Arc::increment_strong_count(p.cast::<TaskWaker>()) };
    RawWaker::new(p, &TASK_VTABLE)
}

/// # Safety
///
/// As [`waker_clone`]'s; the call takes the waker's count.
unsafe fn waker_wake(p: *const ()) {
    // SAFETY: per the contract, the count is the waker's, given up here.
    let flag = unsafe { Arc::from_raw(p.cast::<TaskWaker>()) };
    flag.wake();
}

/// # Safety
///
/// As [`waker_clone`]'s.
unsafe fn waker_wake_by_ref(p: *const ()) {
    // SAFETY: per the contract, `p` points to a live `TaskWaker`.
    unsafe { &*p.cast::<TaskWaker>() }.wake();
}

/// # Safety
///
/// As [`waker_wake`]'s.
unsafe fn waker_drop(p: *const ()) {
    // SAFETY: per the contract, the count is the waker's, given up here.
    drop(unsafe { Arc::from_raw(p.cast::<TaskWaker>()) });
}

/// Whether `w` is a task's waker (of any LocalProactor): cloning,
/// waking and dropping it run no user code.
#[inline]
pub(crate) fn is_task_waker(w: &Waker) -> bool {
    std::ptr::eq(w.vtable(), &TASK_VTABLE)
}

/// If `w` is a task's waker (of any LocalProactor), wakes it and returns
/// true: that runs no user code (it pushes the task's id onto its queue),
/// so a turn does it with the state borrowed, and dropping such a waker
/// (an `Arc`'s decrement) runs none either.
#[inline]
pub(crate) fn wake_if_task(w: &Waker) -> bool {
    if !is_task_waker(w) {
        return false;
    }
    // SAFETY: a waker with this vtable was made by `task_waker` (or cloned
    // from one): its data is a live `Arc<TaskWaker>`'s while `w` is.
    unsafe { &*w.data().cast::<TaskWaker>() }.wake();
    true
}
