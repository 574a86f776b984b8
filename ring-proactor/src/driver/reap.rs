//! The reap: every CQE taken from the ring and dispatched to its slot.

use super::*;

impl<K: Kernel> Driver<K> {
    /// Takes every CQE and dispatches it. A CQE is taken for a request's
    /// only if its `user_data` names a request in the kernel (slot index
    /// and tag) or the armed wake-up read; anything else (a forged or stray
    /// CQE) is counted in `unexpected_cqes` and changes nothing.
    /// False if there was none. The driver is awake: `sleeping` is
    /// cleared with the dispatch, unless `holder` (a `block_on`'s turn)
    /// lets the holder push its own ops next (see [`Driver::decide_direct`]).
    pub(crate) fn reap(&mut self, shared: &Shared, holder: bool, grave: &mut Graveyard) -> bool {
        // The CQ is read in place, under the lock (taken at the first
        // CQE: plain loads from the ring, nothing that blocks).
        let Driver {
            ring,
            wake_armed,
            wake_ud,
            in_ring,
            retries,
            ..
        } = self;
        let cq = ring.cq();
        if cq.is_empty() {
            return false;
        }
        let mut st = shared.lock();
        st.sleeping = false;
        let mut released = 0;
        let mut completed = 0;
        let mut now = None;
        for cqe in cq {
            let ud = cqe.user_data();
            let (res, flags) = (cqe.res(), cqe.flags().bits());
            // The common case first: the one CQE of an op whose future is
            // alive (armed: its CQE had not come; not a stream: `alloc`
            // gives streams their own state). Neither the wake-up read nor
            // a cancellation names a slot (their low words are at or above
            // CANCEL_BIT). Its credit comes back, the op may take the
            // result without the lock, and its waker is woken after
            // unlocking.
            if let Some(Slot {
                state: state @ SlotState::Waiting(_),
                held,
                tag,
                ..
            }) = st.slot(ud)
            {
                let SlotState::Waiting(waker) = state else {
                    unreachable!("matched above")
                };
                let waker = waker.take();
                refill_done(state, res, flags);
                *in_ring -= 1;
                released += std::mem::take(held);
                completed += 1;
                shared.cells.publish(ud as u32, *tag, res, flags);
                if let Some(waker) = waker {
                    grave.wakers.push(waker);
                }
                continue;
            }
            if *wake_armed && ud == *wake_ud {
                *wake_armed = false;
                *in_ring -= 1;
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
                *in_ring -= 1;
                slot.cancel = Cancel::None;
                if let SlotState::Reaped = slot.state {
                    st.finish(target, grave);
                } else if res < 0 && slot.armed() {
                    // The kernel did not cancel it (ENOENT: not found yet,
                    // or completing; EALREADY: running) and its CQE has not
                    // come: ask again after a backoff.
                    slot.cancel = Cancel::Retry;
                    let shift = slot.attempts.saturating_sub(1).min(6);
                    let backoff = (RETRY_FIRST * (1 << shift)).min(RETRY_MAX);
                    let now = *now.get_or_insert_with(Instant::now);
                    retries.push((now + backoff, target));
                }
                continue;
            }
            let Some(slot) = st.slot(ud) else {
                st.stats.unexpected_cqes += 1;
                continue;
            };
            if !slot.armed() {
                // Its last CQE came already.
                st.stats.unexpected_cqes += 1;
                continue;
            }
            // Only a multishot request posts CQEs with IORING_CQE_F_MORE.
            let last = !slot.stream || ring_io_core::cqe_returns_credit(flags);
            if last {
                *in_ring -= 1;
            }
            let orphan = matches!(slot.state, SlotState::Orphan(..));
            if last && !orphan {
                released += std::mem::take(&mut slot.held);
            }
            st.stats.completed += 1;
            let slot = st.slot(ud).expect("looked up above");
            match std::mem::replace(&mut slot.state, SlotState::Free) {
                SlotState::Waiting(waker) => {
                    refill(&mut slot.state, SlotState::Done(res, flags));
                    // The op may take it without the lock.
                    shared.cells.publish(ud as u32, slot.tag, res, flags);
                    if let Some(waker) = waker {
                        grave.wakers.push(waker);
                    }
                }
                SlotState::Stream(mut stream) => {
                    stream.cqes.push_back((res, flags));
                    if let Some(waker) = stream.waker.take() {
                        grave.wakers.push(waker);
                    }
                    stream.ended |= last;
                    refill(&mut slot.state, SlotState::Stream(stream));
                }
                SlotState::Orphan(mut orphan) => {
                    orphan.1.push((res, flags));
                    if last {
                        // The kernel is done with them: released (after
                        // unlocking). The slot and its credit wait for the
                        // cancellation's CQE if it is still owed.
                        grave.orphans.push(*orphan);
                        refill(&mut slot.state, SlotState::Reaped);
                        st.finish(ud, grave);
                        st.stats.orphans_freed += 1;
                    } else {
                        // More CQEs of a dropped stream are coming.
                        refill(&mut slot.state, SlotState::Orphan(orphan));
                    }
                }
                other => refill(&mut slot.state, other),
            }
        }
        st.stats.completed += completed;
        st.release_credit(released, &mut grave.wakers);
        st.stats.cq_overflow = ring.overflow();
        self.decide_direct(shared, &mut st, holder);
        true
    }
}
