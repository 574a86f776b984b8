//! Loom models of the shared Proactor's lock-free completion path
//! (`src/cells.rs`, included here as is): the driver publishes a
//! completion that the op reads without the lock, and ops hand their slots
//! back onto a stack that the lock holder takes whole. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p ring-io-proactor --profile loom --test cells_loom`
//! (CI runs it in the loom step with the other models; see `.ci/run`).
#![cfg(loom)]

#[allow(dead_code)]
#[path = "../src/cells.rs"]
mod cells;

use cells::Cells;
use loom::sync::{Arc, Mutex};
use loom::thread;
use ring_io_core::loom_model::{Bound, check};

/// The driver (under a lock, as the Proactor's) publishes a completion of
/// slot 1 for tag 7 while the op polls its cell: when the op sees its tag
/// done, it reads the result the driver stored, never a stale or partial
/// one. Bound: 3 preemptions, 2 threads.
// Catches: `publish`'s done store or `completion`'s load without
// Release/Acquire (the op reads the result before it was stored).
#[test]
fn an_op_sees_the_result_published_before_its_done_word() {
    // Slot 1 is in the first chunk (made with the cells: two cells under
    // loom), slot 3 in the second (made by `reset`, under the lock).
    for slot in [1, 3] {
        check(Bound::preemptions(3), move || {
            let cells = Arc::new(Cells::new());
            let lock = Arc::new(Mutex::new(()));
            {
                let _held = lock.lock().unwrap();
                cells.reset(slot, 7);
            }
            let driver = {
                let (cells, lock) = (cells.clone(), lock.clone());
                thread::spawn(move || {
                    let _held = lock.lock().unwrap();
                    cells.publish(slot, 7, 4096, 2);
                })
            };
            let mut seen = None;
            for _ in 0..3 {
                if let Some(done) = cells.completion(slot, 7) {
                    seen = Some(done);
                    break;
                }
                thread::yield_now();
            }
            driver.join().unwrap();
            let done = seen.or_else(|| cells.completion(slot, 7));
            assert_eq!(done, Some((4096, 2)), "the result, whole");
            // Another tag's op sees nothing.
            assert_eq!(cells.completion(slot, 8), None);
        });
    }
}

/// Two ops hand back two slots each (one by one, and as a chain) while
/// the lock holder takes the returned ones (twice, then once more at the
/// end): every slot is taken once, its link read intact. Bound: 2
/// preemptions, 3 threads.
// Catches: `take_returned`'s swap without Acquire, or `give_back_all`'s
// compare-and-swap without Release (a link read before it was written:
// a slot lost or taken twice).
#[test]
fn slots_handed_back_are_taken_once_each() {
    check(Bound::preemptions(2).threads(3), || {
        let cells = Arc::new(Cells::new());
        for i in 0..4 {
            cells.reset(i, 0);
        }
        // One op's thread hands its slots back one at a time, the other
        // both at once, as a chain (a thread handing over the slots it
        // kept).
        let ops: Vec<_> = [[0, 1], [2, 3]]
            .into_iter()
            .enumerate()
            .map(|(op, slots)| {
                let cells = cells.clone();
                thread::spawn(move || {
                    if op == 0 {
                        for i in slots {
                            cells.give_back(i);
                        }
                    } else {
                        cells.give_back_all(&slots);
                    }
                })
            })
            .collect();
        let mut taken = Vec::new();
        for _ in 0..2 {
            cells.take_returned(|i| taken.push(i));
        }
        for op in ops {
            op.join().unwrap();
        }
        cells.take_returned(|i| taken.push(i));
        taken.sort_unstable();
        assert_eq!(taken, [0, 1, 2, 3], "each slot once");
    });
}
