//! The driver: one ring turn at a time, run by whoever holds the driver
//! token (a waiting caller or the fallback thread, see `drive.rs`): push
//! what callers queued, submit, wait, reap, and dispatch each completion to
//! its slot.

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use ring_io_core::FlagsRead;
use ring_io_ops::{Entry, Fd};
use ring_io_sys::{SqFlags, SqeFlags};

use ring_io_driver::{Kernel, Linux, Ring};

use crate::config::*;
use crate::state::*;

mod cell;
mod reap;

pub(crate) use cell::DriverCell;

/// The first and the longest wait before a failed cancellation is retried.
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(1);

pub(crate) const RETRY_MAX: Duration = Duration::from_millis(64);

/// How long a turn may wait in the kernel for a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all: submit and reap what is there.
    No,
    /// Until a completion arrives (or the wake-up read ends the wait), at
    /// most this long if given.
    For(Option<Duration>),
}

/// One ring turn, whatever the kernel behind the ring (`Box<dyn Drive>` in
/// [`Shared::driver`]).
pub(crate) trait Drive: Send {
    /// Runs one turn; what must be released outside every lock (drops of
    /// what dropped ops owned, wakers) goes to `grave`. `fallback`: the
    /// fallback thread's turn (it may gather a batch and spin). True once
    /// the Proactor has shut down and the kernel holds no request: the
    /// driver must then be [`close`](Drive::close)d.
    fn turn(&mut self, shared: &Shared, wait: Wait, fallback: bool, grave: &mut Graveyard) -> bool;

    /// When the next failed cancellation is due to be sent again, if any:
    /// a driver that never waits in the kernel (an external one) must run
    /// a turn then.
    #[cfg(feature = "tokio")]
    fn next_retry(&self) -> Option<Instant> {
        None
    }

    /// Registers the ring's fd in the calling thread's table of rings and
    /// has the ring enter through it on this thread while it lives (see
    /// [`ThreadRegistration`](ring_io_driver::ThreadRegistration)).
    /// `Ok(None)`: a ring that is not the kernel's (a simulated one).
    fn register_thread(&mut self) -> std::io::Result<Option<ring_io_driver::ThreadRegistration>> {
        Ok(None)
    }

    /// Frees the ring and the wake-up buffer. Only after a turn returned
    /// true: the kernel holds no request. A driver dropped any other way
    /// (after a panic) leaks both, as the kernel may still use them.
    fn close(self: Box<Self>);
}

/// The driver's state: the ring and what only the token holder touches.
pub(crate) struct Driver<K: Kernel> {
    /// Leaked unless closed: requests may still be in the kernel.
    pub(crate) ring: ManuallyDrop<Ring<K>>,
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
    /// Requests pushed whose last CQE has not been reaped (ops,
    /// cancellations, the wake-up read).
    pub(crate) in_ring: u32,
    pub(crate) batch: u32,
    pub(crate) delay: Duration,
    pub(crate) spin: Duration,
    /// Entries taken from the queue and not yet pushed (the kernel showed
    /// CQ overflow: nothing is pushed until it is drained), in order.
    pub(crate) pending: VecDeque<Entry>,
    /// `ProactorStats::enters`, published with other updates.
    pub(crate) enters: u64,
    /// Every request was asked to cancel at shutdown.
    pub(crate) shutdown_sent: bool,
    /// `user_data` of the members of linked chains this turn pushed, for
    /// the thread that submits them (see `drive::note_chains`).
    pub(crate) chained: Vec<u64>,
}

impl<K: Kernel + Send + 'static> Drive for Driver<K> {
    fn turn(&mut self, shared: &Shared, wait: Wait, fallback: bool, grave: &mut Graveyard) -> bool {
        let stopped = Driver::turn(self, shared, wait, fallback, grave);
        if !self.chained.is_empty() {
            crate::drive::note_chains(shared, &mut self.chained);
        }
        stopped
    }

    fn register_thread(&mut self) -> std::io::Result<Option<ring_io_driver::ThreadRegistration>> {
        let ring: &mut Ring<K> = &mut self.ring;
        let Some(ring) = (ring as &mut dyn std::any::Any).downcast_mut::<Ring<Linux>>() else {
            return Ok(None);
        };
        let registration = ring.register_thread()?;
        Ok(ring
            .use_thread_registration(&registration)
            .then_some(registration))
    }

    #[cfg(feature = "tokio")]
    fn next_retry(&self) -> Option<Instant> {
        self.retries.iter().map(|&(due, _)| due).min()
    }

    fn close(mut self: Box<Self>) {
        debug_assert_eq!(self.in_ring, 0);
        // SAFETY: `turn` returned true: no request is in the ring (the
        // wake-up read has completed), so the kernel no longer writes the
        // buffer; neither is used again (`self` is dropped next, and a
        // ManuallyDrop is not dropped with it).
        unsafe {
            ManuallyDrop::drop(&mut self.wake_buf);
            ManuallyDrop::drop(&mut self.ring);
        }
    }
}

impl<K: Kernel> Driver<K> {
    pub(crate) fn new(ring: Ring<K>, efd: OwnedFd, config: &ProactorConfig) -> Self {
        Driver {
            ring: ManuallyDrop::new(ring),
            efd,
            wake_buf: ManuallyDrop::new(Box::new(0)),
            wake_armed: false,
            wake_ud: 0,
            tags: Tags::default(),
            retries: Vec::new(),
            in_ring: 0,
            batch: config.batch,
            delay: config.delay,
            spin: config.spin,
            pending: VecDeque::new(),
            enters: 0,
            shutdown_sent: false,
            chained: Vec::new(),
        }
    }

    /// Pushes an entry, submitting to make room if the SQ is full.
    pub(crate) fn push(&mut self, mut entry: Entry) {
        loop {
            // SAFETY: every pointer in `entry` targets memory owned by its
            // op's resources, which stay alive (in the op, or orphaned in the
            // slab, or `wake_buf` here) until its last CQE is reaped.
            match unsafe { self.ring.sq().push(entry) } {
                Ok(()) => {
                    self.in_ring += 1;
                    return;
                }
                Err(full) => {
                    entry = full.0;
                    self.submit(false, None);
                }
            }
        }
    }

    /// Pushes `entries` in order through one view of the SQ (one load of
    /// the kernel's head, one store of the tail), submitting to make room
    /// whenever it is full.
    pub(crate) fn push_all(&mut self, entries: impl IntoIterator<Item = Entry>) {
        let mut pushed = 0;
        let mut sq = self.ring.sq();
        for mut entry in entries {
            loop {
                // SAFETY: every pointer in `entry` targets memory owned by
                // its op's resources, which stay alive (in the op, or
                // orphaned in the slab) until its last CQE is reaped.
                match unsafe { sq.push(entry) } {
                    Ok(()) => {
                        pushed += 1;
                        break;
                    }
                    Err(full) => {
                        entry = full.0;
                        drop(sq);
                        self.in_ring += pushed;
                        pushed = 0;
                        self.submit(false, None);
                        sq = self.ring.sq();
                    }
                }
            }
        }
        drop(sq);
        self.in_ring += pushed;
    }

    /// Notes the members of linked chains among `entries` (in push order:
    /// a chain is contiguous), which this thread is about to submit: if it
    /// exits while they are in the kernel, the kernel no longer runs the
    /// rest of a chain nor fires its linked timeout, so its exit cancels
    /// them (`drive::Drove`). The fallback thread notes none (it exits
    /// only when its Proactor has stopped).
    #[cold]
    fn note_linked(chained: &mut Vec<u64>, entries: &[Entry], fallback: bool) {
        if fallback {
            return;
        }
        let mut after_link = false;
        for entry in entries {
            let link = entry
                .sqe_flags()
                .intersects(SqeFlags::IO_LINK | SqeFlags::IO_HARDLINK);
            if link || after_link {
                chained.push(entry.get_user_data());
            }
            after_link = link;
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
                // memory the driver must not abandon. Back off a little.
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
        self.push(entry);
        self.wake_armed = true;
        self.wake_ud = ud;
    }

    /// A cancellation of the request `ud`.
    pub(crate) fn cancel_entry(ud: u64) -> Entry {
        let entry = ring_io_ops::AsyncCancel::new(ud).build();
        entry.user_data(ud | u64::from(CANCEL_BIT))
    }

    /// The kernel holds CQEs in its overflow backlog (the CQ was full).
    fn overflowed(&self) -> bool {
        self.ring
            .kernel()
            .sq_flags(FlagsRead::Load)
            .contains(SqFlags::CQ_OVERFLOW)
    }

    /// One turn (see [`Drive::turn`]).
    pub(crate) fn turn(
        &mut self,
        shared: &Shared,
        wait: Wait,
        fallback: bool,
        grave: &mut Graveyard,
    ) -> bool {
        #[cfg(test)]
        if shared.lock().inject_panic {
            panic!("a panic injected by a test");
        }
        if let Some(stopped) = self.plain_turn(shared, wait, fallback, grave) {
            return stopped;
        }
        let shutdown;
        // The kernel holds CQEs in its overflow backlog: push nothing this
        // turn (see below).
        let overflowed = self.overflowed();
        // Whether this turn may block in the kernel, decided under the
        // gathering lock when it can be (not when the fallback thread
        // spins first): `Some(block)`.
        let mut decided: Option<bool> = None;
        // `Shared::activity` when this turn took the queue (under the state
        // lock, as every op that queues bumps it): work queued later shows
        // as a change, which the spin below watches for.
        let drained_at;
        {
            let mut st = shared.lock();
            let fresh = st.queue.len() as u32;
            // Never in a turn that must not block (`Wait::No`: an
            // executor's own drive, the tokio drive task).
            if self.delay > Duration::ZERO
                && wait != Wait::No
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
                    st = match shared.more.wait_timeout(st, wait) {
                        Ok((st, _)) => st,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
                st.gathering = false;
            }
            drained_at = shared.activity.load(Ordering::Relaxed);
            let State {
                queue,
                cancels: to_cancel,
                shutdown: stopping,
                chains_queued,
                ..
            } = &mut *st;
            // (Chains that go to `pending` are noted as they are pushed.)
            let chains = std::mem::take(chains_queued);
            // The common case: nothing held back, and the SQ has room for
            // the whole queue (so every linked chain fits whole): push it
            // straight from the queue (cheap stores into the SQ; nothing
            // here enters the kernel).
            let direct = !overflowed && self.pending.is_empty() && {
                if !self.wake_armed && !*stopping {
                    self.arm_wake();
                }
                let want = queue.len() + to_cancel.len();
                want <= self.batch as usize && want <= self.ring.sq().space() as usize
            };
            if direct {
                if chains {
                    Self::note_linked(&mut self.chained, queue, fallback);
                }
                self.push_all(queue.drain(..));
                if !to_cancel.is_empty() {
                    self.push_all(to_cancel.drain(..).map(Self::cancel_entry));
                }
            } else {
                // Ops before cancellations: a cancel must meet its target
                // in the kernel, so it never goes ahead of it.
                self.pending.extend(queue.drain(..));
                self.pending
                    .extend(to_cancel.drain(..).map(Self::cancel_entry));
            }
            // Cancellations whose backoff has passed, for requests still in
            // the kernel.
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
            if shutdown && !self.shutdown_sent {
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
            let spins = fallback && self.spin > Duration::ZERO && !shutdown && wait != Wait::No;
            let shutting_down = shutdown && !self.shutdown_sent;
            if !(spins || shutting_down) {
                // What the ring will hold once this turn has pushed: the
                // queue was just drained, so the driver is idle once it has
                // pushed, and may sleep; callers that queue work meanwhile
                // see `sleeping` and write the eventfd (at worst ending a
                // wait that had not begun).
                let (armed, in_ring, pending) = if overflowed {
                    (self.wake_armed, self.in_ring, self.pending.len())
                } else {
                    let arm = !self.wake_armed && !shutdown;
                    (
                        self.wake_armed || arm,
                        self.in_ring + self.pending.len() as u32 + u32::from(arm),
                        0,
                    )
                };
                let block = match wait {
                    Wait::No => false,
                    Wait::For(_) => (armed || pending > 0 || shutdown) && in_ring > 0,
                };
                st.sleeping = block && armed;
                st.stats.max_in_ring = st.stats.max_in_ring.max(in_ring);
                st.stats.enters = self.enters;
                if overflowed {
                    st.stats.overflow_pauses += 1;
                }
                decided = Some(block);
            }
        }
        if shutdown && !self.shutdown_sent {
            self.shutdown_sent = true;
            if self.wake_armed {
                // End the wake-up read: the driver writes its own eventfd.
                shared.wake_driver();
            }
        }
        // While the kernel holds CQEs in its overflow backlog, push
        // nothing: reap first (the wait below flushes the backlog). The
        // CQ never loses a CQE (IORING_FEAT_NODROP), and a paused push
        // bounds the backlog by what is already in flight.
        if !overflowed {
            if !self.wake_armed && !shutdown {
                self.arm_wake();
            }
            let mut pushed = 0;
            while !self.pending.is_empty() {
                // A linked chain goes in whole: room in the SQ for all of it
                // (a submit between its members would cut the link).
                let n = 1 + self
                    .pending
                    .iter()
                    .take_while(|e| e.sqe_flags().contains(SqeFlags::IO_LINK))
                    .count() as u32;
                if n > 1 && self.ring.sq().space() < n {
                    self.submit(false, None);
                }
                for _ in 0..n {
                    let entry = self.pending.pop_front().expect("counted above");
                    if n > 1 && !fallback {
                        self.chained.push(entry.get_user_data());
                    }
                    self.push(entry);
                }
                pushed += n;
                if pushed >= self.batch {
                    pushed = 0;
                    self.submit(false, None);
                }
            }
        }
        let in_ring = self.in_ring;
        if shutdown && in_ring == 0 && self.pending.is_empty() {
            let mut st = shared.lock();
            st.stats.enters = self.enters;
            st.stats.cq_overflow = self.ring.overflow();
            return true;
        }
        if fallback
            && self.spin > Duration::ZERO
            && self.pending.is_empty()
            && !shutdown
            && wait != Wait::No
        {
            // Submit what was pushed and hand out what completed, then
            // poll a while for more work before sleeping
            // (ProactorConfig::spin).
            self.submit(false, None);
            self.reap(shared, grave);
            // What completed is handed out (the turn ends) before any wait:
            // the wakers in `grave` run only once the turn has returned.
            if !grave.is_empty() || self.spin_for_work(shared, drained_at) {
                return false;
            }
        }
        // Sleep only if nothing arrived meanwhile; callers that queue work
        // after this see `sleeping` and write the eventfd. Blocked on a
        // CQ overflow, wait for a completion (there are `in_ring` coming).
        // With cancellations to retry, sleep no longer than their backoff.
        let block = if let Some(block) = decided {
            block
        } else {
            let mut st = shared.lock();
            st.stats.max_in_ring = st.stats.max_in_ring.max(in_ring);
            st.stats.enters = self.enters;
            if overflowed {
                st.stats.overflow_pauses += 1;
            }
            let idle = st.queue.is_empty() && st.cancels.is_empty();
            let block = match wait {
                Wait::No => false,
                Wait::For(_) => {
                    (idle && self.wake_armed || !self.pending.is_empty() || (shutdown && idle))
                        && in_ring > 0
                }
            };
            st.sleeping = block && self.wake_armed;
            block
        };
        let bound = match wait {
            Wait::For(t) => t,
            Wait::No => None,
        };
        let timeout = self
            .retries
            .iter()
            .map(|&(due, _)| due.saturating_duration_since(Instant::now()))
            .chain(bound)
            .min();
        if block && timeout == Some(Duration::ZERO) {
            self.submit(false, None);
        } else {
            self.submit(block, timeout);
        }
        if !self.reap(shared, grave) && block {
            // Nothing reaped (a timeout): the driver no longer sleeps.
            shared.lock().sleeping = false;
        }
        false
    }

    /// The turn as it nearly always goes, if it does: the wake-up read is
    /// armed, nothing is held back (no CQ overflow, no pending entries, no
    /// cancellation to retry), no batch to gather, no spin, no shutdown,
    /// and the queue fits the SQ and the batch whole; `None` otherwise
    /// (the general turn then runs, from the start). It does what the
    /// general turn does in that case, without its other checks: push the
    /// queue, decide under the same lock whether to sleep, submit (and
    /// wait), reap.
    #[inline]
    fn plain_turn(
        &mut self,
        shared: &Shared,
        wait: Wait,
        fallback: bool,
        grave: &mut Graveyard,
    ) -> Option<bool> {
        let plain = self.wake_armed
            && self.pending.is_empty()
            && self.retries.is_empty()
            && self.delay.is_zero()
            && (!fallback || self.spin.is_zero());
        if !plain || self.overflowed() {
            return None;
        }
        let mut st = shared.lock();
        let want = st.queue.len();
        if st.shutdown || !st.cancels.is_empty() || want > self.batch as usize {
            return None;
        }
        if want > 0 {
            // One view of the SQ, which must take the queue whole (a
            // submit to make room would cut a linked chain).
            let mut sq = self.ring.sq();
            if want > sq.space() as usize {
                return None;
            }
            if std::mem::take(&mut st.chains_queued) {
                Self::note_linked(&mut self.chained, &st.queue, fallback);
            }
            for &entry in &st.queue {
                // SAFETY: every pointer in `entry` targets memory owned by
                // its op's resources, which stay alive (in the op, or
                // orphaned in the slab) until its last CQE is reaped.
                let pushed = unsafe { sq.push(entry) };
                assert!(pushed.is_ok(), "the SQ had room for the queue");
            }
            drop(sq);
            // (Not drained: a plain loop and one store of the length.)
            st.queue.clear();
            self.in_ring += want as u32;
        }
        // Idle once it has pushed: it may sleep (callers that queue work
        // meanwhile see `sleeping` and write the eventfd, which the armed
        // read turns into a CQE).
        let in_ring = self.in_ring;
        let (block, bound) = match wait {
            Wait::No => (false, None),
            Wait::For(bound) => (in_ring > 0, bound),
        };
        st.sleeping = block;
        st.stats.max_in_ring = st.stats.max_in_ring.max(in_ring);
        st.stats.enters = self.enters;
        drop(st);
        if block && bound == Some(Duration::ZERO) {
            self.submit(false, None);
        } else {
            self.submit(block, bound);
        }
        if !self.reap(shared, grave) && block {
            // Nothing reaped (a timeout): the driver no longer sleeps.
            shared.lock().sleeping = false;
        }
        Some(false)
    }

    /// Polls, for up to `spin`, for callers' work: true as soon as some is
    /// queued (after a moment for the caller to queue the rest of its
    /// batch); false at once if completions are ready (or task work the
    /// kernel wants run, which the wait that follows runs), or once `spin`
    /// has passed.
    ///
    /// `seen` is [`Shared::activity`] when the turn took the queue: work
    /// queued since (before the spin began, too) ends it at once.
    pub(crate) fn spin_for_work(&mut self, shared: &Shared, seen: u64) -> bool {
        let start = Instant::now();
        let mut turns = 0u32;
        loop {
            let now = shared.activity.load(Ordering::Relaxed);
            if now != seen {
                let mut last = now;
                for _ in 0..64 {
                    std::hint::spin_loop();
                    let now = shared.activity.load(Ordering::Relaxed);
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
}
