//! A LocalOp's way into the SQ: a slot and room under the budget (or a
//! place in the queue of ops waiting for room), alone or as a linked
//! chain, pushed straight into the SQ.

use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ring_io_ops::Entry;

use super::op::LStage;
use super::slab::slab_full;
use super::wakers::{Found, SlotWaker};
use super::{Inner, LState};
use crate::state::{CANCEL_BIT, run_user};

impl Inner {
    /// Takes a slot for `entry` (a multishot request's if `stream`),
    /// waiting with the task's waker, and pushes it into the SQ (the
    /// kernel sees it at the next turn): the op's stage then, `Credit` if
    /// the budget is spent (the waker waits for room, in the place of
    /// `ticket` if the op waited before). An error if the kernel lacks the
    /// op or the slab is full.
    #[inline]
    pub(crate) fn submit(
        &self,
        entry: &Entry,
        cx: &mut Context<'_>,
        stream: bool,
        ticket: Option<u64>,
        unbudgeted: bool,
    ) -> io::Result<LStage> {
        // A timer of `LocalOp::timeout` goes past the budget.
        let budget = if unbudgeted { u32::MAX } else { self.budget };
        self.probe.check(entry.opcode())?;
        let mut st = self.st.borrow_mut();
        // A stream keeps its own waker.
        let found = if stream {
            Found::Clone { share: false }
        } else {
            st.slab.wakers.find(cx.waker())
        };
        match found {
            Found::Shared(waker) if ticket.is_none() && st.slab.has_room(1, budget) => {
                // The common case: an op that never waited for room, of a
                // task whose waker its ops share (no clone, and no drop but
                // a counter's decrement: no user code).
                match st.slab.alloc(waker, stream) {
                    Ok(ud) => {
                        st.push_ud(entry, ud);
                        Ok(LStage::Submitted(ud))
                    }
                    Err(waker) => {
                        drop(st);
                        drop(waker);
                        Err(slab_full())
                    }
                }
            }
            found => {
                drop(st);
                self.submit_slow(entry, cx, stream, ticket, found, budget)
            }
        }
    }

    /// [`submit`](Inner::submit) for an op whose waker must be cloned, or
    /// that waits or waited for room, with what `Wakers::find` `found`.
    fn submit_slow(
        &self,
        entry: &Entry,
        cx: &mut Context<'_>,
        stream: bool,
        ticket: Option<u64>,
        found: Found,
        budget: u32,
    ) -> io::Result<LStage> {
        // The task's shared waker, or a clone made with the state
        // unborrowed (cloning a waker is user code; so is dropping the
        // shared waker a new one replaces).
        let mut replaced = None;
        let waker = match found {
            Found::Shared(waker) => waker,
            Found::Clone { share } => {
                let clone = cx.waker().clone();
                let (waker, old) = self
                    .st
                    .borrow_mut()
                    .slab
                    .wakers
                    .keep(clone, cx.waker(), share);
                replaced = old;
                waker
            }
        };
        let (stage, left) = self
            .st
            .borrow_mut()
            .admit(entry, waker, stream, budget, ticket);
        if let Some(replaced) = replaced {
            // Another task's waker (the one its ops shared): a panic of
            // its drop must not come out of this task's poll.
            run_user(|| drop(replaced));
        }
        drop(left);
        stage
    }

    /// The linked chain `parts`, submitted whole: a slot for each entry,
    /// credit for all of them, and all pushed into the SQ at once, each
    /// but the last with `IOSQE_IO_LINK` (the kernel must see the whole
    /// chain in one submission: a chain cut by an enter would run as two).
    /// Each part's stage becomes `Submitted`; with the budget short of room
    /// for them all, the first part's becomes `Credit` and `waker` waits
    /// for room (`Pending`). An error if the kernel lacks an op, the chain
    /// can never fit the budget or the SQ, or the slab is full.
    pub(crate) fn submit_chain(
        &self,
        parts: &mut [(Entry, &mut LStage)],
        waker: &Waker,
    ) -> Poll<io::Result<()>> {
        for (entry, _) in parts.iter() {
            if let Err(unsupported) = self.probe.check(entry.opcode()) {
                return Poll::Ready(Err(unsupported.into()));
            }
        }
        let sq_entries = self.st.borrow().ring.params().sq_entries();
        if parts.len() > self.budget.min(sq_entries) as usize {
            return Poll::Ready(Err(crate::link::too_long()));
        }
        // The chain's slots share one clone of the task's waker, made with
        // the state unborrowed (cloning a waker is user code; so is dropping
        // the last clone, after the borrow).
        let shared = Rc::new(waker.clone());
        let (admitted, old) = self
            .st
            .borrow_mut()
            .admit_chain(parts, &shared, self.budget);
        drop(old);
        drop(shared);
        admitted
    }
}

impl LState {
    /// Takes a slot for `entry` and pushes it, or, with the budget spent,
    /// queues `waker` to wait for room (in the place of `ticket`, if the
    /// op waited before). Also returns the wakers to drop after the borrow
    /// (the op's entry in the queue that it replaced or left, and `waker`
    /// if the slab is full).
    fn admit(
        &mut self,
        entry: &Entry,
        waker: SlotWaker,
        stream: bool,
        budget: u32,
        ticket: Option<u64>,
    ) -> (io::Result<LStage>, [Option<SlotWaker>; 2]) {
        if let Some(ticket) = ticket {
            // Granted room (if any) is this op's now.
            self.slab.take_grant(ticket);
        }
        if !self.slab.has_room(1, budget) {
            let (ticket, old) = self.slab.wait_for_room(ticket, waker, 1);
            return (Ok(LStage::Credit(ticket)), [old, None]);
        }
        // Room: an op that waited leaves the queue (if it was not woken
        // out of it).
        let own = ticket.and_then(|t| self.slab.leave_queue(t));
        let ud = match self.slab.alloc(waker, stream) {
            Ok(ud) => ud,
            Err(waker) => return (Err(slab_full()), [own, Some(waker)]),
        };
        self.push(entry.user_data(ud));
        (Ok(LStage::Submitted(ud)), [own, None])
    }
}

impl Inner {
    /// An op or stream waiting for room with `ticket` goes without it
    /// (dropped or cancelled): it leaves the queue, or, if it was woken
    /// out of it and granted room it will not take, the room goes on to
    /// the next waiters.
    pub(crate) fn leave_credit_queue(&self, ticket: u64) {
        let mut next = Vec::new();
        let own = self.st.borrow_mut().slab.leave(ticket, &mut next);
        // User code, after the borrow.
        if let Some(own) = own {
            run_user(|| drop(own));
        }
        for next in next {
            run_user(|| next.wake());
        }
    }
}

impl LState {
    /// [`admit`](LState::admit) for a linked chain: slots (each waiting with
    /// `waker`) and credit for every part, or none; see
    /// [`Inner::submit_chain`]. Also returns a waker to drop after the
    /// borrow (the chain's entry in the queue that it replaced or left).
    fn admit_chain(
        &mut self,
        parts: &mut [(Entry, &mut LStage)],
        waker: &Rc<Waker>,
        budget: u32,
    ) -> (Poll<io::Result<()>>, Option<SlotWaker>) {
        // The first op holds the chain's ticket while it waits.
        let ticket = match *parts[0].1 {
            LStage::Credit(ticket) => Some(ticket),
            _ => None,
        };
        let n = parts.len() as u32;
        if let Some(ticket) = ticket {
            self.slab.take_grant(ticket);
        }
        if !self.slab.has_room(n, budget) {
            // Polled again, or woken for room but not enough for all its
            // ops, it keeps its place: the waiters behind it are woken
            // after it, so the room it needs builds up.
            let waiting = SlotWaker::Shared(waker.clone());
            let (ticket, old) = self.slab.wait_for_room(ticket, waiting, n);
            *parts[0].1 = LStage::Credit(ticket);
            return (Poll::Pending, old);
        }
        let own = ticket.and_then(|t| self.slab.leave_queue(t));
        let room =
            self.slab.free.len() + (CANCEL_BIT as usize).saturating_sub(self.slab.slots.len());
        if room < parts.len() {
            return (Poll::Ready(Err(slab_full())), own);
        }
        let last = parts.len() - 1;
        let mut entries = Vec::with_capacity(parts.len());
        for (i, (entry, stage)) in parts.iter_mut().enumerate() {
            let Ok(ud) = self.slab.alloc(SlotWaker::Shared(waker.clone()), false) else {
                unreachable!("room for every part was checked");
            };
            let entry = if i < last { entry.link() } else { *entry };
            entries.push(entry.user_data(ud));
            **stage = LStage::Submitted(ud);
        }
        self.push_chain(&entries);
        (Poll::Ready(Ok(())), own)
    }
}

impl LState {
    /// Pushes an entry into the SQ, submitting first if it is full.
    #[inline]
    pub(crate) fn push(&mut self, mut entry: Entry) {
        loop {
            // SAFETY: every pointer in `entry` targets memory its op owns
            // (or the wake-up buffer), kept until the request's CQE: in the
            // op, or orphaned in its slot, or leaked if the kernel never
            // lets go.
            match unsafe { self.ring.sq().push(entry) } {
                Ok(()) => return self.pushed(1),
                Err(full) => {
                    entry = full.0;
                    self.make_room();
                }
            }
        }
    }

    /// [`push`](Self::push) of `entry` with `user_data` `ud`: the entry
    /// copied once, from where it lies into the SQ slot (a copy made
    /// first, to hand back if the SQ is full, is made only then).
    #[inline]
    pub(crate) fn push_ud(&mut self, entry: &Entry, ud: u64) {
        // SAFETY: as in `push`: every pointer in `entry` targets memory
        // its op owns, kept until the request's CQE (in the op, or
        // orphaned in its slot, or leaked if the kernel never lets go).
        if unsafe { self.ring.sq().push(entry.user_data(ud)) }.is_ok() {
            return self.pushed(1);
        }
        self.push(entry.user_data(ud));
    }

    /// Pushes a linked chain's entries into the SQ all at once, submitting
    /// first while it lacks room for them all (never between two of them:
    /// the kernel would run the chain cut in two). At most the SQ's size.
    fn push_chain(&mut self, entries: &[Entry]) {
        loop {
            // SAFETY: as in `push`, for every entry.
            match unsafe { self.ring.sq().push_batch(entries) } {
                Ok(()) => return self.pushed(entries.len() as u32),
                Err(_) => self.make_room(),
            }
        }
    }

    /// `n` requests went into the SQ.
    #[inline]
    fn pushed(&mut self, n: u32) {
        self.in_ring += n;
        let all = self.in_ring + self.cancels_in_ring;
        self.stats.max_in_ring = self.stats.max_in_ring.max(all);
    }

    /// Submits what the SQ holds, to make room in it.
    fn make_room(&mut self) {
        if let Err(e) = self.ring.submitter().submit() {
            // Only a ring that is broken fails here; retrying is all that
            // can be done (its requests own memory that must not be
            // abandoned).
            eprintln!("ring-proactor: io_uring_enter failed: {e}; retrying");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.stats.enters += 1;
    }
}
