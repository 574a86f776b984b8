//! How the loom models (`tests/loom.rs` here and ring-driver's
//! `tests/shared_loom.rs`) run: each with an explicit [`Bound`] through
//! [`check`], whatever the `LOOM_*` variables say. Built only with
//! `--cfg loom`.

/// How far loom explores one model.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Every interleaving with at most this many preemptions (switches
    /// away from a thread that could have gone on): loom's
    /// `preemption_bound`.
    pub preemptions: usize,
    /// Threads, the main thread included (loom's `max_threads`): a model
    /// that spawns more fails.
    pub threads: usize,
}

impl Bound {
    /// At most `preemptions` preemptions (and 2 threads: see `threads`).
    pub const fn preemptions(preemptions: usize) -> Bound {
        Bound {
            preemptions,
            threads: 2,
        }
    }

    /// At most `threads` threads, the main thread included.
    pub const fn threads(self, threads: usize) -> Bound {
        Bound { threads, ..self }
    }
}

/// Branch points per execution (loom's `max_branches`, its default): an
/// execution with more, a retry loop that never ends, fails the model.
pub const MAX_BRANCHES: usize = 1_000;

/// Checks `f` in every interleaving within `bound`, whatever the `LOOM_*`
/// variables say, and prints (seen with `--nocapture`) how many
/// interleavings it ran and how long it took.
pub fn check<F: Fn() + Sync + Send + 'static>(bound: Bound, f: F) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    /// Prints the count when the model returns or panics.
    struct Report(std::sync::Arc<AtomicUsize>, Bound, std::time::Instant);
    impl Drop for Report {
        fn drop(&mut self) {
            println!(
                "loom {}: {} interleavings in {:.1} s ({:?}){}",
                std::thread::current().name().unwrap_or("model"),
                self.0.load(Relaxed),
                self.2.elapsed().as_secs_f64(),
                self.1,
                if std::thread::panicking() {
                    ", failed"
                } else {
                    ""
                },
            );
        }
    }
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(bound.preemptions);
    b.max_threads = bound.threads;
    b.max_branches = MAX_BRANCHES;
    b.max_duration = None;
    b.max_permutations = None;
    let report = Report(Default::default(), bound, std::time::Instant::now());
    let count = report.0.clone();
    b.check(move || {
        count.fetch_add(1, Relaxed);
        f()
    });
}
