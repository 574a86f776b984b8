//! The LocalProactor's slot table: slots for requests, the queue of ops
//! waiting for room, and slot states replaced without drop glue.

use std::collections::VecDeque;
use std::io;

use super::wakers::SlotWaker;
use super::{LSlot, LSlotState, Slab, StreamSlot};
use crate::state::*;

/// The slab has no slot left for a new request.
pub(super) fn slab_full() -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        "the LocalProactor's slab has no free slot (2^31 requests outstanding)",
    )
}

impl Slab {
    /// Waits for room for `need` slots with `waker`, in the place of
    /// `ticket` (an op that waited before and was polled again keeps its
    /// place: one entry per op), or at the end with a new ticket; returns
    /// the ticket and the waker it replaced (to drop after the borrow).
    pub(crate) fn wait_for_room(
        &mut self,
        ticket: Option<u64>,
        waker: SlotWaker,
        need: u32,
    ) -> (u64, Option<SlotWaker>) {
        let ticket = ticket.unwrap_or_else(|| {
            self.next_ticket += 1;
            self.next_ticket
        });
        // Tickets are in order: older ones first.
        let at = self.credit_waiters.partition_point(|&(t, ..)| t < ticket);
        match self.credit_waiters.get_mut(at) {
            Some((t, w, _)) if *t == ticket => (ticket, Some(std::mem::replace(w, waker))),
            _ => {
                self.credit_waiters.insert(at, (ticket, waker, need));
                (ticket, None)
            }
        }
    }

    /// Takes `ticket` out of the queue: its waker, or `None` if it was
    /// woken (taken out by [`free_slot`](Slab::free_slot)).
    pub(crate) fn leave_queue(&mut self, ticket: u64) -> Option<SlotWaker> {
        let at = self.credit_waiters.partition_point(|&(t, ..)| t < ticket);
        match self.credit_waiters.get(at) {
            Some(&(t, ..)) if t == ticket => self.credit_waiters.remove(at).map(|(_, w, _)| w),
            _ => None,
        }
    }

    /// A slot for a new request (a multishot one's if `stream`), waiting
    /// with `waker`; the waker back if the slab is at its largest.
    #[inline]
    pub(crate) fn alloc(&mut self, waker: SlotWaker, stream: bool) -> Result<u64, SlotWaker> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => match self.grow() {
                Some(i) => i,
                None => return Err(waker),
            },
        };
        let tag = self.tags.next();
        let slot = &mut self.slots[index as usize];
        slot.tag = tag;
        slot.attempts = 0;
        let state = if stream {
            LSlotState::Stream(Box::new(StreamSlot {
                cqes: VecDeque::new(),
                waker,
                ended: false,
            }))
        } else {
            LSlotState::Waiting(waker)
        };
        set_state(&mut slot.state, state);
        self.in_flight += 1;
        Ok(user_data(index, tag))
    }

    /// A new free slot's index, `None` if the slab is at its largest.
    #[cold]
    fn grow(&mut self) -> Option<u32> {
        let index = u32::try_from(self.slots.len())
            .ok()
            .filter(|&i| i < CANCEL_BIT)?;
        self.slots.push(LSlot {
            tag: 0,
            attempts: 0,
            state: LSlotState::Free,
        });
        Some(index)
    }

    /// The slot of a request that is done with goes back; a credit waiter
    /// (to wake after the borrow ends) may take its place.
    #[inline]
    pub(crate) fn free_slot(&mut self, index: u32) -> Option<SlotWaker> {
        let slot = &mut self.slots[index as usize];
        set_state(&mut slot.state, LSlotState::Free);
        // A new tag at once: nothing names the freed slot any more.
        slot.tag = slot.tag.wrapping_add(1);
        self.free.push(index);
        self.in_flight -= 1;
        if self.credit_waiters.is_empty() {
            return None;
        }
        self.credit_waiters.pop_front().map(|(_, w, _)| w)
    }

    /// The ticket of the first op waiting for room, if the room it needs
    /// (under `budget`) is free.
    pub(crate) fn credit_unclaimed(&self, budget: u32) -> Option<u64> {
        let &(ticket, _, need) = self.credit_waiters.front()?;
        (self.in_flight.saturating_add(need) <= budget).then_some(ticket)
    }
}

/// `*state = new`, without a call to the enum's drop glue when the old
/// state owns nothing (`Free`, `Done`: every slot on an op's path).
#[inline(always)]
fn set_state(state: &mut LSlotState, new: LSlotState) {
    let old = std::mem::replace(state, new);
    if matches!(old, LSlotState::Free | LSlotState::Done(..)) {
        // Nothing to drop (forgetting these leaks nothing).
        std::mem::forget(old);
    } else {
        drop(old);
    }
}
