//! The two words of the driver token's handover that threads read without
//! the state lock: the holder's step out in progress (`out`), and whether
//! a thread sleeps until the holder lets the token go (`asked`).
//!
//! A thread that wants the token while its holder turns (not out) asks:
//! under the state lock it adds its waker to `State::token_waiters`, then
//! [`ask`](Handover::ask)s, and sleeps unless the holder is out by then.
//! The holder may step out right after, without the lock, and run user
//! code for as long as it likes; the asker must not sleep through that
//! (it would wait for the holder's user code, which may wait for it).
//! So [`step_out`](Handover::step_out) stores `out` then loads `asked`,
//! and `ask` stores `asked` then loads `out`, each with a sequentially
//! consistent fence between its store and its load: the two fences are
//! ordered one before the other, and the thread of the later one sees
//! the store made before the earlier one. Either the asker sees the holder
//! out (and takes the token over), or the holder sees `asked` (and wakes
//! the waiters). `tests/handover_loom.rs` checks this under loom, which
//! models the fences (it treats SeqCst loads and stores as acquire and
//! release, and finds the lost ask with those: fences it is).
//!
//! `asked` is cleared under the state lock when the waiters are taken:
//! a holder that reads a stale `true` only looks at an empty list.

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

/// See the module's documentation.
pub(crate) struct Handover {
    /// The step out in progress of a token holder running user code
    /// between its turns (the future a `block_on` polls, the wakers and
    /// drops a turn collected): its tenure in the high bits, its number in
    /// the low ones; 0 if none. Another thread that wants the token may
    /// take it over then (see `crate::drive::step_out`), so no user code
    /// holds the ring up for everyone.
    pub(crate) out: AtomicU64,
    /// A thread sleeps until the token is let go or its holder steps out
    /// (`State::token_waiters` is not empty). Written under the state
    /// lock.
    asked: AtomicBool,
}

impl Handover {
    pub(crate) fn new() -> Self {
        Handover {
            out: AtomicU64::new(0),
            asked: AtomicBool::new(false),
        }
    }

    /// The holder steps out with `value` (not 0): true if a thread asked
    /// for the token, which the holder must then wake.
    #[inline]
    pub(crate) fn step_out(&self, value: u64) -> bool {
        // Release: what the holder did before is seen by the thread that
        // takes the token over (its compare-exchange acquires).
        self.out.store(value, Ordering::Release);
        fence(Ordering::SeqCst);
        self.asked.load(Ordering::Relaxed)
    }

    /// A thread that added its waker to the token's waiters asks (under
    /// the state lock): the holder's step out in progress, if it is out
    /// already (0 if not: it will see the ask when it steps out).
    pub(crate) fn ask(&self) -> u64 {
        self.asked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        // Acquire, as `holder_out`'s load: a takeover that follows reads
        // what the holder did before it stepped out.
        self.out.load(Ordering::Acquire)
    }

    /// The waiters were taken, to be woken (under the state lock).
    pub(crate) fn answered(&self) {
        self.asked.store(false, Ordering::Relaxed);
    }
}
