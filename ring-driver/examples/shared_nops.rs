//! Many threads, one ring, no lock: each thread pushes NOPs to a
//! `SharedRing`, submits, and reaps whatever completions it finds (anyone's).
//! Prints the throughput and checks every NOP completed exactly once.
//!
//! `cargo run --release -p ring-io-driver --example shared_nops [THREADS] [NOPS_PER_THREAD]`

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ring_io_driver::SharedRing;
use ring_io_ops::Nop;

#[path = "cli/mod.rs"]
#[allow(dead_code, reason = "each example uses part of it")]
mod cli;

use cli::{Context as _, Error};

const USAGE: &str = "[THREADS (default 4, at most 1024)] [NOPS_PER_THREAD (default 250000)]";

/// The most NOPs in one run: one flag byte each is kept to check that each
/// completed once.
const MAX_TOTAL: u64 = 1 << 30;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 2 {
        let why = format!("expected at most 2 arguments, got {}", args.len());
        return cli::usage("shared_nops", USAGE, why);
    }
    let number = |at: usize, what: &str, default: u64, max: u64| -> Result<u64, String> {
        let Some(arg) = args.get(at) else {
            return Ok(default);
        };
        match arg.parse::<u64>() {
            Ok(0) => Err(format!("{what} must be at least 1, not 0")),
            Ok(n) if n > max => Err(format!("{what} must be at most {max}, not {n}")),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("{what} {arg:?} is not a number: {e}")),
        }
    };
    let parsed = number(0, "THREADS", 4, 1024).and_then(|threads| {
        let per = number(1, "NOPS_PER_THREAD", 250_000, MAX_TOTAL)?;
        match threads.checked_mul(per) {
            Some(total) if total <= MAX_TOTAL => Ok((threads, per)),
            _ => Err(format!(
                "THREADS x NOPS_PER_THREAD must be at most {MAX_TOTAL}, not {threads} x {per}"
            )),
        }
    });
    match parsed {
        Ok((threads, per)) => cli::exit("shared_nops", run(threads, per)),
        Err(why) => cli::usage("shared_nops", USAGE, why),
    }
}

/// `threads` threads push `per` NOPs each (both at least 1).
fn run(threads: u64, per: u64) -> Result<(), Error> {
    let total = threads * per;
    let ring = SharedRing::new(64).context("cannot set up a shared ring")?;
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    let done = Arc::new(AtomicU64::new(0));
    // Set by a thread that fails: the others stop instead of waiting for
    // its NOPs forever.
    let failed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (ring, seen, done) = (ring.clone(), seen.clone(), done.clone());
            let failed = failed.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut next = 0;
                let mut batch = Vec::with_capacity(16);
                let mut got = Vec::with_capacity(256);
                while done.load(Ordering::Relaxed) < total && !failed.load(Ordering::Relaxed) {
                    if next < per {
                        let k = 16.min(per - next);
                        batch.clear();
                        batch.extend(
                            (next..next + k).map(|i| Nop::new().build().user_data(t * per + i)),
                        );
                        // SAFETY: NOPs carry no pointers.
                        if unsafe { ring.push_batch(&batch) }.is_ok() {
                            next += k;
                        }
                        if let Err(e) = ring.submit() {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    got.clear();
                    let n = ring.reap(&mut got, 256);
                    for cqe in &got {
                        let twice = seen[cqe.user_data() as usize].swap(true, Ordering::Relaxed);
                        assert!(!twice, "user_data {} completed twice", cqe.user_data());
                    }
                    done.fetch_add(n as u64, Ordering::Relaxed);
                    if n == 0 && next == per {
                        std::thread::yield_now();
                    }
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join()
            .expect("worker panicked")
            .context("cannot submit")?;
    }
    let elapsed = start.elapsed();
    assert!(
        seen.iter().all(|s| s.load(Ordering::Relaxed)),
        "a NOP never completed"
    );
    println!(
        "{threads} threads x {per} NOPs on one SharedRing: {:.1} ns/op, {:.2} M ops/s, CQ overflow {}",
        elapsed.as_nanos() as f64 / total as f64,
        total as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6,
        ring.overflow()
    );
    Ok(())
}
