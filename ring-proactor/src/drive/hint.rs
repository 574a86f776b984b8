//! What a thread inside [`block_on`] keeps: the Proactor it drives (the
//! last one an op noted) and the spare wakers of a task whose ops a turn
//! completed together.

use std::cell::Cell;
use std::sync::Arc;
use std::task::Waker;

use super::*;

/// What a thread inside [`block_on`] keeps ([`HINT`]).
pub(crate) struct Hint {
    /// The Proactor to drive.
    pub(super) shared: Option<Arc<Shared>>,
    /// Wakers a turn of this thread found repeated (ops of one task that
    /// completed together: [`wake_all`] wakes the task once), kept until
    /// the future is next polled: an op of that task submitted meanwhile
    /// takes one instead of cloning its waker (a clone and a drop fewer,
    /// each an atomic read-modify-write of the task's count for most
    /// executors). Those not taken are dropped after the poll
    /// ([`drop_spares`]).
    pub(super) spares: Vec<Waker>,
}

/// `shared` is now the Proactor to drive ([`Hint::shared`]). One noted
/// before in this `block_on` (its future waits on ops of two Proactors)
/// is kicked: its ops polled here were queued as this thread's to drive
/// (`will_drive`, nobody woken), but `block_on` drives one Proactor, the
/// last noted (see `block_on`), so whoever drives the other is woken (its
/// fallback thread, if nobody holds its token).
#[cold]
fn note_hint(shared: &Arc<Shared>) {
    let old = HINT.with(|h| h.borrow_mut().shared.replace(shared.clone()));
    HINT_PTR.with(|p| p.set(Arc::as_ptr(shared)));
    if let Some(old) = &old {
        // (No lock is held where ops note themselves.)
        crate::op::kick(old, old.lock(), false);
    }
    drop(old);
}

/// The Proactor noted last in this thread's `block_on` (null: none).
#[inline]
pub(super) fn hinted() -> *const Shared {
    HINT_PTR.with(Cell::get)
}

/// Spare wakers kept at most ([`keep_spares`]).
const SPARES: usize = 1024;

/// An op of `shared` was polled and is pending: inside [`block_on`], note
/// it as the Proactor to drive. True if this thread will drive (so nobody
/// else needs waking for the op's sake).
#[inline]
pub(crate) fn note_pending(shared: &Arc<Shared>) -> bool {
    note_pending_with(shared, None).0
}

/// [`note_pending`] for an op about to store a clone of `waker`: also a
/// spare waker that wakes the same task ([`Hint::spares`]), to store
/// instead of a new clone, if this thread kept one.
#[inline]
pub(crate) fn note_pending_waker(shared: &Arc<Shared>, waker: &Waker) -> (bool, Option<Waker>) {
    note_pending_with(shared, Some(waker))
}

#[inline(always)]
fn note_pending_with(shared: &Arc<Shared>, waker: Option<&Waker>) -> (bool, Option<Waker>) {
    if BLOCKING.with(Cell::get) == 0 {
        return (false, None);
    }
    if HINT_PTR.with(Cell::get) != Arc::as_ptr(shared) {
        note_hint(shared);
    }
    if let Some(waker) = waker {
        if let Some(own) = OWN_SPARE.with(Cell::take) {
            if own.will_wake(waker) {
                return (true, Some(own));
            }
            // (Another `block_on`'s: an outer one's, when nested.)
            OWN_SPARE.with(|s| s.set(Some(own)));
        }
    }
    let spare = match waker {
        Some(waker) if SPARE.with(Cell::get) => HINT.with(|h| {
            let mut h = h.borrow_mut();
            // (`will_wake` compares the wakers' data and vtable pointers:
            // no user code runs.)
            let spare = if h.spares.last()?.will_wake(waker) {
                h.spares.pop()
            } else {
                None
            };
            SPARE.with(|s| s.set(!h.spares.is_empty()));
            spare
        }),
        _ => None,
    };
    (true, spare)
}

/// Moves `wakers`, each of which wakes the same task, to this thread's
/// spares if it is inside [`block_on`] (see [`Hint::spares`]) but one,
/// returned to be woken if `wake`; drops the others otherwise. `wakers`
/// is left empty. No lock may be held (a drop is user code).
pub(crate) fn keep_spares(wakers: &mut Vec<Waker>, wake: bool) -> Option<Waker> {
    let kept = BLOCKING.with(Cell::get) > 0
        && HINT
            .try_with(|h| {
                let Ok(mut h) = h.try_borrow_mut() else {
                    return false;
                };
                if h.spares.len() + wakers.len() > SPARES {
                    return false;
                }
                // Moved, not dropped: no user code runs here (the spares
                // are usually none: the vectors trade places).
                if h.spares.is_empty() {
                    std::mem::swap(&mut h.spares, wakers);
                } else {
                    h.spares.append(wakers);
                }
                true
            })
            .unwrap_or(false);
    if kept {
        if !wake {
            SPARE.with(|s| s.set(true));
            return None;
        }
        return HINT.with(|h| {
            let mut h = h.borrow_mut();
            let one = h.spares.pop();
            SPARE.with(|s| s.set(!h.spares.is_empty()));
            one
        });
    }
    let one = if wake { wakers.pop() } else { None };
    for w in wakers.drain(..) {
        run_user(|| drop(w));
    }
    one
}

/// Keeps `own`, a clone of this thread's `block_on` waker that a turn
/// took from a completed op, for the op the future submits next, which
/// takes it instead of cloning the waker again (at QD1, every op: a clone
/// and a drop fewer, two atomic read-modify-writes). One is kept; the one
/// it replaces is dropped, which runs no user code (a `block_on` waker's
/// drop is a count's decrement), nor does the drop of one left at the
/// thread's exit.
#[inline]
pub(crate) fn keep_own(own: Waker) {
    if let Ok(old) = OWN_SPARE.try_with(|s| s.replace(Some(own))) {
        drop(old);
    }
}

/// A reference to `shared` for a new op: inside [`block_on`], the one the
/// last op dropped on this thread kept ([`keep_shared`]) if it is
/// `shared`'s, else a clone. At QD1 (an op awaited, dropped, the next
/// made), every op: an increment and a decrement of the Proactor's count
/// fewer, two atomic read-modify-writes.
#[inline]
pub(crate) fn shared_ref(shared: &Arc<Shared>) -> Arc<Shared> {
    if OWN_SHARED.with(Cell::get) == Arc::as_ptr(shared) {
        if let Some(kept) = swap_kept(std::ptr::null()) {
            return kept;
        }
    }
    shared.clone()
}

/// The reference to its Proactor of an op being dropped: kept inside
/// [`block_on`], for the next op ([`shared_ref`]); it replaces the one
/// kept before, which is dropped, as it is after the poll of the
/// `block_on`'s future in which it was kept ([`drop_kept_shared`]). (A
/// reference keeps the Proactor's memory and its ring's fd, not the
/// Proactor: the last handle's drop shuts it down.)
#[inline]
pub(crate) fn keep_shared(shared: Arc<Shared>) {
    if BLOCKING.with(Cell::get) > 0 {
        drop(swap_kept(Arc::into_raw(shared)));
    }
}

/// Drops the Proactor reference kept for the next op, if any (see
/// [`keep_shared`]): after each poll of a `block_on`'s future, and when
/// the outermost returns.
#[inline(always)]
pub(super) fn drop_kept_shared() {
    if !OWN_SHARED.with(Cell::get).is_null() {
        drop_kept_shared_now();
    }
}

#[inline(never)]
fn drop_kept_shared_now() {
    drop(swap_kept(std::ptr::null()));
}

/// Puts `new` (an `Arc::into_raw` whose reference it hands over, or null)
/// in [`OWN_SHARED`], and returns the reference that was there, if any.
#[inline(always)]
fn swap_kept(new: *const Shared) -> Option<Arc<Shared>> {
    let old = OWN_SHARED.with(|s| s.replace(new));
    // SAFETY: a non-null `old` is an `into_raw` the cell owned, taken out.
    (!old.is_null()).then(|| unsafe { Arc::from_raw(old) })
}

/// Drops the spare wakers this thread kept (see [`Hint::spares`]) that no
/// op took, through `scratch` (an empty vector whose capacity the spares
/// take over, and give back). No lock may be held (a drop is user code).
#[inline(always)]
pub(super) fn drop_spares(scratch: &mut Vec<Waker>) {
    if SPARE.with(Cell::get) {
        drop_kept_spares(scratch);
    }
}

/// [`drop_spares`] once this thread kept some.
#[inline(never)]
fn drop_kept_spares(scratch: &mut Vec<Waker>) {
    let any = HINT.with(|h| {
        let mut h = h.borrow_mut();
        if h.spares.is_empty() {
            return false;
        }
        std::mem::swap(&mut h.spares, scratch);
        SPARE.with(|s| s.set(false));
        true
    });
    if any {
        for w in scratch.drain(..) {
            run_user(|| drop(w));
        }
    }
}
