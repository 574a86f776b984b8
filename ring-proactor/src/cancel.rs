//! Cancellation that loses nothing: [`Op::cancel`], [`Op::timeout`] (and
//! [`LocalOp::timeout`]) and [`Multi::cancel`].
//!
//! Dropping an op also cancels it, but whatever it had done is lost with
//! it: a receive whose data had arrived drops the data (its buffer is
//! freed once the kernel is done with it). Cancelling keeps the op: it
//! still completes, with `ECANCELED` if the kernel cancelled it, or with
//! its own result, buffers and all, if it completed first.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::LocalOp;
use crate::args::timespec;
use crate::multi::Multi;
use crate::op::*;

impl<O: 'static> Op<O> {
    /// Asks the kernel to cancel the op, and returns it: awaited (or
    /// [`wait`](Op::wait)ed on), it completes as usual, with `ECANCELED` if
    /// the kernel cancelled it, or with its own result if it had completed
    /// (or completes before the cancellation reaches it). Nothing it did is
    /// lost: a receive whose data arrived first returns the data, in its
    /// buffer. An op never polled is not submitted and fails with
    /// `ECANCELED`.
    ///
    /// ```
    /// use ring_io_proactor::{MsgFlags, Proactor, ProactorConfig, block_on};
    /// use std::{io::Write, os::unix::net::UnixStream, sync::Arc};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, mut b) = UnixStream::pair()?;
    /// let a = Arc::new(a);
    /// block_on(async {
    ///     // Nothing has arrived: the receive is cancelled.
    ///     let mut recv = p.recv(&a, Vec::with_capacity(16), MsgFlags::empty()).start();
    ///     let (res, _buf) = recv.cancel().await;
    ///     assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    ///     // The data came first: the cancelled receive returns it.
    ///     b.write_all(b"late")?;
    ///     let recv = p.recv(&a, Vec::with_capacity(16), MsgFlags::empty()).start();
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    ///     let (res, buf) = recv.cancel().await;
    ///     assert_eq!(res?, 4);
    ///     assert_eq!(buf, b"late");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancel(mut self) -> Self {
        self.request_cancel();
        self
    }

    /// [`cancel`](Op::cancel) in place.
    pub(crate) fn request_cancel(&mut self) {
        let shared = self.shared.clone();
        let canceled = || Stage::Failed(io::Error::from_raw_os_error(libc::ECANCELED));
        match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::New | Stage::Unbudgeted => self.stage = canceled(),
            Stage::Credit(ticket) => {
                // Leaves the credit queue, passing on a wake-up it was given.
                self.stage = canceled();
                abandon(&shared, Stage::Credit(ticket), None);
            }
            Stage::Submitted(ud) => {
                self.stage = Stage::Submitted(ud);
                let st = shared.lock();
                if st.panicked {
                    return;
                }
                let armed = st.slots[ud as u32 as usize].armed();
                if armed {
                    request_cancel(&shared, st, ud);
                }
            }
            stage @ (Stage::Failed(_) | Stage::Finished) => self.stage = stage,
        }
    }

    /// The op, cancelled if it has not completed after `duration`: its
    /// output if it completed (even if just after the time was up), or, if
    /// the kernel cancelled it, [`Elapsed`], which holds the output (the
    /// buffers, and the `ECANCELED` result). Nothing it did is lost.
    ///
    /// The time is kept by a kernel timeout (`IORING_OP_TIMEOUT`) started
    /// when the future is first polled.
    ///
    /// ```
    /// use ring_io_proactor::{MsgFlags, Proactor, ProactorConfig};
    /// use std::{os::unix::net::UnixStream, sync::Arc, time::Duration};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = Arc::new(a);
    /// let recv = p.recv(&a, Vec::with_capacity(16), MsgFlags::empty());
    /// match ring_io_proactor::block_on(recv.timeout(Duration::from_millis(5))) {
    ///     Ok((res, buf)) => println!("received {:?}", &buf[..res?]),
    ///     Err(elapsed) => {
    ///         let (_res, buf) = elapsed.into_inner();
    ///         assert!(buf.is_empty()); // and the buffer is back
    ///     }
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timeout(self, duration: Duration) -> Timeout<O> {
        Timeout(Deadline::new(self, duration))
    }
}

/// An op that [`Deadline`] can time: [`Op`] and [`LocalOp`].
pub(crate) trait Timed: Unpin {
    type Output;
    /// The kernel timer of the same kind of Proactor.
    type Timer: Future + Unpin;
    /// Polls the op: its output and the CQE's raw result.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<(Self::Output, i32)>;
    /// Asks the kernel to cancel the op.
    fn request_cancel(&mut self);
    /// A timer op of `duration` on the op's Proactor.
    fn timer(&self, duration: Duration) -> Self::Timer;
}

/// A timer op owning its timespec (the kernel reads it until the CQE).
fn timer_parts(duration: Duration) -> (ring_io_ops::Entry, Finisher<()>) {
    let ts = Box::new(timespec(duration));
    let entry = ring_io_ops::Timeout::new(&*ts).build();
    (entry, Finisher::new(move |_: io::Result<u32>, _| drop(ts)))
}

impl<O: 'static> Timed for Op<O> {
    type Output = O;
    type Timer = Op<()>;
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        Op::poll_raw(self, cx)
    }
    fn request_cancel(&mut self) {
        Op::request_cancel(self);
    }
    fn timer(&self, duration: Duration) -> Op<()> {
        let (entry, finish) = timer_parts(duration);
        Op {
            shared: crate::op::OpShared::new(std::sync::Arc::clone(&self.shared)),
            entry,
            // Past the budget if need be: the op it times may hold the
            // last credit, which comes back only at its end.
            stage: Stage::Unbudgeted,
            finish: Some(finish),
            waker: (0, 0),
        }
    }
}

impl<O: 'static> Timed for LocalOp<O> {
    type Output = O;
    type Timer = LocalOp<()>;
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        LocalOp::poll_raw(self, cx)
    }
    fn request_cancel(&mut self) {
        LocalOp::request_cancel(self);
    }
    fn timer(&self, duration: Duration) -> LocalOp<()> {
        let (entry, finish) = timer_parts(duration);
        let mut timer = LocalOp::new(self.inner.clone(), entry, finish);
        // Past the budget if need be, as the Proactor's.
        timer.stage = crate::local::op::LStage::Unbudgeted;
        timer
    }
}

/// The state of a timed op, for both kinds of Proactor: the op, and its
/// timer, started when first polled.
pub(crate) struct Deadline<P: Timed> {
    op: P,
    duration: Duration,
    timer: Option<P::Timer>,
    expired: bool,
}

impl<P: Timed> Deadline<P> {
    fn new(op: P, duration: Duration) -> Self {
        Deadline {
            op,
            duration,
            timer: None,
            expired: false,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<P::Output, Elapsed<P::Output>>> {
        if let Poll::Ready((out, res)) = self.op.poll_raw(cx) {
            // A timer still running is dropped: cancelled.
            self.timer = None;
            return Poll::Ready(if self.expired && res == -libc::ECANCELED {
                Err(Elapsed(out))
            } else {
                Ok(out)
            });
        }
        if self.expired {
            return Poll::Pending;
        }
        let timer = match &mut self.timer {
            Some(timer) => timer,
            None => self.timer.insert(self.op.timer(self.duration)),
        };
        if Pin::new(timer).poll(cx).is_ready() {
            // The time is up (or the timer failed: the Proactor shut down,
            // and so does the op): cancel the op, then wait for its end.
            self.timer = None;
            self.expired = true;
            self.op.request_cancel();
            return self.poll(cx);
        }
        Poll::Pending
    }
}

impl<P: Timed + fmt::Debug> fmt::Debug for Deadline<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("op", &self.op)
            .field("duration", &self.duration)
            .field("expired", &self.expired)
            .finish_non_exhaustive()
    }
}

/// The future of [`Op::timeout`].
#[must_use = "a timeout does nothing until polled or waited on"]
pub struct Timeout<O: 'static>(Deadline<Op<O>>);

impl<O: 'static> Timeout<O> {
    /// Blocks the calling thread until the op completes or is cancelled.
    pub fn wait(self) -> Result<O, Elapsed<O>> {
        crate::drive::block_on(self)
    }
}

impl<O: 'static> Future for Timeout<O> {
    type Output = Result<O, Elapsed<O>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll(cx)
    }
}

impl<O: 'static> fmt::Debug for Timeout<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The future of [`LocalOp::timeout`].
#[must_use = "a timeout does nothing until polled or waited on"]
pub struct LocalTimeout<O: 'static>(Deadline<LocalOp<O>>);

impl<O: 'static> LocalTimeout<O> {
    pub(crate) fn new(op: LocalOp<O>, duration: Duration) -> Self {
        LocalTimeout(Deadline::new(op, duration))
    }

    /// Runs the thread's [`LocalProactor`](crate::LocalProactor) until the
    /// op completes or is cancelled.
    pub fn wait(self) -> Result<O, Elapsed<O>> {
        crate::LocalProactor {
            inner: self.0.op.inner.clone(),
        }
        .block_on(self)
    }
}

impl<O: 'static> Future for LocalTimeout<O> {
    type Output = Result<O, Elapsed<O>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll(cx)
    }
}

impl<O: 'static> fmt::Debug for LocalTimeout<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An op cancelled by [`Op::timeout`]: the time passed before it completed.
/// Holds the op's output (with its buffers, and the `ECANCELED` result).
pub struct Elapsed<O>(O);

impl<O> Elapsed<O> {
    /// The cancelled op's output.
    pub fn into_inner(self) -> O {
        self.0
    }
}

impl<O> fmt::Debug for Elapsed<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Elapsed(..)")
    }
}

impl<O> fmt::Display for Elapsed<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the op timed out and was cancelled")
    }
}

impl<O> std::error::Error for Elapsed<O> {}

impl<O> From<Elapsed<O>> for io::Error {
    /// `ErrorKind::TimedOut` (the output, and its buffers, are dropped).
    fn from(_: Elapsed<O>) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "the op timed out and was cancelled",
        )
    }
}

impl<T: 'static> Multi<T> {
    /// Asks the kernel to end the stream: the items it produced before
    /// the cancellation took effect still come, then the stream ends
    /// (possibly after an `ECANCELED` item). Nothing is lost, unlike a
    /// drop: an accept stream hands over every connection it accepted.
    pub fn cancel(&mut self) {
        let shared = self.shared.clone();
        match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::New | Stage::Unbudgeted | Stage::Finished => {}
            Stage::Credit(ticket) => abandon(&shared, Stage::Credit(ticket), None),
            Stage::Submitted(ud) => {
                self.stage = Stage::Submitted(ud);
                let st = shared.lock();
                if st.panicked {
                    return;
                }
                if st.slots[ud as u32 as usize].armed() {
                    request_cancel(&shared, st, ud);
                }
            }
            stage @ Stage::Failed(_) => self.stage = stage,
        }
        self.restart_on = None;
        self.restart_from = None;
        self.restart = false;
    }
}
