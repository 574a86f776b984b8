//! [`Op`]: the future of one request: submission (credit, slots, linked
//! chains), completion, and what dropping it at each stage does.

#[cfg(doc)]
use crate::Proactor;
use std::fmt;
use std::future::Future;
use std::io::{self};
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::task::{Context, Poll, Waker};

use ring_io_ops::Entry;

use crate::drive::block_on;
use crate::state::*;

pub(crate) use crate::finish::{Finish, Finisher};

mod submit;
pub(crate) use submit::*;

pub enum Stage {
    /// Not yet polled.
    New,
    /// Not yet polled, and submitted then whatever the budget says: a
    /// timer of [`Op::timeout`], which must run while its op holds the last
    /// credit (it holds one too, going over `max_in_flight` by at most one
    /// per timed op).
    Unbudgeted,
    /// Waiting for credit with this ticket.
    Credit(u64),
    /// In the Proactor (queued or in the ring) with this `user_data`.
    Submitted(u64),
    /// Fails with this error when polled.
    Failed(io::Error),
    /// The output was returned.
    Finished,
}

/// An operation of a [`Proactor`]: a `Future` of its output (the result
/// and the buffers moved in), usable on any executor, or
/// [`wait`](Op::wait)ed on. Submitted when first polled.
///
/// # Dropping and cancelling
///
/// Dropping an op before it completes is always safe: the request is
/// cancelled, and its buffers and files stay with the Proactor until the
/// kernel is done with them (then they are freed or closed). But what the
/// request did before the cancellation reached it is lost with it: the
/// bytes a receive or read had taken from a socket or pipe (they are no
/// longer there to read), the connection an accept had taken (closed), the
/// file an open had opened (closed). A write or send may have happened.
/// Dropping is how a `select!` or a timeout combinator of another crate
/// ends an op, so those can lose data the same way.
///
/// To end an op without losing anything, [`cancel`](Op::cancel) it and
/// keep waiting on it: it completes with `ECANCELED` if the kernel
/// cancelled it, or with its own output if it had completed first.
/// [`Op::timeout`] does that when a time has passed.
#[must_use = "an op does nothing until it is polled or waited on"]
pub struct Op<O: 'static> {
    pub(crate) shared: OpShared,
    pub(crate) entry: Entry,
    pub(crate) stage: Stage,
    pub(crate) finish: Option<Finisher<O>>,
    /// The waker stored in the op's slot, as [`waker_id`] shows it (none
    /// until one is): a poll with the same one needs no lock.
    pub(crate) waker: WakerId,
}

/// An op's reference to its Proactor: an `Arc` that the op's drop hands
/// on to `drive::keep_shared`. Not `Clone` (as a `ManuallyDrop` of it
/// would be, a clone then never dropped): `.clone()` clones the `Arc`,
/// through `Deref`.
pub(crate) struct OpShared(ManuallyDrop<Arc<Shared>>);

impl OpShared {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        OpShared(ManuallyDrop::new(shared))
    }
}

impl std::ops::Deref for OpShared {
    type Target = Arc<Shared>;

    fn deref(&self) -> &Arc<Shared> {
        &self.0
    }
}

/// What tells wakers apart (their data and vtable pointers, as
/// `Waker::will_wake` compares them), without a clone; `(0, 0)`: none.
pub(crate) type WakerId = (usize, usize);

/// The [`WakerId`] of `waker`.
pub(crate) fn waker_id(waker: &Waker) -> WakerId {
    (
        waker.data() as usize,
        std::ptr::from_ref(waker.vtable()) as usize,
    )
}

impl<O: 'static> Op<O> {
    /// Queues the op for the kernel now rather than when first polled, if
    /// the budget has room (otherwise it is queued when polled, as usual).
    ///
    /// Like every Rust future an op does nothing until polled, so
    /// `let a = p.read(..); let b = p.read(..);` then `a.wait()` and
    /// `b.wait()` runs the reads one after the other. Started, they run
    /// together:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ring_io_proactor::{Proactor, ProactorConfig};
    /// let p = Proactor::new(ProactorConfig::new(16))?;
    /// let zero = Arc::new(std::fs::File::open("/dev/zero")?);
    /// let reads: Vec<_> = (0..8)
    ///     .map(|i| p.read(&zero, Vec::with_capacity(512), i * 512).start())
    ///     .collect();
    /// for read in reads {
    ///     assert_eq!(read.wait().0?, 512);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// A started op can no longer be [`link`](Op::link)ed: linking it runs
    /// it unlinked and fails the ops it was linked with (`InvalidInput`).
    pub fn start(mut self) -> Self {
        if let Stage::New = self.stage {
            if let Poll::Ready(Err(e)) =
                submit(&self.shared, &mut [(self.entry, &mut self.stage)], None)
            {
                self.stage = Stage::Failed(e);
            }
        }
        self
    }

    /// Blocks the calling thread until the op completes.
    pub fn wait(self) -> O {
        block_on(self)
    }

    pub(crate) fn complete(&mut self, res: io::Result<u32>, flags: u32) -> O {
        self.stage = Stage::Finished;
        self.finish
            .take()
            .expect("an op completes once")
            .call(res, flags)
    }
}

impl<O: 'static> Unpin for Op<O> {}

impl<O: 'static> Future for Op<O> {
    type Output = O;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        self.poll_raw(cx).map(|(out, _)| out)
    }
}

impl<O: 'static> Op<O> {
    /// Polls the op: its output and the raw result it was made from (the
    /// CQE's `res`, or the negated errno of a failure before the kernel).
    ///
    /// The stage is matched in place, never taken out: a waker whose
    /// clone panics (user code) leaves the op `Submitted`, so dropping it
    /// then cancels the request and keeps its buffers until the kernel is
    /// done with them.
    #[inline(always)]
    pub(crate) fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        let this = self;
        let ud = match this.stage {
            Stage::Submitted(ud) => ud,
            Stage::New | Stage::Unbudgeted | Stage::Credit(_) => return this.poll_new(cx),
            Stage::Failed(_) | Stage::Finished => return this.poll_done(),
        };
        // Without the lock: a completion the driver published (not one
        // that may go to the kernel again, see `resubmits`, nor one whose
        // submitter may have exited, see `exit_failed`), or nothing yet and
        // the same waker as the slot's.
        let cells = &this.shared.cells;
        match cells.completion(ud as u32, (ud >> 32) as u32) {
            Some((res, flags)) if res != -libc::ECANCELED && res != -libc::EFAULT => {
                give_back(cells, ud as u32);
                return Poll::Ready((this.complete(result(res), flags), res));
            }
            None if this.waker == waker_id(cx.waker())
                && !this.shared.panicked.load(Ordering::Acquire) =>
            {
                crate::drive::note_pending(&this.shared);
                return Poll::Pending;
            }
            _ => {}
        }
        this.poll_locked(ud, cx)
    }

    /// [`poll_raw`](Op::poll_raw) of an op not yet submitted (new or
    /// waiting for credit): a call of its own, so the far more frequent
    /// poll of a submitted op keeps a small frame.
    #[inline(never)]
    fn poll_new(&mut self, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        let this = self;
        // Borrowed, not cloned: the count shares a cache line's traffic
        // with every other op and the thread.
        let shared = &this.shared;
        let mut stored = (0, 0);
        match submit_one(
            shared,
            &this.entry,
            &mut this.stage,
            cx.waker(),
            &mut stored,
        ) {
            Poll::Ready(Err(e)) => {
                let res = -e.raw_os_error().unwrap_or(0);
                Poll::Ready((this.complete(Err(e), 0), res))
            }
            Poll::Ready(Ok(())) => {
                // In its slot now, with a clone of this waker: the clone's
                // identity, not this one's (a clone may have another data
                // pointer, and this waker's may be another's once it is
                // dropped).
                this.waker = stored;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// [`poll_raw`](Op::poll_raw) of a failed or finished op.
    #[cold]
    fn poll_done(&mut self) -> Poll<(O, i32)> {
        match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::Failed(e) => {
                let res = -e.raw_os_error().unwrap_or(0);
                Poll::Ready((self.complete(Err(e), 0), res))
            }
            _ => panic!("an Op polled after it completed"),
        }
    }

    /// [`poll_raw`](Op::poll_raw) of a submitted op, under the lock: its
    /// completion, one that goes to the kernel again, a new waker, or a
    /// panicked thread.
    #[inline(never)]
    fn poll_locked(&mut self, ud: u64, cx: &mut Context<'_>) -> Poll<(O, i32)> {
        let this = self;
        // A waker cloned with the lock released (cloning one is
        // user code), stored on the second pass.
        let mut fresh: Option<Waker> = None;
        loop {
            let mut st = this.shared.lock();
            let thread_panicked = st.panicked;
            let last_exit = st.last_exit;
            let slot = st.slot(ud).expect("a submitted op keeps its slot");
            let born = slot.born;
            match &mut slot.state {
                SlotState::Done(res, flags) => {
                    let res = State::exit_failed(last_exit, born, *res);
                    let flags = *flags;
                    // Credit waiters to wake (usually none: no
                    // allocation).
                    let mut wakers = Vec::new();
                    let old = st.release_slot(ud, &mut wakers);
                    // `Done` owns nothing (no call to the drop glue).
                    debug_assert!(matches!(old, SlotState::Done(..)));
                    std::mem::forget(old);
                    let again = st.resubmits(born, this.entry.opcode(), res);
                    // The slot is gone: so is the stage, before any user
                    // code runs (a drop of the op then finds no slot to
                    // cancel, and the kernel is done with its buffers).
                    this.stage = if again { Stage::New } else { Stage::Finished };
                    drop(st);
                    if !wakers.is_empty() {
                        wake_all(&mut wakers);
                    }
                    drop(fresh);
                    if again {
                        // Failed unrun because the thread that
                        // submitted it exited: it goes again.
                        return this.poll_raw(cx);
                    }
                    return Poll::Ready((this.complete(result(res), flags), res));
                }
                SlotState::Waiting(_) if thread_panicked => {
                    drop(st);
                    panicked(this.finish.take())
                }
                SlotState::Waiting(waker) => {
                    if waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        drop(st);
                        drop(fresh);
                        this.waker = waker_id(cx.waker());
                        crate::drive::note_pending(&this.shared);
                        return Poll::Pending;
                    }
                    if let Some(new) = fresh.take() {
                        this.waker = waker_id(&new);
                        let old = waker.replace(new);
                        drop(st);
                        drop(old);
                        crate::drive::note_pending(&this.shared);
                        return Poll::Pending;
                    }
                    drop(st);
                    fresh = Some(cx.waker().clone());
                }
                SlotState::Free
                | SlotState::Orphan(..)
                | SlotState::Reaped
                | SlotState::Stream(..) => {
                    unreachable!("a live op's slot is neither free nor orphaned")
                }
            }
        }
    }
}

/// A dropped op's finishing closure: a result it will never deliver is
/// turned into its output and dropped, releasing what the result carries
/// (an opened or accepted fd, the buffers).
pub(crate) struct OpRelease<O>(pub(crate) Option<Finisher<O>>);

impl<O: 'static> Release for OpRelease<O> {
    fn release(&mut self, res: i32, flags: u32) {
        if let Some(finish) = self.0.take() {
            drop(finish.call(result(res), flags));
        }
    }
}

impl<O: 'static> Drop for Op<O> {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used after.
        let shared = unsafe { ManuallyDrop::take(&mut self.shared.0) };
        if matches!(self.stage, Stage::Finished) && self.finish.is_none() {
            // The common case: the output was returned, nothing is left.
            crate::drive::keep_shared(shared);
            return;
        }
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        let finish = self.finish.take();
        abandon(
            &shared,
            stage,
            finish.map(|f| Box::new(OpRelease(Some(f))) as Box<dyn Release>),
        );
    }
}

/// Drops an op or stream at `stage`. Submitted: results that arrived and
/// were never taken are released through `resources` (an fd is closed); if
/// the kernel is done with the request, `resources` are dropped now; if the
/// thread panicked, they are leaked (nothing will reap the CQE); otherwise
/// they move into the slot, released when the last CQE arrives, and a
/// cancellation is queued. Waiting for credit: it leaves the queue, passing
/// on a wake-up it was given. All user code (the resources' drops, wakers)
/// runs after the lock is released.
pub(crate) fn abandon(shared: &Shared, stage: Stage, resources: Option<Box<dyn Release>>) {
    let mut grave = Graveyard::default();
    match stage {
        Stage::Submitted(ud) => {
            let mut st = shared.lock();
            let thread_panicked = st.panicked;
            let slot = st.slot(ud).expect("a submitted op keeps its slot");
            let (arrived, ended) = match &mut slot.state {
                SlotState::Done(res, flags) => (vec![(*res, *flags)], true),
                SlotState::Stream(stream) => (
                    std::mem::take(&mut stream.cqes).into_iter().collect(),
                    stream.ended,
                ),
                _ => (Vec::new(), false),
            };
            if ended {
                // The kernel is done: release what arrived, free the slot.
                st.finish(ud, &mut grave);
                drop(st);
                if let Some(resources) = resources {
                    grave.orphans.push((resources, arrived));
                }
                grave.bury();
                return;
            }
            if thread_panicked {
                drop(st);
                std::mem::forget(resources);
                return;
            }
            let resources = resources.expect("a submitted op owns its resources");
            let old = std::mem::replace(
                &mut slot.state,
                SlotState::Orphan(Box::new((resources, arrived))),
            );
            grave.keep(old);
            request_cancel(shared, st, ud);
        }
        Stage::Credit(ticket) => {
            let mut st = shared.lock();
            let own = st.credit_waiters.remove(&ticket);
            // Granted credit it will never take goes on to the next
            // waiters; so does credit it held them from as the first in
            // the queue (a chain that needed more than there was, with
            // ops behind it that fit: nothing else would wake them until
            // some request completed, if any ever did).
            let mut next = Vec::new();
            if own.is_none() {
                st.take_grant(ticket);
            }
            st.grant(&mut next);
            drop(st);
            if let Some((own, _)) = own {
                run_user(|| drop(own));
            }
            wake_all(&mut next);
            drop(resources);
        }
        Stage::New | Stage::Unbudgeted | Stage::Failed(_) | Stage::Finished => drop(resources),
    }
    grave.bury();
}

impl<O: 'static> fmt::Debug for Op<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::New | Stage::Unbudgeted => "new",
            Stage::Credit(_) => "waiting for credit",
            Stage::Submitted(_) => "submitted",
            Stage::Failed(_) => "failed",
            Stage::Finished => "finished",
        };
        f.debug_struct("Op")
            .field("opcode", &self.entry.opcode())
            .field("stage", &stage)
            .finish()
    }
}

pub(crate) fn shut_down(panicked: bool) -> io::Error {
    let what = if panicked {
        "the proactor's thread panicked"
    } else {
        "the proactor has shut down"
    };
    io::Error::new(io::ErrorKind::NotConnected, what)
}

/// What an op or stream still in the kernel does when the thread has
/// panicked: its output would carry buffers the kernel may still write, so
/// it leaks them and panics too (as a poisoned lock would).
pub(crate) fn panicked(resources: impl Sized) -> ! {
    std::mem::forget(resources);
    panic!(
        "the Proactor's thread panicked while this op was in flight; \
         its buffers are leaked, not freed, as the kernel may still use them"
    )
}

/// Asks the kernel to cancel the request `ud`, whose last CQE has not
/// arrived, unless that was asked already; never submitted again after
/// (its `ECANCELED` is this cancellation's).
pub(crate) fn request_cancel(shared: &Shared, mut st: MutexGuard<'_, State>, ud: u64) {
    assert!(
        st.slot(ud).is_some(),
        "a request being cancelled keeps its slot"
    );
    if st.ask_cancel(ud) {
        shared.note_activity(&mut st);
    }
    kick(shared, st, false);
}

/// Work of a thread that drives next was queued (or pushed) under `st`:
/// true if the fallback thread is to be woken (after unlocking) to watch.
/// That thread's future may block in user code before it turns (on
/// another thread that waits for this very op), holding the token in a
/// step out of its `block_on`, or before it took the token: the fallback
/// thread takes the token over once the holder stays out, or takes the
/// free token once nobody took it for a grace period (see
/// `drive::fallback`), but only if it looks. It looks every `STUCK` while
/// a holder has work and every `GRACE` after a caller drove; one asleep
/// without a timeout is woken once, told a caller drives: it then looks
/// with a timeout, and, woken only for this, leaves the work to that
/// caller for `KICK_PATIENCE` (see `State::kick_watch`).
///
/// With an external driver (the tokio drive task) attached, which takes
/// the token over from a holder stepped out but is told only of work
/// nobody drives: the fallback thread is woken (if it sleeps untimed)
/// when the holder is out, to take it over for a turn if it stays out, as
/// for others' work; and when nobody holds the token, to wake the
/// external driver for the work once nobody took the token for
/// `KICK_PATIENCE`.
#[inline(always)]
pub(crate) fn watch_holder(shared: &Shared, st: &mut State) -> bool {
    if st.external.is_some() {
        return watch_beside_external(shared, st);
    }
    // The caller may be about to take the token (see `caller_coming`).
    let free = st.owner.is_none();
    st.caller_coming |= free;
    let watch = st.fallback_idle && !st.fallback_timed;
    st.caller_drove |= free || watch;
    if watch {
        // Being woken: no more wake-ups until it sleeps again (it sets
        // both flags before each sleep). It only breaks a deadlock here:
        // patient (see `State::kick_watch`).
        st.fallback_idle = false;
        st.kick_watch = true;
    }
    watch
}

/// [`watch_holder`] with an external driver attached.
#[cold]
fn watch_beside_external(shared: &Shared, st: &mut State) -> bool {
    let free = st.owner.is_none();
    if free {
        st.kick_watch = true;
    }
    let out = crate::drive::holder_out(shared, st).is_some();
    let watch = (free || out) && st.fallback_idle && !st.fallback_timed;
    if watch {
        st.fallback_idle = false;
    }
    watch
}

/// Work was queued under `st`: makes sure a driver sees it. A driver
/// sleeping in the kernel is woken (the eventfd); with no driver, an
/// external driver waiting for work is (`State::external`), else the idle
/// fallback thread, unless this thread drives next (`will_drive`) or the
/// fallback is in a grace period after a caller drove (it looks at the work
/// by itself when the period ends).
#[inline(always)]
pub(crate) fn kick(shared: &Shared, mut st: MutexGuard<'_, State>, will_drive: bool) {
    let sleeping = st.take_sleeping(shared);
    if will_drive {
        // This thread drives next: only a driver sleeping in the kernel
        // (another thread's turn) is to be woken, and the fallback thread
        // if it sleeps without a timeout (see `watch_holder`).
        let watch = watch_holder(shared, &mut st);
        drop(st);
        if sleeping {
            shared.wake_driver();
        }
        if watch {
            shared.idle.notify_one();
        }
        return;
    }
    // Work of others: the fallback thread watches with its usual grace.
    st.kick_watch = false;
    // A holder running user code between its turns (see
    // `drive::step_out`) may take long: the fallback thread looks, and
    // takes the token over if it stays out (`sleeping` may be left over
    // from the holder's last wait).
    let out = st.owner.is_some()
        && shared
            .handover
            .out
            .load(std::sync::atomic::Ordering::Relaxed)
            != 0;
    let free = (!sleeping && st.owner.is_none()) || out;
    let mut external = None;
    let idle = if st.external.is_some() {
        if free {
            external = st.external_waker();
        }
        // The external driver runs user code stepped out: the fallback
        // thread watches in case it stays out (see `drive::fallback`).
        out && st.fallback_idle && !st.fallback_timed
    } else {
        // With a holder (not out), the fallback is woken too if it sleeps
        // without a timeout: it then watches the holder, which may step
        // out for long while this op is in flight (see `drive::fallback`).
        (free || st.owner.is_some()) && st.fallback_idle && !st.fallback_timed
    };
    drop(st);
    if sleeping {
        shared.wake_driver();
    }
    if idle {
        shared.idle.notify_one();
    }
    if let Some(waker) = external {
        run_user(|| waker.wake());
    }
}
