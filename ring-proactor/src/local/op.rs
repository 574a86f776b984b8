//! [`LocalOp`]: the future of one request of a [`LocalProactor`].

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use ring_io_ops::Entry;

use super::wakers::SlotWaker;
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
                // (Its room came back with its CQE.)
                st.slab.free_done(index);
                drop(st);
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
                        // (an fd) is released with the resources. (Its
                        // room came back with its CQE.)
                        st.slab.free_done(index);
                        drop(st);
                        run_user(|| OpRelease(Some(finish)).release(res, flags));
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
