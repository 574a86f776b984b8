//! The concurrent claim -> fill -> commit-in-order protocol, for many
//! producers on the SQ and many consumers on the CQ.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::sync::{AtomicU32, Ordering, fence};
use crate::{ClaimError, CoreError, CqBatch, Geometry, Reservation, SqFull};

/// Per-slot marks: slot `s` holds the ring index last marked in it. Starts
/// with, for every slot, the index it had one lap before `start`, so no
/// index of the current lap reads as marked.
fn marks(entries: u32, start: u32) -> Box<[AtomicU32]> {
    let mask = entries - 1;
    (0..entries)
        .map(|s| {
            let lap_before = start
                .wrapping_sub(entries)
                .wrapping_add(s.wrapping_sub(start) & mask);
            AtomicU32::new(lap_before)
        })
        .collect::<Vec<_>>()
        .into_boxed_slice()
}

/// Mark the run of `n <= marks.len()` indices from `start`: store each
/// index, with `Release`, in its slot's mark. The caller's writes (SQEs)
/// or reads (CQEs) of those slots happen before the marks, which whoever
/// advances over them loads with `Acquire` (see `advance_over_marks`).
/// Walks at most two contiguous pieces of the slice (the run may wrap), so
/// no per-slot masking or bounds check.
#[inline]
fn mark_run(marks: &[AtomicU32], start: u32, n: u32) {
    let len = marks.len();
    if n == 1 {
        // One op at a time (the common case of a shared ring): one store,
        // without the run's set-up.
        marks[start as usize & (len - 1)].store(start, Ordering::Release);
        return;
    }
    let first_slot = start as usize & (len - 1);
    let n = n as usize;
    let first = n.min(len - first_slot);
    let mut idx = start;
    for mark in &marks[first_slot..first_slot + first] {
        // Release: see above.
        mark.store(idx, Ordering::Release);
        idx = idx.wrapping_add(1);
    }
    for mark in &marks[..n - first] {
        // Release: see above.
        mark.store(idx, Ordering::Release);
        idx = idx.wrapping_add(1);
    }
}

/// Advance `index` (the kernel-visible SQ tail or CQ head) over the run of
/// consecutive indices marked in `marks`, by compare-and-swap so that
/// concurrent advancers never move it backwards. Returns its value after.
///
/// # Why the two `SeqCst` fences
///
/// Two committers race as in Dekker's store-buffering pattern: A marks slot
/// 0, B marks slot 1; A loads the index, sees slot 0 marked but not (yet)
/// slot 1, and moves the index to 1; B loads the index, still sees 0 (A's
/// CAS not yet visible), so slot 0 looks uncommitted and B returns. Slot 1
/// is then committed and never published: the loom model found exactly
/// this. With a `SeqCst` fence between each thread's mark store and its
/// index load, and between a successful CAS and the rescan, one of the two
/// fences comes first in the single total order of `SeqCst` fences: either
/// B's index load sees A's CAS (and B advances over slot 1 itself), or A's
/// rescan after its CAS sees B's mark. The caller's mark stores come
/// right before this function, so its first fence covers them.
///
/// `own`: the range `[start, end)` the caller just marked, if any. When the
/// index stands at its start, the scan jumps to its end without loading
/// those marks (they are the caller's own stores, earlier in program
/// order), and goes on from there.
///
/// The fast path, taken when a first load finds the index at the start of
/// `own` (nobody before the caller still filling): compare-and-swap it
/// straight to the end of `own`, without the first fence. The fence's job
/// is the case where the caller does not advance and relies on an earlier
/// committer's rescan; a successful CAS means the caller advances itself,
/// and the fence after it pairs with later committers' first fences as
/// above. If the CAS fails (another thread advanced over the caller's
/// marks), or the index is elsewhere, the slow path starts over with the
/// fence.
///
/// Every successful CAS is followed by a `SeqCst` fence, the last one
/// before the function returns: [`SubmitGate::try_enter`] relies on it.
#[inline]
fn advance_over_marks(
    index: &AtomicU32,
    marks: &[AtomicU32],
    entries: u32,
    own: Option<(u32, u32)>,
) -> u32 {
    let mask = entries - 1;
    // Acquire: see the marks (and data) published by whichever thread
    // advanced the index last, so the scan starts from the newest value.
    let mut cur = index.load(Ordering::Acquire);
    let fast = match own {
        // AcqRel/Acquire: as for the CAS in the loop below.
        Some((start, end)) if start == cur => index
            .compare_exchange(cur, end, Ordering::AcqRel, Ordering::Acquire)
            .is_ok_and(|_| {
                // Orders our CAS before the rescan's mark loads (see above).
                fence(Ordering::SeqCst);
                cur = end;
                true
            }),
        _ => false,
    };
    if !fast {
        // Orders our mark stores before the index load (see above).
        fence(Ordering::SeqCst);
        // Acquire: as the first load.
        cur = index.load(Ordering::Acquire);
    }
    loop {
        let mut end = match own {
            Some((start, own_end)) if start == cur => own_end,
            _ => cur,
        };
        // Acquire on the mark: pairs with the Release store in
        // commit/release; everything the marking thread did before (the SQE
        // writes, or the CQE reads) happens before our index store.
        while end.wrapping_sub(cur) < entries
            && marks[(end & mask) as usize].load(Ordering::Acquire) == end
        {
            end = end.wrapping_add(1);
        }
        if end == cur {
            return cur;
        }
        // Release (as part of AcqRel): the index store the kernel reads,
        // with smp_load_acquire(&rings->sq.tail) (io_sqring_entries) for
        // the SQ tail, with READ_ONCE(rings->cq.head) plus a control
        // dependency (io_get_cqe_overflow's space check) for the CQ head.
        // Being a read-modify-write it continues the release sequence of
        // every earlier advance, so the kernel's acquire load of the index
        // synchronizes with all of them. Acquire: on failure we rescan from
        // the newer value with its marks visible.
        match index.compare_exchange(cur, end, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // Orders our CAS before the rescan's mark loads (see above).
                fence(Ordering::SeqCst);
                cur = end;
            }
            Err(now) => cur = now,
        }
    }
}

/// The SQ shared by many producer threads: claim -> fill -> commit in order.
///
/// 1. [`claim(n, sq_head)`](Self::claim): `n` consecutive slots, all or
///    nothing, by compare-and-swap on a shared reservation tail. The
///    kernel's `sq.head` is loaded with `Acquire`, pairing with its
///    `smp_store_release(&rings->sq.head)` in `io_commit_sqring`: the kernel
///    has finished reading every SQE below it, so claimed slots may be
///    overwritten.
/// 2. The caller writes its SQEs (at [`Geometry::sqe_offset`] of each index).
/// 3. [`commit(claim, sq_tail)`](Self::commit): marks each slot committed
///    (`Release`: the SQE writes before the mark) and advances the
///    kernel-visible `sq.tail` itself, by CAS, over the longest run of
///    consecutive committed slots. The tail store is a `Release` RMW,
///    pairing with the kernel's `smp_load_acquire(&rings->sq.tail)` in
///    `io_sqring_entries`: no SQE is visible to the kernel before it is
///    filled, and the tail never moves backwards. Two `SeqCst` fences make
///    sure that of two racing committers at least one advances over both
///    (see `advance_over_marks` in the source; loom found the race).
///
/// Commit only claims made by this queue's [`claim`](Self::claim), each
/// once: the marks are trusted, so a foreign or repeated claim could
/// publish slots nobody filled.
///
/// A claimed slot that is never committed stalls the tail for everyone:
/// fill an abandoned claim with a NOP and commit it. The caller then enters
/// the kernel as [`decide_enter`](crate::decide_enter) says (with
/// `sq.tail - sq.head` to submit; under SQPOLL after a `SeqCst` fence).
#[derive(Debug)]
pub struct SharedSq {
    entries: u32,
    mask: u32,
    claimed: AtomicU32,
    committed: Box<[AtomicU32]>,
}

impl SharedSq {
    /// For a fresh ring (kernel indices 0).
    pub fn new(geometry: &Geometry) -> Self {
        Self::with_start(geometry.sq_entries(), 0)
    }

    /// For a ring of `entries` whose SQ head and tail are both `start`.
    ///
    /// # Panics
    ///
    /// If `entries` is not a power of two (a [`Geometry`] never has one).
    pub fn with_start(entries: u32, start: u32) -> Self {
        assert!(entries.is_power_of_two(), "entries must be a power of two");
        SharedSq {
            entries,
            mask: entries - 1,
            claimed: AtomicU32::new(start),
            committed: marks(entries, start),
        }
    }

    /// Claim `n` consecutive slots, all or nothing. `sq_head` is the
    /// kernel's `sq.head`.
    #[inline]
    pub fn claim(&self, n: u32, sq_head: &AtomicU32) -> Result<Reservation, ClaimError> {
        loop {
            // Acquire: pairs with the Release of the claim CAS below, so the
            // claimer's load of sq.head happens before our load of it and we
            // never see a head older than the one that claim was sized by:
            // `claimed - head <= entries` for a well-behaved kernel.
            let claimed = self.claimed.load(Ordering::Acquire);
            // Acquire: pairs with the kernel's smp_store_release of sq.head
            // (io_commit_sqring): it finished reading the SQEs below it, so
            // those slots may be overwritten.
            let head = sq_head.load(Ordering::Acquire);
            let used = claimed.wrapping_sub(head);
            if used > self.entries {
                // The head is ahead of our claim snapshot. Either the
                // snapshot is stale (the claims the kernel consumed happen
                // before our head load, so a reload sees them) or the
                // kernel's head is past every claim: a protocol error.
                // Acquire, as the first load: coherence after our head load.
                if self.claimed.load(Ordering::Acquire) != claimed {
                    continue;
                }
                return Err(ClaimError::Kernel(CoreError::HeadPastTail {
                    head,
                    tail: claimed,
                }));
            }
            let space = self.entries - used;
            if n > space {
                return Err(ClaimError::Full(SqFull {
                    requested: n,
                    space,
                }));
            }
            if self
                .claimed
                // Release: publishes our head observation to the next
                // claimer (see the first load). Ownership of the slots comes
                // from the CAS's atomicity; the slot data is ordered by the
                // head Acquire above and the commit marks.
                .compare_exchange_weak(
                    claimed,
                    claimed.wrapping_add(n),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Ok(Reservation::new(claimed, n, self.mask));
            }
        }
    }

    /// Mark a claim's SQEs as written and advance the kernel-visible
    /// `sq_tail` over every consecutive committed slot. Returns the tail
    /// after (possibly unchanged, if an earlier claim is still being
    /// filled: its committer will advance over this one).
    #[inline]
    pub fn commit(&self, claim: Reservation, sq_tail: &AtomicU32) -> u32 {
        // Release marks: the caller's SQE writes happen before them, read
        // with Acquire by whichever thread advances the tail.
        mark_run(&self.committed, claim.start(), claim.len());
        let own = (claim.start(), claim.start().wrapping_add(claim.len()));
        advance_over_marks(sq_tail, &self.committed, self.entries, Some(own))
    }

    /// Advance `sq_tail` over committed slots (what `commit` does last).
    #[inline]
    pub fn advance(&self, sq_tail: &AtomicU32) -> u32 {
        advance_over_marks(sq_tail, &self.committed, self.entries, None)
    }

    /// The reservation tail (a snapshot).
    #[inline]
    pub fn claimed(&self) -> u32 {
        // Relaxed: a snapshot for diagnostics; no decision rests on it.
        self.claimed.load(Ordering::Relaxed)
    }
}

/// The CQ shared by many consumer threads: claim -> copy out -> release in
/// order.
///
/// 1. [`claim(max, cq_tail)`](Self::claim): up to `max` ready CQEs by CAS
///    on a shared claim index. The kernel's `cq.tail` is loaded with
///    `Acquire`, pairing with its `smp_store_release(&rings->cq.tail)` in
///    `io_commit_cqring`: the CQEs below it are written.
/// 2. The caller copies the CQEs out.
/// 3. [`release(batch, cq_head)`](Self::release): marks each slot done
///    (`Release`: the CQE reads before the mark) and advances the
///    kernel-visible `cq.head` by CAS over the longest run of consecutive
///    done slots (`Release` RMW; the kernel reads `cq.head` with
///    `READ_ONCE` and only writes a slot after seeing the head past it), so
///    the kernel never overwrites a CQE being read. The same `SeqCst`
///    fences as [`SharedSq`] keep racing releasers from stranding a done
///    slot.
///
/// Every slot is one CQE here: `IORING_SETUP_CQE32` rings work (the stride
/// is the caller's), `IORING_SETUP_CQE_MIXED` rings need the
/// single-threaded [`CqState::reap_mixed`](crate::CqState::reap_mixed).
/// Release only batches this queue's [`claim`](Self::claim) returned, each once.
#[derive(Debug)]
pub struct SharedCq {
    entries: u32,
    claimed: AtomicU32,
    done: Box<[AtomicU32]>,
}

impl SharedCq {
    /// For a fresh ring (kernel indices 0).
    pub fn new(geometry: &Geometry) -> Self {
        Self::with_start(geometry.cq_entries(), 0)
    }

    /// For a ring of `entries` whose CQ head and tail are both `start`.
    ///
    /// # Panics
    ///
    /// If `entries` is not a power of two (a [`Geometry`] never has one).
    pub fn with_start(entries: u32, start: u32) -> Self {
        assert!(entries.is_power_of_two(), "entries must be a power of two");
        SharedCq {
            entries,
            claimed: AtomicU32::new(start),
            done: marks(entries, start),
        }
    }

    /// Claim up to `max` ready CQEs. `cq_tail` is the kernel's `cq.tail`.
    /// `Ok(None)` when none is ready.
    #[inline]
    pub fn claim(&self, max: u32, cq_tail: &AtomicU32) -> Result<Option<CqBatch>, CoreError> {
        loop {
            // Acquire: pairs with the Release of another consumer's claim
            // CAS, whose load of cq.tail then happens before ours, so the
            // tail we read is never behind the claim index we read. (It may
            // be far ahead of a stale claim index: see below.)
            let claimed = self.claimed.load(Ordering::Acquire);
            // Acquire: pairs with the kernel's smp_store_release(&cq.tail)
            // (io_commit_cqring): CQEs below the tail are written.
            let tail = cq_tail.load(Ordering::Acquire);
            let ready = tail.wrapping_sub(claimed);
            if ready > self.entries {
                // Either our `claimed` is stale (another consumer claimed
                // and released, and the kernel posted more since), or the
                // kernel broke the protocol. A no-op RMW reads the latest
                // claim index: if it moved, retry with fresh values.
                if self
                    .claimed
                    .compare_exchange(claimed, claimed, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    continue;
                }
                return Err(CoreError::TailPastCapacity {
                    head: claimed,
                    tail,
                    entries: self.entries,
                });
            }
            let n = ready.min(max);
            if n == 0 {
                return Ok(None);
            }
            // AcqRel: Release publishes our tail observation to the next
            // claimer (see the load above); Acquire for symmetry with it.
            if self
                .claimed
                .compare_exchange_weak(
                    claimed,
                    claimed.wrapping_add(n),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Ok(Some(CqBatch::new(claimed, n)));
            }
        }
    }

    /// Mark a batch's CQEs as copied out and advance the kernel-visible
    /// `cq_head` over every consecutive done slot. Returns the head after.
    #[inline]
    pub fn release(&self, batch: CqBatch, cq_head: &AtomicU32) -> u32 {
        // Release marks: the caller's CQE reads happen before them, read
        // with Acquire by whichever thread advances the head.
        mark_run(&self.done, batch.start(), batch.len());
        let own = (batch.start(), batch.start().wrapping_add(batch.len()));
        advance_over_marks(cq_head, &self.done, self.entries, Some(own))
    }

    /// The claim index (a snapshot).
    #[inline]
    pub fn claimed(&self) -> u32 {
        // Relaxed: a snapshot for diagnostics; no decision rests on it.
        self.claimed.load(Ordering::Relaxed)
    }
}

/// Flat-combining submission for a shared SQ: one thread at a time enters
/// the kernel to submit, and it submits what other threads publish
/// meanwhile, so no published entry is left unsubmitted.
///
/// Why: the kernel serialises `io_uring_enter` submissions on the ring's
/// `uring_lock`, a sleeping mutex. Two threads submitting at once make the
/// second spin (`mutex_spin_on_owner`) or sleep in the kernel while the
/// first submits; through the gate, the second returns at once and the
/// first submits both threads' entries, in fewer, larger batches.
///
/// Call order, after [`SharedSq::commit`] (or after a commit of another
/// thread moved the tail over this thread's entries, which that thread then
/// submits):
///
/// 1. [`try_enter`](Self::try_enter): `false` means another thread holds
///    the gate and will submit this thread's entries (its
///    [`leave`](Self::leave) sees them): done. `true`: this thread is the
///    submitter.
/// 2. The submitter enters the kernel with `sq.tail - sq.head` to submit,
///    without waiting for completions (a wait would hold back the entries
///    others publish meanwhile, whose completions it may be waiting for).
/// 3. [`leave`](Self::leave) gives the gate up, then looks at the SQ: if
///    entries are pending it tries to take the gate again; `true` means it
///    holds it again and goes back to 2.
///
/// The guarantee (checked by loom, `tests/loom.rs`): every entry published
/// before a `try_enter` is consumed by an enter of a submitter that holds
/// the gate afterwards, provided each enter consumes what it is asked to.
/// A submitter whose enter fails calls [`abandon`](Self::abandon) and
/// reports the error: entries other threads published meanwhile stay
/// pending for the next submit of any thread.
///
/// Under `IORING_SETUP_SQPOLL` the kernel thread submits: the gate is not
/// used.
#[derive(Debug, Default)]
pub struct SubmitGate {
    held: AtomicU32,
}

impl SubmitGate {
    /// An open gate.
    pub fn new() -> Self {
        SubmitGate {
            held: AtomicU32::new(0),
        }
    }

    /// After publishing: become the submitter (`true`), or leave the
    /// entries to the thread that holds the gate (`false`).
    ///
    /// Call it after [`SharedSq::commit`] or [`SharedSq::advance`]: it
    /// relies on the `SeqCst` fence those issue after each compare-and-swap
    /// that moves `sq.tail` (a thread whose commit moved nothing has its
    /// entries published, and submitted, by the thread that moves the
    /// tail over them).
    #[inline]
    pub fn try_enter(&self) -> bool {
        // No fence of our own: the SeqCst fence SharedSq::commit/advance
        // issued after its sq.tail CAS orders that publication before the
        // load of `held` below. It pairs with the fence in `leave`, between
        // its store of `held` and its load of sq.tail: of the two fences
        // one comes first in their single total order, so either we see
        // the gate open, or the leaving submitter sees our tail.
        // Relaxed: a cheap look before the CAS; the decision is the CAS's.
        if self.held.load(Ordering::Relaxed) != 0 {
            return false;
        }
        self.try_take()
    }

    #[inline]
    fn try_take(&self) -> bool {
        self.held
            // Acquire: pairs with the Release store in `leave`/`abandon`:
            // the previous submitter's enter (and the kernel's sq.head
            // store it observed) happens before ours.
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// The submitter's enter returned: give the gate up, and take it again
    /// (`true`: enter again, then `leave` again) if entries are pending
    /// that a thread may have left to us. `sq_head` and `sq_tail` are the
    /// kernel's `sq.head` and the published `sq.tail`.
    #[inline]
    pub fn leave(&self, sq_head: &AtomicU32, sq_tail: &AtomicU32) -> bool {
        // Release: pairs with the Acquire CAS of the next submitter.
        self.held.store(0, Ordering::Release);
        // SeqCst fence: orders the store above before the tail load below;
        // pairs with the fence in `try_enter` (see there).
        fence(Ordering::SeqCst);
        // Acquire: pairs with the committers' AcqRel tail CAS (the
        // entries are filled); the value is what we compare, the kernel
        // reads the entries itself.
        let tail = sq_tail.load(Ordering::Acquire);
        // Acquire: pairs with the kernel's smp_store_release(&sq.head)
        // (io_commit_sqring) in the enter that just returned.
        let head = sq_head.load(Ordering::Acquire);
        if tail == head {
            return false;
        }
        // Pending entries: take the gate again unless another thread took
        // it, which then submits them (it enters after its CAS, so it loads
        // the tail after ours).
        self.try_take()
    }

    /// Give the gate up without looking for pending entries (after a
    /// failed enter: looping would repeat the failure).
    #[inline]
    pub fn abandon(&self) {
        // Release: pairs with the Acquire CAS of the next submitter.
        self.held.store(0, Ordering::Release);
    }

    /// Whether a thread holds the gate, i.e. is submitting (a snapshot).
    #[inline]
    pub fn is_held(&self) -> bool {
        // Relaxed: a hint (a waiter's choice to spin or sleep).
        self.held.load(Ordering::Relaxed) != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use super::*;
    use std::sync::Arc;
    use std::vec::Vec;

    #[test]
    fn sq_out_of_order_commit_publishes_in_order() {
        let q = SharedSq::with_start(4, u32::MAX - 1);
        let head = AtomicU32::new(u32::MAX - 1);
        let tail = AtomicU32::new(u32::MAX - 1);
        let a = q.claim(1, &head).unwrap();
        let b = q.claim(2, &head).unwrap();
        assert!(matches!(
            q.claim(2, &head),
            Err(ClaimError::Full(SqFull {
                requested: 2,
                space: 1
            }))
        ));
        assert_eq!(q.commit(b, &tail), u32::MAX - 1);
        assert_eq!(q.commit(a, &tail), 1);
        assert_eq!(tail.load(Ordering::Relaxed), 1);
        head.store(1, Ordering::Relaxed);
        let c = q.claim(4, &head).unwrap();
        assert_eq!(c.start(), 1);
        head.store(7, Ordering::Relaxed);
        assert!(matches!(q.claim(1, &head), Err(ClaimError::Kernel(_))));
        assert_eq!(q.claimed(), 5);
    }

    #[test]
    fn cq_out_of_order_release() {
        let q = SharedCq::with_start(4, 0);
        let head = AtomicU32::new(0);
        let tail = AtomicU32::new(0);
        assert_eq!(q.claim(4, &tail), Ok(None));
        tail.store(3, Ordering::Relaxed);
        let a = q.claim(1, &tail).unwrap().unwrap();
        let b = q.claim(8, &tail).unwrap().unwrap();
        assert_eq!((b.start(), b.len()), (1, 2));
        assert_eq!(q.release(b, &head), 0);
        assert_eq!(q.release(a, &head), 3);
        tail.store(9, Ordering::Relaxed);
        assert!(q.claim(1, &tail).is_err());
        assert_eq!(q.claimed(), 3);
    }

    #[test]
    fn gate_one_submitter_and_pending_recheck() {
        let gate = SubmitGate::new();
        let head = AtomicU32::new(5);
        let tail = AtomicU32::new(5);
        assert!(gate.try_enter());
        assert!(gate.is_held());
        assert!(!gate.try_enter(), "a second submitter");
        // Nothing pending: the gate opens.
        assert!(!gate.leave(&head, &tail));
        assert!(!gate.is_held());
        assert!(gate.try_enter());
        // Published meanwhile: the submitter takes the gate again.
        tail.store(7, Ordering::Relaxed);
        assert!(gate.leave(&head, &tail));
        assert!(gate.is_held());
        head.store(7, Ordering::Relaxed);
        assert!(!gate.leave(&head, &tail));
        assert!(gate.try_enter());
        tail.store(8, Ordering::Relaxed);
        gate.abandon();
        assert!(!gate.is_held());
    }

    /// Real threads on the real atomics: producers and a kernel thread.
    #[test]
    fn sq_threads_deliver_everything_once() {
        const PER: u64 = if cfg!(miri) { 20 } else { 2000 };
        const PRODUCERS: u64 = 3;
        let q = Arc::new(SharedSq::with_start(8, u32::MAX - 20));
        let head = Arc::new(AtomicU32::new(u32::MAX - 20));
        let tail = Arc::new(AtomicU32::new(u32::MAX - 20));
        let slots: Arc<Vec<crate::sync::AtomicU64>> =
            Arc::new((0..8).map(|_| crate::sync::AtomicU64::new(0)).collect());
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (q, head, tail, slots) = (q.clone(), head.clone(), tail.clone(), slots.clone());
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let r = loop {
                            match q.claim(1, &head) {
                                Ok(r) => break r,
                                Err(ClaimError::Full(_)) => std::thread::yield_now(),
                                Err(e) => panic!("{e}"),
                            }
                        };
                        let v = (p << 32) | (i + 1);
                        slots[(r.start() & 7) as usize].store(v, Ordering::Relaxed);
                        q.commit(r, &tail);
                    }
                })
            })
            .collect();
        let mut next = [1u64; PRODUCERS as usize];
        let mut h = u32::MAX - 20;
        let mut seen = 0;
        while seen < PER * PRODUCERS {
            let t = tail.load(Ordering::Acquire);
            while h != t {
                let v = slots[(h & 7) as usize].load(Ordering::Relaxed);
                let p = (v >> 32) as usize;
                assert_eq!(v & 0xffff_ffff, next[p], "per-producer order");
                next[p] += 1;
                h = h.wrapping_add(1);
                seen += 1;
            }
            head.store(h, Ordering::Release);
            std::thread::yield_now();
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(next, [PER + 1; PRODUCERS as usize]);
    }
}
