//! [`Runtime`]: what the handles of [`fs`](crate::fs) and
//! [`net`](crate::net) run on, a [`Proactor`] or a [`LocalProactor`].

use std::fmt;
use std::future::Future;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::task::{Context, Poll};

use ring_io_driver::Probe;
use ring_io_ops::Entry;

use crate::local::op::LStage;
use crate::op::Finisher;
use crate::{LocalMulti, LocalOp, LocalProactor, Multi, Op, OpFd, Proactor};

/// What the handles of [`fs`](crate::fs) and [`net`](crate::net) run on:
/// the shared [`Proactor`] (the default: [`fs::File`](crate::fs::File) is
/// `File<Proactor>`), or the single-thread [`LocalProactor`]
/// (`File<LocalProactor>`). Sealed: these two are all there are.
///
/// A handle holds a clone of its runtime (an `Arc` for a Proactor, an
/// `Rc` for a LocalProactor) and its ops are the runtime's
/// [`Op`](Runtime::Op): an [`Op`] of a Proactor, `Send`, for any executor
/// on any thread; a [`LocalOp`] of a LocalProactor, which, like the handle,
/// stays on the thread (neither is `Send`), with no lock or atomic
/// operation on its path. A handle's constructor takes a reference to its
/// runtime (`&impl AsRef<R>`): `&runtime`, or a reference to what holds
/// one (`&Arc<Proactor>`, `&Rc<LocalProactor>`, ...); the handle's `R` is
/// the runtime's type. The methods are the same, so code written once runs
/// on either:
///
/// ```
/// use ring_io_proactor::{LocalProactor, Proactor, ProactorConfig, Runtime, fs::File};
///
/// /// The first five bytes of a file.
/// async fn head<R: Runtime>(runtime: &R, path: &str) -> std::io::Result<Vec<u8>> {
///     let file = File::open(runtime, path).await?;
///     let (n, mut buf) = file.read_at(vec![0u8; 5], 0).await;
///     buf.truncate(n?);
///     Ok(buf)
/// }
///
/// let shared = Proactor::new(ProactorConfig::new(8))?;
/// assert_eq!(shared.block_on(head(&shared, "/proc/self/status"))?, b"Name:");
/// let local = LocalProactor::new(ProactorConfig::new(8))?;
/// assert_eq!(local.block_on(head(&local, "/proc/self/status"))?, b"Name:");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A LocalProactor's handles cannot leave its thread:
///
/// ```compile_fail
/// use ring_io_proactor::{LocalProactor, ProactorConfig, net::UdpSocket};
///
/// let p = LocalProactor::new(ProactorConfig::new(8)).unwrap();
/// let socket = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
/// // error: `Rc<..>` cannot be sent between threads safely
/// std::thread::spawn(move || drop(socket));
/// ```
pub trait Runtime: sealed::Sealed + AsRef<Self> + Clone + fmt::Debug + 'static {
    /// The future of an op: [`Op`] for a [`Proactor`], [`LocalOp`] for a
    /// [`LocalProactor`].
    type Op<O: 'static>: Future<Output = O> + Unpin + fmt::Debug;

    /// Runs `future` to completion on this thread, the runtime's ops
    /// completing meanwhile: [`block_on`](crate::block_on) for a
    /// Proactor, [`LocalProactor::block_on`] for a LocalProactor (which
    /// only completes ops while its thread drives it).
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

/// The parts of a [`Runtime`] only this crate calls: each takes a
/// [`Token`](sealed::Token), which only this crate can make.
pub(crate) mod sealed {
    use super::*;

    /// Proof that the caller is this crate (it has no public constructor).
    pub struct Token(pub(crate) ());

    /// What the handles need of a runtime, beyond [`Runtime`].
    pub trait Sealed {
        /// A multishot request as a stream of items: [`Multi`] or
        /// [`LocalMulti`].
        type Multi<T: 'static>: Unpin;

        /// An op of `entry` whose completion `finish` turns into its
        /// output.
        fn op_of<O: 'static>(
            &self,
            token: Token,
            entry: Entry,
            finish: Finisher<O>,
        ) -> <Self as Runtime>::Op<O>
        where
            Self: Runtime;

        /// An op that fails with `error` when polled, through `finish`.
        fn failed_of<O: 'static>(
            &self,
            token: Token,
            error: io::Error,
            finish: Finisher<O>,
        ) -> <Self as Runtime>::Op<O>
        where
            Self: Runtime;

        /// The opcodes the kernel supports.
        fn probe_of(&self, token: Token) -> &Probe;

        /// Whether `buf` is one of the fixed buffers registered with the
        /// ring.
        fn owns_of(&self, token: Token, buf: &crate::FixedBuf) -> bool;

        /// `op`, its output passed through `f` where it is made (see
        /// [`Op::map`]).
        fn map_of<O: 'static, P: 'static>(
            token: Token,
            op: <Self as Runtime>::Op<O>,
            f: impl FnOnce(O) -> P + Send + 'static,
        ) -> <Self as Runtime>::Op<P>
        where
            Self: Runtime;

        /// `op`, its output made into a value of this runtime by `f` (a
        /// handle, from an accepted or opened fd).
        fn map_with_of<O: 'static, T: 'static>(
            &self,
            token: Token,
            op: <Self as Runtime>::Op<O>,
            f: impl FnOnce(&Self, O) -> io::Result<T> + Send + 'static,
        ) -> <Self as Runtime>::Op<io::Result<T>>
        where
            Self: Runtime;

        /// Asks the kernel to cancel `op`, in place (see [`Op::cancel`]).
        fn cancel_of<O: 'static>(token: Token, op: &mut <Self as Runtime>::Op<O>)
        where
            Self: Runtime;

        /// A multishot accept on the listening socket `fd` (Linux 5.19).
        fn accept_multi_of(&self, token: Token, fd: OpFd) -> Self::Multi<OwnedFd>;

        /// The next item of `multi`, or `None` when it has ended.
        fn poll_multi<T: 'static>(
            token: Token,
            multi: &mut Self::Multi<T>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<io::Result<T>>>;

        /// Asks the kernel to end `multi` (what it produced still comes).
        fn cancel_multi<T: 'static>(token: Token, multi: &mut Self::Multi<T>);
    }
}

use sealed::Token;

impl Runtime for Proactor {
    type Op<O: 'static> = Op<O>;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        crate::block_on(future)
    }
}

impl sealed::Sealed for Proactor {
    type Multi<T: 'static> = Multi<T>;

    fn op_of<O: 'static>(&self, _: Token, entry: Entry, finish: Finisher<O>) -> Op<O> {
        Op {
            shared: crate::op::OpShared::new(crate::drive::shared_ref(&self.shared)),
            entry,
            stage: crate::op::Stage::New,
            finish: Some(finish),
            waker: (0, 0),
        }
    }

    fn failed_of<O: 'static>(&self, token: Token, error: io::Error, finish: Finisher<O>) -> Op<O> {
        let mut op = self.op_of(token, ring_io_ops::Nop::new().build(), finish);
        op.stage = crate::op::Stage::Failed(error);
        op
    }

    fn probe_of(&self, _: Token) -> &Probe {
        &self.shared.probe
    }

    fn owns_of(&self, _: Token, buf: &crate::FixedBuf) -> bool {
        self.shared
            .fixed
            .as_ref()
            .is_some_and(|pool| buf.is_from(pool))
    }

    fn map_of<O: 'static, P: 'static>(
        _: Token,
        op: Op<O>,
        f: impl FnOnce(O) -> P + Send + 'static,
    ) -> Op<P> {
        op.map(f)
    }

    fn map_with_of<O: 'static, T: 'static>(
        &self,
        _: Token,
        op: Op<O>,
        f: impl FnOnce(&Self, O) -> io::Result<T> + Send + 'static,
    ) -> Op<io::Result<T>> {
        // The clone lives in the op: dropped in flight, it is released on
        // the driving thread when the CQE arrives (see `Proactor`'s
        // "Clones").
        let p = self.clone();
        op.map(move |out| f(&p, out))
    }

    fn cancel_of<O: 'static>(_: Token, op: &mut Op<O>) {
        op.request_cancel();
    }

    fn accept_multi_of(&self, _: Token, fd: OpFd) -> Multi<OwnedFd> {
        self.accept_multi(fd)
    }

    fn poll_multi<T: 'static>(
        _: Token,
        multi: &mut Multi<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<T>>> {
        multi.poll_next(cx)
    }

    fn cancel_multi<T: 'static>(_: Token, multi: &mut Multi<T>) {
        multi.cancel();
    }
}

impl Runtime for LocalProactor {
    type Op<O: 'static> = LocalOp<O>;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        LocalProactor::block_on(self, future)
    }
}

impl sealed::Sealed for LocalProactor {
    type Multi<T: 'static> = LocalMulti<T>;

    fn op_of<O: 'static>(&self, _: Token, entry: Entry, finish: Finisher<O>) -> LocalOp<O> {
        LocalOp::new(self.inner.clone(), entry, finish)
    }

    fn failed_of<O: 'static>(
        &self,
        token: Token,
        error: io::Error,
        finish: Finisher<O>,
    ) -> LocalOp<O> {
        let mut op = self.op_of(token, ring_io_ops::Nop::new().build(), finish);
        op.stage = LStage::Failed(error);
        op
    }

    fn probe_of(&self, _: Token) -> &Probe {
        &self.inner.probe
    }

    fn owns_of(&self, _: Token, buf: &crate::FixedBuf) -> bool {
        self.inner
            .fixed
            .as_ref()
            .is_some_and(|pool| buf.is_from(pool))
    }

    fn map_of<O: 'static, P: 'static>(
        _: Token,
        op: LocalOp<O>,
        f: impl FnOnce(O) -> P + Send + 'static,
    ) -> LocalOp<P> {
        op.map(f)
    }

    fn map_with_of<O: 'static, T: 'static>(
        &self,
        _: Token,
        op: LocalOp<O>,
        f: impl FnOnce(&Self, O) -> io::Result<T> + Send + 'static,
    ) -> LocalOp<io::Result<T>> {
        // A weak reference: an op dropped in flight leaves its finishing
        // closure in the LocalProactor's slot table until the CQE, and a
        // strong one there would keep the LocalProactor alive with nobody
        // left to drive it (a cycle). While the op lives it holds the
        // LocalProactor, so the upgrade fails only for an op dropped in
        // flight, whose output nobody takes.
        let weak = OnThread::new(Rc::downgrade(&self.inner));
        op.map(move |out| match weak.into_inner().upgrade() {
            Some(inner) => f(&LocalProactor { inner }, out),
            None => {
                drop(out);
                Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the LocalProactor was dropped",
                ))
            }
        })
    }

    fn cancel_of<O: 'static>(_: Token, op: &mut LocalOp<O>) {
        op.request_cancel();
    }

    fn accept_multi_of(&self, _: Token, fd: OpFd) -> LocalMulti<OwnedFd> {
        self.accept_multi(fd)
    }

    fn poll_multi<T: 'static>(
        _: Token,
        multi: &mut LocalMulti<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<T>>> {
        multi.poll_next(cx)
    }

    fn cancel_multi<T: 'static>(_: Token, multi: &mut LocalMulti<T>) {
        multi.cancel();
    }
}

/// A handle's constructor takes its runtime as a `&impl AsRef<R>`: a
/// reference to the Proactor, or to what holds one (an `Arc<Proactor>`,
/// ...).
impl AsRef<Proactor> for Proactor {
    fn as_ref(&self) -> &Proactor {
        self
    }
}

/// A handle's constructor takes its runtime as a `&impl AsRef<R>`: a
/// reference to the LocalProactor, or to what holds one (an
/// `Rc<LocalProactor>`, ...).
impl AsRef<LocalProactor> for LocalProactor {
    fn as_ref(&self) -> &LocalProactor {
        self
    }
}

/// Another handle to the same LocalProactor (an `Rc`): the last one
/// dropped, with the last op, shuts it down. The handles of
/// [`fs`](crate::fs) and [`net`](crate::net) hold one each.
///
/// ```
/// use ring_io_proactor::{LocalProactor, ProactorConfig};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let clone = p.clone();
/// drop(p);
/// clone.nop().wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl Clone for LocalProactor {
    fn clone(&self) -> Self {
        LocalProactor {
            inner: self.inner.clone(),
        }
    }
}

impl<O: 'static> LocalOp<O> {
    /// The op, its output passed through `f` when it completes (on this
    /// thread: where the op is polled, or where the LocalProactor reaps
    /// the CQE of an op dropped in flight, whose output is then dropped).
    pub(crate) fn map<P: 'static>(mut self, f: impl FnOnce(O) -> P + Send + 'static) -> LocalOp<P> {
        let finish = self.finish.take().expect("an op not yet completed");
        let stage = std::mem::replace(&mut self.stage, LStage::Finished);
        LocalOp {
            inner: self.inner.clone(),
            entry: self.entry,
            stage,
            finish: Some(finish.map(f)),
        }
        // `self` is dropped with nothing left to release.
    }
}

/// A value that stays on the thread that made it but may ride in a `Send`
/// closure: the finishing closure of a [`LocalOp`], which never leaves the
/// LocalProactor's thread (it lives in the op or in the LocalProactor's
/// slot table, neither `Send`), must be `Send` only because the
/// [`Proactor`]'s are. It is taken or dropped on its own thread only:
/// elsewhere, taking it panics and dropping it leaks it, untouched.
pub(crate) struct OnThread<T> {
    value: ManuallyDrop<T>,
    thread: usize,
}

/// What tells the live threads apart: the address of a thread-local (one
/// that has no destructor, so reading it never fails, even while the
/// thread's destructors run).
fn thread_mark() -> usize {
    thread_local! {
        static MARK: u8 = const { 0 };
    }
    MARK.with(|mark| std::ptr::from_ref(mark) as usize)
}

impl<T> OnThread<T> {
    pub(crate) fn new(value: T) -> Self {
        OnThread {
            value: ManuallyDrop::new(value),
            thread: thread_mark(),
        }
    }

    /// The value.
    ///
    /// # Panics
    ///
    /// On another thread than the one that made it.
    pub(crate) fn into_inner(self) -> T {
        assert_eq!(
            thread_mark(),
            self.thread,
            "a LocalProactor's value used on another thread"
        );
        let mut this = ManuallyDrop::new(self);
        // SAFETY: taken once: `this` is never dropped, and its value is not
        // used again.
        unsafe { ManuallyDrop::take(&mut this.value) }
    }
}

impl<T> Drop for OnThread<T> {
    fn drop(&mut self) {
        if thread_mark() == self.thread {
            // SAFETY: dropped once, here; `into_inner` forgets `self`.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
        // On another thread: leaked, never touched there.
    }
}

// SAFETY: the value is only used (taken or dropped) on the thread that
// made it, checked at each use; on another thread it is never touched. No
// two threads use it, as `T: !Send` requires. (A thread's mark is unique
// among the live threads; a dead thread's may be reused, but a dead thread
// uses nothing any more.)
unsafe impl<T> Send for OnThread<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_thread_is_taken_and_dropped_on_its_thread_only() {
        let rc = Rc::new(());
        let here = OnThread::new(rc.clone());
        assert_eq!(Rc::strong_count(&here.into_inner()), 2);
        drop(OnThread::new(rc.clone()));
        assert_eq!(Rc::strong_count(&rc), 1, "dropped on its thread");
        // Elsewhere: leaked, never touched (a counter that is `Send` here,
        // to see it from this thread).
        let counted = std::sync::Arc::new(());
        let away = OnThread::new(counted.clone());
        std::thread::spawn(move || drop(away)).join().unwrap();
        assert_eq!(std::sync::Arc::strong_count(&counted), 2, "leaked");
        let away = OnThread::new(counted.clone());
        let taken = std::thread::spawn(move || away.into_inner()).join();
        assert!(taken.is_err(), "taking it elsewhere panics");
        assert_eq!(std::sync::Arc::strong_count(&counted), 3, "leaked again");
        // The two references leaked on purpose are given back, so that the
        // counter is freed (LeakSanitizer runs this test in CI).
        for _ in 0..2 {
            // SAFETY: each of the two leaked references counted in the
            // strong count is never used again (their `OnThread`s are
            // gone); `counted` keeps the allocation alive meanwhile.
            unsafe { std::sync::Arc::decrement_strong_count(std::sync::Arc::as_ptr(&counted)) };
        }
        assert_eq!(std::sync::Arc::strong_count(&counted), 1);
    }
}
