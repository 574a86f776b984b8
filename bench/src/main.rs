//! Side-by-side benchmarks: ring and the io-uring crate on the same
//! workloads, in one run, alternating, so their ratio is measured under the
//! same conditions. `cargo xtask bench` runs this and writes BENCHMARKS.md.
//!
//! `ring-bench [--quick] [ROW...]`: prints one line per row,
//! `row<TAB>ring ns/op<TAB>io-uring ns/op<TAB>ratio` (ratio = io-uring time /
//! ring time: above 1 means ring is faster), medians of alternating rounds.
//! Built with the feature `peers` (as `cargo xtask bench` builds it), it
//! adds the `peers/*` table: the Proactor, tokio-uring, monoio and compio
//! against the io-uring crate (see `peers/mod.rs`);
//! `ring-bench --load N [ROW...]` prints only that table, measured beside
//! N CPU-bound processes (`ring-bench --burn`) as `peers-loaded/*`.
//! `ring-bench --callgrind LIB BATCH OPS`: runs one NOP loop only, for
//! instruction counting under valgrind (LIB `shared` or `mutex`: the
//! batch-16 `shared` rows' loops, `shared1` or `mutex1` the batch-1 rows',
//! with BATCH threads; `proactor` or `local`: NOP futures on a Proactor or
//! a LocalProactor, BATCH in flight; `local-task`: NOPs awaited one at a
//! time by each of BATCH tasks spawned on a LocalProactor; `read0-local`, `read0-ring`,
//! `read0-io-uring` and, with `peers`, `read0-monoio`: the `peers/read0`
//! rows' reads at the test file's end, BATCH in flight). The instructions
//! per op are the difference of two runs' totals (OPS and 2 OPS) over OPS:
//! what setup costs (the test file, the runtime) cancels out.

mod cp;
mod io;
#[cfg(feature = "peers")]
mod peers;
mod proactor;

use std::hint::black_box;
use std::time::Instant;

use io_uring::{IoUring, opcode};
use ring_io_driver::{Builder, Ring};
use ring_io_ops::Nop;

/// NOPs per timed sample.
const OPS: u64 = 1 << 16;

/// One NOP loop: push `batch`, submit and wait for them, reap them; `ops` in all.
fn ring_nops(ring: &mut Ring, batch: u32, ops: u64) {
    let entry = Nop::new().build();
    let mut done = 0;
    while done < ops {
        {
            let mut sq = ring.sq();
            for i in 0..batch {
                // SAFETY: a NOP carries no pointers.
                unsafe { sq.push(entry.user_data(u64::from(i))) }.expect("batch fits the SQ");
            }
        }
        ring.submitter().submit_and_wait(batch).expect("enter");
        let mut reaped = 0;
        for cqe in ring.cq() {
            black_box(cqe.user_data());
            reaped += 1;
        }
        assert_eq!(reaped, batch);
        done += u64::from(batch);
    }
}

fn uring_nops(ring: &mut IoUring, batch: u32, ops: u64) {
    let entry = opcode::Nop::new().build();
    let mut done = 0;
    while done < ops {
        {
            let mut sq = ring.submission();
            for i in 0..batch {
                // SAFETY: a NOP carries no pointers.
                unsafe { sq.push(&entry.clone().user_data(u64::from(i))) }
                    .expect("batch fits the SQ");
            }
        }
        ring.submit_and_wait(batch as usize).expect("enter");
        let mut reaped = 0;
        for cqe in ring.completion() {
            black_box(cqe.user_data());
            reaped += 1;
        }
        assert_eq!(reaped, batch);
        done += u64::from(batch);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `a` and `b` alternately `rounds` times; returns their median ns/op.
fn alternate(
    rounds: usize,
    ops: u64,
    mut a: impl FnMut(u64),
    mut b: impl FnMut(u64),
) -> (f64, f64) {
    // Warm up both.
    a(ops / 8);
    b(ops / 8);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let time = |f: &mut dyn FnMut(u64)| {
            let start = Instant::now();
            f(ops);
            start.elapsed().as_nanos() as f64 / ops as f64
        };
        // Alternate which goes first, so neither always follows the other.
        if round % 2 == 0 {
            ta.push(time(&mut a));
            tb.push(time(&mut b));
        } else {
            tb.push(time(&mut b));
            ta.push(time(&mut a));
        }
    }
    (median(ta), median(tb))
}

fn nop_row(name: &str, batch: u32, defaults: bool, rounds: usize) {
    let entries = batch.max(8).next_power_of_two();
    let mut ring = if defaults {
        Builder::new(entries).build()
    } else {
        Builder::new(entries).no_defaults().build()
    }
    .expect("ring setup");
    let mut theirs = if defaults {
        // The io-uring crate's equivalent of ring's defaults where it has
        // them: COOP_TASKRUN + TASKRUN_FLAG, SUBMIT_ALL, NO_SQARRAY.
        let mut b = IoUring::builder();
        b.setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_submit_all();
        b.setup_no_sqarray();
        b.build(entries).expect("io-uring setup")
    } else {
        IoUring::new(entries).expect("io-uring setup")
    };
    if defaults {
        // Same registered-fd advantage for both.
        let _ = theirs.submitter().register_ring_fd();
    }
    let (ours, other) = alternate(
        rounds,
        OPS,
        |n| ring_nops(&mut ring, batch, n),
        |n| uring_nops(&mut theirs, batch, n),
    );
    println!("{name}\t{ours:.1}\t{other:.1}\t{:.3}", other / ours);
}

/// NOPs per batch in the batch-16 `shared` rows (the batch-1 rows push one
/// per round).
const SHARED_BATCH: usize = 16;

/// SQ entries of both rings in the `shared` rows (the CQ is twice that):
/// room for every thread's batch at once, so a push is never refused for
/// want of space or credit.
const SHARED_ENTRIES: u32 = 128;

/// The `shared` rows' workload, on a `SharedRing`.
///
/// Both sides do the same logical work, as a multi-threaded user of one
/// ring would: each of `threads` threads, `ops / threads` NOPs in all, in
/// rounds of `batch` (16 or 1): push a batch, submit it, then wait until
/// it has taken as many completions back as it pushed, reap them, and only
/// then push the next batch. So each thread has at most one batch in
/// flight, on both sides.
///
/// - SharedRing ([`shared_nops`]): lock-free push of the batch, `submit`
///   (one thread at a time enters the kernel to submit, and takes the
///   entries other threads publish meanwhile), then reap; while fewer
///   completions than pushed were reaped, `submit_and_wait(1)`: the
///   thread sleeps in the kernel until a completion is posted. A shared
///   ring hands a completion to whichever thread reaps it first, so a
///   thread counts completions, not its own `user_data`s (the totals
///   match: every completion is reaped by a thread still owed one).
/// - `Mutex<io_uring::IoUring>` ([`mutex_nops`]): lock, push the batch,
///   `submit_and_wait(batch)`, reap it, unlock: the lock is held across
///   the whole round, so the completions reaped are the thread's own.
///
/// Returns what the threads' `submit` and `submit_and_wait` calls
/// reported: how many calls submitted something, and how many entries they
/// submitted in all (each entry once: the mean is at least the mean number
/// of entries per `io_uring_enter` that submitted).
fn shared_nops(
    ring: &ring_io_driver::SharedRing,
    threads: u64,
    batch: usize,
    ops: u64,
) -> (u64, u64) {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let quota = ops / threads + u64::from(t < ops % threads);
                s.spawn(move || {
                    let entries = vec![Nop::new().build().user_data(t); batch];
                    let mut got = Vec::with_capacity(batch);
                    let (mut calls, mut submitted) = (0u64, 0u64);
                    let mut count = |n: u32| {
                        calls += u64::from(n > 0);
                        submitted += u64::from(n);
                    };
                    let mut pushed = 0;
                    while pushed < quota {
                        let k = (batch as u64).min(quota - pushed) as usize;
                        // SAFETY: NOPs carry no pointers.
                        while unsafe { ring.push_batch(&entries[..k]) }.is_err() {
                            // Only while another thread's reaped slots wait
                            // for an earlier slot's release to hand their
                            // credit back.
                            std::thread::yield_now();
                        }
                        count(ring.submit().expect("enter"));
                        let mut owed = k;
                        loop {
                            got.clear();
                            owed -= ring.reap(&mut got, owed);
                            black_box(&got);
                            if owed == 0 {
                                break;
                            }
                            count(ring.submit_and_wait(1).expect("enter"));
                        }
                        pushed += k as u64;
                    }
                    (calls, submitted)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    })
}

/// The `shared` rows' workload on `Mutex<IoUring>` (see [`shared_nops`]).
fn mutex_nops(ring: &std::sync::Mutex<IoUring>, threads: u64, batch: usize, ops: u64) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let quota = ops / threads + u64::from(t < ops % threads);
            s.spawn(move || {
                let entry = opcode::Nop::new().build().user_data(t);
                let mut pushed = 0;
                while pushed < quota {
                    let k = (batch as u64).min(quota - pushed);
                    let mut ring = ring.lock().expect("lock");
                    {
                        let mut sq = ring.submission();
                        for _ in 0..k {
                            // SAFETY: a NOP carries no pointers.
                            unsafe { sq.push(&entry) }.expect("batch fits the SQ");
                        }
                    }
                    ring.submit_and_wait(k as usize).expect("enter");
                    let mut reaped = 0;
                    for cqe in ring.completion() {
                        black_box(cqe.user_data());
                        reaped += 1;
                    }
                    assert_eq!(reaped, k);
                    pushed += k;
                }
            });
        }
    });
}

fn shared_ring() -> ring_io_driver::SharedRing {
    Builder::new(SHARED_ENTRIES)
        .build_shared()
        .expect("shared ring setup")
}

fn mutex_ring() -> std::sync::Mutex<IoUring> {
    let mut b = IoUring::builder();
    b.setup_submit_all();
    b.setup_no_sqarray();
    std::sync::Mutex::new(b.build(SHARED_ENTRIES).expect("io-uring setup"))
}

/// `shared/threadsN`: N threads submitting NOPs to one ring, `SharedRing`
/// (ring column) against `Mutex<io_uring::IoUring>` (io-uring column), both
/// with SUBMIT_ALL and NO_SQARRAY (a shared ring does not take COOP_TASKRUN).
/// A `shared` row: prints it; returns the SharedRing's and the mutex's
/// ns/op and the entries per submitting call of the SharedRing's runs (see
/// [`shared_nops`]).
fn shared_row(name: &str, threads: u64, batch: usize, rounds: usize) -> (f64, f64, f64) {
    let ring = shared_ring();
    let theirs = mutex_ring();
    // A round of one NOP per thread costs a syscall or more: fewer ops per
    // sample keep the row's time near the others'.
    let ops = if batch == 1 { OPS / 4 } else { OPS };
    let combined = std::cell::Cell::new((0u64, 0u64));
    let (ours, other) = alternate(
        rounds,
        ops,
        |n| {
            let (calls, entries) = shared_nops(&ring, threads, batch, n);
            let (c, e) = combined.get();
            combined.set((c + calls, e + entries));
        },
        |n| mutex_nops(&theirs, threads, batch, n),
    );
    println!("{name}\t{ours:.1}\t{other:.1}\t{:.3}", other / ours);
    let (calls, entries) = combined.get();
    (ours, other, entries as f64 / calls.max(1) as f64)
}

/// One batch-1 `shared` row, for its note.
struct Batch1Row {
    threads: u64,
    /// The SharedRing's ns/op.
    ours: f64,
    /// The mutex's ns/op.
    mutex: f64,
    /// The SharedRing's entries per submitting call.
    per_call: f64,
}

/// The kernel's share of a one-thread NOP loop of `batch` (the io-uring
/// crate's, as in the mutex column without the lock): ns per NOP spent
/// inside `io_uring_enter` (each call timed by the clock, ~20 ns a read,
/// against a call of `batch` NOPs) and ns per NOP of the whole loop.
/// Medians of `rounds` runs of `ops` NOPs.
fn kernel_floor(batch: u32, ops: u64, rounds: usize) -> (f64, f64) {
    let mut ring = IoUring::new(SHARED_ENTRIES.max(batch)).expect("io-uring setup");
    let entry = opcode::Nop::new().build();
    let mut run = |ops: u64| {
        let (mut inside, mut done) = (0u128, 0u64);
        let start = Instant::now();
        while done < ops {
            {
                let mut sq = ring.submission();
                for i in 0..batch {
                    // SAFETY: a NOP carries no pointers.
                    unsafe { sq.push(&entry.clone().user_data(u64::from(i))) }
                        .expect("batch fits the SQ");
                }
            }
            let enter = Instant::now();
            ring.submit_and_wait(batch as usize).expect("enter");
            inside += enter.elapsed().as_nanos();
            let mut reaped = 0;
            for cqe in ring.completion() {
                black_box(cqe.user_data());
                reaped += 1;
            }
            assert_eq!(reaped, batch);
            done += u64::from(batch);
        }
        let per = done as f64;
        (inside as f64 / per, start.elapsed().as_nanos() as f64 / per)
    };
    run(ops / 8);
    let (mut kernel, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (k, w) = run(ops);
        kernel.push(k);
        wall.push(w);
    }
    (median(kernel), median(wall))
}

/// The note under the `shared` rows: what bounds them, with this run's
/// numbers. `mutex`: the io-uring column's fastest multi-thread ns/op.
/// The kernel submits under the ring's `uring_lock`, so the kernel time
/// per NOP of one thread bounds what any number of threads sharing one
/// ring can reach.
fn shared_note(mutex: f64, rounds: usize) {
    let (kernel, wall) = kernel_floor(SHARED_BATCH as u32, OPS, rounds);
    let (kernel_big, _) = kernel_floor(256, OPS, rounds);
    // The smaller kernel time: the most a shared ring could hope for.
    let bound = mutex / kernel.min(kernel_big);
    let reach = if bound < 1.5 {
        " (so 1.5x is out of reach for NOPs on this machine)"
    } else {
        ""
    };
    println!(
        "note\t**What bounds the batch-16 `shared` rows.** Each of N threads pushes a batch of \
         {SHARED_BATCH} NOPs, submits, and waits until it has reaped as many completions as it \
         pushed; ring: one `SharedRing` (lock-free push and reap, one thread at a time \
         entering the kernel to submit for all), io-uring: `Mutex<IoUring>` held for the \
         whole round. The kernel submits under the ring's `uring_lock`, so submissions to one \
         ring never run in parallel, whoever makes them. A one-thread loop spends {kernel:.1} \
         ns per NOP inside `io_uring_enter` at batch {SHARED_BATCH} (of {wall:.1} ns per NOP in \
         all) and {kernel_big:.1} ns at batch 256, where the per-call part is spread thin and \
         what is left is mostly the work under the lock (each call timed, this run). No \
         number of threads gets NOPs through one ring faster than that, so against the \
         mutex's fastest multi-thread time ({mutex:.1} ns/op) a shared ring can gain at most \
         about {bound:.2}x (the mutex's time over the smaller kernel time){reach}. The mutex \
         column stays near its one-thread time because the lock runs whole rounds on one core \
         at a time (the unlocking thread re-takes it before a sleeping one wakes), keeping \
         SQEs, CQEs and the kernel's ring state in that core's cache. A `SharedRing`'s threads \
         work on both cores at once: every SQE written on one core and consumed by the kernel \
         on the other, and every CQE reaped on the other, is a cache-line transfer, and the \
         lock-free protocol runs more user-space instructions and atomic read-modify-writes \
         per NOP than a locked ring (see the callgrind table); together they cost at least \
         what overlapping the threads' user-space work (a few ns per NOP) saves. Requests \
         whose cost lies outside the submitting `io_uring_enter` (device I/O, io-wq work) \
         hold the lock for a smaller share of their time, and there threads sharing a ring \
         overlap more."
    );
}

/// Where a batch-1 `shared` op's time goes: ns per op spent in `push`, in
/// the `submit` after it, in the `reap` calls and in the
/// `submit_and_wait(1)` calls between them until the op's completion is
/// reaped: the loop of [`shared_nops`] with each call timed by the clock
/// (its ~20 ns per read included).
fn shared_batch1_phases(ring: &ring_io_driver::SharedRing, threads: u64, ops: u64) -> [f64; 4] {
    let ns = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let quota = ops / threads + u64::from(t < ops % threads);
                s.spawn(move || {
                    let entry = Nop::new().build().user_data(t);
                    let mut got = Vec::with_capacity(1);
                    let mut ns = [0u128; 4];
                    for _ in 0..quota {
                        let start = Instant::now();
                        // SAFETY: a NOP carries no pointers.
                        while unsafe { ring.push(entry) }.is_err() {
                            std::thread::yield_now();
                        }
                        let pushed = Instant::now();
                        ns[0] += (pushed - start).as_nanos();
                        ring.submit().expect("enter");
                        let mut now = Instant::now();
                        ns[1] += (now - pushed).as_nanos();
                        loop {
                            got.clear();
                            let n = ring.reap(&mut got, 1);
                            let reaped = Instant::now();
                            ns[2] += (reaped - now).as_nanos();
                            if n == 1 {
                                break;
                            }
                            ring.submit_and_wait(1).expect("enter");
                            now = Instant::now();
                            ns[3] += (now - reaped).as_nanos();
                        }
                        black_box(&got);
                    }
                    ns
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .fold([0u128; 4], |a, b| std::array::from_fn(|i| a[i] + b[i]))
    });
    ns.map(|n| n as f64 / ops as f64)
}

/// One cache line's round trip between two threads, in ns: each stores
/// to one shared word, then spins until the other's store arrives (what
/// a word written on one core costs the other core to read, twice).
/// Timed in chunks of 1,000 trips, `rounds` x 20 chunks, median chunk (a
/// chunk in which a thread lost its core to other work is an outlier).
fn line_round_trip(rounds: usize) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const CHUNK: u64 = 1000;
    const CHUNKS: u64 = 20;
    let word = AtomicU64::new(0);
    let mut times = Vec::new();
    for _ in 0..rounds {
        word.store(0, Ordering::Relaxed);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..CHUNK * CHUNKS {
                    while word.load(Ordering::Acquire) != 2 * i + 1 {
                        std::hint::spin_loop();
                    }
                    word.store(2 * i + 2, Ordering::Release);
                }
            });
            for c in 0..CHUNKS {
                let start = Instant::now();
                for i in c * CHUNK..(c + 1) * CHUNK {
                    word.store(2 * i + 1, Ordering::Release);
                    while word.load(Ordering::Acquire) != 2 * i + 2 {
                        std::hint::spin_loop();
                    }
                }
                times.push(start.elapsed().as_nanos() as f64 / CHUNK as f64);
            }
        });
    }
    median(times)
}

/// One voluntary context switch on one core, in ns: two threads pinned to
/// the same CPU hand a turn back and forth, each waking the other
/// (`unpark`, a futex wake) and blocking until woken again (`park`, a
/// futex wait), so every hand-off is one thread blocking and the other
/// resuming on that core. Timed in chunks of 200 hand-off pairs, `rounds`
/// x 10 chunks, median chunk, halved (two switches per pair).
fn switch_cost(rounds: usize) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const CHUNK: u64 = 200;
    const CHUNKS: u64 = 10;
    /// Pins the calling thread to CPU 0 (false if it cannot be).
    fn pin() -> bool {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
        // bit 0 of it; sched_setaffinity reads `size_of` bytes of it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }
    // This thread's CPUs, to go back to after each round.
    // SAFETY: a zeroed cpu_set_t is a valid empty set, which
    // sched_getaffinity fills (`size_of` bytes of it).
    let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let got =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut before) };
    assert_eq!(got, 0, "sched_getaffinity");
    let mut times = Vec::new();
    for _ in 0..rounds {
        // Whose turn it is: odd for the helper, even for the timer.
        let turn = AtomicU64::new(0);
        let me = std::thread::current();
        std::thread::scope(|s| {
            let helper = s.spawn(|| {
                assert!(pin(), "sched_setaffinity");
                for i in 0..CHUNK * CHUNKS {
                    while turn.load(Ordering::Acquire) != 2 * i + 1 {
                        std::thread::park();
                    }
                    turn.store(2 * i + 2, Ordering::Release);
                    me.unpark();
                }
            });
            assert!(pin(), "sched_setaffinity");
            for c in 0..CHUNKS {
                let start = Instant::now();
                for i in c * CHUNK..(c + 1) * CHUNK {
                    turn.store(2 * i + 1, Ordering::Release);
                    helper.thread().unpark();
                    while turn.load(Ordering::Acquire) != 2 * i + 2 {
                        std::thread::park();
                    }
                }
                times.push(start.elapsed().as_nanos() as f64 / (2 * CHUNK) as f64);
            }
        });
        // Back on its CPUs for what runs next.
        // SAFETY: `before` is a valid set, read for `size_of` bytes.
        let back =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &before) };
        assert_eq!(back, 0, "sched_setaffinity");
    }
    median(times)
}

/// The batch-1 note's bound for more threads than cores (the rows'
/// largest count): an enter carries entries of at most `cores` threads
/// unless the others pushed theirs and gave their cores up before it (a
/// thread preempted at its time slice does so once in milliseconds, not
/// once per op), so each entry past `cores` in an enter costs a voluntary
/// switch. `[push, reap]`: their `m`-thread costs per op (`m` = `cores`,
/// at least 2); `contended`: lockstep at `m` threads with those costs.
fn more_threads_bound(
    rows: &[Batch1Row],
    cores: u32,
    m: u32,
    [push, reap]: [f64; 2],
    contended: f64,
    rounds: usize,
) -> String {
    let Some(many) = rows.iter().rfind(|r| r.threads > u64::from(m)) else {
        return String::new();
    };
    let n = many.threads as u32;
    let switch = switch_cost(rounds);
    // k entries per enter, k from m + 1 to n: a round of k ops runs their
    // pushes and reaps on `cores` cores, k - m switches (one core's block
    // and another thread's resume each) likewise, and the k-NOP enter on
    // one core while the others wait for its completions.
    let per_k: Vec<(u32, f64, f64)> = (m + 1..=n)
        .map(|k| {
            let (kernel, _) = kernel_floor(k, OPS / 4, rounds);
            let user = (push + reap) * f64::from(k) / f64::from(cores);
            let switches = f64::from(k - m) * switch / f64::from(cores);
            (k, kernel, (user + switches) / f64::from(k) + kernel)
        })
        .collect();
    let best = per_k
        .iter()
        .map(|&(_, _, per_op)| per_op)
        .fold(contended, f64::min);
    let ratio = many.mutex / best;
    let cases: Vec<String> = per_k
        .iter()
        .map(|&(k, kernel, per_op)| {
            format!("{k} entries per enter {per_op:.1} ns ({kernel:.1} ns of it in the kernel)")
        })
        .collect();
    format!(
        " With {n} threads on {cores} cores, at most {cores} threads run at once, so an enter \
         carries more than {m} entries only if the threads past {m} pushed theirs and gave up \
         their cores before it: blocked (a voluntary switch, {switch:.0} ns here: two threads \
         pinned to one core waking each other, median per switch) or preempted (once per time \
         slice, milliseconds, not once per op). Lockstep with pushing and reaping at their \
         {m}-thread cost and one switch per entry past {m}, per NOP: {m} entries per enter \
         {contended:.1} ns (as above), {cases}. The best, {best:.1} ns, against the mutex's \
         {mutex:.1} ns/op at {n} threads, is a ratio of {ratio:.2}: {verdict}.",
        cases = cases.join(", "),
        mutex = many.mutex,
        verdict = if ratio >= 1.5 {
            "the 1.5x target is within reach of lockstep in this run, which the threads' \
             schedule does not give"
        } else {
            "below the 1.5x target in every lockstep, so on this machine the cores, the \
             switches and the ring's shared words rule it out"
        },
    )
}

/// The note under the batch-1 `shared` rows: what bounds them, with this
/// run's numbers.
fn shared_batch1_note(rows: &[Batch1Row], rounds: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let (one, one_wall) = kernel_floor(1, OPS / 4, rounds);
    let (merged, _) = kernel_floor(cores.max(2), OPS / 4, rounds);
    let m = cores.max(2);
    // The phases on one thread and on m, alternating rounds, medians.
    let ring = shared_ring();
    shared_batch1_phases(&ring, u64::from(m), OPS / 8);
    let (mut alone, mut shared) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let run = |threads: u64| shared_batch1_phases(&ring, threads, OPS / 8);
        if round % 2 == 0 {
            alone.push(run(1));
            shared.push(run(u64::from(m)));
        } else {
            shared.push(run(u64::from(m)));
            alone.push(run(1));
        }
    }
    let medians = |v: &[[f64; 4]]| -> [f64; 4] {
        std::array::from_fn(|i| median(v.iter().map(|p| p[i]).collect()))
    };
    let ([p1, s1, r1, w1], [p2, s2, r2, w2]) = (medians(&alone), medians(&shared));
    // Lockstep again, with the user-space work at its measured m-thread
    // cost: the threads push at once, one enter carries an entry of each,
    // they reap at once (the gate, the hand-offs and the waits left out).
    let contended = (p2 + f64::from(m) * merged + r2) / f64::from(m);
    let contended_text = rows
        .iter()
        .find(|r| r.threads == u64::from(m))
        .map(|many| {
            let ratio = many.mutex / contended;
            format!(
                " Lockstep with pushing and reaping at their {m}-thread cost (the threads push \
                 at once, one enter carries an entry of each, they reap at once; the gate and \
                 the hand-offs left out) gives {contended:.1} ns per NOP, a ratio of {ratio:.2} \
                 against the mutex: {verdict}.",
                verdict = if ratio >= 1.3 {
                    "the 1.3x target is within reach of lockstep in this run, which the \
                     threads' schedule does not give"
                } else {
                    "below the 1.3x target even in lockstep, so with threads on both cores the \
                     cost of sharing the ring's words rules it out in this run"
                },
            )
        })
        .unwrap_or_default();
    let trip = line_round_trip(rounds);
    let more_threads = more_threads_bound(rows, cores, m, [p2, r2], contended, rounds);
    let save = one - merged;
    let per_call: Vec<String> = rows
        .iter()
        .filter(|r| r.threads > 1)
        .map(|r| format!("{:.2} at {} threads", r.per_call, r.threads))
        .collect();
    // In lockstep (every enter carrying one entry of each of m threads), a
    // round costs the m-NOP call plus what a one-thread round spends
    // outside the kernel (both wait for the call's completions).
    let lockstep = rows
        .iter()
        .find(|r| r.threads == 1)
        .zip(rows.iter().find(|r| r.threads == u64::from(m)))
        .map(|(alone, many)| {
            let outside = (alone.ours - one).max(0.0);
            let per_op = merged + outside / f64::from(m);
            format!(
                " Were every enter to carry one entry of each of {m} threads (the threads in \
                 lockstep), a NOP would cost at least {per_op:.1} ns: the {m}-NOP call's share \
                 ({merged:.1} ns) plus 1/{m} of what a one-thread `SharedRing` round spends \
                 outside the kernel ({outside:.1} ns: its {ours:.1} ns/op less the {one:.1} ns \
                 call); against the mutex's {mutex:.1} ns/op at {m} threads, a ratio of \
                 {ratio:.2}: {verdict}. That bound counts each op's user-space work at its \
                 one-thread cost, which it does not keep with threads on {cores} cores.",
                ours = alone.ours,
                ratio = many.mutex / per_op,
                verdict = if many.mutex / per_op >= 1.3 {
                    "the kernel's costs and the one-thread round alone do not rule the 1.3x \
                     target out"
                } else {
                    "below the 1.3x target even in lockstep, so in this run the one-thread \
                     round's own cost rules it out"
                },
                mutex = many.mutex,
            )
        })
        .unwrap_or_default();
    println!(
        "note\t**What bounds the batch-1 `shared` rows.** Each of N threads pushes one NOP, \
         submits, and waits until it has reaped one completion before it pushes the next; \
         `Mutex<IoUring>`: lock, push, `submit_and_wait(1)`, reap, unlock. A `SharedRing` can \
         only win here by merging several threads' entries into one `io_uring_enter` (the \
         thread holding its submit gate enters for every entry published), which saves the \
         kernel's fixed cost per call: one NOP per call costs {one:.1} ns inside \
         `io_uring_enter` (of {one_wall:.1} ns per NOP for the whole one-thread loop), {m} NOPs \
         per call {merged:.1} ns each (each call timed, this run). Measured, the entries its \
         submitting calls carried on average (at least the mean per enter: a call that holds \
         the gate enters again for entries published meanwhile): {pc}; {merging}. An enter \
         carries only the entries pushed before it starts, and with one op per round a thread \
         pushes its next entry only after its completion is in; with {cores} \
         cores, at most {cores} threads push at once, and two entries share an enter only if \
         both land before the gate holder reads the queue. After an enter, the holder enters \
         again at once for an entry pushed meanwhile (it must: that entry's thread was told the \
         holder would submit it, and may never call again), so the threads fall into \
         alternation, one entering for the other's single entry while the other reaps and \
         pushes its next. Each op then pays a whole call, plus the protocol's atomic \
         read-modify-writes and cache-line transfers between cores, which the mutex (unfair: \
         one thread keeps the lock, the ring and its cache lines) does not.{lockstep} Each \
         call timed ({rounds} runs alternating, medians, ~20 ns of clock per call included), \
         per op: on one thread a push costs {p1:.0} ns, the `submit` after it {s1:.0} ns (its \
         `io_uring_enter` included), the `reap`s {r1:.0} ns and the waits between them \
         {w1:.0} ns; with {m} threads {p2:.0}, {s2:.0}, {r2:.0} and {w2:.0} ns. Pushing and \
         reaping, which never wait, cost {pf:.1}x and {rf:.1}x their one-thread time: a word \
         written on one core costs the other core a cache-line transfer, {trip:.0} ns for a \
         round trip here (two threads handing one word back and forth), and a `SharedRing` op \
         writes ten words the other threads write too (the credit count, twice, the SQ claim \
         index, its commit mark and the published SQ tail, the submit gate, the CQ claim \
         index, its credit note and done mark, the read index and the CQ head), while its SQE \
         and CQE cross to and from the core that enters; the mutex's thread, re-taking the \
         lock before a sleeping waiter wakes, keeps them all in its cache. A merged entry \
         saves {save:.0} ns of kernel time ({one:.0} less {merged:.0}), {trips:.1} round \
         trips.{contended_text}{more_threads} Tried (issue \
         17): a combining window in which the gate's holder waited, at most 1-2 us, for the \
         other threads' next entries, with the gate handed to a pusher waiting for it instead \
         of re-entered for that pusher's entry alone. It reached 1.3 to 1.6 entries per enter \
         at 2 threads and lost to entering at once in every run (2-thread ratio 0.37 against \
         0.79 in back-to-back runs); traced at 2 threads, a push took 465 ns, an enter \
         carrying 1.4 entries 793 ns and a reap about 600 ns, against 99, 306 and 143 ns on \
         one thread (clock reads included).",
        pf = p2 / p1,
        rf = r2 / r1,
        trips = save / trip,
        merging = if rows
            .iter()
            .filter(|r| r.threads > 1)
            .all(|r| r.per_call < 1.5)
        {
            "almost no merging"
        } else {
            "at most that much merging"
        },
        pc = if per_call.is_empty() {
            "(not measured)".to_string()
        } else {
            per_call.join(", ")
        },
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--callgrind") {
        let lib = args.get(1).expect("LIB");
        let batch: u32 = args.get(2).and_then(|b| b.parse().ok()).expect("BATCH");
        let ops: u64 = args.get(3).and_then(|b| b.parse().ok()).expect("OPS");
        let entries = batch.max(8).next_power_of_two();
        match lib.as_str() {
            "ring" => ring_nops(
                &mut Builder::new(entries).no_defaults().build().expect("setup"),
                batch,
                ops,
            ),
            "io-uring" => uring_nops(&mut IoUring::new(entries).expect("setup"), batch, ops),
            // BATCH is the number of threads here.
            "shared" => {
                shared_nops(&shared_ring(), u64::from(batch), SHARED_BATCH, ops);
            }
            "mutex" => mutex_nops(&mutex_ring(), u64::from(batch), SHARED_BATCH, ops),
            // The batch-1 rows' loops.
            "shared1" => {
                shared_nops(&shared_ring(), u64::from(batch), 1, ops);
            }
            "mutex1" => mutex_nops(&mutex_ring(), u64::from(batch), 1, ops),
            // The Proactors' NOP futures, BATCH in flight (the default
            // configuration for 32, as the peers rows).
            "proactor" => {
                let p = ring_io_proactor::Proactor::new(ring_io_proactor::ProactorConfig::new(32))
                    .expect("a Proactor");
                proactor::proactor_nops(&p, batch as usize, false, ops);
            }
            "local" => {
                let p =
                    ring_io_proactor::LocalProactor::new(ring_io_proactor::ProactorConfig::new(32))
                        .expect("a LocalProactor");
                proactor::local_nops(&p, batch as usize, ops);
            }
            // NOPs awaited in BATCH spawned tasks, one at a time each.
            "local-task" => {
                let p =
                    ring_io_proactor::LocalProactor::new(ring_io_proactor::ProactorConfig::new(32))
                        .expect("a LocalProactor");
                proactor::local_task_nops(&p, batch as usize, ops);
            }
            "read0-local" => {
                let p =
                    ring_io_proactor::LocalProactor::new(ring_io_proactor::ProactorConfig::new(32))
                        .expect("a LocalProactor");
                let mut bufs: Vec<Vec<u8>> =
                    (0..batch).map(|_| Vec::with_capacity(io::BLOCK)).collect();
                let f = io::test_file();
                proactor::local_reads(&p, f, &mut bufs, io::Reads::AtEnd, batch as usize, ops);
            }
            "read0-proactor" => {
                let p = ring_io_proactor::Proactor::new(ring_io_proactor::ProactorConfig::new(32))
                    .expect("a Proactor");
                let mut bufs: Vec<Vec<u8>> =
                    (0..batch).map(|_| Vec::with_capacity(io::BLOCK)).collect();
                let f = io::test_file();
                proactor::proactor_reads(
                    &p,
                    f,
                    &mut bufs,
                    io::Reads::AtEnd,
                    batch as usize,
                    false,
                    ops,
                );
            }
            "read0-ring" => {
                let mut ring = Builder::new(io::DEPTH as u32).build().expect("setup");
                io::ring_reads_at_end(&mut ring, io::test_file(), &io::Buffers::new(), batch, ops);
            }
            "read0-io-uring" => io::uring_reads(
                &mut io::uring(io::DEPTH as u32),
                io::test_file(),
                &io::Buffers::new(),
                io::Reads::AtEnd,
                batch as usize,
                ops,
            ),
            #[cfg(feature = "peers")]
            "read0-monoio" => peers::monoio_reads(io::Reads::AtEnd, batch as usize, ops),
            other => panic!("unknown lib {other}"),
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--burn") {
        // A CPU-bound process for the loaded peers table: spins until
        // killed.
        let mut x = 1u64;
        loop {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--load N`: the peers table only, beside N CPU-bound processes.
    let load: usize = args
        .iter()
        .position(|a| a == "--load")
        .and_then(|i| args.get(i + 1))
        .map_or(0, |n| n.parse().expect("--load N: a number of processes"));
    let rounds = if quick { 5 } else { 21 };
    let wanted: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|&(i, a)| !a.starts_with("--") && (i == 0 || args[i - 1] != "--load"))
        .map(|(_, a)| a)
        .collect();
    if load > 0 {
        #[cfg(feature = "peers")]
        peers::rows(quick, load, &|row: &str| {
            wanted.is_empty() || wanted.iter().any(|w| row.starts_with(w.as_str()))
        });
        #[cfg(not(feature = "peers"))]
        eprintln!("--load: the peers table needs the `peers` feature");
        return;
    }
    let want = |row: &str| wanted.is_empty() || wanted.iter().any(|w| row.starts_with(w.as_str()));
    println!("row\tring ns/op\tio-uring ns/op\tratio");
    for batch in [1, 32, 256] {
        for defaults in [false, true] {
            let name = format!(
                "nop/batch{batch}/{}",
                if defaults { "defaults" } else { "plain" }
            );
            if want(&name) {
                nop_row(&name, batch, defaults, rounds);
            }
        }
    }
    let mut mutex_best: Option<f64> = None;
    let mut batch1 = Vec::new();
    for batch in [SHARED_BATCH, 1] {
        for threads in [1, 2, 4] {
            let name = format!("shared/threads{threads}/batch{batch}");
            if want(&name) {
                let (ours, mutex, per_call) = shared_row(&name, threads, batch, rounds);
                if threads > 1 && batch == SHARED_BATCH {
                    mutex_best = Some(mutex_best.map_or(mutex, |m| m.min(mutex)));
                }
                if batch == 1 {
                    batch1.push(Batch1Row {
                        threads,
                        ours,
                        mutex,
                        per_call,
                    });
                }
            }
        }
    }
    if let Some(mutex) = mutex_best {
        shared_note(mutex, rounds);
    }
    if !batch1.is_empty() {
        shared_batch1_note(&batch1, rounds);
    }
    io::rows(rounds, &want);
    proactor::rows(rounds, quick, &want);
    #[cfg(feature = "peers")]
    peers::rows(quick, 0, &want);
    cp::rows(rounds, &want);
}
