//! Loom models of the concurrent protocols, with one more thread playing the
//! kernel. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p ring-io-core --profile loom --test loom`
//! (`-- --nocapture` prints each model's interleavings and time).
//!
//! CI builds and runs it in one cargo invocation with ring-driver's
//! `tests/shared_loom.rs` (see `.ci/run`).
//!
//! A model is a `#[test]` that calls
//! `check(Bound::preemptions(p).threads(t), || ..)` (or a `*_model`
//! function that does): its doc comment states what it checks and its
//! bound (preemptions, threads, and how many interleavings that is),
//! and a `// Catches:` comment the ordering which, weakened alone in
//! `src/shared.rs` or `src/credit.rs`, makes it fail. `check` ignores the
//! `LOOM_*` variables that would change the search; `-- --nocapture` prints
//! each model's interleavings and time (measure a new model alone:
//! `-- --exact NAME --test-threads 1`). Preemption bound 2 finds every
//! mutation listed below within seconds.
//!
//! Slots are atomics written and read `Relaxed`, so a missing happens-before
//! edge lets loom return a stale value: an entry published before it is
//! filled shows up as a zero, a stale or a duplicated value; an entry lost
//! by the commit-in-order protocol shows up as missing.
//!
//! Two producers (or consumers) and the kernel are enough: the orderings
//! checked here pair two threads (a release and the acquire that reads it,
//! or two `SeqCst` fences in a store-buffering race), and a thread that
//! pushes twice plays a second role after its first. Three-producer models
//! of the SQ and of the gate (1.3 million interleavings, 4 minutes each)
//! were dropped: no ordering mutation made them fail that the two-producer
//! models below do not catch. (One mutation fails no model, dropped or
//! kept: Acquire -> Relaxed on advance_over_marks's loads of the index,
//! whose ordering the mark loads and the CAS already give.)
//!
//! What loom cannot check: an entry overwritten before it is read through a
//! load-buffering reordering (the reader's load seeing a store that comes
//! after it), which loom does not model. That direction rests on the
//! Acquire loads of `sq.head` / Release stores of `cq.head` argued in the
//! comments of `shared.rs`, mirroring liburing and the kernel's barriers.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use ring_io_core::loom_model::{Bound, check};
use ring_io_core::sync::{AtomicU32, AtomicU64, Ordering, fence};
use ring_io_core::{ClaimError, SharedCq, SharedSq, SubmitGate};

/// Producers try to push `per` values each through a SharedSq of `entries`
/// slots (a claim refused as full is skipped: no spinning, so the model
/// stays finite); the kernel thread makes `passes` passes as the kernel
/// does (acquire the tail, read the SQEs, release the head), and after the
/// joins a last pass consumes the rest.
fn sq_model(bound: Bound, producers: u64, per: u64, entries: u32, start: u32, passes: usize) {
    check(bound, move || {
        let q = Arc::new(SharedSq::with_start(entries, start));
        let head = Arc::new(AtomicU32::new(start));
        let tail = Arc::new(AtomicU32::new(start));
        let slots: Arc<Vec<AtomicU64>> =
            Arc::new((0..entries).map(|_| AtomicU64::new(0)).collect());
        let mask = entries - 1;
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let (q, head, tail, slots) = (q.clone(), head.clone(), tail.clone(), slots.clone());
                thread::spawn(move || {
                    let mut pushed = Vec::new();
                    for i in 0..per {
                        let r = match q.claim(1, &head) {
                            Ok(r) => r,
                            Err(ClaimError::Full(_)) => continue,
                            Err(e) => panic!("claim: {e}"),
                        };
                        // Fill: a plain (Relaxed) write of the "SQE".
                        let v = (p << 8) | (i + 1);
                        slots[(r.start() & mask) as usize].store(v, Ordering::Relaxed);
                        q.commit(r, &tail);
                        pushed.push(v);
                    }
                    pushed
                })
            })
            .collect();

        // The kernel, as one more thread: smp_load_acquire(&sq.tail), read
        // the SQEs, smp_store_release(&sq.head). Its passes may run at any
        // point, free of the preemption bound since main only joins.
        let kernel_pass = {
            let (head, tail, slots) = (head.clone(), tail.clone(), slots.clone());
            move |h: &mut u32, last_tail: &mut u32, seen: &mut Vec<u64>| {
                let t = tail.load(Ordering::Acquire);
                assert!(
                    t.wrapping_sub(*last_tail) <= entries,
                    "SQ tail moved backwards: {last_tail} -> {t}"
                );
                assert!(t.wrapping_sub(*h) <= entries, "SQ tail past head + entries");
                *last_tail = t;
                while *h != t {
                    let v = slots[(*h & mask) as usize].load(Ordering::Relaxed);
                    assert_ne!(v, 0, "entry {h} published before it was filled");
                    seen.push(v);
                    *h = h.wrapping_add(1);
                }
                head.store(*h, Ordering::Release);
            }
        };
        let kernel_pass = Arc::new(kernel_pass);
        let kernel = {
            let kernel_pass = kernel_pass.clone();
            thread::spawn(move || {
                let (mut h, mut last_tail, mut seen) = (start, start, Vec::new());
                for _ in 0..passes {
                    kernel_pass(&mut h, &mut last_tail, &mut seen);
                }
                (h, last_tail, seen)
            })
        };
        let pushed: Vec<Vec<u64>> = handles.into_iter().map(|j| j.join().unwrap()).collect();
        let (mut h, mut last_tail, mut seen) = kernel.join().unwrap();
        kernel_pass(&mut h, &mut last_tail, &mut seen);
        // Each producer's values, once each, in its order; nothing stale.
        for (p, want) in pushed.iter().enumerate() {
            let mine: Vec<u64> = seen
                .iter()
                .copied()
                .filter(|v| v >> 8 == p as u64)
                .collect();
            assert_eq!(
                &mine, want,
                "producer {p}: lost, duplicated or stale entries"
            );
        }
        let total: usize = pushed.iter().map(Vec::len).sum();
        assert_eq!(seen.len(), total);
        assert_eq!(
            tail.load(Ordering::Relaxed),
            start.wrapping_add(total as u32)
        );
    });
}

/// Two producers push up to 4 entries through 2 slots, across u32::MAX:
/// slots are reused in the interleavings where the kernel consumed in
/// between, and each producer's second claim comes after its first commit.
/// Bound: 2 preemptions, 4 threads (47,354 interleavings).
// Catches, each alone (src/shared.rs): Release -> Relaxed on the commit
// marks (mark_run); Acquire -> Relaxed on the mark loads in
// advance_over_marks; AcqRel -> Acquire on either sq.tail CAS (fast path or
// loop); either SeqCst fence removed before a committer's CAS or after the
// fast path's; Acquire/Release -> Relaxed on SharedSq::claim's reservation
// tail; Acquire -> Relaxed on its sq.head load.
#[test]
fn sq_two_producers_wrap_and_reuse_slots() {
    sq_model(Bound::preemptions(2).threads(4), 2, 2, 2, u32::MAX, 1);
}

/// The kernel posts up to `total` CQEs into a CQ of `entries` slots (reading
/// the head before overwriting a slot, as the kernel does; a full CQ ends
/// its run); consumers make `attempts` claims each through a SharedCq, and
/// after the joins the main thread claims the rest. Every posted CQE must
/// be read once, with the value it was posted with.
fn cq_model(
    bound: Bound,
    consumers: usize,
    total: u64,
    entries: u32,
    start: u32,
    batch: u32,
    attempts: usize,
) {
    check(bound, move || {
        let q = Arc::new(SharedCq::with_start(entries, start));
        let head = Arc::new(AtomicU32::new(start));
        let tail = Arc::new(AtomicU32::new(start));
        let slots: Arc<Vec<AtomicU64>> =
            Arc::new((0..entries).map(|_| AtomicU64::new(0)).collect());
        let mask = entries - 1;
        let consume = {
            let (q, head, tail, slots) = (q.clone(), head.clone(), tail.clone(), slots.clone());
            move |got: &mut Vec<(u32, u64)>, last_head: &mut u32| -> bool {
                match q.claim(batch, &tail) {
                    Ok(Some(b)) => {
                        for idx in b.indices() {
                            // Copy the CQE out: a plain read.
                            got.push((idx, slots[(idx & mask) as usize].load(Ordering::Relaxed)));
                        }
                        let h = q.release(b, &head);
                        assert!(h.wrapping_sub(*last_head) <= total as u32, "head backwards");
                        *last_head = h;
                        true
                    }
                    Ok(None) => false,
                    Err(e) => panic!("claim: {e}"),
                }
            }
        };
        let consume = Arc::new(consume);
        let handles: Vec<_> = (0..consumers)
            .map(|_| {
                let consume = consume.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut last_head = start;
                    for _ in 0..attempts {
                        consume(&mut got, &mut last_head);
                    }
                    got
                })
            })
            .collect();

        // The kernel, as one more thread: READ_ONCE(cq.head) before
        // overwriting a slot (modelled as Acquire: the control dependency
        // orders the slot write after it), write the CQE,
        // smp_store_release(&cq.tail).
        let kernel = {
            let (head, tail, slots) = (head.clone(), tail.clone(), slots.clone());
            thread::spawn(move || {
                let mut t = start;
                let mut posted = 0;
                for i in 0..total {
                    let h = head.load(Ordering::Acquire);
                    assert!(t.wrapping_sub(h) <= entries, "CQ head past the tail");
                    if t.wrapping_sub(h) == entries {
                        break;
                    }
                    slots[(t & mask) as usize].store(i + 1, Ordering::Relaxed);
                    t = t.wrapping_add(1);
                    tail.store(t, Ordering::Release);
                    posted += 1;
                }
                (t, posted)
            })
        };
        let mut all: Vec<(u32, u64)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let (t, posted) = kernel.join().unwrap();
        let mut last_head = start;
        while consume(&mut all, &mut last_head) {}
        all.sort_by_key(|&(idx, _)| idx.wrapping_sub(start));
        let want: Vec<(u32, u64)> = (0..posted)
            .map(|i| (start.wrapping_add(i as u32), i + 1))
            .collect();
        assert_eq!(
            all, want,
            "a CQE was lost, duplicated, or read after being overwritten"
        );
        assert_eq!(head.load(Ordering::Relaxed), t);
    });
}

/// Two consumers, one CQE per claim, 4 CQEs through 2 slots across
/// u32::MAX. Bound: 2 preemptions, 4 threads (19,355 interleavings).
// Catches, each alone (src/shared.rs): Acquire -> Relaxed on
// SharedCq::claim's cq.tail load; Acquire/AcqRel -> Relaxed on its claim
// index; either SeqCst fence removed before a releaser's CAS or after the
// fast path's.
#[test]
fn cq_two_consumers_wrap_and_reuse_slots() {
    cq_model(Bound::preemptions(2).threads(4), 2, 4, 2, u32::MAX, 1, 2);
}

/// Two consumers claiming up to 2 CQEs at once, so that a batch wraps the
/// ring (the two pieces of mark_run). Bound: 2 preemptions, 4 threads
/// (2,583 interleavings).
// Catches: the same four mutations as cq_two_consumers_wrap_and_reuse_slots.
#[test]
fn cq_two_consumers_batches() {
    cq_model(
        Bound::preemptions(2).threads(4),
        2,
        3,
        2,
        u32::MAX - 1,
        2,
        1,
    );
}

/// The SQPOLL wakeup rule (`FlagsRead::FullFenceThenLoad`): the application
/// stores the SQ tail, fences, reads NEED_WAKEUP; the kernel thread sets
/// NEED_WAKEUP, fences (`smp_mb__after_atomic`), re-reads the tail. With
/// both fences, at least one side sees the other: never "thread asleep and
/// application does not wake it" with an entry pending.
/// Bound: 2 preemptions, 2 threads (11 interleavings: all of them).
// Catches: either fence of the model removed (the rule is the driver's,
// written out here).
#[test]
fn sqpoll_wakeup_needs_the_full_fence() {
    check(Bound::preemptions(2).threads(2), || {
        let tail = Arc::new(AtomicU32::new(0));
        let flags = Arc::new(AtomicU32::new(0));
        let (t2, f2) = (tail.clone(), flags.clone());
        let kernel = thread::spawn(move || {
            f2.fetch_or(ring_io_sys::IORING_SQ_NEED_WAKEUP, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            // Sleeps if it still sees no entry.
            t2.load(Ordering::Relaxed) == 0
        });
        tail.store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        let app_sees_wakeup =
            flags.load(Ordering::Relaxed) & ring_io_sys::IORING_SQ_NEED_WAKEUP != 0;
        let kernel_sleeps = kernel.join().unwrap();
        assert!(
            app_sees_wakeup || !kernel_sleeps,
            "lost wakeup: the thread sleeps and the application does not wake it"
        );
    });
}

/// AtomicCqCredit's orderings: a consumer stores the new CQ head, then
/// returns the credit; a producer that gets that credit must see the head
/// store (it then publishes an SQE whose CQE the kernel places by that
/// head), and the budget is never exceeded.
/// Bound: 2 preemptions, 4 threads (895 interleavings).
// Catches, each alone (src/credit.rs): Acquire -> Relaxed in
// AtomicCqCredit::acquire_n; Release -> Relaxed in AtomicCqCredit::release.
#[test]
fn credit_return_orders_the_head_store() {
    use ring_io_core::{AtomicCqCredit, Geometry};
    use ring_io_sys::{Features, SetupFlags};
    check(Bound::preemptions(2).threads(4), || {
        let geo = Geometry::new(1, 1, SetupFlags::empty(), Features::empty()).unwrap();
        let credit = Arc::new(AtomicCqCredit::new(1, &geo).unwrap());
        credit.acquire(()).unwrap();
        let cq_head = Arc::new(AtomicU32::new(0));
        let (c2, h2) = (credit.clone(), cq_head.clone());
        let consumer = thread::spawn(move || {
            h2.store(1, Ordering::Relaxed);
            c2.handle_cqe(0).unwrap();
        });
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let (c, h) = (credit.clone(), cq_head.clone());
                thread::spawn(move || {
                    if c.acquire(()).is_ok() {
                        assert_eq!(
                            h.load(Ordering::Relaxed),
                            1,
                            "credit without the head store"
                        );
                        assert_eq!(c.in_flight(), 1, "budget exceeded");
                        true
                    } else {
                        false
                    }
                })
            })
            .collect();
        consumer.join().unwrap();
        let got = producers
            .into_iter()
            .filter(|_| true)
            .map(|p| p.join().unwrap());
        assert!(
            got.filter(|&g| g).count() <= 1,
            "two credits out of a budget of one"
        );
    });
}

/// `SubmitGate` (flat-combining submission): `producers` threads each push
/// `per` entries (claim, fill, commit) and then submit through the gate;
/// the thread holding the gate plays the kernel as its `io_uring_enter`
/// does for a ring without SQPOLL (acquire the tail, read the SQEs, release
/// the head), then leaves, and enters again while `leave` says so. No
/// kernel thread and no final drain: after the joins every pushed entry
/// must have been consumed, once, by some submitter, and no two threads
/// were ever submitting at once. `naive`: the submitter leaves without
/// looking for entries published meanwhile, which loom must catch
/// stranding an entry.
fn gate_model(bound: Bound, producers: u64, per: u64, entries: u32, start: u32, naive: bool) {
    check(bound, move || {
        let q = Arc::new(SharedSq::with_start(entries, start));
        let gate = Arc::new(SubmitGate::new());
        let head = Arc::new(AtomicU32::new(start));
        let tail = Arc::new(AtomicU32::new(start));
        let inside = Arc::new(AtomicU32::new(0));
        let slots: Arc<Vec<AtomicU64>> =
            Arc::new((0..entries).map(|_| AtomicU64::new(0)).collect());
        let mask = entries - 1;
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let (q, gate, head, tail, inside, slots) = (
                    q.clone(),
                    gate.clone(),
                    head.clone(),
                    tail.clone(),
                    inside.clone(),
                    slots.clone(),
                );
                thread::spawn(move || {
                    let (mut pushed, mut consumed) = (Vec::new(), Vec::new());
                    for i in 0..per {
                        let r = match q.claim(1, &head) {
                            Ok(r) => r,
                            Err(ClaimError::Full(_)) => continue,
                            Err(e) => panic!("claim: {e}"),
                        };
                        let v = (p << 8) | (i + 1);
                        slots[(r.start() & mask) as usize].store(v, Ordering::Relaxed);
                        q.commit(r, &tail);
                        pushed.push(v);
                        if !gate.try_enter() {
                            continue;
                        }
                        loop {
                            assert_eq!(
                                inside.fetch_add(1, Ordering::Relaxed),
                                0,
                                "two submitters at once"
                            );
                            // The enter: the kernel under uring_lock.
                            let t = tail.load(Ordering::Acquire);
                            let mut h = head.load(Ordering::Relaxed);
                            while h != t {
                                let v = slots[(h & mask) as usize].load(Ordering::Relaxed);
                                assert_ne!(v, 0, "entry {h} published before it was filled");
                                consumed.push(v);
                                h = h.wrapping_add(1);
                            }
                            head.store(h, Ordering::Release);
                            inside.fetch_sub(1, Ordering::Relaxed);
                            if naive {
                                gate.abandon();
                                break;
                            }
                            if !gate.leave(&head, &tail) {
                                break;
                            }
                        }
                    }
                    (pushed, consumed)
                })
            })
            .collect();
        let (mut pushed, mut consumed) = (Vec::new(), Vec::new());
        for h in handles {
            let (p, c) = h.join().unwrap();
            pushed.extend(p);
            consumed.extend(c);
        }
        assert_eq!(
            head.load(Ordering::Relaxed),
            tail.load(Ordering::Relaxed),
            "an entry was left unsubmitted"
        );
        pushed.sort_unstable();
        consumed.sort_unstable();
        assert_eq!(pushed, consumed, "lost or duplicated entries");
    });
}

/// Two producers, two entries each through 2 slots across u32::MAX: each
/// entry is submitted by its producer or left to the one holding the gate.
/// Bound: 2 preemptions, 3 threads (32,004 interleavings).
// Catches, each alone (src/shared.rs): the SeqCst fence removed from
// SubmitGate::leave; Acquire -> Relaxed on the gate's CAS; Release ->
// Relaxed on leave's store of the gate; any SeqCst fence of
// advance_over_marks removed (the one after the loop's CAS only this model
// catches); Release -> Relaxed on the commit marks; AcqRel -> Acquire on
// the fast path's sq.tail CAS; Acquire/Release -> Relaxed on
// SharedSq::claim's reservation tail; Acquire -> Relaxed on its sq.head load.
#[test]
fn gate_two_producers_leave_nothing_behind() {
    gate_model(Bound::preemptions(2).threads(3), 2, 2, 2, u32::MAX, false);
}

/// The negative model: a submitter that leaves without the recheck.
/// Bound: 2 preemptions, 3 threads (fails at the 2nd interleaving).
#[test]
#[should_panic(expected = "left unsubmitted")]
fn gate_without_the_recheck_strands_an_entry() {
    gate_model(Bound::preemptions(2).threads(3), 2, 1, 2, 0, true);
}
