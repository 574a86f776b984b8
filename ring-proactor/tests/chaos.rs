//! A seeded, randomized stress test of the Proactor's driving machinery
//! (the driver token, its handover and step outs, the fallback thread,
//! `drive` and `park`, the slot table and the completion cells): several
//! threads share one or two Proactors and, step by step, each picks at
//! random
//!
//! - how it waits: the crate's `block_on`, `Op::wait`, a `futures`
//!   `LocalPool`, `pollster`, a tokio runtime's task (polled on its
//!   workers, which never drive), an executor that `park`s on the Proactor
//!   (random timeouts, `None` too), one that `drive`s in a poll loop, or
//!   a poll with a no-op waker and the op kept for later (then dropped,
//!   waited on, or `mem::forget`ten);
//! - which ops: NOPs, timeouts, socket and file round trips (a read must
//!   return what was written), linked chains, a receive bounded by a
//!   linked timeout or by `Op::timeout`, a `recv_multi` stream taken
//!   partly then dropped (or drained to its end);
//! - hostile user code: futures that compute for up to 20 ms between
//!   polls or panic (caught), wakers that panic, sleep, wake twice, start
//!   ops, wait on an op, or drop a Proactor handle (maybe the last);
//!   futures dropped before their first poll or part way; the handles of
//!   the second Proactor dropped at random (the last one shuts it down
//!   under the others' ops).
//!
//! Asserted: every op awaited to its end completes once, with the right
//! result (a shutdown's errors only once every handle of its Proactor is
//! gone); no thread stays stuck (a watchdog names the seed and what each
//! thread was doing); assertions in user code the Proactor runs (wakers)
//! are collected, not swallowed; afterwards the Proactor still works (a
//! wait, an op only polled, a `drive`, its whole budget at once),
//! counted no unexpected CQE and no overflow, and once every handle is
//! dropped no fd is left open (but the two of each Proactor whose ops
//! were forgotten: its shared state is leaked with them).
//!
//! The default run is a fixed set of seeds (about a second). Soak runs:
//! `CHAOS_SECS=N` runs random seeds for N seconds, `CHAOS_SEEDS=N` runs N
//! random seeds, `CHAOS_SEED=S` one seed (to reproduce a failure, whose
//! message names it); `CHAOS_THREADS` and `CHAOS_STEPS` override the
//! seed's thread and step counts (to minimize).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::Future;
use std::io::{self, Write as _};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_proactor::{
    CURRENT_POSITION, MsgFlags, Op, Proactor, ProactorConfig, ProactorStats, block_on,
};

/// The seeds of the default run.
const SEEDS: [u64; 6] = [1, 2, 3, 0xC4A05, 0x5EED_F00D, 77];

/// How long one run (one seed) may take before the watchdog fails it.
const WATCHDOG: Duration = Duration::from_secs(30);

/// The payload of the panics the test makes on purpose.
const INTENDED: &str = "chaos: an intended panic";

// ---------------------------------------------------------------------------
// The PRNG (splitmix64).

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn fork(&mut self) -> Rng {
        Rng(self.next())
    }
}

// ---------------------------------------------------------------------------
// Shared state of a run.

/// A handle of a Proactor, counted: `live` drops to 0 before the last
/// handle is dropped (so a result that shows the shutdown is seen only
/// once `live` is 0).
struct Handle {
    p: Option<Proactor>,
    index: usize,
    live: Arc<AtomicUsize>,
}

impl Handle {
    fn p(&self) -> &Proactor {
        self.p.as_ref().expect("a live handle")
    }

    fn clone_handle(&self) -> Handle {
        self.live.fetch_add(1, Ordering::SeqCst);
        Handle {
            p: self.p.clone(),
            index: self.index,
            live: self.live.clone(),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        drop(self.p.take());
    }
}

/// What the threads of a run share.
struct World {
    seed: u64,
    /// Each thread's recent actions (the last is what it does now).
    status: Vec<Mutex<Vec<String>>>,
    /// Live handles of each Proactor.
    live: Vec<Arc<AtomicUsize>>,
    /// Each Proactor's budget, if small (ops then wait for credit).
    small_budget: Vec<Option<u32>>,
    /// An op of this Proactor was forgotten: its shared state leaks.
    forgot: Vec<AtomicBool>,
    /// Failures seen in user code the Proactor runs (wakers), where a
    /// panic would be caught and lost.
    failures: Mutex<Vec<String>>,
    /// The shared temp file (each thread writes its own region).
    file: Arc<std::fs::File>,
    /// The tokio runtime tasks are spawned on (the runtime is the run's).
    tokio: tokio::runtime::Handle,
    /// Counts ops completed and checked (to show the run did something).
    checked: AtomicU64,
    /// `recv_multi` streams that ended before their chunks were taken
    /// (their Proactor gone).
    multi_ended_early: AtomicU64,
}

impl World {
    fn note(&self, tid: usize, what: String) {
        let mut s = lock(&self.status[tid]);
        if s.len() >= 12 {
            s.remove(0);
        }
        s.push(what);
    }

    fn fail(&self, what: String) {
        lock(&self.failures).push(what);
    }

    /// The Proactor may have shut down (every handle is gone).
    fn gone(&self, index: usize) -> bool {
        self.live[index].load(Ordering::SeqCst) == 0
    }

    /// `e` may end a member of a linked chain whose submitter exited: a
    /// Proactor is gone, and its fallback thread, which may have driven
    /// this one (in a waker that waits on an op), with it. The kernel no
    /// longer runs such a chain, and the exit cancels it (`ECANCELED`, as
    /// the Proactor's "Who submits" says).
    fn chain_cut(&self, e: &io::Error) -> bool {
        e.raw_os_error() == Some(libc::ECANCELED) && (0..self.live.len()).any(|i| self.gone(i))
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.status.iter().enumerate() {
            let s = lock(s);
            let _ = writeln!(out, "  thread {i}: now: {}", s.last().map_or("-", |x| x));
            for past in s.iter().rev().skip(1) {
                let _ = writeln!(out, "      before: {past}");
            }
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `res` is right: `ok` if it is `Ok`, or a shutdown's error once
/// the Proactor may have shut down.
fn check<T>(w: &World, index: usize, what: &str, res: &io::Result<T>) -> bool {
    match res {
        Ok(_) => true,
        Err(e) if w.gone(index) && is_shutdown(e) => false,
        Err(e) => panic!("seed {}: {what}: unexpected error {e:?}", w.seed),
    }
}

/// [`check`] for a member of a linked chain (see [`World::chain_cut`]).
fn check_chain<T>(w: &World, index: usize, what: &str, res: &io::Result<T>) -> bool {
    match res {
        Err(e) if w.chain_cut(e) => false,
        _ => check(w, index, what, res),
    }
}

fn is_shutdown(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotConnected || e.raw_os_error() == Some(libc::ECANCELED)
}

// ---------------------------------------------------------------------------
// Jobs: futures of ops that check their own results.

type Fut = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A job: its future, what it is, and whether it holds no fd and no
/// handle (a candidate for `mem::forget`).
struct Job {
    fut: Fut,
    what: String,
}

/// A file region of 128 bytes for a thread's `n`th file job.
fn file_offset(tid: usize, n: u64) -> u64 {
    (tid as u64) * 65536 + (n % 256) * 128
}

fn pair() -> (Arc<UnixStream>, Arc<UnixStream>) {
    let (a, b) = UnixStream::pair().expect("a socket pair");
    (Arc::new(a), Arc::new(b))
}

struct Maker<'a> {
    w: &'a Arc<World>,
    tid: usize,
    rng: Rng,
    file_jobs: u64,
}

impl Maker<'_> {
    fn job(&mut self, h: &Handle) -> Job {
        let w = self.w.clone();
        let i = h.index;
        let p = h.p();
        let mut kind = self.rng.below(10);
        if kind >= 8 && !multishot_recv() {
            // No recv_multi before 6.0: a NOP instead.
            kind = 0;
        }
        match kind {
            0 | 1 => {
                let op = p.nop();
                let what = format!("nop on P{i}");
                let w2 = what.clone();
                Job {
                    fut: Box::pin(async move {
                        if check(&w, i, &w2, &op.await) {
                            w.checked.fetch_add(1, Ordering::Relaxed);
                        }
                    }),
                    what,
                }
            }
            2 => {
                let d = Duration::from_micros(self.rng.below(3000));
                let op = p.timeout(d);
                let what = format!("timeout {d:?} on P{i}");
                let w2 = what.clone();
                Job {
                    fut: Box::pin(async move {
                        if check(&w, i, &w2, &op.await) {
                            w.checked.fetch_add(1, Ordering::Relaxed);
                        }
                    }),
                    what,
                }
            }
            3 => {
                // A socket round trip: the receive is polled first, then
                // the send, in one task.
                let (a, b) = pair();
                let n = 1 + self.rng.below(64) as usize;
                let data = self.rng.bytes(n);
                let what = format!("socket round trip of {} bytes on P{i}", data.len());
                let recv = p.recv(&a, Vec::with_capacity(64), MsgFlags::empty());
                let send = if self.rng.chance(1, 2) {
                    p.send(&b, data.clone(), MsgFlags::NOSIGNAL)
                } else {
                    p.write(&b, data.clone(), CURRENT_POSITION)
                };
                let w2 = what.clone();
                // On a small budget the receive is polled only once the
                // send is done: receives waiting for sends that wait for
                // the credit the receives hold would be the test's own
                // deadlock.
                let together = w.small_budget[i].is_none();
                Job {
                    fut: Box::pin(async move {
                        let ((rn, rbuf), (sn, _)) = if together {
                            futures_util::future::join(recv, send).await
                        } else {
                            let sent = send.await;
                            (recv.await, sent)
                        };
                        if check(&w, i, &w2, &sn) {
                            assert_eq!(sn.unwrap(), data.len(), "seed {}: {w2}: sent", w.seed);
                        }
                        if check(&w, i, &w2, &rn) {
                            let n = rn.unwrap();
                            assert_eq!(&rbuf[..n], &data[..], "seed {}: {w2}: received", w.seed);
                            w.checked.fetch_add(1, Ordering::Relaxed);
                        }
                    }),
                    what,
                }
            }
            4 => {
                // A file round trip: linked (write then read), or one after
                // the other (the future holds a handle for the second).
                let off = file_offset(self.tid, self.file_jobs);
                self.file_jobs += 1;
                let len = 1 + self.rng.below(128) as usize;
                let data = self.rng.bytes(len);
                let file = w.file.clone();
                let linked = self.rng.chance(1, 2);
                let what = format!(
                    "file round trip of {len} bytes at {off} on P{i}{}",
                    if linked { ", linked" } else { "" }
                );
                let w2 = what.clone();
                if linked {
                    let chain = p.write(&file, data.clone(), off).link(p.read(
                        &file,
                        Vec::with_capacity(len),
                        off,
                    ));
                    Job {
                        fut: Box::pin(async move {
                            let ((wn, _), (rn, rbuf)) = chain.await;
                            if check_chain(&w, i, &w2, &wn) {
                                assert_eq!(wn.unwrap(), len, "seed {}: {w2}: written", w.seed);
                            }
                            if check_chain(&w, i, &w2, &rn) {
                                assert_eq!(rn.unwrap(), len, "seed {}: {w2}: read", w.seed);
                                assert_eq!(rbuf, data, "seed {}: {w2}: read back", w.seed);
                                w.checked.fetch_add(1, Ordering::Relaxed);
                            }
                        }),
                        what,
                    }
                } else {
                    let h = h.clone_handle();
                    Job {
                        fut: Box::pin(async move {
                            let (wn, _) = h.p().write(&file, data.clone(), off).await;
                            if !check(&w, i, &w2, &wn) {
                                return;
                            }
                            assert_eq!(wn.unwrap(), len, "seed {}: {w2}: written", w.seed);
                            let (rn, rbuf) = h.p().read(&file, Vec::with_capacity(len), off).await;
                            if check(&w, i, &w2, &rn) {
                                assert_eq!(rn.unwrap(), len, "seed {}: {w2}: read", w.seed);
                                assert_eq!(rbuf, data, "seed {}: {w2}: read back", w.seed);
                                w.checked.fetch_add(1, Ordering::Relaxed);
                            }
                        }),
                        what,
                    }
                }
            }
            5 => {
                let chain = p
                    .nop()
                    .link(p.nop())
                    .link(p.timeout(Duration::from_micros(self.rng.below(500))));
                let what = format!("linked nop, nop, timeout on P{i}");
                let w2 = what.clone();
                Job {
                    fut: Box::pin(async move {
                        let ((a, b), c) = chain.await;
                        if w.small_budget[i].is_some_and(|b| b < 3) {
                            // Longer than the budget: refused whole.
                            for res in [&a, &b, &c] {
                                let e = res.as_ref().expect_err("a chain past the budget");
                                if !(w.gone(i) && is_shutdown(e)) {
                                    assert_eq!(
                                        e.kind(),
                                        io::ErrorKind::InvalidInput,
                                        "seed {}: {w2}",
                                        w.seed
                                    );
                                }
                            }
                            return;
                        }
                        let ok = [check_chain(&w, i, &w2, &a), check_chain(&w, i, &w2, &b)];
                        // A timeout at the end of a chain: ETIME, as Ok.
                        if check_chain(&w, i, &w2, &c) && ok == [true, true] {
                            w.checked.fetch_add(1, Ordering::Relaxed);
                        }
                    }),
                    what,
                }
            }
            6 => {
                // A receive with nothing to receive, bounded by a linked
                // timeout: cancelled (ECANCELED), the timeout fires (ETIME).
                let (a, b) = pair();
                let d = Duration::from_micros(self.rng.below(2000));
                let chain = p
                    .recv(&a, Vec::with_capacity(8), MsgFlags::empty())
                    .link(p.link_timeout(d));
                let what = format!("recv with a linked timeout of {d:?} on P{i}");
                let w2 = what.clone();
                Job {
                    fut: Box::pin(async move {
                        let ((rn, _), t) = chain.await;
                        drop(b);
                        let seed = w.seed;
                        match (&rn, &t) {
                            (Err(r), Err(t))
                                if r.raw_os_error() == Some(libc::ECANCELED)
                                    && t.raw_os_error() == Some(libc::ETIME) =>
                            {
                                w.checked.fetch_add(1, Ordering::Relaxed);
                            }
                            (Err(r), Err(_)) if w.gone(i) && is_shutdown(r) => {}
                            (Err(r), Err(_)) if w.chain_cut(r) => {}
                            _ => panic!("seed {seed}: {w2}: got {rn:?} and {t:?}"),
                        }
                    }),
                    what,
                }
            }
            7 => {
                // A receive bounded by `Op::timeout`: data sent first (or
                // not) comes back; otherwise Elapsed, with ECANCELED.
                let (a, b) = pair();
                let d = Duration::from_micros(self.rng.below(2000));
                let data = if self.rng.chance(1, 2) {
                    let data = self.rng.bytes(16);
                    (&*b).write_all(&data).expect("a socket write");
                    Some(data)
                } else {
                    None
                };
                let op = p
                    .recv(&a, Vec::with_capacity(64), MsgFlags::empty())
                    .timeout(d);
                let what = format!(
                    "recv with Op::timeout {d:?}, {} on P{i}",
                    if data.is_some() {
                        "data sent"
                    } else {
                        "no data"
                    }
                );
                let w2 = what.clone();
                Job {
                    fut: Box::pin(async move {
                        let seed = w.seed;
                        match (op.await, data) {
                            (Ok((n, buf)), Some(data)) => {
                                if check(&w, i, &w2, &n) {
                                    assert_eq!(&buf[..n.unwrap()], &data[..], "seed {seed}: {w2}");
                                    w.checked.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            (Ok((n, _)), None) => {
                                assert!(n.is_err(), "seed {seed}: {w2}: received {n:?}");
                                check(&w, i, &w2, &n);
                            }
                            (Err(elapsed), data) => {
                                // With data there, only a receive that
                                // waited for credit past its time elapses
                                // (cancelled before it was submitted).
                                assert!(
                                    data.is_none() || w.small_budget[i].is_some(),
                                    "seed {seed}: {w2}: data there, yet elapsed"
                                );
                                let (n, _) = elapsed.into_inner();
                                match n {
                                    Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
                                        w.checked.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Err(e) if w.gone(i) && is_shutdown(&e) => {}
                                    other => panic!("seed {seed}: {w2}: elapsed with {other:?}"),
                                }
                            }
                        }
                        drop(b);
                    }),
                    what,
                }
            }
            _ => {
                // A multishot receive: chunks written, some taken, then
                // dropped, or the sender closed and all taken to the end.
                let (a, b) = pair();
                let chunks: Vec<Vec<u8>> = (0..1 + self.rng.below(8))
                    .map(|_| {
                        let n = 1 + self.rng.below(48) as usize;
                        self.rng.bytes(n)
                    })
                    .collect();
                let take = 1 + self.rng.below(chunks.len() as u64) as usize;
                let to_end = self.rng.chance(1, 3);
                let mut multi = p.recv_multi(&a, 4, 64);
                let what = format!(
                    "recv_multi of {} chunks, {} on P{i}",
                    chunks.len(),
                    if to_end {
                        "to the end".to_string()
                    } else {
                        format!("{take} chunks taken")
                    }
                );
                let w2 = what.clone();
                Job {
                    fut: Box::pin(async move {
                        let seed = w.seed;
                        let mut sent = Vec::new();
                        let mut got = Vec::new();
                        let mut ended_early = false;
                        let mut b = Some(b);
                        for c in &chunks {
                            (&**b.as_ref().unwrap())
                                .write_all(c)
                                .expect("a socket write");
                            sent.extend_from_slice(c);
                        }
                        if to_end {
                            drop(b.take());
                        }
                        // (Chunks may come merged or split: counted in bytes.)
                        let want: usize = chunks[..take].iter().map(Vec::len).sum();
                        loop {
                            if !to_end && got.len() >= want {
                                break;
                            }
                            match multi.next_item().await {
                                Some(Ok(chunk)) => got.extend(chunk),
                                Some(Err(e)) => {
                                    check::<()>(&w, i, &w2, &Err(e));
                                    return;
                                }
                                None => {
                                    assert!(to_end || w.gone(i), "seed {seed}: {w2}: ended early");
                                    ended_early = !to_end;
                                    break;
                                }
                            }
                            assert!(
                                sent.starts_with(&got),
                                "seed {seed}: {w2}: received bytes not sent"
                            );
                        }
                        assert!(
                            !to_end || w.gone(i) || got == sent,
                            "seed {seed}: {w2}: not all received"
                        );
                        if ended_early {
                            w.multi_ended_early.fetch_add(1, Ordering::Relaxed);
                        }
                        w.checked.fetch_add(1, Ordering::Relaxed);
                        drop(multi);
                        drop(b);
                    }),
                    what,
                }
            }
        }
    }

    /// A job of only a NOP or a timeout, as a plain op (it holds no fd
    /// and no handle: one that may be forgotten).
    fn plain_op(&mut self, p: &Proactor) -> (Op<io::Result<()>>, String) {
        if self.rng.chance(1, 2) {
            (p.nop(), "nop".into())
        } else {
            let d = Duration::from_micros(self.rng.below(2000));
            (p.timeout(d), format!("timeout {d:?}"))
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile user code.

/// What a [`HostileWaker`] does when woken (it always wakes the task too,
/// first or after).
#[derive(Clone, Copy, Debug)]
enum WakerMode {
    Plain,
    /// Wakes, then panics.
    PanicAfter,
    /// Sleeps up to 3 ms, then wakes.
    Sleeps(u64),
    /// Wakes twice.
    Twice,
    /// Starts a NOP of its handle and drops it, then wakes.
    StartsOp,
    /// Wakes, then waits on a NOP of its handle.
    Waits,
    /// Drops its handle (maybe the last), then wakes.
    DropsHandle,
}

struct HostileWaker {
    inner: Waker,
    mode: WakerMode,
    handle: Mutex<Option<Handle>>,
    world: Arc<World>,
}

impl Wake for HostileWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self.mode {
            WakerMode::Plain => self.inner.wake_by_ref(),
            WakerMode::PanicAfter => {
                self.inner.wake_by_ref();
                std::panic::panic_any(INTENDED);
            }
            WakerMode::Sleeps(us) => {
                thread::sleep(Duration::from_micros(us));
                self.inner.wake_by_ref();
            }
            WakerMode::Twice => {
                self.inner.wake_by_ref();
                self.inner.wake_by_ref();
            }
            WakerMode::StartsOp => {
                if let Some(h) = lock(&self.handle).as_ref() {
                    drop(h.p().nop().start());
                }
                self.inner.wake_by_ref();
            }
            WakerMode::Waits => {
                // Woken first, so the task runs meanwhile if another
                // thread polls it. (Never on a small budget, where the task
                // may hold the credit the NOP waits for: see `hostile`.)
                self.inner.wake_by_ref();
                let h = lock(&self.handle).as_ref().map(Handle::clone_handle);
                if let Some(h) = h {
                    let res = h.p().nop().wait();
                    if let Err(e) = &res {
                        if !(self.world.gone(h.index) && is_shutdown(e)) {
                            self.world
                                .fail(format!("a NOP waited on in a waker: {e:?}"));
                        }
                    }
                }
            }
            WakerMode::DropsHandle => {
                let h = lock(&self.handle).take();
                drop(h);
                self.inner.wake_by_ref();
            }
        }
    }
}

/// A future around a job's future: it may compute between polls, panic
/// at a given poll, and polls its inner future with a [`HostileWaker`].
struct Hostile {
    inner: Fut,
    rng: Rng,
    /// The most it computes per poll (0: never).
    spin_us: u64,
    /// Panics at this poll (counted from 1).
    panic_at: Option<u32>,
    polls: u32,
    mode: WakerMode,
    handle: Option<Handle>,
    world: Arc<World>,
    /// The waker made at the last poll, and the one it wraps.
    made: Option<(Waker, Waker)>,
    /// A new waker at every poll rather than one per task waker.
    fresh_each_poll: bool,
}

impl Future for Hostile {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.polls += 1;
        if this.panic_at == Some(this.polls) {
            std::panic::panic_any(INTENDED);
        }
        if this.spin_us > 0 && this.rng.chance(1, 2) {
            let until = Instant::now() + Duration::from_micros(this.rng.below(this.spin_us));
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        let reuse = !this.fresh_each_poll
            && this
                .made
                .as_ref()
                .is_some_and(|(_, inner)| inner.will_wake(cx.waker()));
        if !reuse {
            let waker = Waker::from(Arc::new(HostileWaker {
                inner: cx.waker().clone(),
                mode: this.mode,
                handle: Mutex::new(this.handle.as_ref().map(Handle::clone_handle)),
                world: this.world.clone(),
            }));
            this.made = Some((waker, cx.waker().clone()));
        }
        let waker = &this.made.as_ref().expect("made").0;
        this.inner.as_mut().poll(&mut Context::from_waker(waker))
    }
}

// ---------------------------------------------------------------------------
// The threads.

/// An op or future kept after a poll, and what becomes of it.
struct Kept {
    item: KeptItem,
    what: String,
    /// The step at which its fate comes.
    due: usize,
    fate: Fate,
}

enum KeptItem {
    Fut(Fut),
    Op(Op<io::Result<()>>, usize),
}

#[derive(Clone, Copy, Debug)]
enum Fate {
    Drop,
    Wait,
    Forget,
}

/// How a thread waits for a task.
#[derive(Clone, Copy, Debug)]
enum Mode {
    BlockOn,
    LocalPool,
    Pollster,
    Tokio,
    Park(Option<Duration>),
    Drive,
}

/// Unparks the thread that polls.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to its end as `mode` says (with `h`'s Proactor to park on
/// or drive); `give_up`: a poll count after which the future is dropped
/// unfinished (park and drive only). A panic the test intended is caught
/// and reported as false; any other goes on.
fn run_task(w: &World, mode: Mode, h: &Handle, fut: Fut, give_up: Option<u32>) -> bool {
    let out = catch_unwind(AssertUnwindSafe(|| match mode {
        Mode::BlockOn => block_on(fut),
        Mode::LocalPool => futures_executor::LocalPool::new().run_until(fut),
        Mode::Pollster => pollster::block_on(fut),
        Mode::Tokio => {
            let task = w.tokio.spawn(fut);
            match futures_executor::block_on(task) {
                Ok(()) => {}
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("a tokio task failed: {e}"),
            }
        }
        Mode::Park(timeout) => {
            let waker = Waker::from(Arc::new(h.p().unparker()));
            poll_loop(fut, &waker, give_up, || h.p().park(timeout));
        }
        Mode::Drive => {
            poll_loop(fut, Waker::noop(), give_up, || {
                if !h.p().drive() {
                    thread::yield_now();
                }
            });
        }
    }));
    match out {
        Ok(()) => true,
        Err(payload) => {
            if payload.downcast_ref::<&str>() == Some(&INTENDED) {
                false
            } else {
                std::panic::resume_unwind(payload)
            }
        }
    }
}

fn poll_loop(mut fut: Fut, waker: &Waker, give_up: Option<u32>, mut between: impl FnMut()) {
    let mut cx = Context::from_waker(waker);
    let mut polls = 0;
    loop {
        if fut.as_mut().poll(&mut cx).is_ready() {
            return;
        }
        polls += 1;
        if give_up.is_some_and(|n| polls >= n) {
            return;
        }
        between();
    }
}

struct Worker {
    w: Arc<World>,
    tid: usize,
    rng: Rng,
    /// This thread's handles (index 1 may be dropped).
    handles: Vec<Option<Handle>>,
    kept: Vec<Kept>,
    file_jobs: u64,
}

impl Worker {
    fn handle(&mut self) -> &Handle {
        let live: Vec<usize> = (0..self.handles.len())
            .filter(|&i| self.handles[i].is_some())
            .collect();
        let i = live[self.rng.below(live.len() as u64) as usize];
        self.handles[i].as_ref().expect("live")
    }

    fn maker(&mut self) -> Maker<'_> {
        Maker {
            w: &self.w,
            tid: self.tid,
            rng: self.rng.fork(),
            file_jobs: self.file_jobs,
        }
    }

    /// `n` jobs, on the Proactors at random (`one`: all on the same).
    fn jobs(&mut self, n: usize, one: bool) -> (Vec<Fut>, String, Handle) {
        let mut futs = Vec::new();
        let mut whats = Vec::new();
        let mut first: Option<Handle> = None;
        for _ in 0..n {
            let h = match &first {
                Some(first) if one => first.clone_handle(),
                _ => self.handle().clone_handle(),
            };
            let mut maker = self.maker();
            let job = maker.job(&h);
            self.file_jobs = maker.file_jobs;
            futs.push(job.fut);
            whats.push(job.what);
            if first.is_none() {
                first = Some(h);
            }
        }
        (futs, whats.join(" + "), first.expect("one job at least"))
    }

    fn hostile(&mut self, fut: Fut, h: &Handle) -> (Fut, String) {
        let spin_us = if self.rng.chance(1, 8) {
            self.rng.below(20_000)
        } else {
            0
        };
        let panic_at = self.rng.chance(1, 12).then(|| 1 + self.rng.below(3) as u32);
        let mode = match self.rng.below(16) {
            0 => WakerMode::PanicAfter,
            1 => WakerMode::Sleeps(self.rng.below(3000)),
            2 => WakerMode::Twice,
            // On a small budget too: woken for credit, it once took that
            // credit itself (its NOP barged ahead of its task), for ever
            // (seed 0x61cf6ceb6f3d37d4: millions of NOPs, the task
            // starved). Credit that comes back is now granted to the op
            // it wakes (see a_waker_that_starts_an_op_when_woken_...).
            3 => WakerMode::StartsOp,
            // Not on a small budget: run by a thread that drives (a park,
            // a block_on), it may wait for credit that a task of that
            // thread holds, as its `recv_multi` streams keep their
            // credits until it polls them again, after this waker returns
            // (seed 0x68ecb8b7a2342fd8: gdb showed the waker's wait inside
            // the park's turn of the task holding the streams). A wait
            // that gives up needs a timer, which needs credit that the
            // task may hold (seed 0x462f51ca5b8d7095). Both are the
            // test's own.
            4 if self.w.small_budget[h.index].is_none() => WakerMode::Waits,
            5 => WakerMode::DropsHandle,
            _ => WakerMode::Plain,
        };
        let fresh_each_poll = self.rng.chance(1, 4);
        let what = format!(
            "hostile(spin {spin_us} us, panic at {panic_at:?}, waker {mode:?}{})",
            if fresh_each_poll {
                ", fresh wakers"
            } else {
                ""
            }
        );
        let fut = Box::pin(Hostile {
            inner: fut,
            rng: self.rng.fork(),
            spin_us,
            panic_at,
            polls: 0,
            mode,
            handle: Some(h.clone_handle()),
            world: self.w.clone(),
            made: None,
            fresh_each_poll,
        });
        (fut, what)
    }

    fn mode(&mut self) -> Mode {
        match self.rng.below(8) {
            0 | 1 => Mode::BlockOn,
            2 => Mode::LocalPool,
            3 => Mode::Pollster,
            4 => Mode::Tokio,
            5 => Mode::Park(match self.rng.below(4) {
                0 => None,
                1 => Some(Duration::ZERO),
                _ => Some(Duration::from_micros(self.rng.below(2000))),
            }),
            6 => Mode::Drive,
            _ => Mode::BlockOn,
        }
    }

    fn step(&mut self, step: usize) {
        let tid = self.tid;
        // Kept ops whose time has come.
        let mut i = 0;
        while i < self.kept.len() {
            if self.kept[i].due > step {
                i += 1;
                continue;
            }
            let kept = self.kept.swap_remove(i);
            self.w.note(
                tid,
                format!("step {step}: {:?} of kept {}", kept.fate, kept.what),
            );
            self.fate(kept);
        }
        let action = self.rng.below(20);
        match action {
            0..=9 => {
                // A task of joined jobs, waited on some way.
                let n = 1 + self.rng.below(4) as usize;
                let mode = self.mode();
                // (The crate's block_on drives one Proactor at a time, and
                // must see ops of two through: see
                // `block_on_of_ops_on_two_proactors_completes_both`.)
                let one = false;
                let (futs, what, h) = self.jobs(n, one);
                let joined: Fut = Box::pin(async move {
                    futures_util::future::join_all(futs).await;
                });
                let (fut, hostile) = if self.rng.chance(1, 2) {
                    let (f, what) = self.hostile(joined, &h);
                    (f, what)
                } else {
                    (joined, String::new())
                };
                let give_up = match mode {
                    Mode::Park(_) | Mode::Drive if self.rng.chance(1, 6) => {
                        Some(1 + self.rng.below(4) as u32)
                    }
                    _ => None,
                };
                self.w.note(
                    tid,
                    format!("step {step}: {mode:?} (give up {give_up:?}) of {hostile} {what}"),
                );
                run_task(&self.w, mode, &h, fut, give_up);
            }
            10 | 11 => {
                // A plain wait.
                let h = self.handle().clone_handle();
                let (op, what) = self.maker().plain_op(h.p());
                self.w
                    .note(tid, format!("step {step}: wait on {what} on P{}", h.index));
                let res = op.wait();
                check(&self.w, h.index, &what, &res);
            }
            12..=14 => {
                // Polled once with a no-op waker, kept for later.
                let h = self.handle().clone_handle();
                let fate = match self.rng.below(5) {
                    0 | 1 => Fate::Drop,
                    2 | 3 => Fate::Wait,
                    _ => Fate::Forget,
                };
                let due = step + self.rng.below(6) as usize;
                let plain = matches!(fate, Fate::Forget)
                    || self.w.small_budget[h.index].is_some()
                    || self.rng.chance(1, 2);
                let mut kept = if plain {
                    let (op, what) = self.maker().plain_op(h.p());
                    Kept {
                        item: KeptItem::Op(op, h.index),
                        what: format!("{what} on P{}", h.index),
                        due,
                        fate,
                    }
                } else {
                    // On `h`: a kept job may hold a credit for as long as
                    // it is kept (a receive or `recv_multi` with no data),
                    // and on a small budget this thread's next job (a
                    // chain of the whole budget) would wait for it for
                    // ever (seed 0x5d6d0c998faa5c14: the test's own
                    // deadlock).
                    let mut maker = self.maker();
                    let job = maker.job(&h);
                    self.file_jobs = maker.file_jobs;
                    Kept {
                        item: KeptItem::Fut(job.fut),
                        what: job.what,
                        due,
                        fate: if matches!(fate, Fate::Forget) {
                            Fate::Drop
                        } else {
                            fate
                        },
                    }
                };
                self.w.note(
                    tid,
                    format!(
                        "step {step}: polled once, kept ({:?} at {due}): {}",
                        kept.fate, kept.what
                    ),
                );
                let mut cx = Context::from_waker(Waker::noop());
                let done = match &mut kept.item {
                    KeptItem::Fut(f) => f.as_mut().poll(&mut cx).is_ready(),
                    KeptItem::Op(op, index) => match Pin::new(op).poll(&mut cx) {
                        Poll::Ready(res) => {
                            check(&self.w, *index, &kept.what, &res);
                            true
                        }
                        Poll::Pending => false,
                    },
                };
                if done {
                    return;
                }
                // (An op kept waiting for credit, unpolled, may take the
                // wake-up of the next credit: the fallback thread passes it
                // on, see `a_kept_op_waiting_for_credit_...` below.)
                self.kept.push(kept);
            }
            15 => {
                // A task dropped before its first poll.
                let n = 1 + self.rng.below(3) as usize;
                let (futs, what, _) = self.jobs(n, false);
                self.w
                    .note(tid, format!("step {step}: dropped unpolled: {what}"));
                drop(futs);
            }
            16 => {
                // Started, then dropped at once (in the queue, or in flight).
                let h = self.handle().clone_handle();
                let n = 1 + self.rng.below(8);
                self.w.note(
                    tid,
                    format!("step {step}: {n} NOPs started and dropped on P{}", h.index),
                );
                let ops: Vec<_> = (0..n).map(|_| h.p().nop().start()).collect();
                if self.rng.chance(1, 2) {
                    thread::yield_now();
                }
                drop(ops);
            }
            17 => {
                // Drops this thread's handle of the second Proactor.
                if self.handles.len() > 1 && self.handles[1].is_some() && self.rng.chance(1, 3) {
                    self.w
                        .note(tid, format!("step {step}: drops its handle of P1"));
                    drop(self.handles[1].take());
                } else {
                    self.w.note(tid, format!("step {step}: a drive"));
                    let h = self.handle().clone_handle();
                    h.p().drive();
                }
            }
            18 => {
                // A park with a small timeout, nothing of its own in flight.
                let h = self.handle().clone_handle();
                let t = Duration::from_micros(self.rng.below(1000));
                self.w
                    .note(tid, format!("step {step}: park({t:?}) on P{}", h.index));
                h.p().park(Some(t));
            }
            _ => {
                // Many NOPs started at once, then waited on in turn.
                let h = self.handle().clone_handle();
                let n = 1 + self.rng.below(40);
                self.w.note(
                    tid,
                    format!("step {step}: {n} NOPs started then waited on P{}", h.index),
                );
                let ops: Vec<_> = (0..n).map(|_| h.p().nop().start()).collect();
                for op in ops {
                    check(&self.w, h.index, "a started NOP", &op.wait());
                }
            }
        }
    }

    fn fate(&mut self, kept: Kept) {
        match (kept.fate, kept.item) {
            (Fate::Drop, item) => drop(item),
            (Fate::Wait, KeptItem::Fut(f)) => {
                let h = self.handle().clone_handle();
                run_task(&self.w, Mode::BlockOn, &h, f, None);
            }
            (Fate::Wait, KeptItem::Op(op, index)) => {
                let res = op.wait();
                check(&self.w, index, &kept.what, &res);
            }
            (Fate::Forget, KeptItem::Op(op, index)) => {
                self.w.forgot[index].store(true, Ordering::SeqCst);
                std::mem::forget(op);
            }
            (Fate::Forget, item) => drop(item),
        }
    }
}

// ---------------------------------------------------------------------------
// A run.

/// What a run is made of (from its seed, overridable to minimize).
#[derive(Debug, Clone)]
struct Shape {
    threads: usize,
    steps: usize,
    proactors: usize,
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// What this process's open fds are, for a failure's message.
fn open_fds() -> String {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return "(unknown)".into();
    };
    dir.flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!("{} {}", e.file_name().to_string_lossy(), target.display())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The soft limit on this process's open fds, raised to the hard one.
fn fd_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill in, then to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                ..lim
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// One run at a time: fd counts must not see another's.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    lock(&LOCK)
}

/// Silences the panics the test makes on purpose (the others print).
fn quiet_intended_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() == Some(&INTENDED) {
                return;
            }
            default(info);
        }));
    });
}

fn temp_file(seed: u64) -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "ring-chaos-{}-{seed:x}-{:?}",
        std::process::id(),
        thread::current().id()
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("a temp file");
    std::fs::remove_file(&path).expect("unlink the temp file");
    f
}

/// Runs seed `seed`; panics with the seed and what each thread did if an
/// invariant breaks.
fn run(seed: u64) {
    quiet_intended_panics();
    let _serial = serial();
    let mut rng = Rng(seed);
    let shape = Shape {
        threads: env_usize("CHAOS_THREADS").unwrap_or(2 + rng.below(3) as usize),
        steps: env_usize("CHAOS_STEPS").unwrap_or(20 + rng.below(30) as usize),
        proactors: 1 + rng.below(2) as usize,
    };
    let before = fds();
    let mut proactors = Vec::new();
    let mut small_budget = Vec::new();
    let mut configs = Vec::new();
    for _ in 0..shape.proactors {
        let entries = [4, 8, 32][rng.below(3) as usize];
        let mut config = ProactorConfig::new(entries);
        let mut desc = format!("entries {entries}");
        if rng.chance(1, 3) {
            let budget = 2 + rng.below(8) as u32;
            config = config.max_in_flight(budget);
            small_budget.push(Some(budget));
            let _ = write!(desc, ", max_in_flight {budget}");
        } else {
            small_budget.push(None);
        }
        if rng.chance(1, 4) {
            let batch = 1 + rng.below(4) as u32;
            config = config.batch(batch);
            let _ = write!(desc, ", batch {batch}");
        }
        if rng.chance(1, 6) {
            let delay = Duration::from_micros(rng.below(200));
            config = config.submit_delay(delay);
            let _ = write!(desc, ", submit_delay {delay:?}");
        }
        if rng.chance(1, 8) {
            config = config.spin(Duration::from_micros(50));
            desc.push_str(", spin 50us");
        }
        proactors.push(Proactor::new(config).expect("a Proactor"));
        configs.push(desc);
    }
    let live: Vec<_> = (0..shape.proactors)
        .map(|_| Arc::new(AtomicUsize::new(0)))
        .collect();
    let mut tokio_builder = tokio::runtime::Builder::new_multi_thread();
    tokio_builder.worker_threads(2);
    // With the `tokio` feature, a third of the seeds drive one Proactor
    // from a tokio drive task (chosen from the seed, not its stream of
    // choices, which stays the same with and without the feature): the
    // fallback thread then stays out, and block_ons, waits and the drive
    // task take the ring from each other.
    #[cfg(feature = "tokio")]
    let driven = (seed % 3 == 1).then(|| (seed / 3) as usize % shape.proactors);
    #[cfg(feature = "tokio")]
    tokio_builder.enable_io();
    let tokio_rt = tokio_builder.build().expect("a tokio runtime");
    #[cfg(feature = "tokio")]
    let drive_task = driven.map(|i| {
        configs[i].push_str(", a tokio drive task");
        let _enter = tokio_rt.enter();
        ring_io_proactor::tokio::spawn_driver(&proactors[i]).expect("a drive task")
    });
    let world = Arc::new(World {
        seed,
        status: (0..shape.threads).map(|_| Mutex::new(Vec::new())).collect(),
        live: live.clone(),
        small_budget,
        forgot: (0..shape.proactors)
            .map(|_| AtomicBool::new(false))
            .collect(),
        failures: Mutex::new(Vec::new()),
        file: Arc::new(temp_file(seed)),
        tokio: tokio_rt.handle().clone(),
        checked: AtomicU64::new(0),
        multi_ended_early: AtomicU64::new(0),
    });
    let handle = |index: usize, p: &Proactor| {
        live[index].fetch_add(1, Ordering::SeqCst);
        Handle {
            p: Some(p.clone()),
            index,
            live: live[index].clone(),
        }
    };
    // The test keeps the first Proactor (it never shuts down during the
    // run); the second lives as long as the threads' handles of it.
    let main = handle(0, &proactors[0]);
    let barrier = Arc::new(Barrier::new(shape.threads));
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for tid in 0..shape.threads {
        let handles: Vec<_> = proactors
            .iter()
            .enumerate()
            .map(|(i, p)| Some(handle(i, p)))
            .collect();
        let mut worker = Worker {
            w: world.clone(),
            tid,
            rng: rng.fork(),
            handles,
            kept: Vec::new(),
            file_jobs: 0,
        };
        let (steps, barrier, done) = (shape.steps, barrier.clone(), done_tx.clone());
        threads.push(
            thread::Builder::new()
                .name(format!("chaos-{tid}"))
                .spawn(move || {
                    let out = catch_unwind(AssertUnwindSafe(|| {
                        for step in 0..steps {
                            worker.step(step);
                        }
                        for kept in std::mem::take(&mut worker.kept) {
                            worker
                                .w
                                .note(tid, format!("end: {:?} of kept {}", kept.fate, kept.what));
                            worker.fate(kept);
                        }
                        worker.w.note(tid, "end: dropping its handles".into());
                        drop(std::mem::take(&mut worker.handles));
                        worker.w.note(tid, "end: at the barrier".into());
                    }));
                    let failed = out.is_err();
                    if !failed {
                        // No thread that drove exits while the others run
                        // (the kernel would cancel what it submitted).
                        barrier.wait();
                    }
                    let _ = done.send((tid, out.err()));
                })
                .expect("a thread"),
        );
    }
    drop(done_tx);
    drop(proactors);
    let context = |w: &World| {
        format!(
            "seed {seed:#x} ({shape:?}, {}): reproduce with CHAOS_SEED={seed:#x}\n{}",
            configs.join("; "),
            w.report()
        )
    };
    let deadline = Instant::now() + WATCHDOG;
    for _ in 0..shape.threads {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok((_, None)) => {}
            Ok((tid, Some(payload))) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                // The barrier would hold the others: leave them.
                panic!(
                    "chaos: thread {tid} panicked: {msg}\n{}\nstats P0: {:?}",
                    context(&world),
                    main.p().stats()
                );
            }
            Err(_) => panic!(
                "chaos: a thread is stuck after {WATCHDOG:?}\n{}\nstats P0: {:?}",
                context(&world),
                main.p().stats()
            ),
        }
    }
    for t in threads {
        t.join().expect("joined");
    }
    let failures = std::mem::take(&mut *lock(&world.failures));
    assert!(
        failures.is_empty(),
        "chaos: {failures:?}\n{}",
        context(&world)
    );
    // The first Proactor still works, and lost nothing.
    let stats = sound_after(&world, &main, &context(&world));
    assert_eq!(stats.unexpected_cqes, 0, "{}: {stats:?}", context(&world));
    assert_eq!(stats.cq_overflow, 0, "{}: {stats:?}", context(&world));
    let leaked: usize = world
        .forgot
        .iter()
        .filter(|f| f.load(Ordering::SeqCst))
        .count();
    let checked = world.checked.load(Ordering::Relaxed);
    assert!(checked > 0, "{}: nothing was checked", context(&world));
    let what = context(&world);
    // (Its handle holds the runtime's I/O driver, and with it fds.)
    #[cfg(feature = "tokio")]
    drop(drive_task);
    tokio_rt.shutdown_timeout(Duration::from_secs(5));
    // Every waker the run made (they hold the world) is gone, once the
    // drivers have run or dropped those a turn collected.
    let start = Instant::now();
    while Arc::strong_count(&world) > 1 && start.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(5));
    }
    let refs = Arc::strong_count(&world);
    let world = Arc::into_inner(world).unwrap_or_else(|| {
        panic!("chaos: wakers (or tasks) of the run leaked ({refs} references)\n{what}")
    });
    drop(world);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        drop(main);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("chaos: dropping the Proactor hangs\n{what}"));
    // Each Proactor whose op was forgotten keeps its shared state, with
    // two fds (its ring's duplicate and its eventfd).
    let expected = before + 2 * leaked;
    let start = Instant::now();
    while fds() != expected && start.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(5));
    }
    let after = fds();
    assert_eq!(
        after,
        expected,
        "chaos: fds leaked: {before} before, {after} after ({leaked} Proactors with forgotten ops): {}\n{what}",
        open_fds()
    );
}

/// The Proactor is sound after the run: a wait, an op only polled (the
/// fallback thread drives it), a `drive` once the token is free, and its
/// whole budget in flight at once (no credit lost). Returns its stats.
fn sound_after(w: &World, h: &Handle, context: &str) -> ProactorStats {
    let p = h.p().clone();
    let budget = w.small_budget[0].unwrap_or(64);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        p.nop().wait().expect("a NOP after the run");
        // Only polled: the fallback thread drives it.
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut op = p.nop();
        while Pin::new(&mut op)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
        {
            thread::park_timeout(Duration::from_millis(10));
        }
        let start = Instant::now();
        while !p.drive() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the token never came free"
            );
            thread::sleep(Duration::from_millis(1));
        }
        let ops: Vec<_> = (0..budget).map(|_| p.nop().start()).collect();
        for op in ops {
            op.wait().expect("a NOP of the full budget");
        }
        let _ = tx.send(p.stats());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("chaos: the Proactor is stuck after the run\n{context}"))
}

fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    thread_local! {
        static N: RefCell<u64> = const { RefCell::new(0) };
    }
    let n = N.with(|n| {
        *n.borrow_mut() += 1;
        *n.borrow()
    });
    Rng(t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32) ^ n).next()
}

fn parse_seed(s: &str) -> u64 {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).expect("a hex seed"),
        None => s.parse().expect("a seed"),
    }
}

#[test]
fn chaos() {
    if let Ok(seed) = std::env::var("CHAOS_SEED") {
        run(parse_seed(&seed));
        return;
    }
    for seed in SEEDS {
        run(seed);
    }
    let secs = env_usize("CHAOS_SECS");
    let seeds = env_usize("CHAOS_SEEDS");
    if secs.is_none() && seeds.is_none() {
        return;
    }
    let start = Instant::now();
    let mut n = 0;
    let limit = fd_limit();
    loop {
        if secs.is_some_and(|s| start.elapsed() >= Duration::from_secs(s as u64))
            || seeds.is_some_and(|s| n >= s)
        {
            break;
        }
        // Each Proactor whose op a run forgot keeps two fds (checked at
        // each run's end): a long soak in one process reaches the fd
        // limit (about one seed in four forgets one; some 8,000 seeds
        // under a limit of 20,000).
        let open = fds();
        if open + 1000 > limit {
            eprintln!(
                "chaos: stopping after {n} random seeds: {open} fds open, most of them held \
                 by the Proactors whose ops the runs forgot (by design), near the limit of {limit}"
            );
            break;
        }
        let seed = random_seed();
        eprintln!("chaos: seed {seed:#x}");
        run(seed);
        n += 1;
    }
    eprintln!("chaos: {n} random seeds passed in {:?}", start.elapsed());
}

// ---------------------------------------------------------------------------
// Holes the chaos found, each as a small deterministic test. All four are
// fixed: their tests run, and the chaos no longer steps around them.

/// Whether the kernel has multishot receives (`recv_multi`, Linux 6.0).
fn multishot_recv() -> bool {
    ring_io_driver::kernel_version().is_some_and(|v| v.at_least(6, 0))
}

/// Runs `f` on a thread; its result, or `None` if it has not returned
/// within `limit` (the thread is left behind, stuck).
fn returns_within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// Fixed (the block_on token switch and kick, `drive.rs` and
/// `drive/hint.rs`). Found by seed 3. `block_on` notes the Proactor of the last op polled as
/// the one it drives (`drive/hint.rs`, `note_pending_with`), and tells
/// every op polled inside it that this thread drives (`will_drive`), so
/// the op's submission wakes nobody (`op.rs`, `kick`). With ops of two
/// Proactors in one future, the first Proactor's op is queued with
/// nobody woken (its fallback thread sleeps without a timeout: it had no
/// work), while `block_on` takes the second's token and waits in its
/// kernel for ever (it keeps the token it holds, `Blocking::held`, even
/// once the hint has moved to the first).
#[test]
fn block_on_of_ops_on_two_proactors_completes_both() {
    let _serial = serial();
    let p0 = Proactor::new(ProactorConfig::new(8)).unwrap();
    let p1 = Proactor::new(ProactorConfig::new(8)).unwrap();
    // Both fallback threads asleep, with no work.
    thread::sleep(Duration::from_millis(20));
    let (q0, q1) = (p0.clone(), p1.clone());
    let out = returns_within(Duration::from_secs(5), move || {
        let (a, b) = block_on(futures_util::future::join(q0.nop(), q1.nop()));
        a.and(b)
    });
    let out = out.unwrap_or_else(|| {
        panic!(
            "block_on of a NOP on each of two Proactors still waits after 5 s:\n\
             P0 {:?}\nP1 {:?}",
            p0.stats(),
            p1.stats()
        )
    });
    out.expect("the NOPs");
}

/// Fixed (the timer goes past the budget: `Stage::Unbudgeted`). Found by
/// seed 1 with a small budget. `Op::timeout` keeps its time with
/// a kernel timeout op (`cancel.rs`, `Deadline::poll`, `Timed::timer`),
/// which takes a credit of `max_in_flight` like any op: when the op it
/// times holds the last credit (or the budget is full of such ops), the
/// timer waits for credit that only the timed op's end gives back, and
/// the op is never cancelled: `recv(..).timeout(5 ms)` with nothing to
/// receive waits for ever.
#[test]
fn op_timeout_never_fires_when_its_op_holds_the_last_credit() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    let (a, _b) = pair();
    let q = p.clone();
    let out = returns_within(Duration::from_secs(5), move || {
        q.recv(&a, Vec::with_capacity(8), MsgFlags::empty())
            .timeout(Duration::from_millis(5))
            .wait()
            .is_err()
    });
    let elapsed = out.unwrap_or_else(|| {
        panic!(
            "a receive bounded by Op::timeout(5 ms) still waits after 5 s: {:?}",
            p.stats()
        )
    });
    assert!(elapsed, "nothing was sent, yet the receive completed");
}

/// Fixed (a grant of returned credit lapses after `CREDIT_LAPSE` and goes
/// on to the next waiter: `state/credit.rs`, and the fallback thread's
/// `watch_credit`). Found by the chaos's ops polled once and kept (with a
/// small budget), when returned credit only woke the first op waiting for
/// it, which took it when polled: if that first waiter is an op polled
/// once and kept unpolled (a `select!` branch that lost, a future stored
/// for later), its wake-up was lost for everyone: the next waiter, on an
/// executor that does not drive the Proactor, slept for ever with the
/// credit free. (A waiter in the crate's `block_on` is not hurt: it polls
/// again after each ring turn.) A grant that never lapses (the credit
/// reserved until its waiter is polled or dropped) would deadlock a
/// waker that waits on an op of the same Proactor while its own task
/// holds such a grant (chaos seed 1 hung that way); a lapsing one delays
/// that waker by `CREDIT_LAPSE` at most.
#[test]
fn a_kept_op_waiting_for_credit_leaves_others_waiting_with_credit_free() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    // Holds the only credit for 20 ms.
    let timer = p.timeout(Duration::from_millis(20)).start();
    // Polled once: waits for credit (first in the queue); then kept.
    let kept = kept_waiting_for_credit(&p);
    // Another thread waits for credit on an executor that does not drive.
    a_nop_behind_kept_ops_completes(&p, 1);
    // The kept op lost nothing: polled again, it takes its credit.
    assert!(
        format!("{kept:?}").contains("waiting for credit"),
        "{kept:?}"
    );
    kept.wait().expect("the kept NOP");
    drop(timer);
}

/// An op polled once (waiting for credit) and then kept.
fn kept_waiting_for_credit(p: &Proactor) -> Op<io::Result<()>> {
    let mut kept = p.nop();
    let polled = Pin::new(&mut kept).poll(&mut Context::from_waker(Waker::noop()));
    assert!(polled.is_pending());
    assert!(
        format!("{kept:?}").contains("waiting for credit"),
        "{kept:?}"
    );
    kept
}

/// A NOP on another thread's executor that does not drive, behind ops
/// kept waiting for credit: it completes in time, after `lapses` lapses.
fn a_nop_behind_kept_ops_completes(p: &Proactor, lapses: u64) {
    let q = p.clone();
    let out = returns_within(Duration::from_secs(5), move || {
        futures_executor::block_on(q.nop())
    });
    let stats = p.stats();
    out.unwrap_or_else(|| panic!("a NOP behind kept ops still waits after 5 s: {stats:?}"))
        .expect("the NOP");
    assert!(stats.credit_lapses >= lapses, "{stats:?}");
}

/// The lapse of a credit wake-up while the fallback thread drives, waiting
/// in the kernel for a request that never completes (an idle receive):
/// its wait is bounded by its next look at the credit waiters.
#[test]
fn a_lost_credit_wake_up_is_passed_on_while_the_fallback_waits_in_the_kernel() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(2)).unwrap();
    let (a, _b) = pair();
    let idle = p.recv(&a, Vec::with_capacity(8), MsgFlags::empty()).start();
    let timer = p.timeout(Duration::from_millis(20)).start();
    let kept = kept_waiting_for_credit(&p);
    a_nop_behind_kept_ops_completes(&p, 1);
    drop((kept, timer, idle));
}

/// The same while a `block_on` on another thread holds the driver token,
/// waiting in the kernel: its ops (a timer and a receive) hold the whole
/// budget, queued with no wake-up of the fallback thread (the holder
/// drives them). The first op to wait for credit wakes the fallback
/// thread, which looks at the credit waiters from then on and passes the
/// wake-up on that the timer's credit brought.
#[test]
fn a_lost_credit_wake_up_is_passed_on_while_a_block_on_holds_the_ring() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(2)).unwrap();
    let (a, b) = pair();
    let q = p.clone();
    let holder = thread::spawn(move || {
        block_on(async {
            let timer = q.timeout(Duration::from_millis(50));
            let recv = q.recv(&a, Vec::with_capacity(8), MsgFlags::empty());
            futures_util::future::join(timer, recv).await
        })
    });
    // Both in the kernel (beside the wake-up read): no credit left.
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().max_in_ring < 3 {
        assert!(Instant::now() < deadline, "the holder's ops never went in");
        thread::sleep(Duration::from_millis(1));
    }
    let kept = kept_waiting_for_credit(&p);
    a_nop_behind_kept_ops_completes(&p, 1);
    (&*b).write_all(b"done").unwrap();
    let (timer, (res, buf)) = holder.join().unwrap();
    timer.expect("the timer");
    assert_eq!(res.unwrap(), 4);
    assert_eq!(buf, b"done");
    drop(kept);
}

/// Two kept ops in a row: each lapse passes the wake-up one further.
#[test]
fn lost_credit_wake_ups_are_passed_on_past_several_kept_ops() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    let timer = p.timeout(Duration::from_millis(20)).start();
    let first = kept_waiting_for_credit(&p);
    let second = kept_waiting_for_credit(&p);
    a_nop_behind_kept_ops_completes(&p, 2);
    drop((first, second, timer));
}

/// A waker that starts an op of its Proactor whenever it is woken (an
/// executor that wakes its reactor through the ring, say) does not starve
/// its own op of credit. Woken because credit came back, it would take
/// that credit itself, before its task polls, for ever: the credit woken
/// waiters are given is theirs until they poll (or it lapses).
#[test]
fn a_waker_that_starts_an_op_when_woken_does_not_take_its_own_ops_credit() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    struct Starts {
        p: Proactor,
        started: Mutex<Vec<Op<io::Result<()>>>>,
        wakes: AtomicU64,
        thread: thread::Thread,
    }
    impl Wake for Starts {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            // Kept, not dropped: it holds the credit it took until its
            // time has passed.
            let op = self.p.timeout(Duration::from_millis(50)).start();
            self.started.lock().unwrap().push(op);
            self.wakes.fetch_add(1, Ordering::Relaxed);
            self.thread.unpark();
        }
    }
    let starts = Arc::new(Starts {
        p: p.clone(),
        started: Mutex::new(Vec::new()),
        wakes: AtomicU64::new(0),
        thread: thread::current(),
    });
    let waker = Waker::from(starts.clone());
    // The budget's one credit is held for 20 ms.
    let timer = p.timeout(Duration::from_millis(20)).start();
    let mut op = p.nop();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Poll::Ready(res) = Pin::new(&mut op).poll(&mut Context::from_waker(&waker)) {
            res.expect("the NOP");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the NOP still waits for credit after 2 s: its waker was woken {} times \
             and took the credit each time ({:?})",
            starts.wakes.load(Ordering::Relaxed),
            p.stats()
        );
        thread::park_timeout(Duration::from_millis(5));
    }
    assert!(starts.wakes.load(Ordering::Relaxed) >= 1);
    timer.wait().expect("the timer");
    let started = std::mem::take(&mut *starts.started.lock().unwrap());
    drop(started);
}

/// A waker that waits on an op of its Proactor, run by the thread whose
/// turn granted its own task the credit that op needs: the task cannot
/// take its grant until the waker returns, and the waker waits for the
/// grant to go. It lapses after `CREDIT_LAPSE` (a grant that never lapsed
/// deadlocked here), and both complete. (If the fallback thread took the
/// ring over and reaped instead, the task takes its grant meanwhile and
/// nothing lapses: either way, nothing may hang.)
#[test]
fn a_waker_that_waits_on_an_op_needing_its_own_tasks_grant_is_delayed_not_deadlocked() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    struct Waits {
        p: Proactor,
        inner: Waker,
        waited: AtomicBool,
    }
    impl Wake for Waits {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            if !self.waited.swap(true, Ordering::Relaxed) {
                self.p.nop().wait().expect("the waker's NOP");
            }
            self.inner.wake_by_ref();
        }
    }
    let q = p.clone();
    let out = returns_within(Duration::from_secs(5), move || {
        block_on(async {
            // Holds the only credit for 20 ms, then its turn grants it to
            // the NOP below and runs the NOP's waker.
            let timer = q.timeout(Duration::from_millis(20));
            let mut op = q.nop();
            let mut hostile = None;
            let nop = std::future::poll_fn(|cx| {
                let w = hostile.get_or_insert_with(|| {
                    Waker::from(Arc::new(Waits {
                        p: q.clone(),
                        inner: cx.waker().clone(),
                        waited: AtomicBool::new(false),
                    }))
                });
                Pin::new(&mut op).poll(&mut Context::from_waker(w))
            });
            futures_util::future::join(timer, nop).await
        })
    });
    let (timer, nop) = out.expect("deadlocked: still waiting after 5 s");
    timer.expect("the timer");
    nop.expect("the NOP");
}

/// Fixed (`recv_multi` re-arms after a last CQE that carries data: Multi's
/// `restart_from`). Found by seed 2 (entries 4: a CQ of 8). When the kernel cannot post a
/// multishot receive's CQE (the CQ is full), it ends the request with a
/// last CQE that carries the data but not `IORING_CQE_F_MORE`.
/// `accept_multi` re-arms after such an end (`restart_after_success`),
/// `recv_multi` does not (`ops/net.rs`: only `restart_on = ENOBUFS`), so
/// `Multi::poll_next` delivers that chunk and then returns `None`, as at
/// the end of the stream, while the peer is still connected and sending.
/// (A fix must not re-arm after a last CQE of 0 bytes: that is the end of
/// the stream.)
#[test]
fn recv_multi_ends_early_when_the_cq_overflows() {
    let _serial = serial();
    if !multishot_recv() {
        eprintln!(
            "ring-skip: recv_multi_ends_early_when_the_cq_overflows: no multishot recv (6.0)"
        );
        return;
    }
    const WORDS: u32 = 2000;
    let p = Proactor::new(ProactorConfig::new(4)).unwrap();
    let (a, b) = pair();
    // Another thread fills the CQ over and over (32 NOPs at once).
    let stop = Arc::new(AtomicBool::new(false));
    let (q, flooding) = (p.clone(), stop.clone());
    let flood = thread::spawn(move || {
        while !flooding.load(Ordering::Relaxed) {
            let ops: Vec<_> = (0..32).map(|_| q.nop().start()).collect();
            for op in ops {
                op.wait().expect("a NOP");
            }
        }
    });
    let writer = thread::spawn(move || {
        for i in 0..WORDS {
            if (&*b).write_all(&i.to_le_bytes()).is_err() {
                return;
            }
            if i % 16 == 0 {
                thread::sleep(Duration::from_micros(50));
            }
        }
    });
    let mut multi = p.recv_multi(&a, 8, 64);
    let q = p.clone();
    let got = returns_within(Duration::from_secs(20), move || {
        let mut got = 0;
        let end = loop {
            if got == WORDS as usize * 4 {
                break None;
            }
            match multi.wait_next() {
                Some(Ok(chunk)) => got += chunk.len(),
                other => break Some(format!("{other:?}")),
            }
        };
        (got, end, q.stats())
    });
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let (got, end, stats) = got.expect("the stream neither ended nor delivered everything");
    drop(a);
    writer.join().unwrap();
    assert!(
        end.is_none(),
        "the stream ended with {end:?} after {got} of {} bytes, the peer still sending: {stats:?}",
        WORDS * 4
    );
}
