//! The turn: push what callers queued (or hold it back while the kernel
//! reports CQ overflow), decide under the state lock whether to sleep,
//! submit and wait, reap; and its plain form, the turn as it nearly
//! always goes.

use super::*;

impl<K: Kernel> Driver<K> {
    /// One turn (see [`Drive::turn`]).
    pub(crate) fn turn(
        &mut self,
        shared: &Shared,
        wait: Wait,
        fallback: bool,
        holder: bool,
        grave: &mut Graveyard,
    ) -> bool {
        #[cfg(test)]
        if shared.lock().inject_panic {
            panic!("a panic injected by a test");
        }
        if let Some(stopped) = self.plain_turn(shared, wait, fallback, holder, grave) {
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
            self.reap(shared, false, grave);
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
        self.reaped(shared, block, holder, grave);
        false
    }

    /// The end of a turn that may have waited (`block`): reaps.
    #[inline(always)]
    fn reaped(&mut self, shared: &Shared, block: bool, holder: bool, grave: &mut Graveyard) {
        if !self.reap(shared, holder, grave) && block {
            // Nothing reaped (a timeout): the driver no longer sleeps (and
            // its next turn looks at the state).
            let mut st = shared.lock();
            st.sleeping = false;
            st.set_direct(shared, false);
        }
    }

    /// The turn of a `block_on` holder that pushed its own ops (see
    /// [`State::direct`], read without the lock just before): nothing else
    /// was queued or asked of it since its last reap, or the eventfd was
    /// written (which ends the wait), so it submits what is in the SQ and
    /// waits without looking at the state; only the reap takes the lock.
    /// `false` if the driver itself is not in its plain way (the caller
    /// then turns as usual).
    #[inline]
    pub(crate) fn turn_direct(
        &mut self,
        shared: &Shared,
        wait: Wait,
        grave: &mut Graveyard,
    ) -> bool {
        if !self.wake_armed
            || !self.pending.is_empty()
            || !self.retries.is_empty()
            || self.overflowed()
        {
            return false;
        }
        // (`sleeping` was set with `direct`, and stays set until work
        // queued by another thread takes it and writes the eventfd.)
        let (block, bound) = self.blocking(wait);
        self.enter(block, bound);
        self.reaped(shared, block, true, grave);
        true
    }

    /// Whether a turn that `wait`s blocks in the kernel (only with
    /// requests in the ring to wait for), and for how long at most.
    #[inline(always)]
    fn blocking(&self, wait: Wait) -> (bool, Option<Duration>) {
        match wait {
            Wait::No => (false, None),
            Wait::For(bound) => (self.in_ring > 0, bound),
        }
    }

    /// Submits, and waits as [`blocking`](Self::blocking) said (a bound of
    /// zero: not at all).
    #[inline(always)]
    fn enter(&mut self, block: bool, bound: Option<Duration>) {
        if block && bound == Some(Duration::ZERO) {
            self.submit(false, None);
        } else {
            self.submit(block, bound);
        }
    }

    /// Pushes `entry`, with `user_data` `ud`, for the holder's own op (see
    /// [`State::direct`]): the requests in the ring then, or `None`,
    /// pushing nothing, if the driver is not in its plain way, or the SQ
    /// has no room or holds a batch already.
    #[inline]
    pub(crate) fn push_direct(&mut self, entry: &Entry, ud: u64) -> Option<u32> {
        if !self.wake_armed || !self.pending.is_empty() || self.overflowed() {
            return None;
        }
        let mut sq = self.ring.sq();
        if sq.space() == 0 || sq.len() >= self.batch {
            return None;
        }
        // SAFETY: every pointer in `entry` targets memory owned by its
        // op's resources, which stay alive (in the op, or orphaned in the
        // slab) until its last CQE is reaped.
        unsafe { sq.push(entry.user_data(ud)) }.ok()?;
        self.in_ring += 1;
        Some(self.in_ring)
    }

    /// At the end of a reap, under the state lock: whether the holder
    /// pushes its own ops until its next turn (see [`State::direct`]):
    /// only a `block_on` (`holder`) whose turns were plain for
    /// [`DIRECT_AFTER`] reaps in a row. `sleeping` goes with it: work
    /// queued while it is set writes the eventfd.
    #[inline]
    pub(crate) fn decide_direct(&self, shared: &Shared, st: &mut State, holder: bool) {
        let plain = holder
            && self.wake_armed
            && self.pending.is_empty()
            && self.retries.is_empty()
            && self.delay.is_zero()
            && !st.shutdown
            && st.queue.is_empty()
            && st.cancels.is_empty()
            && !self.overflowed();
        st.stats.enters = self.enters;
        st.direct_streak = if plain {
            st.direct_streak.saturating_add(1)
        } else {
            0
        };
        let direct = st.direct_streak >= DIRECT_AFTER;
        st.set_direct(shared, direct);
        st.sleeping = direct;
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
        holder: bool,
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
        let (block, bound) = self.blocking(wait);
        st.sleeping = block;
        st.stats.max_in_ring = st.stats.max_in_ring.max(self.in_ring);
        st.stats.enters = self.enters;
        drop(st);
        self.enter(block, bound);
        self.reaped(shared, block, holder, grave);
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
