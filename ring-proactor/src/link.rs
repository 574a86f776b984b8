//! Linked chains of ops (`IOSQE_IO_LINK`): [`Link`] and [`Linkable`], for
//! both kinds of Proactor (the chain code is written once, over [`Chains`]).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ring_io_ops::Entry;

use crate::drive::block_on;
use crate::local::Inner;
use crate::local::op::LStage;
use crate::op::{Op, Stage, submit};
use crate::state::Shared;
use crate::{LocalOp, LocalProactor, Proactor};

/// Ops in a chain: what [`Op::link`], [`LocalOp::link`] and [`Link::link`]
/// accept (an op, or a [`Link`] of them). Sealed: implemented by this crate
/// only, for [`Op`] and [`Link`]s of them (`Linkable<Runtime = Proactor>`)
/// and for [`LocalOp`] and [`Link`]s of those (`Linkable<Runtime =
/// LocalProactor>`): the ops of a chain all run on one kind of
/// [`Runtime`](crate::Runtime).
pub trait Linkable: Part {}

impl<O: 'static> Linkable for Op<O> {}
impl<O: 'static> Linkable for LocalOp<O> {}
impl<A: Linkable, B: Linkable<Runtime = A::Runtime>> Linkable for Link<A, B> {}

mod part {
    use super::*;

    /// A runtime as a chain sees it: [`Proactor`] or [`LocalProactor`].
    /// (`pub` in a private module: nameable by no one
    /// outside the crate, as [`Part`].)
    #[allow(unreachable_pub, reason = "the sealed-trait pattern")]
    pub trait Chains {
        /// What its ops hold of it.
        type Home: Clone;
        /// An op's stage.
        type Stage;
        /// Whether two ops come from the same Proactor.
        fn same(a: &Self::Home, b: &Self::Home) -> bool;
        /// Whether an op at `stage` was never polled nor started.
        fn is_new(stage: &Self::Stage) -> bool;
        /// Whether an op at `stage` is in the Proactor (or done): neither
        /// new nor waiting for credit.
        fn is_queued(stage: &Self::Stage) -> bool;
        /// Whether an op at `stage` failed before reaching the kernel.
        fn is_failed(stage: &Self::Stage) -> bool;
        /// The stage of an op that fails with `error` when polled.
        fn failed(error: io::Error) -> Self::Stage;
        /// Takes credit for the chain `parts` and pushes it whole (each
        /// entry but the last with `IOSQE_IO_LINK`), or waits for credit
        /// with `waker` (the first part's stage then says so).
        fn submit(
            home: &Self::Home,
            parts: &mut [(Entry, &mut Self::Stage)],
            waker: &Waker,
        ) -> Poll<io::Result<()>>;
        /// Runs `future` to completion, driving the Proactor.
        fn block_on<F: Future>(home: &Self::Home, future: F) -> F::Output;
    }

    /// How a chain is taken apart to be submitted whole and completed.
    /// (`pub` in a private module: nameable by no one outside the crate,
    /// which seals [`Linkable`].)
    #[allow(unreachable_pub, reason = "the sealed-trait pattern")]
    pub trait Part: Unpin {
        /// The kind of Proactor whose ops these are.
        type Runtime: Chains;
        /// What the part completes with.
        type Out;
        /// The Proactor of the part's (first) op.
        fn home(&self) -> &<Self::Runtime as Chains>::Home;
        /// The part's (first) op has been queued: the chain is in flight.
        fn queued(&self) -> bool;
        /// Each op's entry and stage, in chain order.
        fn collect<'a>(
            &'a mut self,
            out: &mut Vec<(Entry, &'a mut <Self::Runtime as Chains>::Stage)>,
        );
        /// Every op of the part will complete with (a copy of) `error`.
        fn fail(&mut self, error: &io::Error);
        /// Every op of the part not yet submitted (nor failed) will
        /// complete with (a copy of) `error`.
        fn fail_new(&mut self, error: &io::Error);
        /// Whether every op of the part is new (never polled or started)
        /// and from the Proactor `home`.
        fn all_new(&self, home: &<Self::Runtime as Chains>::Home) -> bool;
        /// Whether an op of the part has failed before reaching the kernel.
        fn any_failed(&self) -> bool;
        /// Polls the ops of a queued (or failed) part.
        fn poll_part(&mut self, cx: &mut Context<'_>) -> Poll<Self::Out>;
    }

    /// One op, as a chain sees it: [`Op`] and [`LocalOp`].
    #[allow(unreachable_pub, reason = "the sealed-trait pattern")]
    pub trait Single: Future + Unpin {
        /// The kind of Proactor the op comes from.
        type Runtime: Chains;
        fn home(&self) -> &<Self::Runtime as Chains>::Home;
        fn entry(&self) -> Entry;
        fn stage(&self) -> &<Self::Runtime as Chains>::Stage;
        fn stage_mut(&mut self) -> &mut <Self::Runtime as Chains>::Stage;
    }
}
use part::{Chains, Part, Single};

impl<T: Single> Part for T {
    type Runtime = T::Runtime;
    type Out = T::Output;

    fn home(&self) -> &<T::Runtime as Chains>::Home {
        Single::home(self)
    }

    fn queued(&self) -> bool {
        T::Runtime::is_queued(self.stage())
    }

    fn collect<'a>(&'a mut self, out: &mut Vec<(Entry, &'a mut <T::Runtime as Chains>::Stage)>) {
        out.push((self.entry(), self.stage_mut()));
    }

    fn fail(&mut self, error: &io::Error) {
        *self.stage_mut() = T::Runtime::failed(copy(error));
    }

    fn fail_new(&mut self, error: &io::Error) {
        if T::Runtime::is_new(self.stage()) {
            self.fail(error);
        }
    }

    fn all_new(&self, home: &<T::Runtime as Chains>::Home) -> bool {
        T::Runtime::is_new(self.stage()) && T::Runtime::same(Single::home(self), home)
    }

    fn any_failed(&self) -> bool {
        T::Runtime::is_failed(self.stage())
    }

    fn poll_part(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        Pin::new(self).poll(cx)
    }
}

impl<O: 'static> Single for Op<O> {
    type Runtime = Proactor;
    fn home(&self) -> &Arc<Shared> {
        &self.shared
    }
    fn entry(&self) -> Entry {
        self.entry
    }
    fn stage(&self) -> &Stage {
        &self.stage
    }
    fn stage_mut(&mut self) -> &mut Stage {
        &mut self.stage
    }
}

impl<O: 'static> Single for LocalOp<O> {
    type Runtime = LocalProactor;
    fn home(&self) -> &Rc<Inner> {
        &self.inner
    }
    fn entry(&self) -> Entry {
        self.entry
    }
    fn stage(&self) -> &LStage {
        &self.stage
    }
    fn stage_mut(&mut self) -> &mut LStage {
        &mut self.stage
    }
}

impl Chains for Proactor {
    type Home = Arc<Shared>;
    type Stage = Stage;
    fn same(a: &Arc<Shared>, b: &Arc<Shared>) -> bool {
        Arc::ptr_eq(a, b)
    }
    fn is_new(stage: &Stage) -> bool {
        matches!(stage, Stage::New | Stage::Unbudgeted)
    }
    fn is_queued(stage: &Stage) -> bool {
        !matches!(stage, Stage::New | Stage::Unbudgeted | Stage::Credit(_))
    }
    fn is_failed(stage: &Stage) -> bool {
        matches!(stage, Stage::Failed(_))
    }
    fn failed(error: io::Error) -> Stage {
        Stage::Failed(error)
    }
    fn submit(
        home: &Arc<Shared>,
        parts: &mut [(Entry, &mut Stage)],
        waker: &Waker,
    ) -> Poll<io::Result<()>> {
        submit(home, parts, Some(waker))
    }
    fn block_on<F: Future>(_: &Arc<Shared>, future: F) -> F::Output {
        block_on(future)
    }
}

impl Chains for LocalProactor {
    type Home = Rc<Inner>;
    type Stage = LStage;
    fn same(a: &Rc<Inner>, b: &Rc<Inner>) -> bool {
        Rc::ptr_eq(a, b)
    }
    fn is_new(stage: &LStage) -> bool {
        matches!(stage, LStage::New | LStage::Unbudgeted)
    }
    fn is_queued(stage: &LStage) -> bool {
        !matches!(stage, LStage::New | LStage::Unbudgeted | LStage::Credit(_))
    }
    fn is_failed(stage: &LStage) -> bool {
        matches!(stage, LStage::Failed(_))
    }
    fn failed(error: io::Error) -> LStage {
        LStage::Failed(error)
    }
    fn submit(
        home: &Rc<Inner>,
        parts: &mut [(Entry, &mut LStage)],
        waker: &Waker,
    ) -> Poll<io::Result<()>> {
        home.submit_chain(parts, waker)
    }
    fn block_on<F: Future>(home: &Rc<Inner>, future: F) -> F::Output {
        LocalProactor {
            inner: home.clone(),
        }
        .block_on(future)
    }
}

/// Ops linked into a chain (`IOSQE_IO_LINK`): each op starts only after
/// the one before it succeeds, and fails with `ECANCELED` if it does not
/// (a short read or write counts as a failure). Made by [`Op::link`] (or
/// [`LocalOp::link`]) and extended by [`Link::link`]: `a.link(b).link(c)`
/// is a chain of three, completing with `((a_out, b_out), c_out)`. A chain
/// of [`LocalOp`]s is a `Link` too, of the thread's
/// [`LocalProactor`](crate::LocalProactor): ops of the two kinds do not
/// link.
///
/// The whole chain is queued at once, taking credit
/// ([`ProactorConfig::max_in_flight`](crate::ProactorConfig::max_in_flight))
/// for all its ops, and pushed to the SQ in one piece (a submit in the
/// middle of a chain would cut it). A chain longer than the Proactor's
/// budget or SQ fails at once with `InvalidInput`. Dropping it drops (and
/// cancels) each op.
///
/// A chain that cannot be linked is never submitted, and each of its ops
/// not yet submitted fails (none panics): if one of its ops already failed
/// (`p.open("a\0b", ..)`), with `ECANCELED`, as the kernel fails the rest of
/// a chain; if an op was started or polled on its own (it runs unlinked, and
/// completes as usual) or the ops come from different Proactors, with
/// `InvalidInput`. A chain that was polled (even one still waiting for
/// credit) counts as polled: linked again, its first op runs alone and its
/// other ops fail.
///
/// ```
/// # use std::sync::Arc;
/// # use ring_io_proactor::{Proactor, ProactorConfig};
/// let p = Proactor::new(ProactorConfig::new(16))?;
/// let file = Arc::new(tempfile_in_tmp()?);
/// // A short read or write would cancel the rest, so the read goes last.
/// let ((write, sync), read) = p
///     .write(&file, b"chained".to_vec(), 0)
///     .link(p.fsync(&file, true))
///     .link(p.read(&file, Vec::with_capacity(16), 0))
///     .wait();
/// assert_eq!(write.0?, 7);
/// sync?;
/// assert_eq!(read.1, b"chained");
/// # fn tempfile_in_tmp() -> std::io::Result<std::fs::File> {
/// #     let path = std::env::temp_dir().join(format!("ring-link-doc-{}", std::process::id()));
/// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
/// #     std::fs::remove_file(&path)?;
/// #     Ok(f)
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "linked ops do nothing until polled or waited on"]
pub struct Link<A: Linkable, B: Linkable<Runtime = A::Runtime>> {
    first: A,
    second: B,
    a: Option<A::Out>,
    b: Option<B::Out>,
    /// Whether the ops form a chain to submit whole (all were new, of one
    /// Proactor). If not, each op is polled on its own: one in the kernel
    /// already, or waiting for credit (a chain polled, then linked again),
    /// must not be submitted again, nor one that failed.
    whole: bool,
}

impl<O: 'static> Op<O> {
    /// Links `next` (an op or a chain) after this op: it runs only if this
    /// op succeeds. Both must come from the same Proactor, and neither may
    /// have been started or polled: otherwise the chain is not submitted
    /// (see [`Link`]).
    pub fn link<N: Linkable<Runtime = Proactor>>(self, next: N) -> Link<Self, N> {
        Link::new(self, next)
    }
}

impl<O: 'static> LocalOp<O> {
    /// Links `next` (an op or a chain) after this op: it runs only if this
    /// op succeeds, as [`Op::link`]. Both must come from the same
    /// LocalProactor, and neither may have been polled: otherwise the chain
    /// is not submitted (see [`Link`]).
    ///
    /// ```
    /// use ring_io_proactor::{LocalProactor, MsgFlags, ProactorConfig};
    /// use std::{os::unix::net::UnixStream, sync::Arc, time::Duration};
    ///
    /// let p = LocalProactor::new(ProactorConfig::new(16))?;
    /// let (a, b) = UnixStream::pair()?;
    /// let b = Arc::new(b);
    /// // A receive bounded by a linked timeout: nothing comes, it is cancelled.
    /// let ((res, buf), timeout) = p
    ///     .recv(&b, Vec::with_capacity(16), MsgFlags::empty())
    ///     .link(p.link_timeout(Duration::from_millis(5)))
    ///     .wait();
    /// assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    /// assert_eq!(timeout.unwrap_err().raw_os_error(), Some(libc::ETIME));
    /// // A send, then a receive of what it sent, in order, in one submission.
    /// let a = Arc::new(a);
    /// let ((sent, _), (n, buf)) = p
    ///     .send(&a, "linked", MsgFlags::empty())
    ///     .link(p.recv(&b, buf, MsgFlags::empty()))
    ///     .wait();
    /// assert_eq!((sent?, n?), (6, 6));
    /// assert_eq!(buf, b"linked");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn link<N: Linkable<Runtime = LocalProactor>>(self, next: N) -> Link<Self, N> {
        Link::new(self, next)
    }
}

impl<A: Linkable, B: Linkable<Runtime = A::Runtime>> Link<A, B> {
    fn new(mut first: A, mut second: B) -> Self {
        let home = first.home().clone();
        let whole = first.all_new(&home) && second.all_new(&home);
        if !whole {
            let error = if first.any_failed() || second.any_failed() {
                io::Error::from_raw_os_error(libc::ECANCELED)
            } else if !A::Runtime::same(&home, second.home()) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "linked ops must come from the same Proactor",
                )
            } else {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a started or polled op cannot be linked",
                )
            };
            first.fail_new(&error);
            second.fail_new(&error);
        }
        Link {
            first,
            second,
            a: None,
            b: None,
            whole,
        }
    }

    /// Links `next` (an op or a chain) after the last op of this chain.
    pub fn link<N: Linkable<Runtime = A::Runtime>>(self, next: N) -> Link<Self, N> {
        Link::new(self, next)
    }

    /// Blocks the calling thread until every op of the chain completes (a
    /// chain of [`LocalOp`]s: runs the thread's
    /// [`LocalProactor`](crate::LocalProactor) until then, as
    /// [`LocalOp::wait`]).
    pub fn wait(self) -> (A::Out, B::Out) {
        let home = self.home().clone();
        A::Runtime::block_on(&home, self)
    }
}

// Nothing in a chain is pinned: its ops are `Unpin`, and the outputs are
// plain values moved out when ready.
impl<A: Linkable, B: Linkable<Runtime = A::Runtime>> Unpin for Link<A, B> {}

impl<A: Linkable, B: Linkable<Runtime = A::Runtime>> Part for Link<A, B> {
    type Runtime = A::Runtime;
    type Out = (A::Out, B::Out);

    fn home(&self) -> &<A::Runtime as Chains>::Home {
        self.first.home()
    }

    fn queued(&self) -> bool {
        self.first.queued()
    }

    fn collect<'a>(&'a mut self, out: &mut Vec<(Entry, &'a mut <A::Runtime as Chains>::Stage)>) {
        self.first.collect(out);
        self.second.collect(out);
    }

    fn fail(&mut self, error: &io::Error) {
        self.first.fail(error);
        self.second.fail(error);
    }

    fn fail_new(&mut self, error: &io::Error) {
        self.first.fail_new(error);
        self.second.fail_new(error);
    }

    fn all_new(&self, home: &<A::Runtime as Chains>::Home) -> bool {
        self.first.all_new(home) && self.second.all_new(home)
    }

    fn any_failed(&self) -> bool {
        self.first.any_failed() || self.second.any_failed()
    }

    fn poll_part(&mut self, cx: &mut Context<'_>) -> Poll<Self::Out> {
        if self.a.is_none() {
            if let Poll::Ready(a) = self.first.poll_part(cx) {
                self.a = Some(a);
            }
        }
        if self.b.is_none() {
            if let Poll::Ready(b) = self.second.poll_part(cx) {
                self.b = Some(b);
            }
        }
        match (self.a.take(), self.b.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                self.a = a;
                self.b = b;
                Poll::Pending
            }
        }
    }
}

impl<A: Linkable, B: Linkable<Runtime = A::Runtime>> Future for Link<A, B> {
    type Output = (A::Out, B::Out);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.whole && !this.queued() {
            let home = this.home().clone();
            let mut parts = Vec::new();
            this.collect(&mut parts);
            match A::Runtime::submit(&home, &mut parts, cx.waker()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => this.fail(&e),
                Poll::Ready(Ok(())) => {}
            }
        }
        this.poll_part(cx)
    }
}

/// Why a chain is refused whole: longer than the budget or the SQ.
pub(crate) fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a linked chain longer than the Proactor's budget or SQ",
    )
}

/// A copy of `error` (errno, or kind and message).
fn copy(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

impl<A, B> fmt::Debug for Link<A, B>
where
    A: Linkable + fmt::Debug,
    B: Linkable<Runtime = A::Runtime> + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("first", &self.first)
            .field("second", &self.second)
            .finish_non_exhaustive()
    }
}
