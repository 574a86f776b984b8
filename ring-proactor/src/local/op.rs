//! [`LocalOp`]: the future of one request of a [`LocalProactor`].

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ring_io_ops::Entry;

use super::slab::slab_full;
use super::wakers::{Found, SlotWaker};
use super::{Inner, LSlotState, LState, LocalProactor};
use crate::op::{Finisher, OpRelease};
use crate::state::{CANCEL_BIT, Release, result, run_user};

pub enum LStage {
    /// Not yet polled.
    New,
    /// Not yet polled, and submitted then whatever the budget says: a
    /// timer of [`LocalOp::timeout`] (see
    /// [`Stage::Unbudgeted`](crate::op::Stage::Unbudgeted)).
    Unbudgeted,
    /// Waiting for the in-flight count to drop below the budget, with
    /// this ticket (its place in `Slab::credit_waiters`).
    Credit(u64),
    /// In a slot with this `user_data`.
    Submitted(u64),
    /// Fails with this error when polled.
    Failed(io::Error),
    /// The output was returned.
    Finished,
}

/// An operation of a [`LocalProactor`]: a `Future` of its output (the
/// result and the buffers moved in), or [`wait`](LocalOp::wait)ed on. Its
/// entry goes into the SQ when first polled, and to the kernel at the
/// thread's next turn. Dropping it is safe at any point, as a
/// [`Proactor`](crate::Proactor) op's (see [`Op`](crate::Op#dropping-and-cancelling)).
#[must_use = "an op does nothing until it is polled or waited on"]
pub struct LocalOp<O: 'static> {
    pub(crate) inner: Rc<Inner>,
    pub(crate) entry: Entry,
    pub(crate) stage: LStage,
    pub(crate) finish: Option<Finisher<O>>,
}

impl<O: 'static> LocalOp<O> {
    pub(crate) fn new(inner: Rc<Inner>, entry: Entry, finish: Finisher<O>) -> Self {
        LocalOp {
            inner,
            entry,
            stage: LStage::New,
            finish: Some(finish),
        }
    }

    /// Runs the thread's [`LocalProactor`] until the op completes.
    pub fn wait(self) -> O {
        LocalProactor {
            inner: self.inner.clone(),
        }
        .block_on(self)
    }

    /// Asks the kernel to cancel the op, and returns it: it completes as
    /// usual, with `ECANCELED` if the kernel cancelled it, or with its own
    /// output if it completed first (see [`Op::cancel`](crate::Op::cancel)).
    /// An op never polled fails with `ECANCELED` without being submitted.
    pub fn cancel(mut self) -> Self {
        self.request_cancel();
        self
    }

    /// The op, cancelled if it has not completed after `duration`: its
    /// output if it completed, or, if the kernel cancelled it,
    /// [`Elapsed`](crate::Elapsed) holding the output (see
    /// [`Op::timeout`](crate::Op::timeout)). The time is kept by a kernel
    /// timeout started when the future is first polled.
    ///
    /// ```
    /// use ring_io_proactor::{LocalProactor, MsgFlags, ProactorConfig};
    /// use std::{os::unix::net::UnixStream, sync::Arc, time::Duration};
    ///
    /// let p = LocalProactor::new(ProactorConfig::new(8))?;
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = Arc::new(a);
    /// let recv = p.recv(&a, Vec::with_capacity(16), MsgFlags::empty());
    /// let elapsed = p.block_on(recv.timeout(Duration::from_millis(5))).unwrap_err();
    /// let (res, buf) = elapsed.into_inner();
    /// assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    /// assert!(buf.is_empty()); // and the buffer is back
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timeout(self, duration: std::time::Duration) -> crate::LocalTimeout<O> {
        crate::cancel::LocalTimeout::new(self, duration)
    }

    /// [`cancel`](LocalOp::cancel) in place.
    pub(crate) fn request_cancel(&mut self) {
        match std::mem::replace(&mut self.stage, LStage::Finished) {
            LStage::New | LStage::Unbudgeted => {
                self.stage = LStage::Failed(io::Error::from_raw_os_error(libc::ECANCELED));
            }
            LStage::Credit(ticket) => {
                self.stage = LStage::Failed(io::Error::from_raw_os_error(libc::ECANCELED));
                self.inner.leave_credit_queue(ticket);
            }
            LStage::Submitted(ud) => {
                self.stage = LStage::Submitted(ud);
                let mut st = self.inner.st.borrow_mut();
                let slot = &mut st.slab.slots[ud as u32 as usize];
                if matches!(slot.state, LSlotState::Waiting(_)) && slot.attempts == 0 {
                    slot.attempts = 1;
                    st.push_cancel(ud);
                }
            }
            stage => self.stage = stage,
        }
    }

    #[inline(always)]
    fn complete(&mut self, res: io::Result<u32>, flags: u32) -> O {
        self.stage = LStage::Finished;
        Finisher::call_in(&mut self.finish, res, flags)
    }

    /// Takes a slot and pushes the entry (the kernel sees it at the next
    /// turn); waits for room under the budget (with `ticket`, if it
    /// waited before).
    fn submit(&mut self, cx: &mut Context<'_>, ticket: Option<u64>) -> Poll<(O, i32)> {
        let unbudgeted = matches!(self.stage, LStage::Unbudgeted);
        match self
            .inner
            .submit(&self.entry, cx, false, ticket, unbudgeted)
        {
            Ok(stage) => {
                self.stage = stage;
                Poll::Pending
            }
            Err(e) => {
                let res = -e.raw_os_error().unwrap_or(0);
                Poll::Ready((self.complete(Err(e), 0), res))
            }
        }
    }
}

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
        let own = {
            let mut st = self.st.borrow_mut();
            let own = st.slab.leave_queue(ticket);
            if own.is_none() {
                st.slab.take_grant(ticket);
                while let Some(w) = st.slab.grant_first() {
                    next.push(w);
                }
            }
            own
        };
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

impl<O: 'static> Unpin for LocalOp<O> {}

impl<O: 'static> Future for LocalOp<O> {
    type Output = O;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        self.poll_raw(cx).map(|(out, _)| out)
    }
}

impl<O: 'static> LocalOp<O> {
    /// Polls the op: its output and the raw result it was made from (the
    /// CQE's `res`, or the negated errno of a failure before the kernel).
    #[inline]
    pub(crate) fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        match self.stage {
            LStage::Submitted(ud) => self.poll_submitted(ud, cx),
            LStage::New | LStage::Unbudgeted => self.submit(cx, None),
            _ => self.poll_other(cx),
        }
    }

    /// [`poll_raw`](Self::poll_raw) for an op in a slot (`ud`).
    #[inline(never)]
    fn poll_submitted(&mut self, ud: u64, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        let index = ud as u32;
        let mut st = self.inner.st.borrow_mut();
        match st.slab.slots[index as usize].state {
            LSlotState::Done(res, flags) => {
                let next = st.slab.free_slot(index);
                drop(st);
                if let Some(next) = next {
                    run_user(|| next.wake());
                }
                Poll::Ready((self.complete(result(res), flags), res))
            }
            LSlotState::Waiting(ref waker) if waker.will_wake(cx.waker()) => Poll::Pending,
            LSlotState::Waiting(_) => {
                drop(st);
                self.new_waker(index, cx)
            }
            LSlotState::Free
            | LSlotState::Orphan(_)
            | LSlotState::Stream(_)
            | LSlotState::OrphanStream(..) => {
                unreachable!("a live op's slot is neither free nor orphaned")
            }
        }
    }

    /// [`poll_raw`](Self::poll_raw) for an op waiting for room, failed, or
    /// finished.
    #[cold]
    fn poll_other(&mut self, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        match std::mem::replace(&mut self.stage, LStage::Finished) {
            LStage::Credit(ticket) => {
                self.stage = LStage::Credit(ticket);
                self.submit(cx, Some(ticket))
            }
            LStage::Failed(e) => {
                let res = -e.raw_os_error().unwrap_or(0);
                Poll::Ready((self.complete(Err(e), 0), res))
            }
            LStage::Finished => panic!("a LocalOp polled after it completed"),
            LStage::New | LStage::Unbudgeted | LStage::Submitted(_) => {
                unreachable!("polled by poll_raw")
            }
        }
    }

    /// The op in slot `index`, still in the kernel, polled with a waker
    /// that its slot's would not wake: it waits with a clone of it.
    #[inline(never)]
    fn new_waker(&mut self, index: u32, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        // A new waker, cloned with the state unborrowed (user code).
        let fresh = cx.waker().clone();
        let old = match &mut self.inner.st.borrow_mut().slab.slots[index as usize].state {
            LSlotState::Waiting(waker) => std::mem::replace(waker, SlotWaker::Own(fresh)),
            // Completed meanwhile (the clone ran user code that
            // drove the ring): taken at the next poll.
            _ => SlotWaker::Own(fresh),
        };
        drop(old);
        // If it completed meanwhile, the fresh waker is not where a
        // completion looks: poll again now.
        if !matches!(
            self.inner.st.borrow().slab.slots[index as usize].state,
            LSlotState::Waiting(_)
        ) {
            return self.poll_raw(cx);
        }
        Poll::Pending
    }
}

impl<O: 'static> Drop for LocalOp<O> {
    #[inline]
    fn drop(&mut self) {
        if self.finish.is_none() {
            // The common case: the output was returned.
            return;
        }
        self.drop_unfinished();
    }
}

impl<O: 'static> LocalOp<O> {
    /// Drops an op whose output was not returned: cancels it if it is in
    /// the kernel, keeping what it owns until the CQE.
    #[inline(never)]
    fn drop_unfinished(&mut self) {
        let finish = self.finish.take();
        match std::mem::replace(&mut self.stage, LStage::Finished) {
            LStage::Submitted(ud) => {
                let Some(finish) = finish else { return };
                let mut st = self.inner.st.borrow_mut();
                let index = ud as u32;
                let slot = &mut st.slab.slots[index as usize];
                match std::mem::replace(&mut slot.state, LSlotState::Free) {
                    LSlotState::Done(res, flags) => {
                        // Completed, never taken: what the result carries
                        // (an fd) is released with the resources.
                        let next = st.slab.free_slot(index);
                        drop(st);
                        run_user(|| OpRelease(Some(finish)).release(res, flags));
                        if let Some(next) = next {
                            run_user(|| next.wake());
                        }
                    }
                    LSlotState::Waiting(waker) => {
                        // Still in the kernel: its resources wait in the
                        // slot for the CQE, and the kernel is asked to
                        // cancel it.
                        slot.state = LSlotState::Orphan(Box::new(OpRelease(Some(finish))));
                        slot.attempts = 1;
                        st.push_cancel(ud);
                        drop(st);
                        drop(waker);
                    }
                    LSlotState::Free
                    | LSlotState::Orphan(_)
                    | LSlotState::Stream(_)
                    | LSlotState::OrphanStream(..) => {
                        unreachable!("a live op's slot is neither free nor orphaned")
                    }
                }
            }
            LStage::Credit(ticket) => {
                // It leaves the queue, passing on a wake-up it was given.
                self.inner.leave_credit_queue(ticket);
                drop(finish);
            }
            LStage::New | LStage::Unbudgeted | LStage::Failed(_) | LStage::Finished => drop(finish),
        }
    }
}

impl LState {
    /// Asks the kernel to cancel the request `ud`.
    pub(crate) fn push_cancel(&mut self, ud: u64) {
        let entry = ring_io_ops::AsyncCancel::new(ud)
            .build()
            .user_data(ud | u64::from(CANCEL_BIT));
        self.push(entry);
        // Counted apart from the requests that own memory.
        self.in_ring -= 1;
        self.cancels_in_ring += 1;
        self.stats.cancels += 1;
    }
}

impl<O: 'static> fmt::Debug for LocalOp<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            LStage::New | LStage::Unbudgeted => "new",
            LStage::Credit(_) => "waiting for room",
            LStage::Submitted(_) => "submitted",
            LStage::Failed(_) => "failed",
            LStage::Finished => "finished",
        };
        f.debug_struct("LocalOp")
            .field("opcode", &self.entry.opcode())
            .field("stage", &stage)
            .finish()
    }
}
