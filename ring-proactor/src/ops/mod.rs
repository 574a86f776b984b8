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
use crate::op::{Finish, Finisher};
use crate::runtime::sealed::Token;
#[cfg(doc)]
use crate::{LocalProactor, Proactor};
use crate::{OpFd, Runtime};

/// What the ops are made of, for either kind of Proactor (every
/// [`Runtime`]): an op of an entry and its finish (the closure that owns
/// what the entry points to and turns the completion into the op's
/// output), and what is built on that.
pub(crate) trait Backend: Runtime {
    /// An op of `entry` whose completion `finish` turns into its output.
    fn op<O: 'static>(&self, entry: Entry, finish: impl Finish<O>) -> Self::Op<O> {
        self.op_of(Token(()), entry, Finisher::new(finish))
    }

    /// An op that fails at once with `error`: `finish` makes its output
    /// from `Err(error)`.
    fn failed_op<O: 'static>(
        &self,
        error: io::Error,
        finish: impl FnOnce(io::Result<u32>, u32) -> O + Send + 'static,
    ) -> Self::Op<O> {
        self.failed_of(Token(()), error, Finisher::new(finish))
    }

    /// The opcodes the kernel supports.
    fn kernel_probe(&self) -> &Probe {
        self.probe_of(Token(()))
    }

    /// `Ok` if `buf` is one of this runtime's fixed buffers (registered
    /// with its ring); else the `InvalidInput` error to fail its op with
    /// (the kernel would refuse it with a bare `EFAULT`).
    fn owns(&self, buf: &crate::FixedBuf) -> io::Result<()> {
        if self.owns_of(Token(()), buf) {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "this FixedBuf belongs to another Proactor's (or LocalProactor's) fixed buffers: \
             only the runtime whose fixed_buffer() handed it out can use it",
        ))
    }

    /// `op`, its output passed through `f` when it completes: where the op
    /// is polled or, if it was dropped in flight, where its CQE is reaped
    /// (its output is then dropped); `f` must not block.
    fn map<O: 'static, P: 'static>(
        op: Self::Op<O>,
        f: impl FnOnce(O) -> P + Send + 'static,
    ) -> Self::Op<P> {
        Self::map_of(Token(()), op, f)
    }

    /// [`map`](Backend::map), `f` also given this runtime (to make a
    /// handle of it).
    fn map_with<O: 'static, T: 'static>(
        &self,
        op: Self::Op<O>,
        f: impl FnOnce(&Self, O) -> io::Result<T> + Send + 'static,
    ) -> Self::Op<io::Result<T>> {
        self.map_with_of(Token(()), op, f)
    }

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
    #[inline]
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

impl<R: Runtime> Backend for R {}
