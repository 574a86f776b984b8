//! Linked chains of ops (`IOSQE_IO_LINK`): [`Link`] and [`Linkable`].

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ring_io_ops::Entry;

use crate::drive::block_on;
use crate::op::{Op, Stage, submit};
use crate::state::Shared;

/// Ops in a chain: what [`Op::link`] and [`Link::link`] accept (an [`Op`],
/// or a [`Link`] of them). Sealed: implemented by this crate only.
pub trait Linkable: Part {}

impl<O: 'static> Linkable for Op<O> {}
impl<A: Linkable, B: Linkable> Linkable for Link<A, B> {}

mod part {
    use super::*;

    /// How a chain is taken apart to be submitted whole and completed.
    /// (`pub` in a private module: nameable by no one outside the crate,
    /// which seals [`Linkable`].)
    #[allow(unreachable_pub, reason = "the sealed-trait pattern")]
    pub trait Part: Unpin {
        /// What the part completes with.
        type Out;
        fn shared(&self) -> &Arc<Shared>;
        /// The part's (first) op has been queued: the chain is in flight.
        fn queued(&self) -> bool;
        /// Each op's entry and stage, in chain order.
        fn collect<'a>(&'a mut self, out: &mut Vec<(Entry, &'a mut Stage)>);
        /// Every op of the part will complete with (a copy of) `error`.
        fn fail(&mut self, error: &io::Error);
        /// Every op of the part not yet submitted (nor failed) will
        /// complete with (a copy of) `error`.
        fn fail_new(&mut self, error: &io::Error);
        /// Whether every op of the part is new (never polled or started)
        /// and from the Proactor `shared`.
        fn all_new(&self, shared: &Arc<Shared>) -> bool;
        /// Whether an op of the part has failed before reaching the kernel.
        fn any_failed(&self) -> bool;
        /// Polls the ops of a queued (or failed) part.
        fn poll_part(&mut self, cx: &mut Context<'_>) -> Poll<Self::Out>;
    }
}
use part::Part;

impl<O: 'static> Part for Op<O> {
    type Out = O;

    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn queued(&self) -> bool {
        !matches!(self.stage, Stage::New | Stage::Credit(_))
    }

    fn collect<'a>(&'a mut self, out: &mut Vec<(Entry, &'a mut Stage)>) {
        out.push((self.entry, &mut self.stage));
    }

    fn fail(&mut self, error: &io::Error) {
        self.stage = Stage::Failed(copy(error));
    }

    fn fail_new(&mut self, error: &io::Error) {
        if let Stage::New = self.stage {
            self.fail(error);
        }
    }

    fn all_new(&self, shared: &Arc<Shared>) -> bool {
        matches!(self.stage, Stage::New) && Arc::ptr_eq(&self.shared, shared)
    }

    fn any_failed(&self) -> bool {
        matches!(self.stage, Stage::Failed(_))
    }

    fn poll_part(&mut self, cx: &mut Context<'_>) -> Poll<O> {
        Pin::new(self).poll(cx)
    }
}

/// Ops linked into a chain (`IOSQE_IO_LINK`): each op starts only after
/// the one before it succeeds, and fails with `ECANCELED` if it does not
/// (a short read or write counts as a failure). Made by [`Op::link`] and
/// extended by [`Link::link`]: `a.link(b).link(c)` is a chain of three,
/// completing with `((a_out, b_out), c_out)`.
///
/// The whole chain is queued at once, taking CQ credit for all its ops,
/// and pushed to the SQ in one piece (a submit in the middle of a chain
/// would cut it). A chain longer than the Proactor's budget or SQ fails at
/// once with `InvalidInput`. Dropping it drops (and cancels) each op.
///
/// A chain that cannot be linked is never submitted, and each of its ops
/// not yet submitted fails (none panics): if one of its ops already failed
/// (`p.open("a\0b", ..)`), with `ECANCELED`, as the kernel fails the rest of
/// a chain; if an op was started or polled on its own (it runs unlinked, and
/// completes as usual) or the ops come from different Proactors, with
/// `InvalidInput`.
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
pub struct Link<A: Linkable, B: Linkable> {
    first: A,
    second: B,
    a: Option<A::Out>,
    b: Option<B::Out>,
}

impl<O: 'static> Op<O> {
    /// Links `next` (an op or a chain) after this op: it runs only if this
    /// op succeeds. Both must come from the same Proactor, and neither may
    /// have been started or polled: otherwise the chain is not submitted
    /// (see [`Link`]).
    pub fn link<N: Linkable>(self, next: N) -> Link<Self, N> {
        Link::new(self, next)
    }
}

impl<A: Linkable, B: Linkable> Link<A, B> {
    fn new(mut first: A, mut second: B) -> Self {
        let shared = first.shared().clone();
        if !first.all_new(&shared) || !second.all_new(&shared) {
            let error = if first.any_failed() || second.any_failed() {
                io::Error::from_raw_os_error(libc::ECANCELED)
            } else if !Arc::ptr_eq(&shared, second.shared()) {
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
        }
    }

    /// Links `next` (an op or a chain) after the last op of this chain.
    pub fn link<N: Linkable>(self, next: N) -> Link<Self, N> {
        Link::new(self, next)
    }

    /// Blocks the calling thread until every op of the chain completes.
    pub fn wait(self) -> (A::Out, B::Out) {
        block_on(self)
    }
}

// Nothing in a chain is pinned: its ops are `Unpin`, and the outputs are
// plain values moved out when ready.
impl<A: Linkable, B: Linkable> Unpin for Link<A, B> {}

impl<A: Linkable, B: Linkable> Part for Link<A, B> {
    type Out = (A::Out, B::Out);

    fn shared(&self) -> &Arc<Shared> {
        self.first.shared()
    }

    fn queued(&self) -> bool {
        self.first.queued()
    }

    fn collect<'a>(&'a mut self, out: &mut Vec<(Entry, &'a mut Stage)>) {
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

    fn all_new(&self, shared: &Arc<Shared>) -> bool {
        self.first.all_new(shared) && self.second.all_new(shared)
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

impl<A: Linkable, B: Linkable> Future for Link<A, B> {
    type Output = (A::Out, B::Out);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.queued() {
            let shared = this.shared().clone();
            let mut parts = Vec::new();
            this.collect(&mut parts);
            match submit(&shared, &mut parts, Some(cx.waker())) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => this.fail(&e),
                Poll::Ready(Ok(())) => {}
            }
        }
        this.poll_part(cx)
    }
}

/// A copy of `error` (errno, or kind and message).
fn copy(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

impl<A: Linkable + fmt::Debug, B: Linkable + fmt::Debug> fmt::Debug for Link<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("first", &self.first)
            .field("second", &self.second)
            .finish_non_exhaustive()
    }
}
