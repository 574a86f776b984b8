//! Loom model of the driver token's handover (`src/drive/handover.rs`,
//! included here as is): a thread that asks for the token while its holder
//! turns, and the holder stepping out without the state lock right then.
//! The asker must not sleep through the step out: either it sees the
//! holder out (and takes the token over), or the holder sees the ask (and
//! wakes it). Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p ring-io-proactor --profile loom --test handover_loom`
//! (CI runs it in the loom step with the other models; see `.ci/run`).
#![cfg(loom)]

#[allow(dead_code)]
#[path = "../src/drive/handover.rs"]
mod handover;

use handover::Handover;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use ring_io_core::loom_model::{Bound, check};

/// The asker, under the state lock (a mutex over the waiters), adds its
/// waker and asks; the holder steps out, and if asked takes the waiters
/// under the lock and wakes them. At the end the asker took the token over
/// or was woken. Bound: 3 preemptions (every interleaving of these few
/// steps: 11).
// Catches: either fence missing (each thread may then read the other's
// old value: the asker sleeps, nobody wakes it), as SeqCst loads and
// stores without fences do under loom.
#[test]
fn an_asker_sees_the_holder_out_or_is_woken_by_its_step_out() {
    check(Bound::preemptions(3), || {
        let handover = Arc::new(Handover::new());
        // The token's waiters (`State::token_waiters`), under the state lock.
        let waiters = Arc::new(Mutex::new(Vec::<u32>::new()));
        let woken = Arc::new(AtomicBool::new(false));
        let holder = {
            let (handover, waiters, woken) = (handover.clone(), waiters.clone(), woken.clone());
            thread::spawn(move || {
                if handover.step_out(7) {
                    let mut w = waiters.lock().unwrap();
                    handover.answered();
                    if std::mem::take(&mut *w).contains(&1) {
                        woken.store(true, Ordering::Relaxed);
                    }
                }
            })
        };
        let took_over = {
            let mut w = waiters.lock().unwrap();
            w.push(1);
            handover.ask() != 0
        };
        holder.join().unwrap();
        assert!(
            took_over || woken.load(Ordering::Relaxed),
            "the asker sleeps through the holder's step out"
        );
    });
}
