//! [`Multi`]: a multishot request as a stream of items.

use std::fmt;
use std::future::Future;
use std::io::{self};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ring_io_ops::Entry;

use crate::drive::block_on;
use crate::op::*;
use crate::proactor::*;
use crate::state::*;

/// Turns one CQE of a stream into an item (`None`: skip it).
pub(crate) type Convert<T> = Box<dyn FnMut(io::Result<u32>, u32) -> Option<io::Result<T>> + Send>;

/// A multishot request of a [`Proactor`]: a stream of `io::Result<T>`,
/// one per completion, taken with [`next_item`](Multi::next_item) (a future) or
/// [`wait_next`](Multi::wait_next) (blocking); `None` once the request has
/// ended. Submitted when first polled; dropping it cancels the request, and
/// what the kernel may still write into (a buffer ring) stays with the
/// Proactor until the last CQE.
///
/// It is a [`futures_core::Stream`] (and a
/// [`FusedStream`](futures_core::stream::FusedStream): after `None` it
/// stays ended), so the stream combinators of `futures-util` and
/// `tokio-stream` apply:
///
/// ```
/// # use std::sync::Arc;
/// # use ring_io_proactor::{Proactor, ProactorConfig, block_on};
/// use futures_util::StreamExt;
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let listener = Arc::new(std::net::TcpListener::bind("127.0.0.1:0")?);
/// let addr = listener.local_addr()?;
/// let _clients = [std::net::TcpStream::connect(addr)?, std::net::TcpStream::connect(addr)?];
/// # if p.probe().kernel().is_some_and(|k| !k.at_least(5, 19)) { return Ok(()) }
/// let accepted: Vec<_> = block_on(p.accept_multi(&listener).take(2).collect());
/// assert_eq!(accepted.len(), 2);
/// assert!(accepted.iter().all(|conn| conn.is_ok()));
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "a stream does nothing until polled"]
pub struct Multi<T: 'static> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) entry: Entry,
    pub(crate) credits: u32,
    pub(crate) stage: Stage,
    pub(crate) convert: Option<Convert<T>>,
    /// Re-arm the request when it ends with this errno.
    pub(crate) restart_on: Option<i32>,
    /// Re-arm the request when its last CQE's result is at least this (its
    /// item delivered first): the kernel ended a multishot request it
    /// could not post more CQEs for (a full CQ) with a last CQE that
    /// carries a result. 0 for an accept (an fd); 1 for a receive, whose
    /// last CQE of 0 bytes is the end of the stream.
    pub(crate) restart_from: Option<i32>,
    pub(crate) restart: bool,
}

impl<T: 'static> Multi<T> {
    pub(crate) fn new(
        proactor: &Proactor,
        entry: Entry,
        credits: u32,
        convert: impl FnMut(io::Result<u32>, u32) -> Option<io::Result<T>> + Send + 'static,
    ) -> Self {
        Multi {
            shared: proactor.shared.clone(),
            entry,
            credits,
            stage: Stage::New,
            convert: Some(Box::new(convert)),
            restart_on: None,
            restart_from: None,
            restart: false,
        }
    }

    pub(crate) fn failed(proactor: &Proactor, error: io::Error) -> Self {
        let mut multi = Multi::new(proactor, ring_io_ops::Nop::new().build(), 1, |_, _| None);
        multi.stage = Stage::Failed(error);
        multi
    }

    /// The next item, or `None` when the stream has ended.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<T>>> {
        loop {
            match std::mem::replace(&mut self.stage, Stage::Finished) {
                Stage::Finished => return Poll::Ready(None),
                Stage::Failed(e) => return Poll::Ready(Some(Err(e))),
                stage @ (Stage::New | Stage::Unbudgeted | Stage::Credit(_)) => {
                    self.stage = stage;
                    let shared = self.shared.clone();
                    let parts = &mut [(self.entry, &mut self.stage)];
                    match submit_with(&shared, parts, self.credits, true, Some(cx.waker()), None) {
                        Poll::Ready(Err(e)) => {
                            self.stage = Stage::Finished;
                            return Poll::Ready(Some(Err(e)));
                        }
                        Poll::Ready(Ok(())) | Poll::Pending => return Poll::Pending,
                    }
                }
                Stage::Submitted(ud) => {
                    let shared = self.shared.clone();
                    let mut st = shared.lock();
                    let thread_panicked = st.panicked;
                    let mut grave = Graveyard::default();
                    let slot = st.slot(ud).expect("a submitted stream keeps its slot");
                    let born = slot.born;
                    let SlotState::Stream(stream) = &mut slot.state else {
                        unreachable!("a live stream's slot is a stream");
                    };
                    let StreamSlot { cqes, waker, ended } = &mut **stream;
                    if let Some((res, flags)) = cqes.pop_front() {
                        let last = cqes.is_empty() && *ended;
                        // Failed unrun because the thread that submitted
                        // it exited: it goes again (`State::resubmits`).
                        let again = last && st.resubmits(born, self.entry.opcode(), res);
                        drop(st);
                        self.stage = Stage::Submitted(ud);
                        if again || last && self.restart_on.is_some_and(|e| res == -e) {
                            self.restart = true;
                            continue;
                        }
                        if last && self.restart_from.is_some_and(|min| res >= min) {
                            // The item is delivered below; then the request
                            // is re-armed.
                            self.restart = true;
                        }
                        let convert = self.convert.as_mut().expect("a live stream converts");
                        match convert(result(res), flags) {
                            Some(item) => return Poll::Ready(Some(item)),
                            None => continue,
                        }
                    }
                    if *ended {
                        st.finish(ud, &mut grave);
                        drop(st);
                        grave.bury();
                        if std::mem::take(&mut self.restart) {
                            shared.lock().stats.stream_restarts += 1;
                            self.stage = Stage::New;
                            continue;
                        }
                        return Poll::Ready(None);
                    }
                    if thread_panicked {
                        drop(st);
                        panicked(self.convert.take())
                    }
                    self.stage = Stage::Submitted(ud);
                    if waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        drop(st);
                        crate::drive::note_pending(&shared);
                        return Poll::Pending;
                    }
                    // Cloned with the lock released (user code), then
                    // stored if the stream still waits.
                    drop(st);
                    let fresh = cx.waker().clone();
                    let mut st = shared.lock();
                    let old = match st.slot(ud).map(|s| &mut s.state) {
                        Some(SlotState::Stream(stream)) => {
                            if stream.cqes.is_empty() && !stream.ended {
                                stream.waker.replace(fresh)
                            } else {
                                // Something arrived meanwhile: take it now.
                                drop(st);
                                drop(fresh);
                                continue;
                            }
                        }
                        _ => Some(fresh),
                    };
                    drop(st);
                    drop(old);
                    crate::drive::note_pending(&shared);
                    return Poll::Pending;
                }
            }
        }
    }

    /// The next item (a future), or `None` when the stream has ended.
    pub fn next_item(&mut self) -> impl Future<Output = Option<io::Result<T>>> + '_ {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }

    /// Blocks until the next item, or `None` when the stream has ended.
    pub fn wait_next(&mut self) -> Option<io::Result<T>> {
        block_on(self.next_item())
    }
}

impl<T: 'static> futures_core::Stream for Multi<T> {
    type Item = io::Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<T>>> {
        Multi::poll_next(self.get_mut(), cx)
    }
}

impl<T: 'static> futures_core::stream::FusedStream for Multi<T> {
    fn is_terminated(&self) -> bool {
        matches!(self.stage, Stage::Finished)
    }
}

/// A dropped stream's converter: each item it will never deliver is made
/// and dropped, releasing what it carries (an accepted fd, a buffer of the
/// buffer ring).
pub(crate) struct MultiRelease<T>(pub(crate) Convert<T>);

impl<T: 'static> Release for MultiRelease<T> {
    fn release(&mut self, res: i32, flags: u32) {
        drop((self.0)(result(res), flags));
    }
}

impl<T: 'static> Drop for Multi<T> {
    fn drop(&mut self) {
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        let convert = self.convert.take();
        abandon(
            &self.shared,
            stage,
            convert.map(|c| Box::new(MultiRelease(c)) as Box<dyn Release>),
        );
    }
}

impl<T: 'static> fmt::Debug for Multi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multi")
            .field("opcode", &self.entry.opcode())
            .field("credits", &self.credits)
            .finish_non_exhaustive()
    }
}
