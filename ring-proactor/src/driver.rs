//! The driver: pushes what callers queued, submits, waits, reaps, and
//! dispatches each completion to its slot.

use std::collections::VecDeque;
use std::io::{self};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self};
use std::time::{Duration, Instant};

use ring_io_core::CqCredit;
use ring_io_core::FlagsRead;
use ring_io_ops::{Entry, Fd};
use ring_io_sys::{SqFlags, SqeFlags};

use ring_io_driver::{Cqe, Kernel, Ring};

use crate::config::*;
use crate::state::*;

/// The first and the longest wait before a failed cancellation is retried.
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(1);

pub(crate) const RETRY_MAX: Duration = Duration::from_millis(64);

/// The submitter thread's state.
pub(crate) struct Driver<K: Kernel> {
    /// Leaked if the thread panics: requests may still be in the kernel.
    pub(crate) ring: ManuallyDrop<Ring<K>>,
    pub(crate) shared: Arc<Shared>,
    /// The eventfd the wake-up read targets (kept open while it is armed).
    pub(crate) efd: OwnedFd,
    /// The wake-up read's buffer (lives in the heap while it is armed).
    pub(crate) wake_buf: ManuallyDrop<Box<u64>>,
    pub(crate) wake_armed: bool,
    /// The `user_data` of the armed wake-up read (a random tag each time).
    pub(crate) wake_ud: u64,
    /// The wake-up read's tags.
    pub(crate) tags: Tags,
    /// Cancellations to send again, when, for which request.
    pub(crate) retries: Vec<(Instant, u64)>,
    /// CQ credit of every request in the ring (ops, cancellations, the
    /// wake-up read): the last gate before the SQ, so the CQ cannot
    /// overflow whatever the callers do.
    pub(crate) credit: CqCredit,
    pub(crate) batch: u32,
    pub(crate) delay: Duration,
    pub(crate) spin: Duration,
    /// Entries waiting for credit, in order, with the credits each takes.
    pub(crate) pending: VecDeque<(Entry, u32)>,
    /// `ProactorStats::enters`, published with other updates.
    pub(crate) enters: u64,
    pub(crate) cqes: Vec<Cqe>,
    pub(crate) grave: Graveyard,
}

impl<K: Kernel> Driver<K> {
    pub(crate) fn new(
        ring: Ring<K>,
        shared: Arc<Shared>,
        efd: OwnedFd,
        config: &ProactorConfig,
    ) -> Self {
        let geometry = *ring.kernel().geometry();
        Driver {
            credit: CqCredit::for_geometry(&geometry),
            ring: ManuallyDrop::new(ring),
            shared,
            efd,
            wake_buf: ManuallyDrop::new(Box::new(0)),
            wake_armed: false,
            wake_ud: 0,
            tags: Tags::default(),
            retries: Vec::new(),
            batch: config.batch,
            delay: config.delay,
            spin: config.spin,
            pending: VecDeque::new(),
            enters: 0,
            cqes: Vec::new(),
            grave: Graveyard::default(),
        }
    }

    /// Pushes an entry, submitting to make room if the SQ is full, and takes
    /// its CQ credit; hands it back if there is no credit.
    pub(crate) fn push(&mut self, entry: Entry, credits: u32) -> Result<(), Entry> {
        let mut entry = self
            .credit
            .acquire_n(credits, entry)
            .map_err(|refused| refused.0)?;
        loop {
            // SAFETY: every pointer in `entry` targets memory owned by its
            // op's resources, which stay alive (in the op, or orphaned in the
            // slab, or `wake_buf` here) until its CQE is reaped.
            match unsafe { self.ring.sq().push(entry) } {
                Ok(()) => return Ok(()),
                Err(full) => {
                    entry = full.0;
                    self.submit(false, None);
                }
            }
        }
    }

    /// Submits; with `wait`, waits for a completion, at most `timeout` if
    /// one is given.
    pub(crate) fn submit(&mut self, wait: bool, timeout: Option<Duration>) {
        let res = match (wait, timeout) {
            (false, _) => self.ring.submitter().submit(),
            (true, None) => self.ring.submitter().submit_and_wait(1),
            (true, Some(t)) => self.ring.submitter().submit_and_wait_timeout(1, t),
        };
        // Published with the next stats update (no lock per enter).
        self.enters += 1;
        match res {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => {
                // Nothing to do but retry: the requests in the ring own
                // memory the thread must not abandon. Back off a little.
                eprintln!("ring-proactor: io_uring_enter failed: {e}; retrying");
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    pub(crate) fn arm_wake(&mut self) {
        let ptr: *mut u64 = &mut **self.wake_buf;
        let ud = user_data(WAKE_INDEX, self.tags.next());
        let entry = ring_io_ops::Read::new(Fd(self.efd.as_raw_fd()), ptr.cast(), 8)
            .build()
            .user_data(ud);
        self.wake_armed = self.push(entry, 1).is_ok();
        if self.wake_armed {
            self.wake_ud = ud;
        }
    }

    /// A cancellation of the request `ud`, with the credit it takes.
    pub(crate) fn cancel_entry(ud: u64) -> (Entry, u32) {
        let entry = ring_io_ops::AsyncCancel::new(ud).build();
        (entry.user_data(ud | u64::from(CANCEL_BIT)), 1)
    }

    pub(crate) fn run(mut self) {
        let mut shutdown_sent = false;
        loop {
            #[cfg(test)]
            if self.shared.lock().inject_panic {
                panic!("a panic injected by a test");
            }
            let shutdown;
            {
                let mut st = self.shared.lock();
                let fresh = st.queue.len() as u32;
                if self.delay > Duration::ZERO
                    && !st.shutdown
                    && fresh > 0
                    && (self.pending.len() as u32) < self.batch
                {
                    // A partial batch: give callers `delay` to fill it (a
                    // delay past what an Instant holds waits for a full
                    // batch or shutdown).
                    let deadline = Instant::now().checked_add(self.delay);
                    st.gathering = true;
                    loop {
                        let have = self.pending.len() + st.queue.len();
                        let now = Instant::now();
                        if have as u32 >= self.batch
                            || deadline.is_some_and(|d| now >= d)
                            || st.shutdown
                        {
                            break;
                        }
                        let wait = deadline.map_or(Duration::MAX, |d| d - now);
                        st = match self.shared.more.wait_timeout(st, wait) {
                            Ok((st, _)) => st,
                            Err(poisoned) => poisoned.into_inner().0,
                        };
                    }
                    st.gathering = false;
                }
                let State {
                    queue,
                    cancels: to_cancel,
                    ..
                } = &mut *st;
                // Ops before cancellations: a cancel must meet its target
                // in the kernel, so it never goes ahead of it.
                self.pending.extend(queue.drain(..));
                self.pending
                    .extend(to_cancel.drain(..).map(Self::cancel_entry));
                // Cancellations whose backoff has passed, for requests still
                // in the kernel.
                if !self.retries.is_empty() {
                    let now = Instant::now();
                    let mut i = 0;
                    while i < self.retries.len() {
                        let (due, ud) = self.retries[i];
                        if due > now {
                            i += 1;
                            continue;
                        }
                        self.retries.swap_remove(i);
                        if let Some(slot) = st.slot(ud) {
                            if slot.cancel == Cancel::Retry && slot.armed() {
                                slot.cancel = Cancel::Owed;
                                slot.attempts = slot.attempts.saturating_add(1);
                                self.pending.push_back(Self::cancel_entry(ud));
                                st.stats.cancel_retries += 1;
                            } else if slot.cancel == Cancel::Retry {
                                slot.cancel = Cancel::None;
                            }
                        }
                    }
                }
                shutdown = st.shutdown;
                if shutdown && !shutdown_sent {
                    // Cancel everything in flight not yet asked; ops whose
                    // futures are alive get their CQE (usually ECANCELED).
                    // Requests whose cancellation failed are retried above.
                    let mut n = 0;
                    for (i, slot) in st.slots.iter_mut().enumerate() {
                        if slot.armed() && slot.cancel == Cancel::None {
                            slot.cancel = Cancel::Owed;
                            slot.attempts = 1;
                            self.pending
                                .push_back(Self::cancel_entry(user_data(i as u32, slot.tag)));
                            n += 1;
                        }
                    }
                    st.stats.cancels += n;
                }
            }
            if shutdown && !shutdown_sent {
                shutdown_sent = true;
                if self.wake_armed {
                    // End the wake-up read: the thread writes its own eventfd.
                    self.shared.wake_thread();
                }
            }
            if !self.wake_armed && !shutdown {
                self.arm_wake();
            }
            let mut pushed = 0;
            while !self.pending.is_empty() {
                // A linked chain goes in whole: all its credit, and room in
                // the SQ for all of it (a submit between its members would
                // cut the link).
                let n = 1 + self
                    .pending
                    .iter()
                    .take_while(|(e, _)| e.sqe_flags().contains(SqeFlags::IO_LINK))
                    .count() as u32;
                let need: u32 = self.pending.iter().take(n as usize).map(|(_, c)| c).sum();
                if self.credit.available() < need {
                    // No credit: wait for completions first.
                    break;
                }
                if n > 1 && self.ring.sq().space() < n {
                    self.submit(false, None);
                }
                for _ in 0..n {
                    let (entry, credits) = self.pending.pop_front().expect("counted above");
                    if self.push(entry, credits).is_err() {
                        unreachable!("credit for the whole chain was checked");
                    }
                }
                pushed += n;
                if pushed >= self.batch {
                    pushed = 0;
                    self.submit(false, None);
                }
            }
            let in_ring = self.credit.in_flight();
            if shutdown && in_ring == 0 && self.pending.is_empty() {
                break;
            }
            if self.spin > Duration::ZERO && self.pending.is_empty() && !shutdown {
                // Submit what was pushed and hand out what completed, then
                // poll a while for more work before sleeping
                // (ProactorConfig::spin).
                self.submit(false, None);
                self.reap();
                if self.spin_for_work() {
                    continue;
                }
            }
            // Sleep only if nothing arrived meanwhile; callers that queue
            // work after this see `sleeping` and write the eventfd. Blocked
            // on credit, wait for a completion (there are `in_ring` coming).
            // With cancellations to retry, sleep no longer than their
            // backoff.
            let wait = {
                let mut st = self.shared.lock();
                st.stats.max_in_ring = st.stats.max_in_ring.max(in_ring);
                st.stats.enters = self.enters;
                let idle = st.queue.is_empty() && st.cancels.is_empty();
                st.sleeping = idle && self.wake_armed;
                (st.sleeping || !self.pending.is_empty() || (shutdown && idle)) && in_ring > 0
            };
            let timeout = self
                .retries
                .iter()
                .map(|&(due, _)| due)
                .min()
                .map(|due| due.saturating_duration_since(Instant::now()));
            if wait && timeout == Some(Duration::ZERO) {
                self.submit(false, None);
            } else {
                self.submit(wait, timeout);
            }
            self.reap();
        }
        let mut st = self.shared.lock();
        st.stats.enters = self.enters;
        st.stopped = true;
        st.sleeping = false;
        st.stats.cq_overflow = self.ring.overflow();
        drop(st);
        self.shared.stopped.notify_all();
        // SAFETY: the wake-up read has completed (no credit is held, so no
        // request is in the ring): the kernel no longer writes the buffer.
        unsafe { ManuallyDrop::drop(&mut self.wake_buf) };
        // SAFETY: as above, no request is in the ring; `self.ring` is not
        // used again (`self` is dropped next, and a ManuallyDrop is not
        // dropped with it). On a panic this is never reached: leaked.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
    }

    /// Polls, for up to `spin`, for callers' work: true as soon as some is
    /// queued (after a moment for the caller to queue the rest of its
    /// batch); false at once if completions are ready (or task work the
    /// kernel wants run, which the wait that follows runs), or once `spin`
    /// has passed.
    pub(crate) fn spin_for_work(&mut self) -> bool {
        let seen = self.shared.activity.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut turns = 0u32;
        loop {
            let now = self.shared.activity.load(Ordering::Relaxed);
            if now != seen {
                let mut last = now;
                for _ in 0..64 {
                    std::hint::spin_loop();
                    let now = self.shared.activity.load(Ordering::Relaxed);
                    if now == last {
                        break;
                    }
                    last = now;
                }
                return true;
            }
            if !self.ring.cq().is_empty()
                || self
                    .ring
                    .kernel()
                    .sq_flags(FlagsRead::Load)
                    .intersects(SqFlags::TASKRUN | SqFlags::CQ_OVERFLOW)
            {
                return false;
            }
            turns += 1;
            if turns % 64 == 0 && start.elapsed() >= self.spin {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Takes every CQE and dispatches it. A CQE is taken for a request's
    /// only if its `user_data` names a request in the kernel (slot index
    /// and tag) or the armed wake-up read; anything else (a forged or stray
    /// CQE) is counted in `unexpected_cqes` and changes nothing, not even
    /// the credit.
    pub(crate) fn reap(&mut self) {
        self.cqes.clear();
        self.cqes.extend(self.ring.cq());
        // The CQ view is dropped: the head is handed back, so the credit of
        // these CQEs may return.
        if self.cqes.is_empty() {
            return;
        }
        let mut st = self.shared.lock();
        st.sleeping = false;
        let mut released = 0;
        let now = Instant::now();
        for cqe in &self.cqes {
            let ud = cqe.user_data();
            let (res, flags) = (cqe.res(), cqe.flags().bits());
            if self.wake_armed && ud == self.wake_ud {
                self.wake_armed = false;
                let _ = self.credit.release(1);
                continue;
            }
            let low = ud as u32;
            if low != WAKE_INDEX && low & CANCEL_BIT != 0 {
                // A cancellation's CQE: its target's slot still owes it.
                let target = ud & !u64::from(CANCEL_BIT);
                let slot = match st.slot(target) {
                    Some(slot) if slot.cancel == Cancel::Owed => slot,
                    _ => {
                        st.stats.unexpected_cqes += 1;
                        continue;
                    }
                };
                let _ = self.credit.release(1);
                slot.cancel = Cancel::None;
                if let SlotState::Reaped = slot.state {
                    st.finish(target, &mut self.grave);
                } else if res < 0 && slot.armed() {
                    // The kernel did not cancel it (ENOENT: not found yet,
                    // or completing; EALREADY: running) and its CQE has not
                    // come: ask again after a backoff.
                    slot.cancel = Cancel::Retry;
                    let shift = slot.attempts.saturating_sub(1).min(6);
                    let backoff = (RETRY_FIRST * (1 << shift)).min(RETRY_MAX);
                    self.retries.push((now + backoff, target));
                }
                continue;
            }
            let Some(slot) = st.slot(ud).filter(|slot| slot.armed()) else {
                st.stats.unexpected_cqes += 1;
                continue;
            };
            // Only a multishot request posts CQEs with IORING_CQE_F_MORE.
            let last = !slot.stream || ring_io_core::cqe_returns_credit(flags);
            let credits = slot.credits;
            if last {
                let _ = self.credit.release(credits);
            }
            let orphan = matches!(slot.state, SlotState::Orphan(..));
            if last && !orphan {
                released += std::mem::take(&mut slot.held);
            }
            st.stats.completed += 1;
            let slot = st.slot(ud).expect("looked up above");
            match std::mem::replace(&mut slot.state, SlotState::Free) {
                SlotState::Waiting(waker) => {
                    slot.state = SlotState::Done(res, flags);
                    self.grave.wakers.extend(waker);
                }
                SlotState::Stream {
                    mut cqes,
                    mut waker,
                    ended,
                } => {
                    cqes.push_back((res, flags));
                    self.grave.wakers.extend(waker.take());
                    slot.state = SlotState::Stream {
                        cqes,
                        waker,
                        ended: ended || last,
                    };
                }
                SlotState::Orphan(resources, mut cqes) => {
                    cqes.push((res, flags));
                    if last {
                        // The kernel is done with them: released (after
                        // unlocking). The slot and its credit wait for the
                        // cancellation's CQE if it is still owed.
                        self.grave.orphans.push((resources, cqes));
                        slot.state = SlotState::Reaped;
                        st.finish(ud, &mut self.grave);
                        st.stats.orphans_freed += 1;
                    } else {
                        // More CQEs of a dropped stream are coming.
                        slot.state = SlotState::Orphan(resources, cqes);
                    }
                }
                other => slot.state = other,
            }
        }
        st.release_credit(released, &mut self.grave.wakers);
        st.stats.cq_overflow = self.ring.overflow();
        drop(st);
        // User code (drops of what dropped ops owned, wakers), unlocked.
        self.grave.bury();
    }
}
