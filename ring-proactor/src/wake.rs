//! [`WakeFlag`]: how wakers end the sleep of a [`LocalProactor`]'s thread
//! in the kernel with one atomic read-modify-write on each side, and no
//! system call unless the thread may be asleep.
//!
//! The thread clears the flag ([`take`](WakeFlag::take)) before it looks
//! at its work (polls), and sleeps only if the flag is still clear
//! afterwards ([`is_set`](WakeFlag::is_set)). A waker first makes its
//! change (a task's state), then sets the flag ([`set`](WakeFlag::set)).
//! Only the waker that finds the flag clear has to end the sleep (write
//! the eventfd the thread's wait watches: a count it keeps until read, so
//! a write before the thread sleeps ends that sleep too); the ones that
//! find it set leave that to whoever set it:
//!
//! - another waker, which found it clear and ends the sleep;
//! - the thread itself (a waker it ran, or a flag it set on purpose), which
//!   reads the flag, by coherence, before it would sleep, and does not.
//!
//! Either way the thread's next look at its work sees the skipped waker's
//! change: every write of the flag is a read-modify-write, so the waker's
//! release heads a release sequence that the thread's next `take` (an
//! acquire read-modify-write) reads from. (A plain store of `true` by the
//! thread would end that sequence: `set` is used for it too.)
//! `tests/wake_loom.rs` checks this under loom, sleep and eventfd included.
//!
//! [`LocalProactor`]: crate::LocalProactor

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, Ordering};

/// A wake-up came since the thread last looked at its work.
pub(crate) struct WakeFlag(AtomicBool);

impl WakeFlag {
    pub(crate) fn new() -> Self {
        WakeFlag(AtomicBool::new(false))
    }

    /// Sets the flag after a change the thread must see; true if it was
    /// clear: the caller must then end the thread's sleep (unless it is the
    /// thread).
    pub(crate) fn set(&self) -> bool {
        // Release: the change before it is seen by the thread's `take`.
        // (A waker that reads `true` needs to see nothing: no Acquire.)
        !self.0.swap(true, Ordering::Release)
    }

    /// Clears the flag, before the thread looks at its work; true if a
    /// wake-up came since it last did.
    pub(crate) fn take(&self) -> bool {
        // Acquire: every change whose waker found the flag set is seen.
        // An RMW, not a store: it keeps the release sequences of the
        // wakers' `set`s going.
        self.0.swap(false, Ordering::Acquire)
    }

    /// Whether a wake-up came since [`take`](Self::take): the thread must
    /// not sleep.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
