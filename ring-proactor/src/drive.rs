//! Who drives the ring: the thread that waits.
//!
//! One *driver token* (`State::owner`) says which thread may run ring turns
//! (`Driver::turn`). A thread about to block on the Proactor ([`block_on`],
//! `Op::wait`, `Multi::wait_next`, `Proactor::park`) takes the token if it
//! is free and runs turns itself instead of sleeping: its own ops complete
//! on its own thread, with no wake-up of another. The fallback thread
//! drives only when work is queued or in flight and nobody else drives (an
//! executor that never blocks on the Proactor, such as tokio's, relies on
//! it); after a caller drove, it waits a grace period first, so callers
//! that drive again and again never wake it.
//!
//! The holder runs user code between its turns (the future `block_on`
//! polls, the wakers and drops a turn collected): it *steps out* first
//! ([`step_out`]), and a thread that wants the token meanwhile takes it
//! over ([`acquire`]; the fallback thread after its grace period). The
//! handover is one compare-and-exchange on `Handover::out` (the holder's
//! tenure, or 0), which the holder's [`back`] races: exactly one of the
//! two wins. The driver is reached only by the holder, back from its step
//! out (`DriverCell`); the state lock, which every taking of the token
//! takes, orders the old holder's turn before the new one's.
//!
//! A `block_on` holder whose turns found nothing but its own work pushes
//! the ops its future submits into the SQ itself, under the state lock
//! that a submission takes anyway, while it is stepped out: a takeover
//! needs that lock too, so while it holds it, in a step out nobody ended
//! ([`holding_here`]), it still owns the driver. Its next turn then
//! enters without looking at the state (see `State::direct`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread, ThreadId};
use std::time::Duration;

use crate::driver::Wait;
use crate::state::*;

mod blocking;
mod fallback;
mod handover;
mod hint;
mod park;
mod token;

pub use blocking::block_on;
pub(crate) use fallback::fallback;
pub(crate) use handover::Handover;
pub(crate) use hint::*;
pub use park::Unparker;
pub(crate) use token::*;

/// How long the fallback thread leaves work alone after a caller let the
/// token go (the caller is likely to drive again at once).
pub(crate) const GRACE: Duration = Duration::from_millis(5);

/// How long the fallback thread lets a token holder run user code in one
/// step out (a future that computes, a waker that blocks) before it takes
/// the token over for work nobody else drives.
const STUCK: Duration = Duration::from_millis(50);

/// How long the fallback thread, woken only to watch a caller that drives
/// next (`State::kick_watch`), lets it stay away before it takes the work:
/// a deadlock breaker (the caller's future blocks on what that work would
/// do), not a latency help.
const KICK_PATIENCE: Duration = Duration::from_secs(1);

thread_local! {
    /// This thread's id (cached: `thread::current()` clones an `Arc`).
    static ME: ThreadId = thread::current().id();
    /// Nesting depth of [`block_on`] on this thread: while above 0, an op
    /// queued here is driven here, so the fallback thread is not woken.
    static BLOCKING: Cell<u32> = const { Cell::new(0) };
    /// The Proactor of the last op polled (queued or waiting) inside
    /// [`block_on`] on this thread: the one to drive; and spare wakers.
    static HINT: RefCell<Hint> = const {
        RefCell::new(Hint {
            shared: None,
            spares: Vec::new(),
        })
    };
    /// `HINT`'s spares are not empty (a look without its borrow).
    static SPARE: Cell<bool> = const { Cell::new(false) };
    /// A clone of this thread's `block_on` waker that a turn took from a
    /// completed op, kept for the next op (see [`keep_own`]).
    static OWN_SPARE: Cell<Option<Waker>> = const { Cell::new(None) };
    /// The reference to its Proactor of the last op dropped inside
    /// [`block_on`] on this thread, kept for the next op (see
    /// [`keep_shared`]): an `Arc::into_raw`, or null. (A raw pointer: a
    /// thread-local without a destructor is the cheapest to reach.
    /// `block_on` drops it after each poll of its future, and the
    /// outermost as it returns, panicking or not.)
    static OWN_SHARED: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
    /// The Proactor in `HINT` (null if none), to compare without its
    /// borrow.
    static HINT_PTR: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
    /// A graveyard to reuse (its vectors keep their capacity); a turn run
    /// by code a turn's graveyard runs takes a new one.
    static GRAVE: Cell<Option<Graveyard>> = const { Cell::new(None) };
    /// The Proactors this thread drove: told when it exits.
    static DROVE: Drove = const {
        Drove(RefCell::new(DroveList {
            proactors: Vec::new(),
            chains: Vec::new(),
            prune_at: CHAINS_PRUNED_AT,
        }))
    };
    /// [`DROVE`] is gone: this thread's exit was reported (see
    /// [`exited`]). No destructor: readable to the thread's very end.
    static EXITED: Cell<bool> = const { Cell::new(false) };
}

/// The Proactors a thread drove (and so may have submitted requests to).
/// When the thread exits, the kernel fails those still armed with
/// `ECANCELED` as they become ready; told of the exit, each Proactor
/// submits them again (`State::resubmits`). Not the members of linked
/// chains: the kernel no longer runs the rest of a chain whose submitter
/// has exited (it fails the next request, unrun, with `EFAULT`), nor fires
/// its linked timeout (which then ends with `ECANCELED` and cancels
/// nothing: a receive it was to bound would wait for ever). So the exit
/// cancels the members of the chains the thread submitted that are still
/// in the kernel, through the Proactor (another thread submits the
/// cancellations): each ends with `ECANCELED`.
struct Drove(RefCell<DroveList>);

struct DroveList {
    proactors: Vec<Weak<Shared>>,
    /// The members of linked chains this thread submitted (Proactor,
    /// `user_data`), some long completed (see [`note_chains`]).
    chains: Vec<(*const Shared, u64)>,
    /// The length of `chains` at which completed members are dropped.
    prune_at: usize,
}

/// [`DroveList::prune_at`] at first.
const CHAINS_PRUNED_AT: usize = 64;

impl Drop for Drove {
    fn drop(&mut self) {
        EXITED.with(|e| e.set(true));
        let list = self.0.get_mut();
        let chains = std::mem::take(&mut list.chains);
        for proactor in list.proactors.drain(..) {
            let Some(shared) = proactor.upgrade() else {
                continue;
            };
            let me = Arc::as_ptr(&shared);
            let mut st = shared.lock();
            st.driver_exited();
            let mut asked = false;
            for &(_, ud) in chains.iter().filter(|(p, _)| *p == me) {
                asked |= st.ask_cancel(ud);
            }
            if asked {
                shared.note_activity(&mut st);
                crate::op::kick(&shared, st, false);
            }
        }
    }
}

/// This thread submits the members of linked chains in `chained` (their
/// `user_data`; emptied) to `shared`: remembered, so its exit cancels
/// those still in the kernel (see [`Drove`]). Members that completed are
/// dropped from the list when it grows.
pub(crate) fn note_chains(shared: &Shared, chained: &mut Vec<u64>) {
    let me: *const Shared = shared;
    let _ = DROVE.try_with(|drove| {
        let Ok(mut list) = drove.0.try_borrow_mut() else {
            return;
        };
        if list.chains.len() >= list.prune_at {
            let live: Vec<*const Shared> = list
                .proactors
                .iter()
                .filter(|p| p.strong_count() > 0)
                .map(Weak::as_ptr)
                .collect();
            let mut st = shared.lock();
            list.chains.retain(|&(p, ud)| {
                if p == me {
                    st.slot(ud).is_some_and(|slot| slot.armed())
                } else {
                    live.contains(&p)
                }
            });
            drop(st);
            list.prune_at = (2 * list.chains.len()).max(CHAINS_PRUNED_AT);
        }
        list.chains.extend(chained.iter().map(|&ud| (me, ud)));
    });
    chained.clear();
}

/// This thread is about to run a turn of `shared` (and may submit):
/// remembered, so its exit is reported (see [`Drove`]).
fn note_driver(shared: &Arc<Shared>) {
    // During the thread's own exit (a destructor that drives), the list is
    // gone: its exit is then being reported already, or never will be.
    let _ = DROVE.try_with(|drove| {
        let Ok(mut drove) = drove.0.try_borrow_mut() else {
            return;
        };
        let DroveList {
            proactors, chains, ..
        } = &mut *drove;
        if proactors.iter().any(|p| p.as_ptr() == Arc::as_ptr(shared)) {
            return;
        }
        let before = proactors.len();
        proactors.retain(|p| p.strong_count() > 0);
        if proactors.len() < before {
            // The chains of a Proactor gone go too: its address (the
            // Weak kept it from reuse until now) may be another's next.
            chains.retain(|&(c, _)| proactors.iter().any(|p| p.as_ptr() == c));
        }
        proactors.push(Arc::downgrade(shared));
    });
}

/// This thread is exiting and its exit was reported to the Proactors it
/// drove ([`Drove`]): a destructor of another thread-local runs. It must
/// not drive any more: a request it submitted would fail with `ECANCELED`
/// once ready, and no exit reported after it would submit it again. It
/// leaves the ring to the fallback thread (or another caller).
#[inline]
pub(crate) fn exited() -> bool {
    EXITED.with(Cell::get)
}

pub(crate) fn me() -> ThreadId {
    ME.with(|id| *id)
}

/// What a [`turn`] left the token holder with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Turned {
    /// It still holds the token.
    Kept,
    /// The token was taken over while the turn's user code ran (see
    /// [`step_out`]): the thread neither turns again nor lets it go.
    Lost,
    /// The Proactor has stopped.
    Stopped,
}

/// Runs one turn as the token holder; user code it collected (drops,
/// wakers) runs after the driver is unlocked, stepped out (another thread
/// may take the token over meanwhile). A panic of the turn (a bug) leaks
/// the ring, fails every op, and goes on.
pub(crate) fn turn(shared: &Arc<Shared>, wait: Wait, fallback: bool) -> Turned {
    // (A thread-local destructor at the thread's exit may drive after the
    // graveyard is gone: it takes a new one.)
    let mut grave = GRAVE
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default();
    let turned = turn_with(shared, wait, fallback, &mut grave);
    let _ = GRAVE.try_with(|g| g.set(Some(grave)));
    turned
}

/// [`turn`] with the caller's graveyard (emptied again on return), which
/// a thread that turns again and again keeps.
pub(crate) fn turn_with(
    shared: &Arc<Shared>,
    wait: Wait,
    fallback: bool,
    grave: &mut Graveyard,
) -> Turned {
    match turn_out(shared, wait, fallback, grave) {
        After::Stopped => Turned::Stopped,
        After::Holding => Turned::Kept,
        After::SteppedOut(tenure) if back(shared, tenure) => Turned::Kept,
        After::SteppedOut(_) => Turned::Lost,
    }
}

/// Where a [`turn_out`] left the token holder.
enum After {
    /// Holding the token (no user code ran).
    Holding,
    /// Stepped out with this tenure: the turn's user code ran, and
    /// [`back`] is still to come.
    SteppedOut(u64),
    /// The Proactor has stopped.
    Stopped,
}

/// [`turn_with`] that stays stepped out after the turn's user code, for a
/// caller that runs more of it at once ([`block_on`] polls its future).
fn turn_out(shared: &Arc<Shared>, wait: Wait, fallback: bool, grave: &mut Graveyard) -> After {
    if !fallback {
        note_driver(shared);
    }
    turn_noted(shared, wait, fallback, false, grave)
}

/// [`turn_with`] by a thread already noted as a driver of `shared`
/// ([`note_driver`]: [`block_on`] notes it once when it takes the token).
/// `holder`: a `block_on`'s turn, which may let its future push its own
/// ops next, and then turns without the state lock until its reap (see
/// `State::direct`).
fn turn_noted(
    shared: &Arc<Shared>,
    wait: Wait,
    fallback: bool,
    holder: bool,
    grave: &mut Graveyard,
) -> After {
    // SAFETY: every caller holds the token and is not stepped out
    // (`block_on` after its `back`, or on a hold with no step out since;
    // `turn_with`'s callers after `acquire`), and the turn runs no user
    // code that could drive (its wakers and drops wait in `grave`). A
    // panic of the turn is caught inside.
    let outcome = unsafe {
        shared.driver.with(|slot| {
            let driver = slot.as_mut()?;
            let turned = std::panic::catch_unwind(AssertUnwindSafe(|| {
                if holder
                    && shared.direct.load(Ordering::Relaxed)
                    && driver.turn_direct(shared, wait, grave)
                {
                    // (A turn without the lock never finds a shutdown.)
                    false
                } else {
                    driver.turn(shared, wait, fallback, holder, grave)
                }
            }));
            Some(match turned {
                Ok(false) => Ok(None),
                // Closed below, out of the cell.
                Ok(true) => Ok(slot.take()),
                Err(panic) => {
                    // The kernel may still use what the ring's requests
                    // point to: the ring and those resources are leaked,
                    // never freed.
                    std::mem::forget(slot.take());
                    Err(panic)
                }
            })
        })
    };
    let Some(outcome) = outcome else {
        return After::Stopped;
    };
    match outcome {
        Ok(None) => {
            grave.drop_own_one();
            if grave.is_empty() {
                return After::Holding;
            }
            // (Threads that asked for the token during this turn are woken
            // to take it over.)
            let tenure = step_out(shared);
            // A `block_on`'s wakers and drops run in its step out as its
            // future does (their ops may go straight into the SQ).
            let _polling = polling(holder.then_some((&**shared, tenure)));
            grave.bury();
            After::SteppedOut(tenure)
        }
        Ok(Some(driver)) => {
            driver.close();
            // Wakes all: a `block_on` that turned parks next, not polls.
            grave.own = (0, 0);
            grave.bury();
            let mut st = shared.lock();
            st.stopped = true;
            st.sleeping = false;
            let mut waiters = take_waiters(shared, &mut st);
            waiters.extend(st.external_waker());
            drop(st);
            shared.stopped.notify_all();
            shared.idle.notify_all();
            wake_all(&mut { waiters });
            After::Stopped
        }
        Err(panic) => {
            // What the turn collected is leaked with the ring.
            std::mem::forget(std::mem::take(grave));
            shared.fail_all();
            std::panic::resume_unwind(panic)
        }
    }
}
