//! The ops, grouped by what they act on. Each is written once, as a
//! function generic over [`Backend`] (the kind of Proactor that runs it),
//! and offered as a method of both [`Proactor`] and [`LocalProactor`].

pub(crate) mod fs;
mod misc;
pub(crate) mod net;

use std::io;

use ring_io_driver::Probe;
use ring_io_ops::{Entry, Fd};

use crate::args::at_most;
use crate::buf::{BufResult, IoBuf, IoBufMut, op_len};
use crate::local::op::LStage;
use crate::op::{Finish, Finisher, Op, Stage};
use crate::{LocalOp, LocalProactor, OpFd, Proactor};

/// A kind of Proactor: what makes an op's future from its entry and its
/// finish (the closure that owns what the entry points to and turns the
/// completion into the op's output).
pub(crate) trait Backend {
    /// The future of an op.
    type Op<O: 'static>;

    /// An op of `entry` whose completion `finish` turns into its output.
    fn op<O: 'static>(&self, entry: Entry, finish: impl Finish<O>) -> Self::Op<O>;

    /// An op that fails at once with `error`: `finish` makes its output
    /// from `Err(error)`.
    fn failed_op<O: 'static>(
        &self,
        error: io::Error,
        finish: impl FnOnce(io::Result<u32>, u32) -> O + Send + 'static,
    ) -> Self::Op<O>;

    /// The opcodes the kernel supports.
    fn kernel_probe(&self) -> &Probe;

    /// [`op`](Backend::op) for an entry naming files: `keep` (the
    /// [`OpFd`]s) stays alive until the op finishes, or, if its future is
    /// dropped, until its last CQE.
    fn op_with<O: 'static>(
        &self,
        entry: Entry,
        keep: impl Send + 'static,
        finish: impl FnOnce(io::Result<u32>, u32) -> O + Send + 'static,
    ) -> Self::Op<O> {
        self.op(entry, move |res: io::Result<u32>, flags| {
            let out = finish(res, flags);
            drop(keep);
            out
        })
    }

    /// An error if the running kernel is older than `major.minor`.
    fn needs(&self, major: u16, minor: u16, what: &'static str) -> Option<io::Error> {
        let kernel = self.kernel_probe().kernel()?;
        (!kernel.at_least(major, minor)).then(|| {
            ring_io_ops::Unsupported {
                what,
                needs: Some((major, minor)),
                kernel: Some(kernel),
            }
            .into()
        })
    }

    /// An op that fails at once with `error` (an argument the kernel would
    /// never see, such as a path with a NUL byte).
    fn failed<T: 'static>(&self, error: io::Error) -> Self::Op<io::Result<T>> {
        self.failed_op(error, |res: io::Result<u32>, _| {
            res.and_then(|_| Err(io::Error::other("unreachable")))
        })
    }

    /// An op that fails at once with `error`, handing `buf` back.
    fn failed_with<B: Send + 'static>(
        &self,
        error: io::Error,
        keep: impl Send + 'static,
        buf: B,
    ) -> Self::Op<BufResult<usize, B>> {
        self.failed_op(error, move |res: io::Result<u32>, _| {
            drop(keep);
            (res.map(|n| n as usize), buf)
        })
    }

    /// An op that fills `buf` from its start, whose entry `make` builds
    /// from the fd, the buffer's start and its room; the buffer marks what
    /// the kernel wrote initialized. No room, or more than a `u32` holds:
    /// `InvalidInput`, with the buffer.
    fn fill<B: IoBufMut>(
        &self,
        fd: OpFd,
        mut buf: B,
        make: impl FnOnce(Fd, *mut u8, u32) -> Entry,
    ) -> Self::Op<BufResult<usize, B>> {
        let at = buf.stable_mut_ptr();
        let len = match op_len(buf.bytes_total(), true) {
            Ok(len) => len,
            Err(e) => return self.failed_with(e, fd, buf),
        };
        let entry = make(Fd(fd.raw()), at, len);
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, len as usize)).inspect(|&n| {
                // SAFETY: the kernel wrote `n` bytes, checked to be at most
                // the `len` (the buffer's `bytes_total`) it was given, from
                // the buffer's start.
                unsafe { buf.set_init(n) };
            });
            (res, buf)
        })
    }

    /// An op that sends the initialized bytes of `buf`, whose entry `make`
    /// builds from the fd, the bytes' start and their length. More than a
    /// `u32` holds: `InvalidInput`, with the buffer.
    fn send_bytes<B: IoBuf>(
        &self,
        fd: OpFd,
        buf: B,
        make: impl FnOnce(Fd, *const u8, u32) -> Entry,
    ) -> Self::Op<BufResult<usize, B>> {
        let len = match op_len(buf.bytes_init(), false) {
            Ok(len) => len,
            Err(e) => return self.failed_with(e, fd, buf),
        };
        let entry = make(Fd(fd.raw()), buf.stable_ptr(), len);
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            (res.and_then(|n| at_most(n, len as usize)), buf)
        })
    }
}

impl Backend for Proactor {
    type Op<O: 'static> = Op<O>;

    fn op<O: 'static>(&self, entry: Entry, finish: impl Finish<O>) -> Op<O> {
        Op {
            shared: self.shared.clone(),
            entry,
            stage: Stage::New,
            finish: Some(Finisher::new(finish)),
            waker: (0, 0),
        }
    }

    fn failed_op<O: 'static>(
        &self,
        error: io::Error,
        finish: impl FnOnce(io::Result<u32>, u32) -> O + Send + 'static,
    ) -> Op<O> {
        let mut op = self.op(ring_io_ops::Nop::new().build(), finish);
        op.stage = Stage::Failed(error);
        op
    }

    fn kernel_probe(&self) -> &Probe {
        &self.shared.probe
    }
}

impl Backend for LocalProactor {
    type Op<O: 'static> = LocalOp<O>;

    fn op<O: 'static>(&self, entry: Entry, finish: impl Finish<O>) -> LocalOp<O> {
        LocalOp::new(self.inner.clone(), entry, Finisher::new(finish))
    }

    fn failed_op<O: 'static>(
        &self,
        error: io::Error,
        finish: impl FnOnce(io::Result<u32>, u32) -> O + Send + 'static,
    ) -> LocalOp<O> {
        let mut op = self.op(ring_io_ops::Nop::new().build(), finish);
        op.stage = LStage::Failed(error);
        op
    }

    fn kernel_probe(&self) -> &Probe {
        &self.inner.probe
    }
}
