//! Loom models of the one ordering `SharedRing` adds to ring-core's shared
//! queues (`src/shared_sync.rs`, included here as is): the CQ credit that
//! moves with the kernel-visible `cq.head`, in a second stage after
//! ring-core's release. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p ring-io-driver --profile loom --test shared_loom`
//! in its own `CARGO_TARGET_DIR` (needs `loom` as a `cfg(loom)`
//! dev-dependency of ring-driver); CI builds and runs it in one cargo
//! invocation with ring-core's `tests/loom.rs` (see `.ci/run`).
//!
//! A model is a `#[test]` that calls
//! `check(Bound::preemptions(p).threads(t), || ..)` (or a `*_model`
//! function that does): its doc comment states what it checks and its
//! bound (preemptions, threads, and how many interleavings that is),
//! and a `// Catches:` comment the ordering which, weakened alone in
//! `src/shared_sync.rs` or ring-core, makes it fail. `check` ignores the
//! `LOOM_*` variables that would change the search; `-- --nocapture` prints
//! each model's interleavings and time (measure a new model alone:
//! `-- --exact NAME --test-threads 1`). Preemption bound 2 finds every
//! mutation listed below within seconds; the former bound-3 and unbounded
//! runs of these models (4 to 10 minutes each) caught nothing more. No
//! model fails when the compare-and-swap of `cq.head` in
//! `CqRelease::advance` loses its Release (the kernel's reads it orders
//! are the load-buffering direction loom does not model, and the credit it
//! precedes is returned with Release) or its failure Acquire.
//!
//! The main thread plays the submitter and the kernel: it takes a credit
//! for each request, then posts its CQE as the kernel does (read `cq.head`,
//! write the slot, `smp_store_release` the tail) and asserts the CQ has
//! room: credit must never let a completion meet a full CQ. Consumers claim,
//! copy out and release. A naive variant, returning credit as soon as a
//! consumer's own CQE is copied out, must fail (and does).
#![cfg(loom)]

#[allow(dead_code, unreachable_pub)]
#[path = "../src/shared_sync.rs"]
mod shared_sync;

use loom::sync::Arc;
use loom::thread;
use ring_io_core::loom_model::{Bound, check};
use ring_io_core::sync::{AtomicU32, AtomicU64, Ordering};
use ring_io_core::{AtomicCqCredit, Geometry, SharedCq};
use ring_io_sys::{Features, SetupFlags};
use shared_sync::CqRelease;

/// The kernel (the main thread) posts up to `total` CQEs into a CQ of
/// `entries`, each only after taking a credit (budget: the whole CQ),
/// asserting the CQ has room for it; `consumers` threads each make
/// `attempts` claims of up to `batch` CQEs, copy out (checking the value
/// is the CQE of that index, not a stale or overwritten one) and release.
/// No thread spins: a refused credit or an empty CQ just ends that step.
/// Afterwards the main thread drains what is left, and the head, the
/// credit and the set of CQEs seen are checked.
fn cq_credit_model(bound: Bound, consumers: usize, total: u32, entries: u32, batch: u32) {
    check(bound, move || {
        let start = u32::MAX - 1;
        let geo = Geometry::new(entries, entries, SetupFlags::empty(), Features::empty()).unwrap();
        let credit = Arc::new(AtomicCqCredit::new(entries, &geo).unwrap());
        let cq = Arc::new(SharedCq::with_start(entries, start));
        let rel = Arc::new(CqRelease::new(entries, start));
        let head = Arc::new(AtomicU32::new(start));
        let tail = Arc::new(AtomicU32::new(start));
        let slots: Arc<Vec<AtomicU64>> =
            Arc::new((0..entries).map(|_| AtomicU64::new(0)).collect());
        let mask = entries - 1;
        let consume = {
            let (credit, cq, rel, head, tail, slots) = (
                credit.clone(),
                cq.clone(),
                rel.clone(),
                head.clone(),
                tail.clone(),
                slots.clone(),
            );
            move |attempts: usize| {
                let mut got = Vec::new();
                for _ in 0..attempts {
                    let b = match cq.claim(batch, &tail) {
                        Ok(Some(b)) => b,
                        Ok(None) => continue,
                        Err(e) => panic!("claim: {e}"),
                    };
                    for idx in b.indices() {
                        // Copy the CQE out: a plain read; its value names
                        // its index.
                        let v = slots[(idx & mask) as usize].load(Ordering::Relaxed);
                        assert_eq!(v, u64::from(idx) + 1, "CQE {idx} read stale or overwritten");
                        got.push(v);
                        rel.note(idx, 0);
                    }
                    rel.release(&cq, b, &head, &credit);
                }
                got
            }
        };
        let handles: Vec<_> = (0..consumers)
            .map(|_| {
                let consume = consume.clone();
                thread::spawn(move || consume(2))
            })
            .collect();

        // Submitter + kernel.
        let mut t = start;
        for _ in 0..total {
            if credit.acquire(()).is_err() {
                continue;
            }
            // The kernel's space check: READ_ONCE(cq.head) then the slot
            // write under a control dependency (modelled as Acquire).
            let h = head.load(Ordering::Acquire);
            assert!(
                t.wrapping_sub(h) < entries,
                "CQ overflow: a credited completion met a full CQ (head {h}, tail {t})"
            );
            slots[(t & mask) as usize].store(u64::from(t) + 1, Ordering::Relaxed);
            t = t.wrapping_add(1);
            // smp_store_release(&cq.tail)
            tail.store(t, Ordering::Release);
        }
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.extend(consume(total as usize));
        all.sort();
        let mut want: Vec<u64> = (0..t.wrapping_sub(start))
            .map(|i| u64::from(start.wrapping_add(i)) + 1)
            .collect();
        want.sort();
        assert_eq!(all, want, "lost or duplicated CQEs");
        assert_eq!(head.load(Ordering::Relaxed), t, "head did not catch up");
        assert_eq!(credit.in_flight(), 0, "credit not returned");
    });
}

/// Two consumers, one CQE per claim, 4 CQEs through a CQ of 2.
/// Bound: 2 preemptions, 3 threads (135,072 interleavings).
// Catches, each alone: Acquire -> Relaxed on CqRelease::advance's load of
// cq.head or of `read` (src/shared_sync.rs); Acquire -> Relaxed in
// AtomicCqCredit::acquire_n, Release -> Relaxed in
// AtomicCqCredit::release_saturating (ring-core's src/credit.rs).
#[test]
fn two_consumers_credit_follows_the_head() {
    cq_credit_model(Bound::preemptions(2).threads(3), 2, 4, 2, 1);
}

/// Two consumers claiming up to 2 CQEs at once: a release that hands
/// several notes back in one advance. Bound: 2 preemptions, 3 threads
/// (119,723 interleavings).
// Catches: the same four mutations as two_consumers_credit_follows_the_head.
#[test]
fn two_consumers_batches_credit_follows_the_head() {
    cq_credit_model(Bound::preemptions(2).threads(3), 2, 4, 2, 2);
}

/// Two CQEs posted (the whole budget), claimed by two consumers; a third
/// thread plays the submitter and the kernel: if it gets a credit, its
/// completion must find room in the CQ. `naive`: each consumer returns its
/// credit right after ring-core's release of its own CQE.
fn credit_vs_kernel_model(bound: Bound, naive: bool) {
    check(bound, move || {
        let geo = Geometry::new(2, 2, SetupFlags::empty(), Features::empty()).unwrap();
        let credit = Arc::new(AtomicCqCredit::new(2, &geo).unwrap());
        credit.acquire_n(2, ()).unwrap();
        let cq = Arc::new(SharedCq::with_start(2, 0));
        let rel = Arc::new(CqRelease::new(2, 0));
        let head = Arc::new(AtomicU32::new(0));
        let tail = AtomicU32::new(2);
        let a = cq.claim(1, &tail).unwrap().unwrap();
        let b = cq.claim(1, &tail).unwrap().unwrap();
        let release = move |cq: &SharedCq,
                            rel: &CqRelease,
                            batch,
                            head: &AtomicU32,
                            credit: &AtomicCqCredit| {
            if naive {
                cq.release(batch, head);
                credit.release(1).unwrap();
            } else {
                rel.note(batch.start(), 0);
                rel.release(cq, batch, head, credit);
            }
        };
        let consumer = {
            let (cq, rel, head, credit) = (cq.clone(), rel.clone(), head.clone(), credit.clone());
            thread::spawn(move || release(&cq, &rel, b, &head, &credit))
        };
        let kernel = {
            let (head, credit) = (head.clone(), credit.clone());
            thread::spawn(move || {
                if credit.acquire(()).is_ok() {
                    // READ_ONCE(cq.head) before posting CQE 2.
                    let h = head.load(Ordering::Acquire);
                    assert!(
                        2u32.wrapping_sub(h) < 2,
                        "CQ overflow: a credited completion met a full CQ (head {h})"
                    );
                }
            })
        };
        release(&cq, &rel, a, &head, &credit);
        consumer.join().unwrap();
        kernel.join().unwrap();
        assert_eq!(head.load(Ordering::Relaxed), 2, "head did not catch up");
    });
}

/// Bound: 3 preemptions, 3 threads (13,235 interleavings; unbounded, 3.4
/// million, took 10 minutes and caught nothing more).
// Catches, each alone: Acquire -> Relaxed on CqRelease::advance's load of
// cq.head; Acquire -> Relaxed in AtomicCqCredit::acquire_n, Release ->
// Relaxed in AtomicCqCredit::release_saturating.
#[test]
fn credit_is_back_only_when_the_cq_has_room() {
    credit_vs_kernel_model(Bound::preemptions(3).threads(3), false);
}

/// The negative model: credit returned before the head moves.
/// Bound: 3 preemptions, 3 threads (fails after 4,966 interleavings; it
/// needs at least 2 preemptions).
#[test]
#[should_panic(expected = "CQ overflow")]
fn naive_credit_return_overflows_the_cq() {
    credit_vs_kernel_model(Bound::preemptions(3).threads(3), true);
}

/// Two consumers release out of order; afterwards the head is past both
/// and both credits are back, whatever the interleaving.
/// Bound: 12 preemptions, 2 threads (4,299 interleavings: all of them, as
/// unbounded).
// Catches, each alone: Acquire -> Relaxed on CqRelease::advance's load of
// cq.head or of `read`.
#[test]
fn out_of_order_releases_return_all_credit() {
    check(Bound::preemptions(12).threads(2), || {
        let geo = Geometry::new(2, 2, SetupFlags::empty(), Features::empty()).unwrap();
        let credit = Arc::new(AtomicCqCredit::new(2, &geo).unwrap());
        credit.acquire_n(2, ()).unwrap();
        let cq = Arc::new(SharedCq::with_start(2, u32::MAX));
        let rel = Arc::new(CqRelease::new(2, u32::MAX));
        let head = Arc::new(AtomicU32::new(u32::MAX));
        let tail = AtomicU32::new(1);
        let a = cq.claim(1, &tail).unwrap().unwrap();
        let b = cq.claim(1, &tail).unwrap().unwrap();
        rel.note(a.start(), 0);
        let (cq2, rel2, head2, credit2) = (cq.clone(), rel.clone(), head.clone(), credit.clone());
        let t = thread::spawn(move || {
            rel2.note(b.start(), 0);
            rel2.release(&cq2, b, &head2, &credit2);
        });
        rel.release(&cq, a, &head, &credit);
        t.join().unwrap();
        assert_eq!(head.load(Ordering::Relaxed), 1, "head did not catch up");
        assert_eq!(credit.in_flight(), 0, "credit not returned");
    });
}
