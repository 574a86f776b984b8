//! The one ordering [`SharedRing`](crate::SharedRing) adds to ring-core's
//! claim -> copy out -> release protocol: handing CQ slots back to the
//! kernel and returning their CQ credit in the same step.
//!
//! ring-core's [`SharedCq::release`] advances the index it is given over
//! consecutive copied-out slots. If that index were the kernel's `cq.head`
//! and each consumer returned its credits right after its own release, a
//! consumer whose batch sits behind a slower one would return credit for
//! slots the kernel still counts as full, and a new request could complete
//! into a full CQ (`tests/shared_loom.rs` shows loom finding exactly that).
//! So the release is done in two stages:
//!
//! 1. [`SharedCq::release`] advances a private index, `read`: every slot
//!    below it has been copied out (and its credit noted with
//!    [`CqRelease::note_in`] before);
//! 2. [`CqRelease::advance`] moves the kernel-visible `cq.head` up to `read`
//!    by compare-and-swap, and the thread whose CAS succeeds returns the
//!    credits of exactly the slots it moved the head over. It read the notes
//!    of those slots while the head was still below them (the successful CAS
//!    proves the head did not move meanwhile), so the kernel could not have
//!    posted into them again and no consumer could have overwritten a note;
//!    a failed CAS discards the count and starts over.
//!
//! Liveness: every thread that moves `read` runs stage 2 afterwards, and
//! stage 2 only returns once the head is at least the `read` it loaded (its
//! own move or a later one), so the head always catches up with the last
//! move. Stage 1's own liveness (racing releasers never strand a done slot)
//! is ring-core's, with its `SeqCst` fences.
//!
//! Only ring-core's atomics facade is used, so this module runs under loom
//! (`tests/shared_loom.rs`) exactly as in the driver.

use ring_io_core::sync::{AtomicU32, Ordering};
use ring_io_core::{AtomicCqCredit, CqBatch, SharedCq, cqe_returns_credit};

/// The consumers' side of a shared CQ's head: see the module doc.
#[derive(Debug)]
pub(crate) struct CqRelease {
    mask: u32,
    /// Every slot below this index has been copied out.
    read: AtomicU32,
    /// Per slot: 1 if the CQE copied out of it returns a credit.
    credits: Box<[AtomicU32]>,
    /// Final CQEs handed back while no credit was out: completions no
    /// request of ours accounts for (see [`unexpected`](Self::unexpected)).
    unexpected: AtomicU32,
}

impl CqRelease {
    /// For a CQ of `entries` (a power of two) whose head is `start`.
    pub(crate) fn new(entries: u32, start: u32) -> CqRelease {
        assert!(entries.is_power_of_two(), "entries must be a power of two");
        CqRelease {
            mask: entries - 1,
            read: AtomicU32::new(start),
            credits: (0..entries).map(|_| AtomicU32::new(0)).collect(),
            unexpected: AtomicU32::new(0),
        }
    }

    /// Note, for the claimed CQE at `index`, whether it returns a credit
    /// (its `flags`: see [`cqe_returns_credit`]). Call before releasing its
    /// batch.
    #[cfg(test)]
    pub(crate) fn note(&self, index: u32, flags: u32) {
        Self::note_in(&self.credits[(index & self.mask) as usize], flags);
    }

    /// The note slots of the claimed CQEs `index .. index + n`, a run that
    /// does not wrap the ring: note each with [`note_in`](Self::note_in)
    /// (what `note` does one index at a time, in tests).
    pub(crate) fn notes(&self, index: u32, n: u32) -> &[AtomicU32] {
        let first = (index & self.mask) as usize;
        &self.credits[first..first + n as usize]
    }

    /// Note in `slot` (of [`notes`](Self::notes)) whether the CQE copied
    /// out of it, with `flags`, returns a credit.
    pub(crate) fn note_in(slot: &AtomicU32, flags: u32) {
        // Relaxed: published by the Release store of the slot's done mark in
        // SharedCq::release, which the advancer of `read` acquires.
        slot.store(u32::from(cqe_returns_credit(flags)), Ordering::Relaxed);
    }

    /// Mark `batch` copied out and hand what is contiguous back to the
    /// kernel (`cq_head`), returning the credits of the slots handed back.
    /// Returns the kernel-visible head after.
    pub(crate) fn release(
        &self,
        cq: &SharedCq,
        batch: CqBatch,
        cq_head: &AtomicU32,
        credit: &AtomicCqCredit,
    ) -> u32 {
        cq.release(batch, &self.read);
        self.advance(cq_head, credit)
    }

    /// Stage 2: move `cq_head` up to `read`, returning the credits of the
    /// slots passed. Every thread that moves `read` calls this afterwards,
    /// so the head always catches up with the last move.
    pub(crate) fn advance(&self, cq_head: &AtomicU32, credit: &AtomicCqCredit) -> u32 {
        loop {
            // Acquire: the successful CAS of the previous advancer (which
            // read `read` at least this far), so the load of `read` below
            // is not behind it: head <= read.
            let head = cq_head.load(Ordering::Acquire);
            // Acquire: pairs with the AcqRel CAS in SharedCq::release's
            // advance, which acquired the done marks that each consumer
            // stored (Release) after its CQE reads and its note: those
            // happen before our note reads and our head store.
            let read = self.read.load(Ordering::Acquire);
            if read == head {
                return head;
            }
            // The notes of head .. read: at most two contiguous pieces of
            // the slice (the run may wrap). Relaxed: ordered by the acquire
            // of `read` above.
            let count = read.wrapping_sub(head) as usize;
            if count > self.credits.len() {
                // Our head is stale: others moved `read` and the head more
                // than a ring on meanwhile. The CAS below would fail.
                continue;
            }
            let first_slot = (head & self.mask) as usize;
            let n: u32 = if count == 1 {
                // One CQE (the common case of one op at a time): one load,
                // without the run's set-up.
                self.credits[first_slot].load(Ordering::Relaxed)
            } else {
                let first = count.min(self.credits.len() - first_slot);
                self.credits[first_slot..first_slot + first]
                    .iter()
                    .chain(&self.credits[..count - first])
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum()
            };
            // Release (in AcqRel): the store of cq.head the kernel reads
            // with READ_ONCE before it overwrites a slot
            // (io_get_cqe_overflow): every consumer's CQE reads happen
            // before it. An RMW, so it continues the release sequence of
            // earlier advances. Acquire on failure: retry from the newer
            // head with what its advancer saw.
            match cq_head.compare_exchange(head, read, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if n > 0 {
                        // After the head store: the slots are free before
                        // the credits let new requests in (Release inside,
                        // paired with the Acquire of AtomicCqCredit::acquire).
                        // Saturating: a final CQE no request took credit
                        // for (another ring's IORING_OP_MSG_RING posts
                        // them at will) is counted, never an underflow.
                        let excess = credit.release_saturating(n);
                        if excess > 0 {
                            // Relaxed: a statistic.
                            self.unexpected.fetch_add(excess, Ordering::Relaxed);
                        }
                    }
                    return read;
                }
                Err(_) => continue,
            }
        }
    }

    /// Final CQEs that found no credit to return (a snapshot): completions
    /// posted into the ring by something other than a request pushed on
    /// it, counted instead of trusted. Wraps after `u32::MAX`.
    pub(crate) fn unexpected(&self) -> u32 {
        // Relaxed: a statistic.
        self.unexpected.load(Ordering::Relaxed)
    }

    /// Every slot below this index has been copied out (a snapshot).
    #[cfg(test)]
    pub(crate) fn read(&self) -> u32 {
        self.read.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use ring_io_core::Geometry;
    use ring_io_sys::{Features, IORING_CQE_F_MORE, SetupFlags};

    #[test]
    fn credit_comes_back_only_when_the_head_passes() {
        let geo = Geometry::new(2, 4, SetupFlags::empty(), Features::empty()).unwrap();
        let credit = AtomicCqCredit::new(4, &geo).unwrap();
        for _ in 0..3 {
            credit.acquire(()).unwrap();
        }
        let start = u32::MAX - 1; // cross the wrap
        let cq = SharedCq::with_start(4, start);
        let rel = CqRelease::new(4, start);
        let head = AtomicU32::new(start);
        let tail = AtomicU32::new(start.wrapping_add(3));
        let a = cq.claim(1, &tail).unwrap().unwrap();
        let b = cq.claim(2, &tail).unwrap().unwrap();
        for idx in b.indices() {
            rel.note(
                idx,
                if idx == b.start() {
                    IORING_CQE_F_MORE
                } else {
                    0
                },
            );
        }
        // b is copied out first: a is still being read, nothing moves.
        assert_eq!(rel.release(&cq, b, &head, &credit), start);
        assert_eq!(credit.in_flight(), 3);
        assert_eq!(rel.read(), start);
        rel.note(a.start(), 0);
        // a done: the head passes all three, and two credits come back
        // (the F_MORE CQE keeps its request's).
        assert_eq!(rel.release(&cq, a, &head, &credit), start.wrapping_add(3));
        assert_eq!(head.load(Ordering::Relaxed), 1);
        assert_eq!(credit.in_flight(), 1);
        // Nothing more to do: advance is idempotent.
        assert_eq!(rel.advance(&head, &credit), 1);
        assert_eq!(credit.in_flight(), 1);
        assert_eq!(rel.unexpected(), 0);
        // Three final CQEs nobody took credit for beyond the one out: one
        // credit comes back, two are counted, nothing wraps or panics.
        tail.store(4, Ordering::Relaxed);
        let c = cq.claim(8, &tail).unwrap().unwrap();
        for idx in c.indices() {
            rel.note(idx, 0);
        }
        assert_eq!(rel.release(&cq, c, &head, &credit), 4);
        assert_eq!(credit.in_flight(), 0);
        assert_eq!(rel.unexpected(), 2);
    }

    /// Real threads on the real atomics (and, under Miri, its weak-memory
    /// emulation): a kernel thread posts only with credit and asserts room;
    /// consumers claim, check, release.
    #[test]
    fn threads_credited_completions_always_find_room() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, AtomicUsize};
        const TOTAL: u32 = if cfg!(miri) { 200 } else { 20_000 };
        const ENTRIES: u32 = 4;
        let start = u32::MAX - 10;
        let geo = Geometry::new(2, ENTRIES, SetupFlags::empty(), Features::empty()).unwrap();
        let credit = Arc::new(AtomicCqCredit::new(ENTRIES, &geo).unwrap());
        let cq = Arc::new(SharedCq::with_start(ENTRIES, start));
        let rel = Arc::new(CqRelease::new(ENTRIES, start));
        let head = Arc::new(AtomicU32::new(start));
        let tail = Arc::new(AtomicU32::new(start));
        let taken = Arc::new(AtomicUsize::new(0));
        let slots: Arc<Vec<AtomicU64>> =
            Arc::new((0..ENTRIES).map(|_| AtomicU64::new(0)).collect());
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let (credit, cq, rel, head, tail, taken, slots) = (
                    credit.clone(),
                    cq.clone(),
                    rel.clone(),
                    head.clone(),
                    tail.clone(),
                    taken.clone(),
                    slots.clone(),
                );
                std::thread::spawn(move || {
                    let mut sum = 0u64;
                    while taken.load(Ordering::Relaxed) < TOTAL as usize {
                        match cq.claim(2, &tail).unwrap() {
                            Some(b) => {
                                taken.fetch_add(b.len() as usize, Ordering::Relaxed);
                                for idx in b.indices() {
                                    let v = slots[(idx % ENTRIES) as usize].load(Ordering::Relaxed);
                                    assert_eq!(v, u64::from(idx) + 1, "stale or overwritten CQE");
                                    sum += v;
                                    rel.note(idx, 0);
                                }
                                rel.release(&cq, b, &head, &credit);
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                    sum
                })
            })
            .collect();
        let mut t = start;
        let mut want = 0u64;
        for _ in 0..TOTAL {
            while credit.acquire(()).is_err() {
                std::thread::yield_now();
            }
            let h = head.load(Ordering::Acquire);
            assert!(t.wrapping_sub(h) < ENTRIES, "credited CQE met a full CQ");
            slots[(t % ENTRIES) as usize].store(u64::from(t) + 1, Ordering::Relaxed);
            want += u64::from(t) + 1;
            t = t.wrapping_add(1);
            tail.store(t, Ordering::Release);
        }
        let got: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(got, want);
        assert_eq!(head.load(Ordering::Relaxed), t);
        assert_eq!(credit.in_flight(), 0);
    }
}
