//! The slot table: one slot per request in flight (its `user_data` is the
//! slot index and a random tag), the queue for the driver, credit waiters,
//! and what must be released outside the lock.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use ring_io_ops::Entry;

use ring_io_driver::Probe;

use crate::cells::Cells;
use crate::config::*;
use crate::driver::DriverCell;
use crate::fixed::Pool;
pub(crate) use crate::tags::Tags;

mod credit;
mod grave;
mod kept;
mod slots;

pub(crate) use grave::*;
pub(crate) use kept::*;

/// The low word of the `user_data` of the eventfd read that wakes the
/// thread (its high word is a random tag, new at each arming).
pub(crate) const WAKE_INDEX: u32 = u32::MAX;

/// Set in the low word of a cancellation's `user_data`, whose other bits
/// are its target's (slot indexes stay below it).
pub(crate) const CANCEL_BIT: u32 = 1 << 31;

pub struct Shared {
    pub(crate) state: CacheLine<Mutex<State>>,
    /// The ring and what only the driver touches, reached only by the
    /// thread that holds the driver token (`State::owner`), for one turn
    /// at a time; `None` once closed (or leaked after a panic).
    pub(crate) driver: DriverCell,
    /// Signalled when an op is queued while the fallback thread gathers a
    /// batch.
    pub(crate) more: Condvar,
    /// Signalled when the Proactor stops (`State::stopped`).
    pub(crate) stopped: Condvar,
    /// Where the fallback thread waits for work nobody drives.
    pub(crate) idle: Condvar,
    /// Written to end the driver's wait in the kernel.
    pub(crate) wake: File,
    pub(crate) probe: Probe,
    pub(crate) budget: u32,
    pub(crate) sq_entries: u32,
    /// A duplicate of the ring's fd, to register buffer rings.
    pub(crate) ring_fd: OwnedFd,
    /// The fixed buffers registered with the ring, if any.
    pub(crate) fixed: Option<Arc<Pool>>,
    /// Bumped whenever work is queued for the thread: what its spin
    /// watches (a hint; the queue itself is read under the lock). Written
    /// under the state lock only ([`Shared::note_activity`]).
    pub(crate) activity: AtomicU64,
    /// Where ops find their completions, and give their slots back,
    /// without the lock (an `Arc`: a thread that keeps slots given back,
    /// [`give_back`], holds the cells they belong to).
    pub(crate) cells: Arc<Cells>,
    /// `State::panicked`, for ops that look without the lock: set before
    /// their wakers are woken.
    pub(crate) panicked: AtomicBool,
    /// The current tenure of the driver token: a number new each time a
    /// thread takes it. Written under the state lock.
    pub(crate) tenure: AtomicU64,
    /// The holder's step out and whether a thread asked for the token
    /// (read without the lock).
    pub(crate) handover: crate::drive::Handover,
    /// The kernel cannot register the ring's fd in a thread's table (before
    /// 5.18), or the ring is not the kernel's: `block_on` does not try.
    pub(crate) no_thread_registration: AtomicBool,
    /// `State::direct`, for the holder's turn to read without the lock.
    pub(crate) direct: AtomicBool,
}

/// A value on cache lines of its own: the lock every op and the thread
/// take must not share a line with the `Arc` counts (every op clones the
/// `Arc`) or with read-mostly fields.
#[repr(align(128))]
pub(crate) struct CacheLine<T>(pub(crate) T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

pub(crate) enum SlotState {
    Free,
    /// Submitted; the op's future is alive.
    Waiting(Option<Waker>),
    /// The CQE arrived: `(res, flags)`.
    Done(i32, u32),
    /// A multishot request (boxed: every op's path moves slot states, so
    /// they stay three words).
    Stream(Box<StreamSlot>),
    /// The op's future was dropped: what it owned waits here for the last
    /// CQE, with the CQEs of a dropped stream that came meanwhile (their
    /// results, fds say, are released with it). Boxed, as a stream is.
    Orphan(Box<(Box<dyn Release>, Cqes)>),
    /// Done with (the last CQE arrived and, for an op, its future took the
    /// result or was dropped), but a cancellation's CQE is still owed: the
    /// slot waits for it (a dropped op keeps its credit until then, so
    /// cancellations in the ring never outnumber the budget).
    Reaped,
}

/// A multishot request's slot: its CQEs not yet taken, and whether the
/// last one (without `IORING_CQE_F_MORE`) has arrived.
pub(crate) struct StreamSlot {
    pub(crate) cqes: VecDeque<(i32, u32)>,
    pub(crate) waker: Option<Waker>,
    pub(crate) ended: bool,
}

impl StreamSlot {
    /// The state of a new stream's slot.
    #[cold]
    fn slot_state(waker: Option<Waker>) -> SlotState {
        SlotState::Stream(Box::new(StreamSlot {
            cqes: VecDeque::new(),
            waker,
            ended: false,
        }))
    }
}

/// Where a request stands with its cancellation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// None asked for.
    None,
    /// A cancellation is queued or in the ring: its CQE is owed.
    Owed,
    /// The last cancellation failed before the request's CQE arrived: the
    /// thread sends another when the backoff has passed.
    Retry,
}

pub(crate) struct Slot {
    /// The random high word of the request's `user_data`: a CQE must name
    /// it to be taken for this request's.
    pub(crate) tag: u32,
    pub(crate) cancel: Cancel,
    /// Cancellations sent for this request (the backoff's exponent).
    pub(crate) attempts: u32,
    /// A multishot request (posts CQEs with `IORING_CQE_F_MORE`).
    pub(crate) stream: bool,
    /// CQ credits the request holds (1, or a stream's headroom).
    pub(crate) credits: u32,
    /// Of those, still counted in `State::in_flight`.
    pub(crate) held: u32,
    /// [`State::events`] when the request was made (with [`LINKED`] for a
    /// member of a linked chain), or [`NEVER`] (cancelled): see
    /// [`State::resubmits`] and [`State::exit_failed`].
    pub(crate) born: u64,
    pub(crate) state: SlotState,
}

/// [`Slot::born`] of a request cancelled (never submitted again).
pub(crate) const NEVER: u64 = u64::MAX;

/// In [`Slot::born`]: a member of a linked chain, never submitted again
/// (the chain would have to go again whole). Set, the birth is past any
/// `last_exit`, so [`State::resubmits`] passes it over.
pub(crate) const LINKED: u64 = 1 << 63;

impl Slot {
    /// The request is in the kernel: its last CQE has not arrived.
    pub(crate) fn armed(&self) -> bool {
        matches!(self.state, SlotState::Waiting(_) | SlotState::Orphan(..))
            || matches!(&self.state, SlotState::Stream(s) if !s.ended)
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) slots: Vec<Slot>,
    pub(crate) free: Vec<u32>,
    /// Random tags for new requests.
    pub(crate) tags: Tags,
    /// Entries queued for the thread, `user_data` already set (their
    /// credits are counted in the slots).
    pub(crate) queue: Vec<Entry>,
    /// `user_data` of requests to cancel.
    pub(crate) cancels: Vec<u64>,
    /// User ops holding credit (queued, or in the ring until their CQE).
    pub(crate) in_flight: u32,
    /// The most credit ops may hold ([`Shared::budget`]).
    pub(crate) budget: u32,
    /// Ops waiting for credit, by ticket (first come, first served), with
    /// the credits each needs.
    pub(crate) credit_waiters: BTreeMap<u64, (Waker, u32)>,
    pub(crate) next_ticket: u64,
    /// Credit that came back, granted to the waiters it woke (by ticket):
    /// how much, and until when (see `state/credit.rs`).
    pub(crate) grants: BTreeMap<u64, (u32, Instant)>,
    /// The credit in `grants`, which no other op may take.
    pub(crate) reserved: u32,
    /// The driver is (about to be) blocked in `io_uring_enter` with the
    /// wake-up read armed: who queues work writes the eventfd (see
    /// [`State::take_sleeping`]).
    pub(crate) sleeping: bool,
    /// The token's holder is a `block_on` polling its future, stepped out
    /// after a turn that found nothing but its own work: the ops that
    /// future submits go straight into the SQ (`drive::holding_here`), and
    /// its next turn enters without looking at the state (no lock) unless
    /// this is cleared first. Set (with `sleeping`, so that work queued
    /// meanwhile wakes it) by that turn's reap, under this lock, once
    /// `direct_streak` turns in a row were plain ([`DIRECT_AFTER`]);
    /// cleared by whatever needs the holder's turn to look (work queued,
    /// a cancellation, the token changing hands, a shutdown).
    pub(crate) direct: bool,
    /// The holder's `block_on` turns in a row whose reap found nothing but
    /// its own work (reset by another thread's work).
    pub(crate) direct_streak: u8,
    /// The fallback thread waits on `Shared::more` for a batch to fill.
    pub(crate) gathering: bool,
    /// `queue` holds a linked chain (its members are noted for the thread
    /// that submits them: `Driver::note_linked`).
    pub(crate) chains_queued: bool,
    /// The thread holding the driver token, and how many times it took it
    /// (a thread that drives may take it again: a `Drop` or a waker the
    /// driver runs can wait on an op).
    pub(crate) owner: Option<std::thread::ThreadId>,
    pub(crate) depth: u32,
    /// For each of the holder's frames below the top (`depth - 1` of
    /// them), the step out (`Shared::out`) its re-entry ended: restored
    /// when the re-entry lets go, as that frame's user code goes on.
    pub(crate) outs: Vec<u64>,
    /// Times a caller (not the fallback thread) let the token go: the
    /// fallback thread takes over only after a grace period without one.
    pub(crate) releases: u64,
    /// A caller drove since the fallback thread last did: the fallback
    /// waits a grace period before it takes over (the caller is likely to
    /// drive again), and is not woken for each op queued meanwhile.
    pub(crate) caller_drove: bool,
    /// A thread about to drive queued work while nobody held the token
    /// (`kick` of a thread that drives next): the fallback thread leaves
    /// the work to it for `STUCK`, not `GRACE` (it may be slow to come,
    /// and completions are best dispatched on its own thread). Cleared
    /// when the token is taken or let go.
    pub(crate) caller_coming: bool,
    /// The fallback thread was woken only to watch a caller that drives
    /// next (`op::watch_holder`): until it sleeps untimed again, or other
    /// threads' work comes, it takes over only after `KICK_PATIENCE`,
    /// never sooner (a caller that is merely slow, on a loaded machine,
    /// keeps its completions on its own thread). With an external driver
    /// attached, it wakes that driver instead, after as long, if nobody
    /// took the free token meanwhile.
    pub(crate) kick_watch: bool,
    /// The fallback thread waits on `Shared::idle`.
    pub(crate) fallback_idle: bool,
    /// ... for a grace period only: it looks at the work by itself then, so
    /// nobody needs to wake it.
    pub(crate) fallback_timed: bool,
    /// ... a long one (`STUCK`: a holder is watched for getting stuck in
    /// user code between its turns), so the holder's release wakes it
    /// (which a grace period's short wait does not need).
    pub(crate) fallback_long: bool,
    /// Callers waiting for the token, woken (one) when it is let go.
    pub(crate) token_waiters: Vec<Waker>,
    /// An external driver is attached (a task of an async runtime: see
    /// `crate::tokio`): it drives all work, so queued work wakes it rather
    /// than the fallback thread, which stays out until it detaches (or the
    /// Proactor shuts down).
    pub(crate) external: Option<External>,
    pub(crate) shutdown: bool,
    pub(crate) stopped: bool,
    /// The thread panicked (a bug): ops still in the kernel never complete,
    /// and their resources are leaked rather than freed.
    pub(crate) panicked: bool,
    /// Tests: the thread panics at the top of its next turn.
    #[cfg(test)]
    pub(crate) inject_panic: bool,
    /// Counts the events below, to order them against [`Slot::born`].
    pub(crate) events: u64,
    /// The event at which a thread that drove (and so may have submitted
    /// requests) last exited.
    pub(crate) last_exit: u64,
    /// The event at which a `cancel_fd` was last queued.
    pub(crate) last_fd_cancel: u64,
    /// The next buffer group id for a stream's buffer ring.
    pub(crate) next_bgid: u16,
    pub(crate) stats: ProactorStats,
}

/// An external driver's hooks in the state (`State::external`).
#[derive(Default)]
pub(crate) struct External {
    /// Its waker while it waits for work (it watches completions itself):
    /// whoever queues work with the token free takes and wakes it.
    pub(crate) waker: Option<Waker>,
    /// When a cancellation is due to be sent again: the fallback thread
    /// wakes the external driver then (it never waits in the kernel, so it
    /// keeps no timer of its own).
    pub(crate) due: Option<std::time::Instant>,
}

/// How many plain `block_on` turns in a row let the holder push its own
/// ops (see [`State::direct`]): a holder that other threads' work keeps
/// interrupting turns under the lock, where that work costs them no
/// eventfd write.
pub(crate) const DIRECT_AFTER: u8 = 16;

impl State {
    /// Sets [`State::direct`] (and its copy in `shared`).
    #[inline]
    pub(crate) fn set_direct(&mut self, shared: &Shared, on: bool) {
        if self.direct != on {
            self.direct = on;
            shared.direct.store(on, Ordering::Relaxed);
        }
    }

    /// Work was queued (or asked for) that the driver must see: whether a
    /// driver may be blocked in the kernel, to be woken by the eventfd
    /// (cleared: one write will do). A holder pushing its own ops
    /// ([`State::direct`]) must look at the state on its next turn: that
    /// ends; if it is this thread (polling its future, so not in the
    /// kernel), nobody needs waking.
    #[inline]
    pub(crate) fn take_sleeping(&mut self, shared: &Shared) -> bool {
        if self.direct {
            self.set_direct(shared, false);
            if crate::drive::holding_here(shared) {
                self.sleeping = false;
            } else {
                self.direct_streak = 0;
            }
        }
        std::mem::take(&mut self.sleeping)
    }

    /// The driver token changes hands, or the holder lets it go: whoever
    /// turns next is not in the kernel, and looks at the state.
    #[inline]
    pub(crate) fn token_moved(&mut self, shared: &Shared) {
        self.set_direct(shared, false);
        self.direct_streak = 0;
        self.sleeping = false;
        self.caller_coming = false;
    }
    /// The external driver's waker, if it waits for work: taken, to be
    /// woken after unlocking.
    pub(crate) fn external_waker(&mut self) -> Option<Waker> {
        self.external.as_mut().and_then(|e| e.waker.take())
    }
}

/// A request's `user_data`: its slot index in the low word, its tag in the
/// high word.
pub(crate) fn user_data(index: u32, tag: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(index)
}

/// Opcodes whose `ECANCELED` from an exited submitter means the request
/// did not run, and which can run again as they were: transfers, polls and
/// accepts (armed for readiness), and what io-wq runs (queued work of an
/// exiting task is cancelled before it starts). Not: connect (a second
/// `connect` on a socket whose first is in progress fails with
/// `EALREADY`), timeouts (they would start over), cancellations and
/// closes.
pub(crate) fn resubmittable(opcode: u8) -> bool {
    use ring_io_sys::*;
    matches!(
        opcode,
        IORING_OP_READ
            | IORING_OP_READV
            | IORING_OP_READ_FIXED
            | IORING_OP_WRITE
            | IORING_OP_WRITEV
            | IORING_OP_WRITE_FIXED
            | IORING_OP_RECV
            | IORING_OP_RECVMSG
            | IORING_OP_SEND
            | IORING_OP_SENDMSG
            | IORING_OP_ACCEPT
            | IORING_OP_POLL_ADD
            | IORING_OP_SPLICE
            | IORING_OP_FSYNC
            | IORING_OP_OPENAT
            | IORING_OP_STATX
    )
}

/// An op's result from a CQE's `res`.
pub(crate) fn result(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(res.wrapping_neg()))
    } else {
        Ok(res as u32)
    }
}

/// `*state = new` where `state` is `Free` (taken out with `mem::replace`,
/// or a slot from the free list): it owns nothing, so it is forgotten,
/// without a call to the enum's drop glue (this is on every op's path).
pub(crate) fn refill(state: &mut SlotState, new: SlotState) {
    let old = std::mem::replace(state, new);
    debug_assert!(matches!(old, SlotState::Free));
    std::mem::forget(old);
}

/// `*state = Done(res, flags)` where `state` is `Waiting(None)` (its
/// waker taken): it owns nothing, so it is overwritten without the enum's
/// drop glue (this is on every op's path).
#[inline]
pub(crate) fn refill_done(state: &mut SlotState, res: i32, flags: u32) {
    debug_assert!(matches!(state, SlotState::Waiting(None)));
    std::mem::forget(std::mem::replace(state, SlotState::Done(res, flags)));
}

/// `*state = new` where `state` owns nothing (`Done`, `Free` or
/// `Reaped`): overwritten without the enum's drop glue.
#[inline]
fn refill_any(state: &mut SlotState, new: SlotState) {
    debug_assert!(matches!(
        state,
        SlotState::Done(..) | SlotState::Free | SlotState::Reaped
    ));
    std::mem::forget(std::mem::replace(state, new));
}

impl Shared {
    /// Bumps [`activity`](Shared::activity): work was queued under the
    /// state lock, which `_locked` proves is held, so no other writer runs
    /// and a load and a store do (no atomic read-modify-write per op).
    #[inline]
    pub(crate) fn note_activity(&self, _locked: &mut State) {
        let n = self.activity.load(Ordering::Relaxed);
        self.activity.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every
        // update is a few plain stores), so a poisoned lock is still used.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After the thread panicked: wakes every waiting op (each panics in
    /// turn, see [`panicked`]), leaks the resources of dropped ops (the
    /// kernel may still use them; the ring is leaked too), and refuses new
    /// ops.
    pub(crate) fn fail_all(&self) {
        let mut st = self.lock();
        st.panicked = true;
        // Release: seen by an op woken below that polls without the lock.
        self.panicked.store(true, Ordering::Release);
        st.shutdown = true;
        st.stopped = true;
        st.set_direct(self, false);
        st.sleeping = false;
        let mut wakers: Vec<Waker> = std::mem::take(&mut st.credit_waiters)
            .into_values()
            .map(|(w, _)| w)
            .collect();
        wakers.extend(st.external_waker());
        for slot in &mut st.slots {
            match &mut slot.state {
                SlotState::Waiting(waker) => wakers.extend(waker.take()),
                SlotState::Stream(stream) => wakers.extend(stream.waker.take()),
                SlotState::Orphan(..) => {
                    if let SlotState::Orphan(orphan) =
                        std::mem::replace(&mut slot.state, SlotState::Reaped)
                    {
                        std::mem::forget(orphan);
                    }
                }
                SlotState::Free | SlotState::Done(..) | SlotState::Reaped => {}
            }
        }
        drop(st);
        self.stopped.notify_all();
        wake_all(&mut wakers);
    }

    /// Ends the driver's wait in the kernel (called after unlocking).
    pub(crate) fn wake_driver(&self) {
        // A failed write means the eventfd counter is saturated, which only
        // happens if the driver already has a wake-up pending.
        let _ = (&self.wake).write(&1u64.to_ne_bytes());
    }

    /// Is there work for a driver: ops queued or in flight, cancellations
    /// to send, or a shutdown to finish.
    pub(crate) fn has_work(st: &State) -> bool {
        st.in_flight > 0 || !st.queue.is_empty() || !st.cancels.is_empty() || st.shutdown
    }
}
