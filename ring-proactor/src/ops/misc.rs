//! Ops on no file: NOP, timeouts, and cancellation by file.

use std::io::{self};
use std::time::Duration;

use ring_io_ops::{Entry, Fd};

use crate::args::*;
use crate::op::*;
use crate::ops::Backend;
use crate::proactor::*;
use crate::{IntoOpFd, LocalOp, LocalProactor};

impl Proactor {
    /// `IORING_OP_NOP`: completes with `Ok(())`.
    pub fn nop(&self) -> Op<io::Result<()>> {
        let (entry, finish) = nop();
        self.op(entry, finish)
    }

    /// Completes after `duration` (`IORING_OP_TIMEOUT`); a duration past
    /// `i64::MAX` seconds is clamped there.
    pub fn timeout(&self, duration: Duration) -> Op<io::Result<()>> {
        let (entry, finish) = timeout(duration, false);
        self.op(entry, finish)
    }

    /// A timeout for the op it is linked after (`IORING_OP_LINK_TIMEOUT`):
    /// `p.read(..).link(p.link_timeout(d))`. If `duration` passes first
    /// the op fails with `ECANCELED` and this completes with `ETIME`;
    /// otherwise this completes with `ECANCELED` (the kernel's results,
    /// as they are). Alone, it fails with `EINVAL`.
    pub fn link_timeout(&self, duration: Duration) -> Op<io::Result<()>> {
        let (entry, finish) = timeout(duration, true);
        self.op(entry, finish)
    }

    /// Cancels every request on `fd` (`IORING_ASYNC_CANCEL_FD |
    /// IORING_ASYNC_CANCEL_ALL`, Linux 5.19): returns how many were
    /// cancelled; they complete with `ECANCELED`.
    pub fn cancel_fd(&self, fd: impl IntoOpFd) -> Op<io::Result<u32>> {
        let fd = fd.into_op_fd();
        let entry = ring_io_ops::AsyncCancel::by_fd(Fd(fd.raw())).all().build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res)
    }
}

/// The entry and finish of a NOP (for both kinds of Proactor).
fn nop() -> (
    Entry,
    impl FnOnce(io::Result<u32>, u32) -> io::Result<()> + Send + 'static,
) {
    (
        ring_io_ops::Nop::new().build(),
        |res: io::Result<u32>, _| res.map(drop),
    )
}

/// The entry and finish of a timeout (`linked`: of an
/// `IORING_OP_LINK_TIMEOUT`, which reports its `ETIME` as it is): the
/// timespec lives in the finish.
fn timeout(
    duration: Duration,
    linked: bool,
) -> (
    Entry,
    impl FnOnce(io::Result<u32>, u32) -> io::Result<()> + Send + 'static,
) {
    let ts = Box::new(timespec(duration));
    let entry = if linked {
        ring_io_ops::LinkTimeout::new(&*ts).build()
    } else {
        ring_io_ops::Timeout::new(&*ts).build()
    };
    (entry, move |res: io::Result<u32>, _| {
        drop(ts);
        match res {
            Err(e) if !linked && e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            other => other.map(drop),
        }
    })
}

impl LocalProactor {
    /// [`Proactor::nop`], on this thread.
    pub fn nop(&self) -> LocalOp<io::Result<()>> {
        let (entry, finish) = nop();
        self.op(entry, finish)
    }

    /// [`Proactor::timeout`], on this thread.
    pub fn timeout(&self, duration: Duration) -> LocalOp<io::Result<()>> {
        let (entry, finish) = timeout(duration, false);
        self.op(entry, finish)
    }

    /// [`Proactor::link_timeout`], on this thread: a timeout for the op it
    /// is linked after, `p.read(..).link(p.link_timeout(d))` (see
    /// [`LocalOp::link`]).
    pub fn link_timeout(&self, duration: Duration) -> LocalOp<io::Result<()>> {
        let (entry, finish) = timeout(duration, true);
        self.op(entry, finish)
    }

    /// [`Proactor::cancel_fd`], on this thread.
    pub fn cancel_fd(&self, fd: impl IntoOpFd) -> LocalOp<io::Result<u32>> {
        let fd = fd.into_op_fd();
        let entry = ring_io_ops::AsyncCancel::by_fd(Fd(fd.raw())).all().build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res)
    }
}
