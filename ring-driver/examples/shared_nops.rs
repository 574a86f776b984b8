//! Many threads, one ring, no lock: each thread pushes NOPs to a
//! `SharedRing`, submits, and reaps whatever completions it finds (anyone's).
//! Prints the throughput and checks every NOP completed exactly once.
//!
//! `cargo run --release -p ring-io-driver --example shared_nops [THREADS] [NOPS_PER_THREAD]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ring_io_driver::SharedRing;
use ring_io_ops::Nop;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let threads: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let per: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(250_000);
    let total = threads * per;
    let ring = SharedRing::new(64)?;
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (ring, seen, done) = (ring.clone(), seen.clone(), done.clone());
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut next = 0;
                let mut batch = Vec::with_capacity(16);
                let mut got = Vec::with_capacity(256);
                while done.load(Ordering::Relaxed) < total {
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
                        ring.submit()?;
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
        w.join().expect("worker panicked")?;
    }
    let elapsed = start.elapsed();
    assert!(
        seen.iter().all(|s| s.load(Ordering::Relaxed)),
        "a NOP never completed"
    );
    println!(
        "{threads} threads x {per} NOPs on one SharedRing: {:.1} ns/op, {:.2} M ops/s, CQ overflow {}",
        elapsed.as_nanos() as f64 / total as f64,
        total as f64 / elapsed.as_secs_f64() / 1e6,
        ring.overflow()
    );
    Ok(())
}
