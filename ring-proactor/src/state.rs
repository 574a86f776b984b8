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
    /// wake-up read armed: who queues work writes the eventfd.
    pub(crate) sleeping: bool,
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

impl State {
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

impl State {
    /// A slot for a new request; `None` if the slab is at its largest.
    #[inline(always)]
    pub(crate) fn alloc(
        &mut self,
        cells: &Cells,
        waker: Option<Waker>,
        credits: u32,
        stream: bool,
    ) -> Option<u64> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => match self.take_kept(cells).or_else(|| self.take_returned(cells)) {
                Some(i) => i,
                None => self.new_slot()?,
            },
        };
        let tag = self.tags.next();
        let slot = &mut self.slots[index as usize];
        slot.tag = tag;
        slot.credits = credits;
        slot.stream = stream;
        slot.held = credits;
        slot.cancel = Cancel::None;
        slot.attempts = 0;
        slot.born = self.events;
        // A slot on the free list is `Free` (only `finish` puts one there).
        if stream {
            refill(&mut slot.state, StreamSlot::slot_state(waker));
        } else {
            refill(&mut slot.state, SlotState::Waiting(waker));
        }
        cells.reset(index, tag);
        Some(user_data(index, tag))
    }

    /// A new `Free` slot at the end of the table (not on the free list);
    /// `None` if the table is at its largest.
    #[cold]
    fn new_slot(&mut self) -> Option<u32> {
        let index = u32::try_from(self.slots.len())
            .ok()
            .filter(|&i| i < CANCEL_BIT)?;
        self.slots.push(Slot {
            tag: 0,
            cancel: Cancel::None,
            attempts: 0,
            stream: false,
            credits: 1,
            held: 0,
            born: 0,
            state: SlotState::Free,
        });
        Some(index)
    }

    /// The live slot `ud` names (index and tag), if any.
    pub(crate) fn slot(&mut self, ud: u64) -> Option<&mut Slot> {
        let index = ud as u32;
        if index >= CANCEL_BIT {
            return None;
        }
        let slot = self.slots.get_mut(index as usize)?;
        (slot.tag == (ud >> 32) as u32 && !matches!(slot.state, SlotState::Free)).then_some(slot)
    }

    /// The request of slot `ud` is done with: the slot is freed (and its
    /// credit returned) unless a cancellation's CQE is still owed, in which
    /// case it waits for that as `Reaped`. The old state goes to `grave`
    /// (it may hold a waker: dropped after unlocking).
    pub(crate) fn finish(&mut self, ud: u64, grave: &mut Graveyard) {
        let old = self.release_slot(ud, &mut grave.wakers);
        grave.keep(old);
    }

    /// [`finish`](State::finish), returning the old state, with the credit
    /// waiters to wake in `wakers`.
    pub(crate) fn release_slot(&mut self, ud: u64, wakers: &mut Vec<Waker>) -> SlotState {
        let index = ud as u32;
        let slot = &mut self.slots[index as usize];
        if slot.cancel == Cancel::Owed {
            return std::mem::replace(&mut slot.state, SlotState::Reaped);
        }
        let held = std::mem::take(&mut slot.held);
        let old = std::mem::replace(&mut slot.state, SlotState::Free);
        slot.cancel = Cancel::None;
        // A new tag at once: nothing names the freed slot any more.
        slot.tag = slot.tag.wrapping_add(1);
        self.free.push(index);
        self.release_credit(held, wakers);
        old
    }

    /// Frees the slots whose ops took their published completion and gave
    /// them back ([`Cells::give_back`]); their credit came back when the
    /// completion was reaped. The first one freed is returned, for the
    /// caller to use at once, the others go on the free list (an op that
    /// completes and one made in its place, the usual pattern, never touch
    /// the list).
    #[inline]
    pub(crate) fn take_returned(&mut self, cells: &Cells) -> Option<u32> {
        let mut first = None;
        cells.take_returned(|index| self.free_returned(index, &mut first));
        first
    }

    /// A slot of `cells` that this thread kept ([`give_back`]), freed for
    /// the caller to use: no atomic read-modify-write.
    #[inline]
    pub(crate) fn take_kept(&mut self, cells: &Cells) -> Option<u32> {
        KEPT.try_with(|kept| {
            let mut kept = kept.try_borrow_mut().ok()?;
            if !kept
                .cells
                .as_deref()
                .is_some_and(|own| std::ptr::eq(own, cells))
            {
                return None;
            }
            let mut first = None;
            while first.is_none() {
                let index = kept.slots.pop()?;
                self.free_returned(index, &mut first);
            }
            first
        })
        .ok()
        .flatten()
    }

    /// Frees slot `index`, which its op gave back: into `first` if that is
    /// empty (for the caller to use at once), onto the free list otherwise.
    #[inline]
    fn free_returned(&mut self, index: u32, first: &mut Option<u32>) {
        let slot = &mut self.slots[index as usize];
        // `Done` owns nothing: overwritten without the drop glue.
        debug_assert!(matches!(slot.state, SlotState::Done(..)));
        if slot.cancel == Cancel::Owed {
            // (`release_slot`, whose credit part is done: the credit came
            // back when the completion was reaped.)
            refill_any(&mut slot.state, SlotState::Reaped);
            return;
        }
        debug_assert_eq!(slot.held, 0);
        refill_any(&mut slot.state, SlotState::Free);
        slot.cancel = Cancel::None;
        // A new tag at once: nothing names the freed slot any more.
        slot.tag = slot.tag.wrapping_add(1);
        if first.is_none() {
            *first = Some(index);
        } else {
            self.free.push(index);
        }
    }

    /// Queues a cancellation of the request `ud` if it is in the kernel
    /// and none was asked yet; true if one was queued. Either way a
    /// request of the slot is never submitted again (its `ECANCELED` may
    /// be this cancellation's).
    pub(crate) fn ask_cancel(&mut self, ud: u64) -> bool {
        let Some(slot) = self.slot(ud) else {
            return false;
        };
        slot.born = NEVER;
        if !slot.armed() || slot.cancel != Cancel::None {
            return false;
        }
        slot.cancel = Cancel::Owed;
        slot.attempts = 1;
        self.cancels.push(ud);
        self.stats.cancels += 1;
        true
    }

    /// A thread that drove this Proactor exited (see [`resubmits`]).
    ///
    /// [`resubmits`]: State::resubmits
    pub(crate) fn driver_exited(&mut self) {
        self.events += 1;
        self.last_exit = self.events;
    }

    /// Whether a request made at event `born` whose (last) CQE says `res`
    /// goes to the kernel again instead of completing: the kernel ties a
    /// request to the thread that submitted it, and any thread that drives
    /// submits every request queued meanwhile. Once that thread has
    /// exited, a request armed for readiness fails with `ECANCELED` when
    /// it becomes ready, without having run (the kernel's task-work check
    /// for an exiting task; on 5.10, the exiting task's io-wq cancels its
    /// queued work the same way), though nobody cancelled it. Such a
    /// request is submitted again when: its result is `ECANCELED`; a
    /// thread that drove exited after it was made (that thread may have
    /// submitted it); no `cancel_fd` was queued since (which may be what
    /// cancelled it); it is not part of a linked chain; the Proactor is not
    /// shutting down (which cancels everything); and its opcode is one
    /// whose `ECANCELED` means it did not run and that may simply run
    /// again ([`resubmittable`]). Counted in `stats.resubmitted`.
    pub(crate) fn resubmits(&mut self, born: u64, opcode: u8, res: i32) -> bool {
        // (`LINKED` births are above any `last_exit`: never again.)
        let again = res == -libc::ECANCELED
            && born != NEVER
            && self.last_exit > born
            && self.last_fd_cancel <= born
            && !self.shutdown
            && resubmittable(opcode);
        if again {
            self.stats.resubmitted += 1;
        }
        again
    }

    /// The result a linked request born at `born` completes with when the
    /// kernel says `res`: `ECANCELED` for an `EFAULT` after a thread that
    /// drove exited (the kernel fails the next request of a chain with
    /// `EFAULT`, unrun, when the thread that submitted the chain has
    /// exited: its task work runs on the kernel's fallback, which may not
    /// submit), as the other requests such an exit ends; `res` otherwise.
    #[inline]
    pub(crate) fn exit_failed(last_exit: u64, born: u64, res: i32) -> i32 {
        if res == -libc::EFAULT && born != NEVER && born & LINKED != 0 && last_exit > born & !LINKED
        {
            -libc::ECANCELED
        } else {
            res
        }
    }
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
