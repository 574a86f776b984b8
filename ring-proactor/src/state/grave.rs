//! What must run outside the locks: user code (wakers, the drops of what
//! dropped ops owned), collected in a [`Graveyard`] and run by
//! [`run_user`], where a panic ends only that call.

use super::*;

/// Runs user code (a waker, a `Drop`) on a thread it must not take down:
/// a panic ends only this call.
pub(crate) fn run_user(f: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
        drop_payload(payload);
    }
}

/// Drops a panic's payload, which is user code too: a payload whose drop
/// panics (`panic_any` of such a value) would otherwise unwind out of
/// [`run_user`], through the driver (the fallback thread would die, a
/// holder would keep the token). The payload of that panic is dropped the
/// same way; past a few such in a row (each drop panicking with another),
/// the last is leaked.
#[cold]
fn drop_payload(mut payload: Box<dyn std::any::Any + Send>) {
    for _ in 0..4 {
        match std::panic::catch_unwind(AssertUnwindSafe(|| drop(payload))) {
            Ok(()) => return,
            Err(again) => payload = again,
        }
    }
    std::mem::forget(payload);
}

/// Wakes `wakers`, skipping repeats of the task just woken (ops joined in
/// one task share a waker: a batch of them then costs one wake-up, not one
/// per op, each of which may be a futex call). Repeats of one waker only
/// are kept as spares for the task's next ops if this thread is inside
/// `block_on` (see `crate::drive::keep_spares`), dropped otherwise (as
/// repeats among other wakers are). Call with no lock
/// held: a waker is user code; one that panics does not stop the others.
pub(crate) fn wake_all(wakers: &mut Vec<Waker>) {
    wake_all_but(wakers, (0, 0));
}

/// [`wake_all`], but a batch of clones of `own` (see [`Graveyard::own`])
/// is kept, none woken.
fn wake_all_but(wakers: &mut Vec<Waker>, own: crate::op::WakerId) {
    // The usual batch: ops of one task. (`will_wake` compares pointers: no
    // user code runs.)
    if let [first, rest @ ..] = &wakers[..] {
        if !rest.is_empty() && rest.iter().all(|w| first.will_wake(w)) {
            let wake = crate::op::waker_id(first) != own;
            if let Some(w) = crate::drive::keep_spares(wakers, wake) {
                run_user(|| w.wake());
            }
            return;
        }
    }
    let mut last: Option<Waker> = None;
    for w in wakers.drain(..) {
        if last.as_ref().is_some_and(|l| l.will_wake(&w)) {
            run_user(|| drop(w));
        } else if let Some(l) = last.replace(w) {
            run_user(|| l.wake());
        }
    }
    if let Some(l) = last {
        run_user(|| l.wake());
    }
}

/// What a dropped op or stream owned, and how to release a result it will
/// never deliver (close an accepted fd, free a buffer).
pub(crate) trait Release: Send {
    /// One CQE of the request arrived for nobody: release what it carries.
    fn release(&mut self, res: i32, flags: u32);
}

/// CQEs' `(res, flags)`, in order.
pub(crate) type Cqes = Vec<(i32, u32)>;

/// What must be released outside the lock, in this order: CQE results and
/// the resources that carried them, then the resources' owners.
#[derive(Default)]
pub(crate) struct Graveyard {
    /// Resources with the CQEs to release through them (none: drop only).
    pub(crate) orphans: Vec<(Box<dyn Release>, Cqes)>,
    /// Slot states dropped for their wakers.
    pub(crate) states: Vec<SlotState>,
    pub(crate) wakers: Vec<Waker>,
    /// The waker of the `block_on` that runs these turns and polls its
    /// future right after each ([`waker_id`]; `(0, 0)`: none): a wake-up
    /// of it would only ask for that poll, so its clones are not woken
    /// but kept as spares (see `crate::drive::keep_spares`).
    ///
    /// [`waker_id`]: crate::op::waker_id
    pub(crate) own: crate::op::WakerId,
}

impl Graveyard {
    /// Keeps `old` to drop after unlocking if dropping it runs user code
    /// (a waker, what a dropped op owned); drops it now otherwise.
    pub(crate) fn keep(&mut self, old: SlotState) {
        match old {
            // Nothing to drop: forgotten, without a call to the enum's
            // drop glue (this is on every op's path).
            SlotState::Free | SlotState::Done(..) | SlotState::Reaped => std::mem::forget(old),
            SlotState::Waiting(None) => {}
            old => self.states.push(old),
        }
    }

    /// If all there is to release is one clone of [`own`](Self::own) (a
    /// `block_on` turn that completed its one op: the QD1 loop), drops it
    /// here: it is `block_on`'s own waker, which `block_on` still holds,
    /// so no user code runs, and the caller need not step out for it (the
    /// future is polled next anyway, stepped out).
    #[inline]
    pub(crate) fn drop_own_one(&mut self) {
        if let [w] = &self.wakers[..] {
            if crate::op::waker_id(w) == self.own
                && self.orphans.is_empty()
                && self.states.is_empty()
            {
                if let Some(own) = self.wakers.pop() {
                    crate::drive::keep_own(own);
                }
            }
        }
    }

    /// Nothing to release.
    pub(crate) fn is_empty(&self) -> bool {
        self.orphans.is_empty() && self.states.is_empty() && self.wakers.is_empty()
    }

    /// Releases everything (call with no lock held).
    pub(crate) fn bury(&mut self) {
        if self.orphans.is_empty() && self.states.is_empty() {
            if self.wakers.len() == 1 {
                // The common case: one op completed.
                if let Some(w) = self.wakers.pop() {
                    if crate::op::waker_id(&w) == self.own {
                        // Its task is polled next anyway: dropped, not
                        // woken.
                        run_user(|| drop(w));
                    } else {
                        run_user(|| w.wake());
                    }
                }
                return;
            }
            if self.wakers.is_empty() {
                return;
            }
        }
        for (mut release, cqes) in self.orphans.drain(..) {
            for (res, flags) in cqes {
                run_user(|| release.release(res, flags));
            }
            run_user(|| drop(release));
        }
        for state in self.states.drain(..) {
            run_user(|| drop(state));
        }
        wake_all_but(&mut self.wakers, self.own);
    }
}
