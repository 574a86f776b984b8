//! The driver token: who may run ring turns, taken (`acquire`), let go
//! (`release`), and taken over from a holder running user code between its
//! turns (`step_out` / `back`).

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::task::Waker;
use std::thread::ThreadId;

use super::{exited, me};
use crate::state::*;

/// Takes the driver token for this thread, if free or already this
/// thread's, or if its holder runs user code between its turns (taken
/// over: see [`step_out`]).
#[inline]
pub(crate) fn acquire(shared: &Shared) -> bool {
    acquire_how(shared) != Took::No
}

/// How [`acquire_how`] got the token, if it did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Took {
    /// Not taken.
    No,
    /// Free, or already this thread's.
    Yes,
    /// Taken over from a holder running user code between its turns. That
    /// holder's turn may have dispatched this thread's completions whose
    /// wakers it has not run yet (they wait behind the user code): the new
    /// holder looks at its own ops before it waits in the kernel, or it
    /// would wait for what already happened.
    Over,
}

/// [`acquire`], saying how.
pub(crate) fn acquire_how(shared: &Shared) -> Took {
    if exited() {
        // Never in a thread whose exit was reported (see `exited`): it does
        // not hold the token either (a thread exits with its frames gone).
        return Took::No;
    }
    let me = me();
    let mut st = shared.lock();
    let took = match st.owner {
        None if !st.stopped => {
            take(shared, &mut st, me);
            true
        }
        Some(owner) if owner == me => {
            // Code this thread runs between its turns drives (a waker that
            // waits on an op): it is no longer out, nobody may take over
            // until the matching `release`, which steps it out again (the
            // user code goes on: it may compute or block for long).
            // Swapped under the state lock: no taker races it.
            let out = shared.handover.out.swap(0, Ordering::Relaxed);
            st.outs.push(out);
            st.depth += 1;
            true
        }
        Some(_) => {
            return if !st.stopped && take_over(shared, &mut st, me) {
                Took::Over
            } else {
                Took::No
            };
        }
        None => false,
    };
    if took { Took::Yes } else { Took::No }
}

/// Gives the token to `me` (under the state lock), with a new tenure.
pub(super) fn take(shared: &Shared, st: &mut State, me: ThreadId) {
    st.owner = Some(me);
    st.depth = 1;
    st.token_moved(shared);
    // The step outs of the last holder's outer frames: that holder sees its
    // token taken (`back` fails) and never releases them.
    st.outs.clear();
    let tenure = shared.tenure.load(Ordering::Relaxed).wrapping_add(1);
    shared.tenure.store(tenure, Ordering::Relaxed);
}

/// Takes the token over (under the state lock) if its holder runs user
/// code between its turns: true if taken.
pub(super) fn take_over(shared: &Shared, st: &mut State, me: ThreadId) -> bool {
    holder_out(shared, st).is_some_and(|out| take_over_from(shared, st, me, out))
}

/// Takes the token over (under the state lock) if its holder is still in
/// the step out `out` (a value [`holder_out`] read): true if taken.
pub(super) fn take_over_from(shared: &Shared, st: &mut State, me: ThreadId, out: u64) -> bool {
    // The holder's [`back`] races this exchange: one of the two wins.
    if shared
        .handover
        .out
        .compare_exchange(out, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    take(shared, st, me);
    st.stats.token_takeovers += 1;
    true
}

/// The step out in progress of the token's holder, if it runs user code
/// between its turns (under the state lock: the tenure is stable). Each
/// step out has a value of its own: the fallback thread takes the token
/// over only from a holder that stayed in one step out for its grace
/// period, not from one that turns between short ones.
pub(crate) fn holder_out(shared: &Shared, st: &State) -> Option<u64> {
    let out = shared.handover.out.load(Ordering::Acquire);
    let tenure = shared.tenure.load(Ordering::Relaxed);
    (st.owner.is_some() && out != 0 && out >> EPISODE_BITS == tenure & TENURE_MASK).then_some(out)
}

/// Low bits of a step out's value: which step out of the tenure (the high
/// bits) it is.
const EPISODE_BITS: u32 = 16;

/// The bits of a tenure a step out's value keeps (the tenure wraps there:
/// after 2^48 tokens taken).
const TENURE_MASK: u64 = u64::MAX >> EPISODE_BITS;

thread_local! {
    /// Step outs of this thread, counted (their values differ).
    static EPISODE: Cell<u64> = const { Cell::new(0) };
}

/// The token's holder (this thread) is about to run user code: a future
/// it polls, the wakers and drops its turn collected. Until [`back`],
/// another thread that wants the token may take it over, so user code that
/// computes or blocks never holds up the other threads' ops. Returns the
/// step out's value (its tenure and its number) to come back with.
#[inline]
pub(crate) fn step_out(shared: &Shared) -> u64 {
    // Written by this thread when it took the token (or by a turn of it
    // that took it back): nobody else writes it while this thread holds it
    // and is not out.
    let tenure = shared.tenure.load(Ordering::Relaxed);
    // 1 to 2^16 - 1: never 0, so a value is never 0 ("not out") even
    // where the tenure's kept bits are.
    let episode = EPISODE.with(|e| {
        let n = e.get() % ((1 << EPISODE_BITS) - 1) + 1;
        e.set(n);
        n
    });
    let out = ((tenure & TENURE_MASK) << EPISODE_BITS) | episode;
    if shared.handover.step_out(out) {
        // A thread asked for the token while this one turned, and sleeps
        // until it is let go: it would sleep for as long as this user
        // code runs. Woken, it takes the token over.
        wake_token_waiters(shared);
    }
    out
}

thread_local! {
    /// The Proactor whose token this thread holds while it polls the
    /// future of a [`block_on`](super::block_on) (or runs what its turn
    /// collected), and the step out it does that in (null and 0
    /// otherwise). See [`holding_here`].
    static HOLDING: Cell<(*const Shared, u64)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// A `block_on` is about to poll its future (or run what its turn
/// collected) holding `shared`'s token, stepped out with `out`: until the
/// guard returned is dropped (after the poll, or as a panic unwinds it),
/// [`holding_here`] knows. A nested `block_on` polls inside it, and the
/// guard puts back what was before. One that does not hold a token
/// (`None`) leaves what is there: nested in the future of one that holds
/// its token, its thread still holds it, in the outer's step out.
#[inline]
pub(crate) fn polling(held: Option<(&Shared, u64)>) -> Polling {
    HOLDING.with(|h| match held {
        Some((shared, out)) => Polling(h.replace((std::ptr::from_ref(shared), out))),
        None => Polling(h.get()),
    })
}

/// See [`polling`].
pub(crate) struct Polling((*const Shared, u64));

impl Drop for Polling {
    #[inline]
    fn drop(&mut self) {
        HOLDING.with(|h| h.set(self.0));
    }
}

/// Under the state lock: this thread holds `shared`'s token and polls the
/// future of a `block_on` (or runs what its turn collected) in a step out
/// that nobody ended. Taking the token over needs this lock, and this
/// thread is not inside a turn, so it may reach the driver until it
/// unlocks (`push_direct`), and it turns next (it is not in the kernel).
#[inline]
pub(crate) fn holding_here(shared: &Shared) -> bool {
    let (held, out) = HOLDING.with(Cell::get);
    std::ptr::eq(held, shared) && out != 0 && shared.handover.out.load(Ordering::Relaxed) == out
}

/// Asks, under the state lock, to be woken by `waker` when the token is
/// let go or its holder steps out: false if the holder is out already
/// (the caller takes the token over instead of sleeping). Either this
/// sees the holder out or the holder's [`step_out`] sees the ask (see
/// [`Handover`](super::Handover)).
pub(crate) fn ask(shared: &Shared, st: &mut State, waker: &Waker) -> bool {
    if !st.token_waiters.iter().any(|w| w.will_wake(waker)) {
        st.token_waiters.push(waker.clone());
    }
    let out = shared.handover.ask();
    let tenure = shared.tenure.load(Ordering::Relaxed);
    !(st.owner.is_some() && out != 0 && out >> EPISODE_BITS == tenure & TENURE_MASK)
}

/// The threads waiting for the token (under the state lock), to wake
/// once it is unlocked.
pub(crate) fn take_waiters(shared: &Shared, st: &mut State) -> Vec<Waker> {
    shared.handover.answered();
    std::mem::take(&mut st.token_waiters)
}

/// Wakes the threads waiting for the token (see [`step_out`]).
#[cold]
#[inline(never)]
fn wake_token_waiters(shared: &Shared) {
    let mut waiters = take_waiters(shared, &mut shared.lock());
    wake_all(&mut waiters);
}

/// Back from the user code of [`step_out`]: true if this thread still
/// holds the token. If not, it was taken over: the thread must neither
/// turn nor let the token go (it is another's).
#[inline]
pub(crate) fn back(shared: &Shared, out: u64) -> bool {
    shared
        .handover
        .out
        .compare_exchange(out, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
        || still_held(shared, out >> EPISODE_BITS)
}

/// Not out any more: the user code drove on this thread (an `acquire`
/// here ended the step out), or the token was taken over.
#[cold]
fn still_held(shared: &Shared, tenure: u64) -> bool {
    let st = shared.lock();
    st.owner == Some(me()) && shared.tenure.load(Ordering::Relaxed) & TENURE_MASK == tenure
}

/// Lets the token go (taken by [`acquire`]): wakes a caller waiting for it
/// if there is one.
pub(crate) fn release(shared: &Shared, caller: bool) {
    let mut st = shared.lock();
    st.depth -= 1;
    if st.depth > 0 {
        // Back to the user code of the frame that took the token again
        // (see `acquire`): stepped out again, with the value that frame
        // comes `back` with, so another thread may take the token over
        // while that code goes on.
        if let Some(out) = st.outs.pop() {
            shared.handover.out.store(out, Ordering::Release);
            // Threads that asked for the token meanwhile take it over
            // (under the lock: `ask` sees this `out`, or was seen here).
            if !st.token_waiters.is_empty() {
                let mut waiters = take_waiters(shared, &mut st);
                drop(st);
                wake_all(&mut waiters);
            }
        }
        return;
    }
    st.outs.clear();
    st.owner = None;
    st.token_moved(shared);
    if caller {
        st.caller_drove = true;
        st.releases += 1;
    }
    // Every thread waiting for the token is woken: one that no longer
    // needs it (its op completed meanwhile) would otherwise swallow the
    // wake-up and leave the others parked with nobody driving. The first to
    // come takes it; the others ask again.
    let mut waiters = take_waiters(shared, &mut st);
    // Work left and no caller to take it: the fallback thread, unless it
    // is already watching (its grace period, which the caller's release
    // restarts; not its long watch of a holder, which is this one), or an
    // external driver is attached: it takes work queued while the token
    // was held (in-flight work it watches by itself).
    let kick = waiters.is_empty()
        && Shared::has_work(&st)
        && st.fallback_idle
        && (!st.fallback_timed || st.fallback_long)
        && st.external.is_none();
    let external = if waiters.is_empty() && (!st.queue.is_empty() || !st.cancels.is_empty()) {
        st.external_waker()
    } else {
        None
    };
    drop(st);
    if !waiters.is_empty() {
        wake_all(&mut waiters);
    } else if kick {
        shared.idle.notify_one();
    } else if let Some(external) = external {
        run_user(|| external.wake());
    }
}
