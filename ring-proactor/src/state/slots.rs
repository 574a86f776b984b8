//! The slot table's operations: a slot for a new request, its lookup and
//! release, the slots ops gave back, cancellations asked, and what a
//! driving thread's exit means for the requests it submitted.

use super::*;

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
    pub(super) fn new_slot(&mut self) -> Option<u32> {
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
