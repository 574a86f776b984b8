//! The fallback thread: it drives work queued or in flight that no caller
//! drives (after a grace period if a caller drove), takes the ring over
//! from a holder stuck in user code, and stays out while an external driver
//! (the tokio drive task) is attached.

use std::sync::Arc;
use std::sync::MutexGuard;
use std::time::Instant;

use super::*;

/// The fallback thread: drives while work is queued or in flight and no
/// caller does; ends when the Proactor has stopped.
pub(crate) fn fallback(shared: Arc<Shared>) {
    let me = me();
    let mut grave = Graveyard::default();
    // The external driver's step out seen at the last look (see below).
    let mut watched = None;
    // How long until the credit waiters are looked at again, if any wait.
    let mut look;
    loop {
        {
            let mut st = shared.lock();
            let mut seen = st.releases;
            let mut seen_out = None;
            let mut quiet_since: Option<Instant> = None;
            let mut taken = false;
            loop {
                if st.stopped {
                    return;
                }
                (st, look) = watch_credit(&shared, st);
                if !st.shutdown && st.external.is_some() {
                    // The external driver (the only one) runs user code
                    // stepped out: if it stays in one step out for a
                    // while (a waker that blocks its worker thread), the
                    // work of other threads' executors waits for it. Seen
                    // in the same step out a while apart: taken over for
                    // one turn (that does not wait in the kernel).
                    let out = holder_out(&shared, &st).filter(|_| Shared::has_work(&st));
                    if out.is_none() && st.kick_watch && st.owner.is_none() && Shared::has_work(&st)
                    {
                        // Work of a thread that was to drive next (its
                        // kick woke this thread, see `op::watch_holder`)
                        // and has not taken the free token: its future
                        // may block first, and nobody told the external
                        // driver. Once nobody took the token for
                        // `KICK_PATIENCE`, the external driver is woken
                        // for it.
                        watched = None;
                        if st.releases != seen {
                            seen = st.releases;
                            quiet_since = None;
                        }
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        let left = KICK_PATIENCE.saturating_sub(since.elapsed());
                        if left.is_zero() {
                            st.kick_watch = false;
                            quiet_since = None;
                            if let Some(waker) = st.external_waker() {
                                drop(st);
                                run_user(|| waker.wake());
                                st = shared.lock();
                            }
                            continue;
                        }
                        st = watch_for(&shared, st, left, look);
                        continue;
                    }
                    if out.is_none() {
                        watched = None;
                        st = external_attached(&shared, st, look);
                        continue;
                    }
                    if out != watched {
                        watched = out;
                        st = watch_for(&shared, st, STUCK, look);
                        continue;
                    }
                    watched = None;
                    if let Some(out) = out {
                        if take_over_from(&shared, &mut st, me, out) {
                            drop(st);
                            match turn_with(&shared, Wait::No, true, &mut grave) {
                                Turned::Stopped => return,
                                Turned::Lost => {}
                                Turned::Kept => release(&shared, false),
                            }
                            st = shared.lock();
                        }
                    }
                    continue;
                }
                // A holder running user code between its turns holds the
                // ring up for work nobody waits on: taken over too, if it
                // stays in one step out for a grace period (one that turns
                // between short step outs drives the work itself).
                let out = holder_out(&shared, &st);
                if (st.owner.is_none() || out.is_some()) && Shared::has_work(&st) {
                    if st.owner.is_none() && (!st.caller_drove || st.shutdown) {
                        break;
                    }
                    // A caller drove: take over only after a grace period
                    // in which no caller did.
                    if st.releases != seen || out != seen_out {
                        seen = st.releases;
                        seen_out = out;
                        quiet_since = None;
                    }
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    // A holder stepped out is taken over only once stuck
                    // (its own ops are driven when it turns again; taking
                    // them over sooner serves it across threads), and so
                    // is the work of a caller about to take the token.
                    let grace = if st.kick_watch {
                        KICK_PATIENCE
                    } else if out.is_some() || st.caller_coming {
                        STUCK
                    } else {
                        GRACE
                    };
                    if since.elapsed() >= grace {
                        match out {
                            None => break,
                            Some(out) if take_over_from(&shared, &mut st, me, out) => {
                                taken = true;
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                st.fallback_idle = true;
                // A holder with work in flight is watched too: it may step
                // out for long once a completion comes (a future that
                // computes), with ops of executors that only poll in
                // flight, and nobody asks for the token or queues work
                // that would tell this thread.
                st.fallback_timed = st.caller_drove
                    || out.is_some()
                    || (st.owner.is_some() && Shared::has_work(&st));
                // With a holder, only one stuck in user code is looked for:
                // that takes a step out of `STUCK`, so looking every
                // `STUCK` will do (an idle server's holder waits in the
                // kernel for as long as its connections are idle: the
                // fallback sleeps meanwhile, it does not poll). Its
                // release wakes this thread (`State::fallback_long`).
                st.fallback_long = st.fallback_timed && st.owner.is_some();
                if !st.fallback_timed {
                    // Nothing to watch: a kick wakes it again.
                    st.kick_watch = false;
                }
                let wait = if st.fallback_long { STUCK } else { GRACE };
                // (A look at the credit waiters bounds the wait without
                // making it timed: kicks still wake this thread.)
                let wait = bounded(st.fallback_timed.then_some(wait), look);
                st = match wait {
                    Some(wait) => match shared.idle.wait_timeout(st, wait) {
                        Ok((st, _)) => st,
                        Err(poisoned) => poisoned.into_inner().0,
                    },
                    None => shared.idle.wait(st).unwrap_or_else(|e| e.into_inner()),
                };
                st.fallback_idle = false;
                st.fallback_timed = false;
                st.fallback_long = false;
                if st.caller_drove && !Shared::has_work(&st) {
                    if st.releases == seen {
                        // No caller drove for a grace period and nothing
                        // is left: new work wakes this thread again.
                        st.caller_drove = false;
                    } else {
                        seen = st.releases;
                    }
                }
            }
            if !taken {
                take(&shared, &mut st, me);
                // (A takeover from a stuck holder is counted in
                // `token_takeovers`.)
                st.stats.fallback_takeovers += 1;
            }
            st.caller_drove = false;
        }
        loop {
            // (Waiting in the kernel no longer than until the next look at
            // the credit waiters.)
            match turn_with(&shared, Wait::For(look), true, &mut grave) {
                Turned::Stopped => return,
                // Taken over while the turn's user code ran: the new holder
                // lets it go in time.
                Turned::Lost => break,
                Turned::Kept => {}
            }
            let mut st = shared.lock();
            (st, look) = watch_credit(&shared, st);
            let external = st.external.is_some() && !st.shutdown;
            if !st.token_waiters.is_empty() || !Shared::has_work(&st) || external {
                // A caller asked for the ring: give it a grace period to
                // take it, rather than taking it back at once.
                st.caller_drove |= !st.token_waiters.is_empty();
                drop(st);
                release(&shared, false);
                break;
            }
        }
    }
}

/// The fallback thread while an external driver is attached: it drives
/// nothing, and only wakes the external driver when a cancellation is due
/// to be retried (the external driver keeps no timer). Returns when woken
/// (a new due time, a detach, a shutdown) or when a due time has passed.
fn external_attached<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    look: Option<Duration>,
) -> MutexGuard<'a, State> {
    let Some(external) = st.external.as_mut() else {
        return st;
    };
    let wait = match external.due {
        Some(due) => {
            let now = Instant::now();
            if due > now {
                Some(due - now)
            } else if let Some(waker) = external.waker.take() {
                external.due = None;
                drop(st);
                run_user(|| waker.wake());
                return shared.lock();
            } else {
                // It is not waiting: it runs a turn before it does, as the
                // time has passed (and tells this thread the next one).
                None
            }
        }
        None => None,
    };
    st.fallback_idle = true;
    // Nothing to watch: a kick wakes it again (see `op::watch_holder`).
    st.kick_watch = false;
    let wait = bounded(wait, look);
    st = match wait {
        Some(wait) => match shared.idle.wait_timeout(st, wait) {
            Ok((st, _)) => st,
            Err(poisoned) => poisoned.into_inner().0,
        },
        None => shared.idle.wait(st).unwrap_or_else(|e| e.into_inner()),
    };
    st.fallback_idle = false;
    st
}

/// The fallback thread beside an external driver, watching: it sleeps
/// for `wait` (less if the next look at the credit waiters, `look`, comes
/// sooner), timed, so kicks need not wake it: it looks again anyway.
fn watch_for<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    wait: Duration,
    look: Option<Duration>,
) -> MutexGuard<'a, State> {
    st.fallback_idle = true;
    st.fallback_timed = true;
    let wait = bounded(Some(wait), look).unwrap_or(wait);
    st = match shared.idle.wait_timeout(st, wait) {
        Ok((st, _)) => st,
        Err(poisoned) => poisoned.into_inner().0,
    };
    st.fallback_idle = false;
    st.fallback_timed = false;
    st
}

/// The longer `wait` (`None`: until woken), or less if the next look at
/// the credit waiters (`look`) comes sooner.
fn bounded(wait: Option<Duration>, look: Option<Duration>) -> Option<Duration> {
    match (wait, look) {
        (Some(wait), Some(look)) => Some(wait.min(look)),
        (wait, look) => wait.or(look),
    }
}

/// Looks at the credit granted to woken waiters (see `state/credit.rs`):
/// a grant not taken within [`CREDIT_LAPSE`](crate::CREDIT_LAPSE) (its op
/// was polled once and then kept, never polled again) lapses, and the
/// credit goes on to the next waiters, woken after unlocking. Returns the
/// lock and how long until the next look: `None` with nobody waiting for
/// credit or granted it; until the next grant lapses if any; else, with
/// waiters, `STUCK` (credit that comes back is granted by whoever reaps
/// it, which does not wake this thread: it sees the grant at its next
/// look).
fn watch_credit<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
) -> (MutexGuard<'a, State>, Option<Duration>) {
    loop {
        if st.credit_waiters.is_empty() && st.grants.is_empty() {
            return (st, None);
        }
        let now = Instant::now();
        let mut wakers = Vec::new();
        let next = st.lapse_grants(now, &mut wakers);
        if !wakers.is_empty() {
            drop(st);
            wake_all(&mut wakers);
            st = shared.lock();
            continue;
        }
        let look = match next {
            Some(at) => at.saturating_duration_since(now),
            None => STUCK,
        };
        return (st, Some(look));
    }
}
