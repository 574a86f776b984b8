//! What the typed handles of [`fs`](crate::fs) and [`net`](crate::net)
//! share: mapping an op's output, the loops of `read_exact` and
//! `write_all`, and a new socket.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::buf::{BufResult, IoBuf, Slice};
use crate::flags::{CURRENT_POSITION, Domain, SocketType};
use crate::op::{Op, Stage};
use crate::{OpFd, Proactor, Runtime};

impl<O: 'static> Op<O> {
    /// The op, its output passed through `f` when it completes. `f` runs
    /// where the output is made: on the thread that polls the op, or, if
    /// the op was dropped in flight, on the thread that drives when its CQE
    /// arrives (its output is then dropped); it must not block.
    pub(crate) fn map<P: 'static>(mut self, f: impl FnOnce(O) -> P + Send + 'static) -> Op<P> {
        let finish = self.finish.take().expect("an op not yet completed");
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        Op {
            shared: crate::op::OpShared::new(std::sync::Arc::clone(&self.shared)),
            entry: self.entry,
            stage,
            finish: Some(finish.map(f)),
            waker: self.waker,
        }
        // `self` is dropped with nothing left to release.
    }
}

/// The offset `done` bytes after `pos`, or the file position still.
pub(crate) fn advance(pos: u64, done: usize) -> u64 {
    if pos == CURRENT_POSITION {
        pos
    } else {
        pos.wrapping_add(done as u64)
    }
}

/// The op of a [`Transfer`] on the runtime `R`.
type TransferOp<B, R> = <R as Runtime>::Op<BufResult<usize, Slice<B>>>;

/// What makes each op of a [`Transfer`]: from the runtime, the handle's
/// file, the rest of the buffer and the offset to do it at. A function,
/// not a closure: a transfer allocates nothing of its own.
pub(crate) type Make<B, R> = fn(&R, OpFd, Slice<B>, u64) -> TransferOp<B, R>;

/// The future of `read_exact`, `read_exact_at`, `write_all` and
/// `write_all_at` of the [`fs`](crate::fs) and [`net`](crate::net)
/// handles: ops one after the other, each on the rest of the buffer, until
/// it is done (a read: filled to its [`bytes_total`](IoBuf::bytes_total);
/// a write: all its [`bytes_init`](IoBuf::bytes_init) bytes sent). An
/// interrupted op is retried; a read of 0 bytes before the end fails with
/// `UnexpectedEof`, a write of 0 with `WriteZero`. The buffer comes back
/// in every case (after a read's error, with the bytes read so far marked
/// initialized).
///
/// Like an [`Op`], it does nothing until polled or
/// [`wait`](Self::wait)ed on; dropped, it drops the op in flight (see
/// [`Op`] for what that may lose). Its ops are those of the handle's
/// runtime `R` (see [`Runtime`]).
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixStream};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let (a, b) = UnixStream::pair(&p)?;
/// let reading = b.read_exact(Vec::with_capacity(10)); // a `Transfer`
/// a.write_all("0123456789").wait().0?;
/// let (res, buf) = reading.wait();
/// res?;
/// assert_eq!(buf, b"0123456789");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// On a [`LocalProactor`](crate::LocalProactor), polled with the writes
/// on its thread:
///
/// ```
/// use futures_util::future::join;
/// use ring_io_proactor::{LocalProactor, ProactorConfig, net::UnixStream};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let (a, b) = UnixStream::pair(&p)?;
/// let reading = b.read_exact(Vec::with_capacity(10)); // a `Transfer<_, LocalProactor>`
/// let ((res, buf), _) = p.block_on(join(reading, a.write_all("0123456789")));
/// res?;
/// assert_eq!(buf, b"0123456789");
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "a transfer does nothing until polled or waited on"]
pub struct Transfer<B: 'static, R: Runtime = Proactor> {
    runtime: R,
    /// The handle's file, shared with each op.
    file: SharedFd,
    make: Make<B, R>,
    /// Where the first op goes; the next go on from there.
    pos: u64,
    op: Option<TransferOp<B, R>>,
    /// The buffer, while no op holds it (nothing to do).
    idle: Option<B>,
    done: usize,
    total: usize,
    write: bool,
}

impl<B: IoBuf, R: Runtime> Transfer<B, R> {
    /// Fills `buf` to its `bytes_total` with reads of `runtime` on `file`
    /// made by `make`, the first at `pos`.
    pub(crate) fn read<F: AsFd + Send + Sync + 'static>(
        runtime: &R,
        file: &Arc<F>,
        pos: u64,
        buf: B,
        make: Make<B, R>,
    ) -> Self {
        let total = buf.bytes_total();
        Transfer::new(runtime, SharedFd::new(file), pos, make, buf, total, false)
    }

    /// Sends all of `buf`'s `bytes_init` bytes with writes of `runtime` on
    /// `file` made by `make`, the first at `pos`.
    pub(crate) fn write<F: AsFd + Send + Sync + 'static>(
        runtime: &R,
        file: &Arc<F>,
        pos: u64,
        buf: B,
        make: Make<B, R>,
    ) -> Self {
        let total = buf.bytes_init();
        Transfer::new(runtime, SharedFd::new(file), pos, make, buf, total, true)
    }

    fn new(
        runtime: &R,
        file: SharedFd,
        pos: u64,
        make: Make<B, R>,
        buf: B,
        total: usize,
        write: bool,
    ) -> Self {
        let (op, idle) = if total == 0 {
            (None, Some(buf))
        } else {
            (
                Some(make(runtime, file.op_fd(), buf.slice(..total), pos)),
                None,
            )
        };
        Transfer {
            runtime: runtime.clone(),
            file,
            make,
            pos,
            op,
            idle,
            done: 0,
            total,
            write,
        }
    }

    /// Blocks the calling thread until the transfer is done (see
    /// [`Runtime::block_on`]: a LocalProactor's is driven meanwhile).
    pub fn wait(self) -> BufResult<(), B> {
        let runtime = self.runtime.clone();
        runtime.block_on(self)
    }
}

impl<B: 'static, R: Runtime> Unpin for Transfer<B, R> {}

impl<B: IoBuf, R: Runtime> Future for Transfer<B, R> {
    type Output = BufResult<(), B>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BufResult<(), B>> {
        let this = &mut *self;
        loop {
            let Some(op) = &mut this.op else {
                let buf = this.idle.take().expect("a Transfer polled after it ended");
                return Poll::Ready((Ok(()), buf));
            };
            let (res, slice) = match Pin::new(op).poll(cx) {
                Poll::Ready(out) => out,
                Poll::Pending => return Poll::Pending,
            };
            this.op = None;
            let buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let (done, total) = (this.done, this.total);
                    let e = if this.write {
                        io::Error::new(
                            io::ErrorKind::WriteZero,
                            format!("a write took none of the last {} bytes", total - done),
                        )
                    } else {
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the end came after {done} of {total} bytes"),
                        )
                    };
                    return Poll::Ready((Err(e), buf));
                }
                Ok(n) => this.done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready((Err(e), buf)),
            }
            if this.done >= this.total {
                return Poll::Ready((Ok(()), buf));
            }
            let rest = buf.slice(this.done..this.total);
            let at = advance(this.pos, this.done);
            this.op = Some((this.make)(&this.runtime, this.file.op_fd(), rest, at));
        }
    }
}

impl<B: 'static, R: Runtime> fmt::Debug for Transfer<B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transfer")
            .field("write", &self.write)
            .field("done", &self.done)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// A handle's file as a [`Transfer`] keeps it: each of its ops holds it
/// open (as an [`OpFd`] of the `Arc` the handle shares).
struct SharedFd {
    raw: RawFd,
    keep: Arc<dyn Send + Sync>,
}

impl SharedFd {
    fn new<F: AsFd + Send + Sync + 'static>(file: &Arc<F>) -> Self {
        SharedFd {
            raw: file.as_fd().as_raw_fd(),
            keep: file.clone(),
        }
    }

    /// What the next op holds.
    fn op_fd(&self) -> OpFd {
        OpFd::shared_raw(self.raw, self.keep.clone())
    }
}

/// A new socket (close-on-exec, blocking), like `socket(2)`.
pub(crate) fn socket(domain: Domain, ty: SocketType) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the result is checked.
    let fd = unsafe { libc::socket(domain.raw(), ty.raw() | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ops::Backend;
    use crate::{Proactor, ProactorConfig, block_on};

    #[test]
    fn write_all_fails_with_write_zero_and_hands_the_buffer_back() {
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let p = Proactor::new(ProactorConfig::new(8)).unwrap();
        let null = Arc::new(std::fs::File::create("/dev/null").unwrap());
        // Every write sends nothing (an empty slice of the rest): the
        // kernel says 0.
        let (res, buf) = block_on(Transfer::write(
            &p,
            &null,
            0,
            b"stuck".to_vec(),
            |p, fd, rest, at| {
                WRITES.fetch_add(1, Ordering::Relaxed);
                crate::ops::fs::write(p, fd, rest.into_inner().slice(0..0), at)
            },
        ));
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::WriteZero);
        let writes = WRITES.load(Ordering::Relaxed);
        assert_eq!((writes, &buf[..]), (1, &b"stuck"[..]));
    }

    #[test]
    fn read_exact_retries_interrupted_reads_and_counts_from_where_it_was() {
        static AT: Mutex<Vec<u64>> = Mutex::new(Vec::new());
        let p = Proactor::new(ProactorConfig::new(8)).unwrap();
        let zero = Arc::new(std::fs::File::open("/dev/zero").unwrap());
        let (res, buf) = block_on(Transfer::read(
            &p,
            &zero,
            100,
            vec![1u8; 10],
            |p, fd, rest, at| {
                let mut seen = AT.lock().unwrap();
                seen.push(at);
                if seen.len() == 1 {
                    let e = io::Error::from(io::ErrorKind::Interrupted);
                    return p.failed_op(e, move |r, _| {
                        drop(fd);
                        (r.map(|n| n as usize), rest)
                    });
                }
                // Three bytes at a time.
                let len = rest.bytes_total().min(3);
                crate::ops::fs::read(p, fd, rest.slice(..len), at)
            },
        ));
        res.unwrap();
        assert_eq!(buf, [0; 10]);
        assert_eq!(*AT.lock().unwrap(), [100, 100, 103, 106, 109]);
    }

    #[test]
    fn advance_keeps_the_file_position() {
        assert_eq!(advance(CURRENT_POSITION, 10), CURRENT_POSITION);
        assert_eq!(advance(5, 10), 15);
    }

    /// Waits until nothing holds `shared` (its fallback thread ends once
    /// the last handle is gone).
    fn freed(shared: &std::sync::Weak<crate::state::Shared>, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.upgrade().is_some() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_reference_an_op_keeps_for_the_next_goes_when_block_on_returns() {
        // Ops dropped inside `block_on` leave their reference to the
        // Proactor for the next op (`drive::keep_shared`): the last one
        // must go with the outermost `block_on`, and one of another
        // Proactor must not be taken.
        let p = Proactor::new(ProactorConfig::new(8)).unwrap();
        let q = Proactor::new(ProactorConfig::new(8)).unwrap();
        let (ps, qs) = (Arc::downgrade(&p.shared), Arc::downgrade(&q.shared));
        crate::block_on(async {
            for _ in 0..3 {
                p.nop().await.unwrap();
            }
            // Kept: p's. An op of q clones q's; dropped, it replaces p's.
            q.nop().await.unwrap();
            crate::block_on(async { p.nop().await.unwrap() });
            q.nop().await.unwrap();
        });
        drop(p);
        freed(&ps, "p outlived its last handle and block_on");
        crate::block_on(async { q.nop().await.unwrap() });
        drop(q);
        freed(&qs, "q outlived its last handle and block_on");
        // Nor is it kept while the future waits on something else: it
        // goes after the poll in which the op was dropped. (An op of a
        // Proactor this `block_on` does not drive: one it drives is held
        // by it anyway.)
        let r = Proactor::new(ProactorConfig::new(8)).unwrap();
        let rs = Arc::downgrade(&r.shared);
        let mut op = r.nop();
        crate::block_on(&mut op).unwrap();
        drop(r);
        crate::block_on(async move {
            drop(op);
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    return std::task::Poll::Ready(());
                }
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            })
            .await;
            freed(&rs, "r outlived the poll that dropped its last op");
        });
    }

    #[test]
    fn an_op_holding_the_last_clone_shuts_the_proactor_down_when_it_ends() {
        let p = Proactor::new(ProactorConfig::new(8)).unwrap();
        let shared = Arc::downgrade(&p.shared);
        let listener = crate::net::TcpListener::bind(&p, "127.0.0.1:0").unwrap();
        // An accept that never completes holds a clone in its closure.
        let accept = listener.accept().start();
        drop((listener, p));
        assert!(shared.upgrade().is_some(), "the accept keeps it alive");
        // Dropped in flight: cancelled, and its clone released on the
        // driving thread when its CQE arrives, which then shuts down.
        drop(accept);
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.upgrade().is_some() {
            assert!(Instant::now() < deadline, "the Proactor never shut down");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
