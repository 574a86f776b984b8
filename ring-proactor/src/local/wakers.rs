//! The wakers a [`LocalProactor`](super::LocalProactor)'s slots hold: one
//! task's many ops share one waker instead of each cloning its own.
//!
//! Cloning a `Waker` (an atomic increment for `Arc`-based wakers, or any
//! user code) and dropping it again per op is most of the bookkeeping of a
//! task that keeps many ops in flight (`join_all`, a loop refilling a
//! window). A task whose waker is seen twice in a row gets it cloned once
//! into an `Rc`, which its later ops share with a non-atomic increment;
//! a turn wakes each shared waker once by reference. Tasks that submit one
//! op each, interleaved (a server's connections), see no change: each op
//! clones its task's waker, as before, and no `Rc` is made for them.

use std::rc::Rc;
use std::task::Waker;

use crate::op::{WakerId, waker_id};

/// A waiting op's waker.
pub(crate) enum SlotWaker {
    /// Nobody to wake (the op was never polled with one).
    None,
    /// The op's own clone.
    Own(Waker),
    /// A clone its task's ops share.
    Shared(Rc<Waker>),
}

impl SlotWaker {
    /// Wakes the task (user code: with the state unborrowed).
    pub(crate) fn wake(self) {
        match self {
            SlotWaker::None => {}
            SlotWaker::Own(own) => own.wake(),
            SlotWaker::Shared(shared) => shared.wake_by_ref(),
        }
    }

    /// Takes the waker out, leaving `None`.
    pub(crate) fn take(&mut self) -> SlotWaker {
        std::mem::replace(self, SlotWaker::None)
    }

    /// True if this is a shared waker that `other` holds too: dropping
    /// this one then runs no user code.
    pub(crate) fn shares(&self, other: &SlotWaker) -> bool {
        match (self, other) {
            (SlotWaker::Shared(a), SlotWaker::Shared(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The waker, if any.
    pub(crate) fn waker(&self) -> Option<&Waker> {
        match self {
            SlotWaker::None => None,
            SlotWaker::Own(own) => Some(own),
            SlotWaker::Shared(shared) => Some(shared),
        }
    }

    /// True if waking this wakes the task of `w` (pointer comparison only:
    /// no user code).
    #[inline]
    pub(crate) fn will_wake(&self, w: &Waker) -> bool {
        self.waker().is_some_and(|own| own.will_wake(w))
    }
}

/// The shared waker (kept until another task's replaces it: a waker
/// outliving its task by a while holds only memory), who submitted last
/// (its waker's data and vtable pointers, kept without holding it), and
/// the thread's own waker, which every op polled by its
/// [`block_on`](super::LocalProactor::block_on) shares.
#[derive(Default)]
pub(crate) struct Wakers {
    shared: Option<Rc<Waker>>,
    last: WakerId,
    /// The waker of the LocalProactor's `block_on` (one for the
    /// LocalProactor's life, which holds another `Rc` of it): waking it
    /// sets the thread's park flag and dropping a clone of the `Rc` is a
    /// counter's decrement, neither runs user code.
    own: Option<Rc<Waker>>,
}

/// What [`Wakers::find`] found for a task's waker.
pub(crate) enum Found {
    /// Its shared clone.
    Shared(SlotWaker),
    /// None: clone the waker (with the state unborrowed: user code), and
    /// share the clone if `share` (the task submitted last as well).
    Clone { share: bool },
}

impl Wakers {
    /// The wakers of a LocalProactor whose `block_on` polls with `own`.
    pub(crate) fn new(own: Rc<Waker>) -> Self {
        Wakers {
            own: Some(own),
            ..Wakers::default()
        }
    }

    /// True if `w` holds the thread's own waker (see [`Wakers`]): it may
    /// be dropped with the state borrowed, and waking it is setting the
    /// park flag.
    #[inline]
    pub(crate) fn is_own(&self, w: &SlotWaker) -> bool {
        // One comparison: no `Rc` is at the null address `None` gives.
        let own = self.own.as_ref().map_or(std::ptr::null(), Rc::as_ptr);
        matches!(w, SlotWaker::Shared(w) if std::ptr::eq(Rc::as_ptr(w), own))
    }

    /// The slot waker for an op of `w`'s task, if it needs no clone (or a
    /// clone that runs no user code: a spawned task's). Runs no user code.
    #[inline]
    pub(crate) fn find(&mut self, w: &Waker) -> Found {
        if let Some(own) = &self.own {
            if own.will_wake(w) {
                return Found::Shared(SlotWaker::Shared(own.clone()));
            }
        }
        if let Some(shared) = &self.shared {
            if shared.will_wake(w) {
                return Found::Shared(SlotWaker::Shared(shared.clone()));
            }
        }
        if super::task::is_task_waker(w) {
            // A spawned task's: its clone (an `Arc`'s increment) and drop
            // run no user code, so the op needs no clone outside the
            // state's borrow (and a turn wakes it in place).
            return Found::Shared(SlotWaker::Own(w.clone()));
        }
        let now = waker_id(w);
        let share = self.last == now;
        self.last = now;
        Found::Clone { share }
    }

    /// The slot waker for `clone` (a clone of `original`, the waker `find`
    /// was asked about), shared from now on if `share`. The shared waker it
    /// replaces is returned, to be dropped with the state unborrowed
    /// (dropping it may drop a waker: user code).
    ///
    /// A clone that does not `will_wake` its original (`will_wake` compares
    /// vtable addresses, and a vtable may exist at two: Miri gives each use
    /// its own) is not shared: `find` would never match it, and every op
    /// would make a new one.
    pub(crate) fn keep(
        &mut self,
        clone: Waker,
        original: &Waker,
        share: bool,
    ) -> (SlotWaker, Option<Rc<Waker>>) {
        if !share || !clone.will_wake(original) {
            return (SlotWaker::Own(clone), None);
        }
        let shared = Rc::new(clone);
        let old = self.shared.replace(shared.clone());
        (SlotWaker::Shared(shared), old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::task::{RawWaker, RawWakerVTable};

    thread_local! {
        static WAKES: Cell<usize> = const { Cell::new(0) };
    }

    /// Wakers of static "tasks" (their address is the data pointer) whose
    /// clone keeps the one vtable (a static: one address, under Miri too),
    /// or, for `SPLIT`, returns an identical vtable at another address.
    static VTABLE: RawWakerVTable = RawWakerVTable::new(
        |p| RawWaker::new(p, &VTABLE),
        |_| WAKES.with(|w| w.set(w.get() + 1)),
        |_| WAKES.with(|w| w.set(w.get() + 1)),
        |_| {},
    );
    static SPLIT: RawWakerVTable =
        RawWakerVTable::new(|p| RawWaker::new(p, &SPLIT_CLONE), |_| {}, |_| {}, |_| {});
    static SPLIT_CLONE: RawWakerVTable =
        RawWakerVTable::new(|p| RawWaker::new(p, &SPLIT_CLONE), |_| {}, |_| {}, |_| {});

    fn waker(task: &'static u8, vtable: &'static RawWakerVTable) -> Waker {
        // SAFETY: the vtable's functions ignore the data pointer, which is
        // a static's.
        unsafe { Waker::from_raw(RawWaker::new(std::ptr::from_ref(task).cast(), vtable)) }
    }

    static A: u8 = 0;
    static B: u8 = 0;

    fn shared(found: Found) -> Rc<Waker> {
        match found {
            Found::Shared(SlotWaker::Shared(rc)) => rc,
            _ => panic!("expected the shared waker"),
        }
    }

    #[test]
    fn a_task_seen_twice_in_a_row_gets_one_shared_clone() {
        let w = waker(&A, &VTABLE);
        let mut wakers = Wakers::default();
        // First op: cloned, not shared.
        let Found::Clone { share: false } = wakers.find(&w) else {
            panic!("a first op clones")
        };
        // Second op of the same task: cloned once more, now shared.
        let Found::Clone { share: true } = wakers.find(&w) else {
            panic!("a second op in a row shares")
        };
        let (slot, old) = wakers.keep(w.clone(), &w, true);
        assert!(old.is_none());
        assert!(matches!(slot, SlotWaker::Shared(_)) && slot.will_wake(&w));
        // Every later op shares that clone, with no call to the waker.
        let more: Vec<_> = (0..10).map(|_| shared(wakers.find(&w))).collect();
        assert_eq!(Rc::strong_count(&more[0]), 12);
        let before = WAKES.with(Cell::get);
        SlotWaker::Shared(more[3].clone()).wake();
        assert_eq!(WAKES.with(Cell::get), before + 1);
    }

    #[test]
    fn interleaved_tasks_each_clone_and_a_new_sharer_replaces_the_old() {
        let (wa, wb) = (waker(&A, &VTABLE), waker(&B, &VTABLE));
        let mut wakers = Wakers::default();
        for _ in 0..5 {
            assert!(matches!(wakers.find(&wa), Found::Clone { share: false }));
            assert!(matches!(wakers.find(&wb), Found::Clone { share: false }));
        }
        // `a` twice in a row: shared.
        assert!(matches!(wakers.find(&wa), Found::Clone { share: false }));
        assert!(matches!(wakers.find(&wa), Found::Clone { share: true }));
        let (_slot_a, none) = wakers.keep(wa.clone(), &wa, true);
        assert!(none.is_none());
        // Then `b` twice: it replaces `a`'s, which is handed back to drop.
        assert!(matches!(wakers.find(&wb), Found::Clone { share: false }));
        assert!(matches!(wakers.find(&wb), Found::Clone { share: true }));
        let (slot_b, old) = wakers.keep(wb.clone(), &wb, true);
        let old = old.expect("a's shared waker comes back");
        assert!(old.will_wake(&wa));
        assert!(slot_b.will_wake(&wb) && !slot_b.will_wake(&wa));
        assert!(matches!(wakers.find(&wb), Found::Shared(s) if s.will_wake(&wb)));
    }

    #[test]
    fn a_clone_that_does_not_match_its_original_is_not_shared() {
        // Its vtable at another address: `find` could never match it.
        let w = waker(&A, &SPLIT);
        let mut wakers = Wakers::default();
        for op in 0..5 {
            let Found::Clone { share } = wakers.find(&w) else {
                panic!("op {op}: nothing to share")
            };
            assert_eq!(share, op > 0);
            let (slot, old) = wakers.keep(w.clone(), &w, share);
            assert!(matches!(slot, SlotWaker::Own(_)), "op {op}: no Rc made");
            assert!(old.is_none());
        }
    }
}
