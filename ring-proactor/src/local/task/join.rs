//! [`LocalTask`], the handle of a spawned task, and what it shares with
//! the task: its output, or that it was dropped, and the waker of whoever
//! awaits it.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[cfg(doc)]
use crate::LocalProactor;

/// What a task and its [`LocalTask`] share: the task's fate and the waker
/// of whoever awaits it.
pub(super) struct Join<T> {
    pub(super) state: Cell<JoinState<T>>,
    pub(super) waker: Cell<Option<Waker>>,
}

pub(super) enum JoinState<T> {
    Running,
    Done(T),
    /// The output was taken.
    Taken,
    /// The task was dropped before it finished.
    Dropped,
}

/// Owned by a task's future: its drop, finished or not, tells the
/// [`LocalTask`] and wakes whoever awaits it.
pub(super) struct Completion<T> {
    pub(super) join: Rc<Join<T>>,
    pub(super) done: bool,
}

impl<T> Completion<T> {
    pub(super) fn complete(mut self, out: T) {
        self.done = true;
        if Rc::strong_count(&self.join) > 1 {
            self.join.state.set(JoinState::Done(out));
        } // else: detached, nobody will take it (dropped here).
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        if !self.done {
            self.join.state.set(JoinState::Dropped);
        }
        if let Some(waker) = self.join.waker.take() {
            waker.wake();
        }
    }
}

/// The handle of a task run by [`LocalProactor::spawn`]: a future of its
/// output. Dropping it detaches the task, which runs on.
///
/// # Panics
///
/// Awaiting it panics if its task was dropped before it finished: it
/// panicked, or the outermost [`block_on`](LocalProactor::block_on) of its
/// LocalProactor returned first (see [`LocalProactor::spawn`]). Polling it
/// again after it returned the output panics too.
pub struct LocalTask<T> {
    pub(super) join: Rc<Join<T>>,
}

impl<T> LocalTask<T> {
    /// Whether the task has ended: it finished (the output waits here
    /// unless it was taken), or it was dropped.
    pub fn is_finished(&self) -> bool {
        let state = self.join.state.replace(JoinState::Running);
        let running = matches!(state, JoinState::Running);
        self.join.state.set(state);
        !running
    }
}

impl<T> Future for LocalTask<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let join = &self.join;
        match join.state.replace(JoinState::Taken) {
            JoinState::Done(out) => Poll::Ready(out),
            JoinState::Running => {
                join.state.set(JoinState::Running);
                match join.waker.take() {
                    Some(w) if w.will_wake(cx.waker()) => join.waker.set(Some(w)),
                    old => {
                        join.waker.set(Some(cx.waker().clone()));
                        drop(old);
                    }
                }
                Poll::Pending
            }
            JoinState::Dropped => {
                join.state.set(JoinState::Dropped);
                panic!(
                    "a LocalTask awaited after its task was dropped: the task panicked, \
                     or the outermost LocalProactor::block_on returned before it finished"
                )
            }
            JoinState::Taken => panic!("a LocalTask polled after it returned its output"),
        }
    }
}

impl<T> fmt::Debug for LocalTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTask")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}
