//! [`LocalMulti`]: a multishot request of a [`LocalProactor`] as a stream.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use ring_io_ops::Entry;

use super::op::LStage;
use super::wakers::SlotWaker;
use super::{Inner, LSlotState, LocalProactor, StreamSlot};
use crate::multi::{Convert, MultiRelease};
use crate::state::{Release, result, run_user};

/// A multishot request of a [`LocalProactor`]: a stream of `io::Result<T>`,
/// one per completion (a `futures_core::Stream`, or
/// [`next_item`](LocalMulti::next_item) / [`wait_next`](LocalMulti::wait_next));
/// `None` once the request has ended. As the
/// [`Proactor`](crate::Proactor)'s [`Multi`](crate::Multi): submitted when
/// first polled, cancelled when dropped (what it produced meanwhile is
/// released: accepted sockets are closed), ended without loss by
/// [`cancel`](LocalMulti::cancel).
#[must_use = "a stream does nothing until polled"]
pub struct LocalMulti<T: 'static> {
    inner: Rc<Inner>,
    entry: Entry,
    stage: LStage,
    convert: Option<Convert<T>>,
    /// Re-arm the request when its last CQE's result is at least this (see
    /// [`Multi::restart_from`](crate::Multi)).
    restart_from: Option<i32>,
    /// Re-arm the request when it ends with this errno (not delivered):
    /// `ENOBUFS` for a recv whose buffer ring ran dry.
    restart_on: Option<i32>,
    restart: bool,
}

impl<T: 'static> LocalMulti<T> {
    pub(crate) fn new(
        proactor: &LocalProactor,
        entry: Entry,
        convert: impl FnMut(io::Result<u32>, u32) -> Option<io::Result<T>> + Send + 'static,
    ) -> Self {
        LocalMulti {
            inner: proactor.inner.clone(),
            entry,
            stage: LStage::New,
            convert: Some(Box::new(convert)),
            restart_from: None,
            restart_on: None,
            restart: false,
        }
    }

    pub(crate) fn failed(proactor: &LocalProactor, error: io::Error) -> Self {
        let mut multi = LocalMulti::new(proactor, ring_io_ops::Nop::new().build(), |_, _| None);
        multi.stage = LStage::Failed(error);
        multi
    }

    /// Re-arm the request after a last CQE whose result is at least `min`.
    pub(crate) fn restart_from(mut self, min: i32) -> Self {
        self.restart_from = Some(min);
        self
    }

    pub(crate) fn restart_on(mut self, errno: i32) -> Self {
        self.restart_on = Some(errno);
        self
    }

    /// Takes a slot for the request and pushes its entry (or waits for
    /// room, with `ticket` if it waited before).
    fn submit(&mut self, cx: &mut Context<'_>, ticket: Option<u64>) -> Poll<Option<io::Result<T>>> {
        match self.inner.submit(&self.entry, cx, true, ticket, false) {
            Ok(stage) => {
                self.stage = stage;
                Poll::Pending
            }
            Err(e) => {
                self.stage = LStage::Finished;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    /// The next item, or `None` when the stream has ended.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<T>>> {
        loop {
            let ud = match self.stage {
                LStage::Submitted(ud) => ud,
                LStage::New | LStage::Unbudgeted => return self.submit(cx, None),
                LStage::Credit(ticket) => return self.submit(cx, Some(ticket)),
                LStage::Finished => return Poll::Ready(None),
                LStage::Failed(_) => {
                    let LStage::Failed(e) = std::mem::replace(&mut self.stage, LStage::Finished)
                    else {
                        unreachable!()
                    };
                    return Poll::Ready(Some(Err(e)));
                }
            };
            let index = ud as u32;
            let mut st = self.inner.st.borrow_mut();
            let LSlotState::Stream(s) = &mut st.slab.slots[index as usize].state else {
                unreachable!("a live stream's slot is a stream");
            };
            let StreamSlot { cqes, waker, ended } = &mut **s;
            if let Some((res, flags)) = cqes.pop_front() {
                let last = cqes.is_empty() && *ended;
                drop(st);
                if last && self.restart_on.is_some_and(|e| res == -e) {
                    // Not delivered: the request is armed again.
                    self.restart = true;
                    continue;
                }
                if last && self.restart_from.is_some_and(|min| res >= min) {
                    // Delivered below; then the request is armed again.
                    self.restart = true;
                }
                let convert = self.convert.as_mut().expect("a live stream converts");
                match convert(result(res), flags) {
                    Some(item) => return Poll::Ready(Some(item)),
                    None => continue,
                }
            }
            if *ended {
                let next = st.slab.free_slot(index);
                drop(st);
                if let Some(next) = next {
                    run_user(|| next.wake());
                }
                if std::mem::take(&mut self.restart) {
                    self.inner.st.borrow_mut().stats.stream_restarts += 1;
                    self.stage = LStage::New;
                    continue;
                }
                self.stage = LStage::Finished;
                return Poll::Ready(None);
            }
            if waker.will_wake(cx.waker()) {
                return Poll::Pending;
            }
            drop(st);
            // Cloned with the state unborrowed (user code), then stored.
            let fresh = cx.waker().clone();
            let (old, again) =
                match &mut self.inner.st.borrow_mut().slab.slots[index as usize].state {
                    LSlotState::Stream(s) if s.cqes.is_empty() && !s.ended => (
                        std::mem::replace(&mut s.waker, SlotWaker::Own(fresh)),
                        false,
                    ),
                    // Something arrived meanwhile: take it now. (Not told
                    // by `will_wake`: a clone may have another data
                    // pointer, and the waker is not stored.)
                    _ => (SlotWaker::Own(fresh), true),
                };
            drop(old);
            if !again {
                return Poll::Pending;
            }
        }
    }

    /// The next item (a future), or `None` when the stream has ended.
    pub fn next_item(&mut self) -> impl Future<Output = Option<io::Result<T>>> + '_ {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }

    /// Runs the thread's [`LocalProactor`] until the next item, or `None`
    /// when the stream has ended.
    pub fn wait_next(&mut self) -> Option<io::Result<T>> {
        let proactor = LocalProactor {
            inner: self.inner.clone(),
        };
        proactor.block_on(self.next_item())
    }

    /// Asks the kernel to end the stream: the items it produced before the
    /// cancellation took effect still come, then it ends (possibly after an
    /// `ECANCELED` item). Nothing is lost, unlike a drop.
    pub fn cancel(&mut self) {
        self.restart_from = None;
        self.restart_on = None;
        self.restart = false;
        match self.stage {
            LStage::New | LStage::Unbudgeted => self.stage = LStage::Finished,
            LStage::Credit(ticket) => {
                self.stage = LStage::Finished;
                self.inner.leave_credit_queue(ticket);
            }
            LStage::Submitted(ud) => {
                let mut st = self.inner.st.borrow_mut();
                let slot = &mut st.slab.slots[ud as u32 as usize];
                if matches!(&slot.state, LSlotState::Stream(s) if !s.ended) && slot.attempts == 0 {
                    slot.attempts = 1;
                    st.push_cancel(ud);
                }
            }
            LStage::Failed(_) | LStage::Finished => {}
        }
    }
}

impl<T: 'static> futures_core::Stream for LocalMulti<T> {
    type Item = io::Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<T>>> {
        LocalMulti::poll_next(self.get_mut(), cx)
    }
}

impl<T: 'static> futures_core::stream::FusedStream for LocalMulti<T> {
    fn is_terminated(&self) -> bool {
        matches!(self.stage, LStage::Finished)
    }
}

impl<T: 'static> Unpin for LocalMulti<T> {}

impl<T: 'static> Drop for LocalMulti<T> {
    fn drop(&mut self) {
        let Some(convert) = self.convert.take() else {
            return;
        };
        let mut release: Box<dyn Release> = Box::new(MultiRelease(convert));
        let ud = match std::mem::replace(&mut self.stage, LStage::Finished) {
            LStage::Submitted(ud) => ud,
            stage => {
                if let LStage::Credit(ticket) = stage {
                    // It leaves the queue, passing on a wake-up it was
                    // given.
                    self.inner.leave_credit_queue(ticket);
                }
                run_user(|| drop(release));
                return;
            }
        };
        let index = ud as u32;
        let mut st = self.inner.st.borrow_mut();
        let slot = &mut st.slab.slots[index as usize];
        let LSlotState::Stream(s) = std::mem::replace(&mut slot.state, LSlotState::Free) else {
            unreachable!("a live stream's slot is a stream");
        };
        let StreamSlot { cqes, waker, ended } = *s;
        let arrived: Vec<(i32, u32)> = cqes.into_iter().collect();
        if ended {
            // The kernel is done: release what arrived, free the slot.
            let next = st.slab.free_slot(index);
            drop(st);
            run_user(move || {
                for (res, flags) in arrived {
                    release.release(res, flags);
                }
                drop(release);
            });
            drop(waker);
            if let Some(next) = next {
                run_user(|| next.wake());
            }
            return;
        }
        slot.state = LSlotState::OrphanStream(Box::new((release, arrived)));
        if slot.attempts == 0 {
            slot.attempts = 1;
            st.push_cancel(ud);
        }
        drop(st);
        drop(waker);
    }
}

impl<T: 'static> fmt::Debug for LocalMulti<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMulti")
            .field("opcode", &self.entry.opcode())
            .finish_non_exhaustive()
    }
}
