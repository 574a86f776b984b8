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

    /// An op waiting for room with `ticket` goes without it (dropped or
    /// cancelled): it leaves the queue (its waker returned, to drop after
    /// the borrow), or, if it was woken out of it and granted room it will
    /// not take, gives the room back. Either way the next waiters that fit
    /// are granted room (their wakers pushed to `next`, to wake after the
    /// borrow): the room it gave back, or the room it held them from, as
    /// the first in the queue (a chain that needed more than there was,
    /// with ops behind it that fit: nothing else would wake them until
    /// some request completed, if any ever did).
    pub(crate) fn leave(&mut self, ticket: u64, next: &mut Vec<SlotWaker>) -> Option<SlotWaker> {
        let own = self.leave_queue(ticket);
        if own.is_none() {
            self.take_grant(ticket);
        }
        while let Some(w) = self.grant_first() {
            next.push(w);
        }
        own
    }

    /// Grants given before `now` lapse (every grant, with `None`), and the
    /// room they held, with any left free, goes to the next waiters, whose
    /// wakers go to `wake` (to wake after the borrow); returns how many
    /// lapsed.
    pub(crate) fn lapse(&mut self, now: Option<Instant>, mut wake: impl FnMut(SlotWaker)) -> u64 {
        let mut lapsed = 0;
        let mut freed = 0;
        self.grants.retain(|&(_, need, until)| {
            let keep = now.is_some_and(|now| until > now);
            if !keep {
                lapsed += 1;
                freed += need;
            }
            keep
        });
        self.reserved -= freed;
        while let Some(w) = self.grant_first() {
            wake(w);
        }
        lapsed
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::task::Waker;

    use super::super::wakers::{SlotWaker, Wakers};
    use super::super::{LSlotState, Slab};
    use crate::tags::Tags;

    fn slab(budget: u32) -> Slab {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            tags: Tags::default(),
            in_flight: 0,
            credit_waiters: VecDeque::new(),
            wakers: Wakers::new(Rc::new(Waker::noop().clone())),
            next_ticket: 0,
            budget,
            grants: Vec::new(),
            reserved: 0,
        }
    }

    /// An op of the model: the slots it needs, and where it is.
    #[derive(Debug)]
    enum Model {
        /// Not yet polled.
        New(u32),
        /// Waiting for room (queued, granted, or woken and lapsed) with
        /// this ticket.
        Credit(u64, u32),
        /// Holds these slots: ops whose CQEs have not come.
        Submitted(Vec<u32>),
    }

    /// What `LState::admit` and `admit_chain` do with the slab, for an op
    /// needing `need` slots, polled with `ticket` if it waited before.
    fn admit(slab: &mut Slab, ticket: Option<u64>, need: u32) -> Model {
        if let Some(ticket) = ticket {
            slab.take_grant(ticket);
        }
        if !slab.has_room(need, slab.budget) {
            let (ticket, old) = slab.wait_for_room(ticket, SlotWaker::None, need);
            drop(old);
            return Model::Credit(ticket, need);
        }
        if let Some(ticket) = ticket {
            drop(slab.leave_queue(ticket));
        }
        let slots = (0..need)
            .map(|_| {
                let ud = slab.alloc(SlotWaker::None, false).ok().expect("room");
                ud as u32
            })
            .collect();
        Model::Submitted(slots)
    }

    #[test]
    fn room_and_grants_keep_their_invariants_under_random_interleavings() {
        for seed in 1..=300u64 {
            let mut next = crate::tests::seeded(seed);
            let budget = 1 + next(4) as u32;
            let mut slab = slab(budget);
            let mut ops: Vec<Model> = Vec::new();
            let check = |slab: &Slab, what: &str| {
                let granted: u32 = slab.grants.iter().map(|&(_, need, _)| need).sum();
                assert_eq!(slab.reserved, granted, "seed {seed}, {what}");
                assert!(
                    slab.in_flight + slab.reserved <= budget,
                    "seed {seed}, {what}"
                );
                assert!(
                    slab.grants
                        .iter()
                        .all(|&(t, ..)| slab.credit_waiters.iter().all(|&(w, ..)| w != t)),
                    "seed {seed}, {what}: a waiter both queued and granted"
                );
                assert!(
                    slab.credit_waiters
                        .iter()
                        .zip(slab.credit_waiters.iter().skip(1))
                        .all(|(a, b)| a.0 < b.0),
                    "seed {seed}, {what}: the queue is out of order"
                );
                if let Some(&(_, _, need)) = slab.credit_waiters.front() {
                    assert!(
                        !slab.has_room(need, budget),
                        "seed {seed}, {what}: room left free while the first waiter fits"
                    );
                }
                let held = slab
                    .slots
                    .iter()
                    .filter(|s| !matches!(s.state, LSlotState::Free))
                    .count();
                assert_eq!(held as u32, slab.in_flight, "seed {seed}, {what}");
            };
            // One of op `i`'s slots completes (its CQE: its room comes
            // back, then its slot).
            let complete = |slab: &mut Slab, ops: &mut Vec<Model>, i: usize| {
                let Model::Submitted(slots) = &mut ops[i] else {
                    unreachable!("submitted")
                };
                let index = slots.pop().expect("a slot");
                if slots.is_empty() {
                    ops.swap_remove(i);
                }
                drop(slab.release_room());
                slab.free_done(index);
            };
            for step in 0..80 {
                match next(7) {
                    0 | 1 if ops.len() < 12 => {
                        let need = 1 + next(budget.min(3) as u64) as u32;
                        ops.push(Model::New(need));
                    }
                    2 => {
                        // An op not yet submitted is polled.
                        let pending: Vec<_> = (0..ops.len())
                            .filter(|&i| !matches!(ops[i], Model::Submitted(_)))
                            .collect();
                        if !pending.is_empty() {
                            let i = pending[next(pending.len() as u64) as usize];
                            ops[i] = match ops[i] {
                                Model::New(need) => admit(&mut slab, None, need),
                                Model::Credit(t, need) => admit(&mut slab, Some(t), need),
                                Model::Submitted(_) => unreachable!(),
                            };
                        }
                    }
                    3 => {
                        // An op waiting for room is dropped.
                        let at = next(ops.len().max(1) as u64) as usize;
                        if let Some(&Model::Credit(ticket, _)) = ops.get(at) {
                            ops.swap_remove(at);
                            let mut next = Vec::new();
                            drop(slab.leave(ticket, &mut next));
                        }
                    }
                    4 | 5 => {
                        let submitted: Vec<_> = (0..ops.len())
                            .filter(|&i| matches!(ops[i], Model::Submitted(_)))
                            .collect();
                        if !submitted.is_empty() {
                            let i = submitted[next(submitted.len() as u64) as usize];
                            complete(&mut slab, &mut ops, i);
                        }
                    }
                    _ => {
                        // A turn about to block lapses every grant; one
                        // that does not, none this young.
                        let now = (next(2) == 0).then(std::time::Instant::now);
                        slab.lapse(now, drop);
                    }
                }
                check(&slab, &format!("step {step}"));
            }
            // The end: grants lapse, every op not submitted is polled,
            // submitted ones complete, until none is left.
            for _ in 0..200 {
                if ops.is_empty() {
                    break;
                }
                slab.lapse(None, drop);
                for op in &mut ops {
                    *op = match *op {
                        Model::New(need) => admit(&mut slab, None, need),
                        Model::Credit(t, need) => admit(&mut slab, Some(t), need),
                        Model::Submitted(ref mut slots) => Model::Submitted(std::mem::take(slots)),
                    };
                }
                while let Some(i) = (0..ops.len()).find(|&i| matches!(ops[i], Model::Submitted(_)))
                {
                    complete(&mut slab, &mut ops, i);
                }
                check(&slab, "draining");
            }
            assert!(
                ops.is_empty(),
                "seed {seed}: {} ops never got room",
                ops.len()
            );
            assert_eq!((slab.in_flight, slab.reserved), (0, 0), "seed {seed}");
            assert!(slab.credit_waiters.is_empty() && slab.grants.is_empty());
        }
    }
}
