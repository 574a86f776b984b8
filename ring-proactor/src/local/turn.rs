//! Driving a [`LocalProactor`]: one turn (submit, maybe wait, reap,
//! dispatch), `block_on`, `park`, `drive`, and the [`LocalUnparker`] that
//! ends a wait from another thread.

use std::cell::Cell;
use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use ring_io_ops::Fd;

use super::wakers::SlotWaker;
use super::{Inner, LSlotState, LState, LocalProactor, StreamSlot};
use crate::driver::{RETRY_FIRST, RETRY_MAX, Wait};
use crate::state::{CANCEL_BIT, Release, WAKE_INDEX, run_user, user_data};
use crate::wake::WakeFlag;

/// What a turn collected to run after its borrow of the state ends.
pub(crate) enum Grave {
    Wake(SlotWaker),
    /// A waker that repeats one woken in the same turn.
    Drop(SlotWaker),
    /// A dropped op's resources, with the CQE to release through them.
    Release(Box<dyn Release>, i32, u32),
    /// A dropped stream's resources, with the CQEs to release through them.
    ReleaseAll(Box<dyn Release>, Vec<(i32, u32)>),
}

/// A completion for the task of `waker` (if any): woken once per turn,
/// however many of its ops completed (ops of one task share its waker). A
/// repeat is dropped after the borrow too: dropping a waker may run user
/// code.
fn wake_once(w: SlotWaker, graves: &mut Vec<Grave>, last_wake: &mut Option<usize>) {
    if matches!(w, SlotWaker::None) {
        return;
    }
    if let Some(Grave::Wake(last)) = last_wake.map(|i| &graves[i]) {
        if w.shares(last) {
            // The very waker the last wake-up holds: dropping this clone
            // is a counter's decrement, no user code.
            return;
        }
        if last.waker().is_some_and(|l| w.will_wake(l)) {
            graves.push(Grave::Drop(w));
            return;
        }
    }
    *last_wake = Some(graves.len());
    graves.push(Grave::Wake(w));
}

/// The completion of a single op whose waker is not the thread's own: a
/// spawned task's is woken now (its task queued) and dropped (neither runs
/// user code); any other goes to [`wake_once`]. (Not inlined: inlined, it
/// made the reap of the own waker's ops 13 instructions dearer.)
#[inline(never)]
fn wake_other(w: SlotWaker, graves: &mut Vec<Grave>, last_wake: &mut Option<usize>) {
    if w.waker().is_some_and(super::task::wake_if_task) {
        drop(w);
    } else {
        wake_once(w, graves, last_wake);
    }
}

pub(crate) fn bury(graves: &mut Vec<Grave>) {
    for grave in graves.drain(..) {
        match grave {
            Grave::Wake(w) => run_user(|| w.wake()),
            Grave::Drop(w) => run_user(|| drop(w)),
            Grave::Release(mut resources, res, flags) => run_user(move || {
                resources.release(res, flags);
                drop(resources);
            }),
            Grave::ReleaseAll(mut resources, cqes) => run_user(move || {
                for (res, flags) in cqes {
                    resources.release(res, flags);
                }
                drop(resources);
            }),
        }
    }
}

/// Room granted to woken waiters that they did not take (an op polled
/// once and then kept, never polled again), passed on: a turn about to
/// `block` in the kernel ends every grant at once (all this thread had to
/// run has run: the woken op is not coming); one that does not block, the
/// grants older than [`CREDIT_LAPSE`](crate::CREDIT_LAPSE) (an executor
/// that only `drive`s). The room goes to the next waiters (also room left
/// free otherwise: a grant given back unused), whose wakers go to
/// `graves`; true if any did. An op whose grant lapsed waits again in its
/// place when polled.
#[cold]
fn credit_lapse(st: &mut LState, block: bool) -> bool {
    let LState {
        slab,
        stats,
        graves,
        ..
    } = st;
    let before = graves.len();
    stats.credit_lapses += slab.lapse((!block).then(Instant::now), |w| graves.push(Grave::Wake(w)));
    graves.len() > before
}

/// The thread's park state, shared with its [`LocalUnparker`]s.
pub(crate) struct Park {
    /// A wake-up came since the thread last looked (see [`WakeFlag`]).
    pub(crate) woken: WakeFlag,
    /// The eventfd the wake-up read targets.
    efd: File,
    thread: ThreadId,
}

impl Park {
    pub(crate) fn new(efd: OwnedFd) -> Self {
        Park {
            woken: WakeFlag::new(),
            efd: File::from(efd),
            thread: thread::current().id(),
        }
    }
}

/// Ends a wait of a [`LocalProactor`]'s thread in the kernel, from any
/// thread: the waker of its [`block_on`](LocalProactor::block_on), and what
/// an executor that [`park`](LocalProactor::park)s on it calls from its
/// wakers.
#[derive(Clone)]
pub struct LocalUnparker {
    park: Arc<Park>,
}

impl LocalUnparker {
    pub(crate) fn new(park: Arc<Park>) -> Self {
        LocalUnparker { park }
    }

    /// Ends the thread's current or next wait (a wake-up before it waits
    /// makes its next turn return at once).
    pub fn unpark(&self) {
        // The first wake-up since the thread looked ends its sleep (or
        // its next one); the thread itself is not asleep.
        if self.park.woken.set() && self.park.thread != crate::drive::me() {
            // A failed write means the counter is saturated: a wake-up is
            // pending anyway.
            let _ = (&self.park.efd).write(&1u64.to_ne_bytes());
        }
    }
}

impl Wake for LocalUnparker {
    fn wake(self: Arc<Self>) {
        self.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.unpark();
    }
}

impl std::fmt::Debug for LocalUnparker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalUnparker")
            .field("thread", &self.park.thread)
            .finish_non_exhaustive()
    }
}

/// Every request in the kernel is asked to cancel (the last handle is
/// being dropped); the wake-up read is ended by writing its eventfd.
pub(crate) fn cancel_all(st: &mut LState, park: &Park) {
    if st.wake_armed {
        let _ = (&park.efd).write(&1u64.to_ne_bytes());
    }
    let mut targets = Vec::new();
    for (i, slot) in st.slab.slots.iter().enumerate() {
        let armed = match slot.state {
            LSlotState::Orphan(_) | LSlotState::OrphanStream(..) | LSlotState::Waiting(_) => true,
            LSlotState::Stream(ref s) => !s.ended,
            LSlotState::Free | LSlotState::Done(..) => false,
        };
        if armed {
            targets.push(user_data(i as u32, slot.tag));
        }
    }
    for ud in targets {
        st.push_cancel(ud);
    }
}

/// Cancellations whose backoff has passed are sent again, for requests
/// still in the kernel.
pub(crate) fn cancel_due(st: &mut LState) {
    let now = Instant::now();
    let mut i = 0;
    while i < st.retries.len() {
        let (due, ud) = st.retries[i];
        if due > now {
            i += 1;
            continue;
        }
        st.retries.swap_remove(i);
        let index = ud as u32;
        let live = st
            .slab
            .slots
            .get_mut(index as usize)
            .filter(|s| s.tag == (ud >> 32) as u32 && s.cancelling());
        if let Some(slot) = live {
            slot.attempts = slot.attempts.saturating_add(1);
            st.push_cancel(ud);
            st.stats.cancel_retries += 1;
        }
    }
}

/// Takes every CQE and dispatches it; what it frees or wakes goes to
/// `st.graves`, but for the thread's own waker (`block_on`'s), woken here
/// by setting `own_woken` (no user code; see [`Inner::own_woken`]). A CQE
/// is taken for a request's only if its `user_data` names a request in the
/// kernel (slot and tag) or the armed wake-up read; anything else is
/// counted in `unexpected_cqes`. Inlined into the turn: one call, one
/// frame per turn (about 20 instructions).
#[inline(always)]
pub(crate) fn reap(st: &mut LState, own_woken: &Cell<bool>) {
    let LState {
        ring,
        slab,
        in_ring,
        cancels_in_ring,
        wake_armed,
        wake_ud,
        retries,
        stats,
        graves,
        ..
    } = st;
    let mut last_wake: Option<usize> = None;
    let mut woke_own = false;
    for cqe in ring.cq() {
        let ud = cqe.user_data();
        let (res, flags) = (cqe.res(), cqe.flags().bits());
        if *wake_armed && ud == *wake_ud {
            *wake_armed = false;
            *in_ring -= 1;
            continue;
        }
        let low = ud as u32;
        if low != WAKE_INDEX && low & CANCEL_BIT != 0 {
            // A cancellation's CQE, or a forged one: with none in the
            // ring, unexpected. (A forged one that takes a real one's
            // count makes that one unexpected when it comes: cancellations
            // own no memory, so nothing is freed early; and a real one
            // still asks again below.)
            if *cancels_in_ring == 0 {
                stats.unexpected_cqes += 1;
            } else {
                *cancels_in_ring -= 1;
            }
            let target = ud & !u64::from(CANCEL_BIT);
            let slot = slab
                .slots
                .get(target as u32 as usize)
                .filter(|s| s.tag == (target >> 32) as u32 && s.cancelling());
            if let (true, Some(slot)) = (res < 0, slot) {
                // Not found yet, or running: ask again after a backoff.
                let shift = slot.attempts.saturating_sub(1).min(6);
                let backoff = (RETRY_FIRST * (1 << shift)).min(RETRY_MAX);
                retries.push((Instant::now() + backoff, target));
            }
            continue;
        }
        let Some(slot) = slab
            .slots
            .get_mut(low as usize)
            .filter(|s| s.tag == (ud >> 32) as u32)
        else {
            stats.unexpected_cqes += 1;
            continue;
        };
        match &mut slot.state {
            LSlotState::Waiting(_) => {
                // The common case: a single op's CQE.
                stats.completed += 1;
                *in_ring -= 1;
                let LSlotState::Waiting(waker) =
                    std::mem::replace(&mut slot.state, LSlotState::Done(res, flags))
                else {
                    unreachable!("matched above");
                };
                if slab.wakers.is_own(&waker) {
                    // Not the last `Rc` of it: dropped here, no user code.
                    drop(waker);
                    woke_own = true;
                } else {
                    wake_other(waker, graves, &mut last_wake);
                }
                // Its room comes back now, not when its result is taken:
                // an op kept (or forgotten) once done holds none.
                if let Some(next) = slab.release_room() {
                    graves.push(Grave::Wake(next));
                }
            }
            LSlotState::Orphan(_) => {
                stats.completed += 1;
                *in_ring -= 1;
                if let LSlotState::Orphan(resources) =
                    std::mem::replace(&mut slot.state, LSlotState::Free)
                {
                    graves.push(Grave::Release(resources, res, flags));
                }
                if let Some(next) = slab.free_slot(low) {
                    graves.push(Grave::Wake(next));
                }
                stats.orphans_freed += 1;
            }
            LSlotState::Stream(s) if !s.ended => {
                stats.completed += 1;
                let StreamSlot { cqes, waker, ended } = &mut **s;
                // Only the last CQE of a multishot request comes without
                // IORING_CQE_F_MORE.
                cqes.push_back((res, flags));
                if ring_io_core::cqe_returns_credit(flags) {
                    *ended = true;
                    *in_ring -= 1;
                }
                wake_once(waker.take(), graves, &mut last_wake);
            }
            LSlotState::OrphanStream(orphan) => {
                stats.completed += 1;
                orphan.1.push((res, flags));
                if !ring_io_core::cqe_returns_credit(flags) {
                    continue;
                }
                *in_ring -= 1;
                if let LSlotState::OrphanStream(orphan) =
                    std::mem::replace(&mut slot.state, LSlotState::Free)
                {
                    let (resources, cqes) = *orphan;
                    graves.push(Grave::ReleaseAll(resources, cqes));
                }
                if let Some(next) = slab.free_slot(low) {
                    graves.push(Grave::Wake(next));
                }
                stats.orphans_freed += 1;
            }
            // Its request is not in the kernel: no CQE of it can come.
            LSlotState::Free | LSlotState::Done(..) | LSlotState::Stream(_) => {
                stats.unexpected_cqes += 1;
            }
        }
    }
    if woke_own {
        own_woken.set(true);
    }
}

impl LState {
    /// Arms the eventfd read that ends a wait when another thread wakes
    /// this one.
    fn arm_wake(&mut self, efd: &File) {
        let ptr: *mut u64 = &mut **self.wake_buf;
        let ud = user_data(WAKE_INDEX, self.slab.tags.next());
        let entry = ring_io_ops::Read::new(Fd(efd.as_raw_fd()), ptr.cast(), 8)
            .build()
            .user_data(ud);
        self.push(entry);
        self.wake_armed = true;
        self.wake_ud = ud;
    }
}

impl Inner {
    /// One turn: send due cancellations, submit what was pushed, wait for
    /// a completion if `wait` says so (and no wake-up came), reap and
    /// dispatch. User code (wakers, drops) runs after the borrow ends.
    pub(crate) fn turn(&self, wait: Wait) {
        let mut graves = {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            if !st.retries.is_empty() {
                cancel_due(st);
            }
            let mut block = matches!(wait, Wait::For(_));
            if block {
                if !st.wake_armed {
                    st.arm_wake(&self.park.efd);
                }
                // A waker that found the flag set left the eventfd
                // unwritten: the flag is seen here (see `WakeFlag`); so is
                // a wake-up of the own waker by a turn since, and a task
                // woken on the thread (which sets neither).
                if self.park.woken.is_set() || self.own_woken.get() || self.tasks.queued() {
                    block = false;
                }
            }
            if !st.slab.credit_waiters.is_empty() || !st.slab.grants.is_empty() {
                // Woken after the borrow, instead of waiting.
                if credit_lapse(st, block) {
                    block = false;
                }
            }
            let bound = match wait {
                Wait::For(t) => t,
                Wait::No => None,
            };
            let timeout = st
                .retries
                .iter()
                .map(|&(due, _)| due.saturating_duration_since(Instant::now()))
                .chain(bound)
                .min();
            let res = match (block, timeout) {
                (false, _) => st.ring.submitter().submit(),
                (true, Some(t)) if t.is_zero() => st.ring.submitter().submit(),
                (true, Some(t)) => st.ring.submitter().submit_and_wait_timeout(1, t),
                (true, None) => st.ring.submitter().submit_and_wait(1),
            };
            st.stats.enters += 1;
            if let Err(e) = res {
                if e.kind() != std::io::ErrorKind::TimedOut {
                    // The requests in the ring own memory that must not
                    // be abandoned: all there is to do is try again.
                    eprintln!("ring-proactor: io_uring_enter failed: {e}; retrying");
                    thread::sleep(Duration::from_millis(1));
                }
            }
            reap(st, &self.own_woken);
            if st.graves.is_empty() {
                return;
            }
            std::mem::take(&mut st.graves)
        };
        bury(&mut graves);
        // The emptied vector goes back for its capacity (unless a nested
        // turn, run by the user code just buried, put one back first).
        if let Ok(mut st) = self.st.try_borrow_mut() {
            if st.graves.capacity() == 0 {
                st.graves = graves;
            }
        }
    }
}

impl LocalProactor {
    /// Runs `future` to completion on this thread, driving the ring while
    /// it is pending: a turn submits the ops it polled in one
    /// `io_uring_enter` and waits there for a completion (or a wake-up from
    /// another thread).
    ///
    /// Tasks [`spawn`](LocalProactor::spawn)ed in it run in it: each round
    /// polls `future` (if woken since its last poll: not in a round that
    /// only woke tasks), then the tasks woken since the last round, then
    /// turns the ring. When the outermost `block_on` returns (or unwinds),
    /// the tasks left are dropped.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _tasks = self.inner.enter();
        let park = &self.inner.park;
        // The LocalProactor's own waker: the ops polled with it share it
        // (see `Wakers`).
        let mut cx = Context::from_waker(&self.inner.waker);
        let mut future = pin!(future);
        let own_woken = &self.inner.own_woken;
        let out = loop {
            park.woken.take();
            own_woken.set(false);
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                break out;
            }
            // Then rounds of tasks and turns until its waker is used
            // (which sets one of the two flags), or anything else sets the
            // thread's flag: it is not polled for a round that only woke
            // tasks (which sets neither, see `Tasks::queued`).
            loop {
                self.inner.run_tasks();
                if park.woken.is_set() || own_woken.get() {
                    // Woken while polling: submit what it pushed, poll again.
                    self.inner.turn(Wait::No);
                    break;
                }
                if self.inner.tasks.queued() {
                    self.inner.turn(Wait::No);
                } else {
                    self.inner.turn(Wait::For(None));
                }
                if park.woken.is_set() || own_woken.get() {
                    break;
                }
            }
        };
        // A `block_on` inside another's turn (a waker or drop that waits)
        // may have taken the outer one's wake-up: the outer polls again.
        park.woken.set();
        out
    }

    /// Blocks the thread until a completion arrives, `timeout` passes, or
    /// an [`unparker`](LocalProactor::unparker) is used, submitting what
    /// ops pushed and dispatching what completed: what a single-thread
    /// executor calls when its tasks are all pending.
    pub fn park(&self, timeout: Option<Duration>) {
        // Both flags are taken (`|`, not `||`).
        let woken = self.inner.own_woken.replace(false) | self.inner.park.woken.take();
        if woken {
            self.inner.turn(Wait::No);
        } else {
            self.inner.turn(Wait::For(timeout));
        }
        if woken && self.inner.tasks.depth.get() > 0 {
            // A park inside a `block_on` (a waker or drop it runs that
            // parks) took a wake-up that may be the `block_on`'s (its own
            // waker's, or the one a nested `block_on` left it): given
            // back, or the `block_on` waits in the kernel for a completion
            // that already came.
            self.inner.park.woken.set();
        }
    }

    /// One turn without blocking: submits what ops pushed and dispatches
    /// what completed (waking their tasks).
    pub fn drive(&self) {
        self.inner.turn(Wait::No);
    }

    /// What ends this thread's [`park`](LocalProactor::park) from any
    /// thread (`Send + Sync`; a `Waker` through `Waker::from(Arc::new(..))`).
    pub fn unparker(&self) -> LocalUnparker {
        LocalUnparker {
            park: self.inner.park.clone(),
        }
    }
}
