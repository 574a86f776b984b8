//! Executors that integrate the Proactor: [`Proactor::drive`] (one
//! non-blocking turn) and [`Proactor::park`] with its [`Unparker`].
//!
//! [`Proactor::drive`]: crate::Proactor::drive
//! [`Proactor::park`]: crate::Proactor::park

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use super::{Took, Turned, acquire, acquire_how, ask, me, release, turn};
use crate::driver::Wait;
use crate::state::*;

/// A thread's park state, shared with its [`Unparker`]s.
#[derive(Default)]
pub(crate) struct ParkState {
    /// An unpark came since the last park.
    woken: AtomicBool,
    /// The thread drives and may wait in the kernel.
    in_kernel: AtomicBool,
}

thread_local! {
    static PARK: Arc<ParkState> = Arc::new(ParkState::default());
    /// The waker this thread asks for the token with in `park`, and the
    /// Proactor it is for: the same one each time, so asking again while
    /// the same holder holds on does not add another (`State::token_waiters`
    /// dedupes with `will_wake`).
    static PARK_WAKER: std::cell::RefCell<Option<(*const Shared, Waker)>> =
        const { std::cell::RefCell::new(None) };
}

/// This thread's waker for asking `p` for the token (see [`PARK_WAKER`]).
fn park_waker(p: &crate::Proactor) -> Waker {
    let make = || Waker::from(Arc::new(p.unparker()));
    let ptr = Arc::as_ptr(&p.shared);
    PARK_WAKER
        .try_with(|cached| {
            let mut cached = cached.borrow_mut();
            match cached.as_ref() {
                // (The cached waker holds its Proactor: the pointer is not
                // another's reused.)
                Some((cached_ptr, waker)) if *cached_ptr == ptr => waker.clone(),
                _ => {
                    let waker = make();
                    // The old one is dropped after the borrow ends: its
                    // drop runs no user code, but it may be the last
                    // handle of its Proactor.
                    let old = cached.replace((ptr, waker.clone()));
                    drop(cached);
                    drop(old);
                    waker
                }
            }
        })
        .unwrap_or_else(|_| make())
}

/// This thread's park state; a new one in a thread-local destructor at the
/// thread's exit that ran after it (an unparker of the thread then ends
/// its thread park, not its wait in the kernel: the park's timeout does).
fn park_state() -> Arc<ParkState> {
    PARK.try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(ParkState::default()))
}

/// Ends a [`Proactor::park`](crate::Proactor::park) of one thread, from any
/// thread: what an executor that parks on the Proactor calls from its
/// wakers. Made by [`Proactor::unparker`](crate::Proactor::unparker).
#[derive(Clone)]
pub struct Unparker {
    shared: Arc<Shared>,
    thread: Thread,
    park: Arc<ParkState>,
}

impl Unparker {
    /// Ends the thread's park: its wait in the kernel if it drives, its
    /// thread park otherwise. An unpark before the park ends the next one.
    pub fn unpark(&self) {
        if self.thread.id() == me() {
            // Woken by its own thread, which is not parked (a completion
            // this thread dispatched, or a task it polled): the park in
            // progress, if any, returns after its turn anyway.
            return;
        }
        // SeqCst, as `park`'s: one of the two sees the other's store, so
        // the parked thread either skips its wait or is woken from it.
        self.park.woken.store(true, Ordering::SeqCst);
        if self.park.in_kernel.load(Ordering::SeqCst) {
            self.shared.wake_driver();
        }
        self.thread.unpark();
    }
}

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.unpark();
    }
}

impl std::fmt::Debug for Unparker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unparker")
            .field("thread", &self.thread.id())
            .finish_non_exhaustive()
    }
}

impl crate::Proactor {
    /// Runs one ring turn without blocking, if no other thread drives:
    /// pushes and submits what ops queued, and completes what the kernel
    /// has finished (waking their tasks). For executors that integrate the
    /// Proactor into their own loop; true if it ran the turn.
    pub fn drive(&self) -> bool {
        if !acquire(&self.shared) {
            return false;
        }
        if turn(&self.shared, Wait::No, false) != Turned::Lost {
            release(&self.shared, true);
        }
        true
    }

    /// Blocks the calling thread until the Proactor completes something,
    /// `timeout` passes, or an [`Unparker`] of this thread is used, driving
    /// the ring meanwhile if no other thread does. What an executor calls
    /// when its tasks are all pending on the Proactor's ops, so their
    /// completions are reaped on this thread, with no wake-up of another.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig};
    /// use std::task::{Context, Poll, Waker};
    /// use std::{future::Future, pin::Pin, sync::Arc};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// // A one-task executor: its waker unparks through the Proactor.
    /// struct W(ring_io_proactor::Unparker);
    /// impl std::task::Wake for W {
    ///     fn wake(self: Arc<Self>) { self.0.unpark() }
    /// }
    /// let waker = Waker::from(Arc::new(W(p.unparker())));
    /// let mut op = p.nop();
    /// let out = loop {
    ///     match Pin::new(&mut op).poll(&mut Context::from_waker(&waker)) {
    ///         Poll::Ready(out) => break out,
    ///         Poll::Pending => p.park(None),
    ///     }
    /// };
    /// out?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn park(&self, timeout: Option<Duration>) {
        let park = park_state();
        let took = acquire_how(&self.shared);
        if took != Took::No {
            park.in_kernel.store(true, Ordering::SeqCst);
            // Taken over: the old holder may have completed this
            // executor's ops, their wakers stuck behind its user code (see
            // `Took::Over`): one turn without waiting, and the executor
            // polls again.
            let wait = if park.woken.swap(false, Ordering::SeqCst) || took == Took::Over {
                Wait::No
            } else {
                Wait::For(timeout)
            };
            let turned = turn(&self.shared, wait, false);
            park.in_kernel.store(false, Ordering::SeqCst);
            if turned != Turned::Lost {
                release(&self.shared, true);
            }
            if turned != Turned::Stopped {
                return;
            }
        }
        // Another thread drives: ask for the token when it is let go (the
        // fallback thread lets it go at the end of its turn), so this
        // executor takes the ring back instead of being served across
        // threads for as long as anything is in flight. Asked even when
        // this park returns at once (a wake-up came first): a fallback that
        // completes each op before the executor parks again would otherwise
        // never be asked, and serve it across threads for good.
        {
            let waker = park_waker(self);
            let mut st = self.shared.lock();
            if st.owner.is_some() && !ask(&self.shared, &mut st, &waker) && !st.stopped {
                // Its holder runs user code (stepped out since this
                // thread tried): the next park takes the token over. (One
                // that steps out only after this ask wakes this thread.)
                return;
            }
        }
        if park.woken.swap(false, Ordering::SeqCst) {
            return;
        }
        match timeout {
            Some(t) => thread::park_timeout(t),
            None => thread::park(),
        }
    }

    /// An [`Unparker`] that ends this thread's [`park`](Self::park).
    pub fn unparker(&self) -> Unparker {
        Unparker {
            shared: self.shared.clone(),
            thread: thread::current(),
            park: park_state(),
        }
    }
}
