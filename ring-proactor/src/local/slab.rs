//! The LocalProactor's slot table: slots for requests, the queue of ops
//! waiting for room, and slot states replaced without drop glue.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

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

    /// The slot of a request that is done with goes back, and its room:
    /// granted to the first credit waiter if that covers it (its waker
    /// returned, to wake after the borrow ends). For a stream or an
    /// orphan; an op whose room came back with its CQE
    /// ([`release_room`](Slab::release_room)) gives its slot back with
    /// [`free_done`](Slab::free_done).
    #[inline]
    pub(crate) fn free_slot(&mut self, index: u32) -> Option<SlotWaker> {
        self.free_done(index);
        self.release_room()
    }

    /// The slot of an op done with goes back (its room came back with its
    /// CQE).
    #[inline]
    pub(crate) fn free_done(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        set_state(&mut slot.state, LSlotState::Free);
        // A new tag at once: nothing names the freed slot any more.
        slot.tag = slot.tag.wrapping_add(1);
        self.free.push(index);
    }

    /// A request's room comes back (its last CQE came): granted to the
    /// first credit waiter if that covers it (its waker returned, to wake
    /// after the borrow ends).
    #[inline]
    pub(crate) fn release_room(&mut self) -> Option<SlotWaker> {
        self.in_flight -= 1;
        if self.credit_waiters.is_empty() {
            return None;
        }
        self.grant_first()
    }

    /// Room under `budget` for `n` more slots besides those held and
    /// those granted.
    #[inline]
    pub(crate) fn has_room(&self, n: u32, budget: u32) -> bool {
        self.in_flight
            .saturating_add(self.reserved)
            .saturating_add(n)
            <= budget
    }

    /// The waiter with `ticket` polls: its grant, if it has one, is its
    /// room again (it takes it as any op takes room, or waits again).
    #[inline]
    pub(crate) fn take_grant(&mut self, ticket: u64) {
        if let Some(at) = self.grants.iter().position(|&(t, ..)| t == ticket) {
            let (_, need, _) = self.grants.swap_remove(at);
            self.reserved -= need;
        }
    }

    /// Grants the room there is to the first waiter if it covers it, for
    /// [`CREDIT_LAPSE`](crate::CREDIT_LAPSE), out of the queue: its waker,
    /// to wake. Room that comes back is the woken op's until it polls, so
    /// an op started meanwhile (by its own waker, say) does not take it;
    /// a grant not taken in time lapses (see `turn::credit_lapse`), and a
    /// woken op that finds no room waits again in its place.
    #[cold]
    pub(crate) fn grant_first(&mut self) -> Option<SlotWaker> {
        let &(_, _, need) = self.credit_waiters.front()?;
        if !self.has_room(need, self.budget) {
            return None;
        }
        let (ticket, waker, need) = self.credit_waiters.pop_front()?;
        self.grants
            .push((ticket, need, Instant::now() + crate::CREDIT_LAPSE));
        self.reserved += need;
        Some(waker)
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
