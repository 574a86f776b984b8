//! Random mixes of LocalProactor work on one thread, as the chaos test
//! does for the Proactor: tasks (spawned and detached, or awaited), ops
//! polled once and kept (then dropped, awaited, cancelled or forgotten),
//! `block_on`s of jobs behind hostile wakers (that wake twice, panic, spawn
//! a task, or drop a handle of the LocalProactor), `drive`s and `park`s,
//! on rings of 4 to 16 entries with or without a small budget. Jobs: NOPs,
//! timers, socket and file round trips, linked chains, receives bounded by
//! a timeout, cancelled ops.
//!
//! Checked: every job's result (round trips return what was sent, a
//! cancelled op ends with its output or `ECANCELED`); the work ends (a
//! watchdog thread aborts the process, naming the seed, if a run hangs);
//! no panic comes out but the hostile wakers' own (caught where they run);
//! afterwards the LocalProactor still works, counted no unexpected CQE and
//! no overflow, and once dropped leaves no fd open but the two of each
//! forgotten op's (its slot keeps the op's file and the LocalProactor).
//!
//! The default run is a fixed set of seeds (about a second). Soak runs:
//! `LOCAL_CHAOS_SECS=N` runs random seeds for N seconds,
//! `LOCAL_CHAOS_SEED=S` one seed (to reproduce a failure, whose message
//! names it).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Write as _};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_proactor::{LocalOp, LocalProactor, LocalTask, MsgFlags, ProactorConfig};

/// The seeds of the default run.
const SEEDS: [u64; 6] = [1, 2, 3, 0x10CA1, 0xC4A05, 99];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, a: u64, b: u64) -> bool {
        self.below(b) < a
    }
}

/// The intended panic of a hostile waker (caught where the waker runs).
const INTENDED: &str = "local chaos: a waker that panics, on purpose";

thread_local! {
    /// The run's LocalProactor, for the hostile wakers (a waker is `Send`:
    /// it cannot hold one).
    static LP: RefCell<Option<Rc<LocalProactor>>> = const { RefCell::new(None) };
    /// What the run's checks found wrong.
    static FAILURES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Results checked.
    static CHECKED: Cell<u64> = const { Cell::new(0) };
}

fn fail(what: String) {
    FAILURES.with(|f| f.borrow_mut().push(what));
}

fn checked() {
    CHECKED.with(|c| c.set(c.get() + 1));
}

fn fd_names() -> String {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{}: {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[derive(Clone, Copy, Debug)]
enum WakerMode {
    Plain,
    Twice,
    PanicAfter,
    Spawns,
    DropsHandle,
}

struct Hostile {
    inner: Waker,
    mode: WakerMode,
}

impl Wake for Hostile {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        match self.mode {
            WakerMode::Plain => self.inner.wake_by_ref(),
            WakerMode::Twice => {
                self.inner.wake_by_ref();
                self.inner.wake_by_ref();
            }
            WakerMode::PanicAfter => {
                self.inner.wake_by_ref();
                std::panic::panic_any(INTENDED);
            }
            WakerMode::Spawns => {
                let p = LP.with(|lp| lp.borrow().clone());
                if let Some(p) = p {
                    let q = p.clone();
                    // (Outside a block_on, as a turn of `drive` or `park`
                    // may run it, spawning panics: caught here.)
                    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        p.spawn(async move {
                            let res = q.nop().await;
                            if let Err(e) = res {
                                fail(format!("a NOP a waker spawned: {e}"));
                            }
                        })
                    }));
                    drop(spawned);
                }
                self.inner.wake_by_ref();
            }
            WakerMode::DropsHandle => {
                // A clone of the handle, made and dropped here.
                let p = LP.with(|lp| lp.borrow().clone());
                drop(p);
                self.inner.wake_by_ref();
            }
        }
    }
}

/// A job's future behind a hostile waker (a new one each poll, or one
/// kept).
struct Behind {
    inner: Job,
    mode: WakerMode,
    waker: Option<Waker>,
    fresh: bool,
}

impl Future for Behind {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.fresh || this.waker.is_none() {
            this.waker = Some(Waker::from(Arc::new(Hostile {
                inner: cx.waker().clone(),
                mode: this.mode,
            })));
        }
        let waker = this.waker.clone().expect("made above");
        this.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

type Job = Pin<Box<dyn Future<Output = ()>>>;

/// A socket pair, taken by the job that uses it (`None` meanwhile).
type Pair = Rc<RefCell<Option<(Arc<UnixStream>, Arc<UnixStream>)>>>;

/// What a run works on.
struct World {
    p: Rc<LocalProactor>,
    /// Socket pairs: a receive on one end gets what a send on the other
    /// sent (one job at a time per pair: the pair is taken while in use).
    pairs: Vec<Pair>,
    file: Arc<std::fs::File>,
    /// The budget, if a small one.
    small: Option<u32>,
}

impl World {
    fn job(&self, rng: &mut Rng) -> (Job, String) {
        let p = self.p.clone();
        match rng.below(8) {
            0 => (
                Box::pin(async move {
                    match p.nop().await {
                        Ok(()) => checked(),
                        Err(e) => fail(format!("a NOP: {e}")),
                    }
                }),
                "nop".into(),
            ),
            1 => {
                let us = rng.below(3000);
                (
                    Box::pin(async move {
                        match p.timeout(Duration::from_micros(us)).await {
                            Ok(()) => checked(),
                            Err(e) => fail(format!("a timer: {e}")),
                        }
                    }),
                    format!("timer {us} us"),
                )
            }
            2 | 3 => {
                let pair = self.pairs[rng.below(self.pairs.len() as u64) as usize].clone();
                let n = 1 + rng.below(200) as usize;
                let data: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
                (
                    Box::pin(async move {
                        // The pair is this job's while it runs.
                        let Some((a, b)) = pair.borrow_mut().take() else {
                            checked();
                            return;
                        };
                        let (sent, _) = p.send(b.clone(), data.clone(), MsgFlags::NOSIGNAL).await;
                        let mut got = Vec::new();
                        if sent.as_ref().is_ok_and(|&s| s == data.len()) {
                            while got.len() < data.len() {
                                let (res, buf) = p
                                    .recv(
                                        a.clone(),
                                        Vec::with_capacity(data.len()),
                                        MsgFlags::empty(),
                                    )
                                    .await;
                                match res {
                                    Ok(0) | Err(_) => break,
                                    Ok(_) => got.extend_from_slice(&buf),
                                }
                            }
                        }
                        if got == data {
                            checked();
                        } else {
                            fail(format!(
                                "a socket round trip: sent {sent:?}, got {} of {} bytes",
                                got.len(),
                                data.len()
                            ));
                        }
                        *pair.borrow_mut() = Some((a, b));
                    }),
                    format!("socket round trip of {n} bytes"),
                )
            }
            4 => {
                let file = self.file.clone();
                let at = rng.below(64) * 512;
                let n = 1 + rng.below(512) as usize;
                let data: Vec<u8> = (0..n).map(|i| (i + at as usize) as u8).collect();
                (
                    Box::pin(async move {
                        let (w, _) = p.write(&file, data.clone(), at).await;
                        let (r, buf) = p.read(&file, Vec::with_capacity(n), at).await;
                        if w.as_ref().is_ok_and(|&w| w == n)
                            && r.as_ref().is_ok_and(|&r| r == n)
                            && buf == data
                        {
                            checked();
                        } else {
                            fail(format!("a file round trip at {at}: {w:?} {r:?}"));
                        }
                    }),
                    format!("file round trip of {n} bytes at {at}"),
                )
            }
            // (Two on a small budget: a chain longer than the budget fails.)
            5 if self.small.is_some() => (
                Box::pin(async move {
                    let (a, b) = p.nop().link(p.nop()).await;
                    if a.is_ok() && b.is_ok() {
                        checked();
                    } else {
                        fail(format!("a linked chain: {a:?} {b:?}"));
                    }
                }),
                "linked nop, nop".into(),
            ),
            5 => (
                Box::pin(async move {
                    let ((a, b), c) = p.nop().link(p.nop()).link(p.nop()).await;
                    if a.is_ok() && b.is_ok() && c.is_ok() {
                        checked();
                    } else {
                        fail(format!("a linked chain: {a:?} {b:?} {c:?}"));
                    }
                }),
                "linked nop, nop, nop".into(),
            ),
            6 => {
                let pair = self.pairs[rng.below(self.pairs.len() as u64) as usize].clone();
                let us = 100 + rng.below(2000);
                (
                    Box::pin(async move {
                        let Some((a, b)) = pair.borrow_mut().take() else {
                            checked();
                            return;
                        };
                        // Nothing is sent: the timeout ends it.
                        let res = p
                            .recv(a.clone(), Vec::with_capacity(8), MsgFlags::empty())
                            .timeout(Duration::from_micros(us))
                            .await;
                        match res {
                            // Elapsed: cancelled, the buffer back.
                            Err(elapsed) => {
                                let (res, buf) = elapsed.into_inner();
                                if res.is_err() && buf.is_empty() {
                                    checked();
                                } else {
                                    fail(format!(
                                        "a receive that timed out: {res:?}, {} bytes",
                                        buf.len()
                                    ));
                                }
                            }
                            Ok((res, _)) => fail(format!(
                                "a receive bounded by a timeout, nothing sent: {res:?}"
                            )),
                        }
                        *pair.borrow_mut() = Some((a, b));
                    }),
                    format!("recv with a timeout of {us} us"),
                )
            }
            _ => {
                let us = rng.below(2000);
                (
                    Box::pin(async move {
                        // Cancelled at once, then awaited: its output or
                        // ECANCELED.
                        let res = p.timeout(Duration::from_micros(us)).cancel().await;
                        match res {
                            Ok(()) => checked(),
                            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => checked(),
                            Err(e) => fail(format!("a cancelled timer: {e}")),
                        }
                    }),
                    format!("cancelled timer {us} us"),
                )
            }
        }
    }
}

#[derive(Debug)]
enum Fate {
    Drop,
    Wait,
    Cancel,
    Forget,
}

fn run(seed: u64) {
    let mut rng = Rng(seed | 1);
    let entries = [4, 8, 16][rng.below(3) as usize];
    let small = rng.chance(1, 2).then(|| 2 + rng.below(3) as u32);
    let mut config = ProactorConfig::new(entries);
    if let Some(budget) = small {
        config = config.max_in_flight(budget);
    }
    let before = fds();
    let p = Rc::new(LocalProactor::new(config).expect("a LocalProactor"));
    LP.with(|lp| *lp.borrow_mut() = Some(p.clone()));
    let file = tempfile();
    let world = World {
        p: p.clone(),
        pairs: (0..2)
            .map(|_| {
                let (a, b) = UnixStream::pair().expect("a socket pair");
                Rc::new(RefCell::new(Some((Arc::new(a), Arc::new(b)))))
            })
            .collect(),
        file: Arc::new(file),
        small,
    };
    // A watchdog: a run that hangs aborts the process, naming the seed.
    let done = Arc::new(AtomicBool::new(false));
    let step_now = Arc::new(Mutex::new(String::new()));
    let (d, s) = (done.clone(), step_now.clone());
    let dog = thread::spawn(move || {
        let start = Instant::now();
        while !d.load(Ordering::SeqCst) {
            if start.elapsed() > Duration::from_secs(20) {
                eprintln!(
                    "local chaos: seed {seed:#x} (entries {entries}, budget {small:?}) hangs at: {}\n\
                     reproduce with LOCAL_CHAOS_SEED={seed:#x}",
                    s.lock().unwrap()
                );
                std::process::abort();
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    let mut kept: Vec<(LocalOp<io::Result<()>>, Fate)> = Vec::new();
    let mut forgot = 0;
    // One to three `block_on`s (tasks belong to one: those not awaited by
    // its end are dropped with it, their ops cancelled), with `drive`s and
    // `park`s between them; kept ops live across.
    let epochs = 1 + rng.below(3);
    for epoch in 0..epochs {
        let steps = 10 + rng.below(30);
        let q = p.clone();
        let (r, world, kept, forgot, step_now) =
            (&mut rng, &world, &mut kept, &mut forgot, &step_now);
        p.block_on(async move {
            let rng = r;
            let mut tasks: Vec<(LocalTask<()>, String)> = Vec::new();
            for step in 0..steps {
                let choice = rng.below(10);
                *step_now.lock().unwrap() = format!("epoch {epoch}, step {step} (choice {choice})");
                match choice {
                    0..=2 => {
                        let (job, what) = world.job(rng);
                        let task = q.spawn(job);
                        if rng.chance(1, 3) {
                            // Detached: it runs on while this block_on does.
                            drop(task);
                        } else {
                            tasks.push((task, format!("{what} (spawned at step {step})")));
                        }
                    }
                    3 | 4 => {
                        let (job, what) = world.job(rng);
                        let mode = match rng.below(8) {
                            0 => WakerMode::Twice,
                            1 => WakerMode::PanicAfter,
                            2 => WakerMode::Spawns,
                            3 => WakerMode::DropsHandle,
                            _ => WakerMode::Plain,
                        };
                        *step_now.lock().unwrap() =
                            format!("epoch {epoch}, step {step}: {what} behind a {mode:?} waker");
                        Behind {
                            inner: job,
                            mode,
                            waker: None,
                            fresh: rng.chance(1, 3),
                        }
                        .await;
                    }
                    // A kept op holds its slot until it is resolved (its
                    // result taken), so on a small budget a few are kept
                    // at most: room for a chain is left to the others (or
                    // they would wait for ever: the test's own deadlock).
                    5 | 6 if world.small.is_none_or(|b| (kept.len() as u32) + 2 < b) => {
                        let mut op = if rng.chance(1, 2) {
                            q.nop()
                        } else {
                            q.timeout(Duration::from_micros(rng.below(3000)))
                        };
                        match Pin::new(&mut op).poll(&mut Context::from_waker(Waker::noop())) {
                            Poll::Ready(Ok(())) => checked(),
                            Poll::Ready(Err(e)) => {
                                fail(format!("a kept op, at its first poll: {e}"))
                            }
                            Poll::Pending => {
                                let fate = match rng.below(8) {
                                    0..=2 => Fate::Drop,
                                    3..=5 => Fate::Wait,
                                    6 => Fate::Cancel,
                                    _ => Fate::Forget,
                                };
                                kept.push((op, fate));
                            }
                        }
                    }
                    7 if !kept.is_empty() => {
                        let i = rng.below(kept.len() as u64) as usize;
                        let (op, fate) = kept.swap_remove(i);
                        match fate {
                            Fate::Wait => checked_op("a kept op, awaited", op.await),
                            Fate::Cancel => checked_op("a kept op, cancelled", op.cancel().await),
                            Fate::Drop => drop(op),
                            Fate::Forget => {
                                *forgot += 1;
                                std::mem::forget(op);
                            }
                        }
                    }
                    8 if !tasks.is_empty() => {
                        let i = rng.below(tasks.len() as u64) as usize;
                        let (task, what) = tasks.swap_remove(i);
                        *step_now.lock().unwrap() =
                            format!("epoch {epoch}, step {step}: awaiting the task of {what}");
                        task.await;
                    }
                    _ => {
                        // The tasks run a while.
                        let _ = q.timeout(Duration::from_micros(rng.below(300))).await;
                    }
                }
            }
            // Most tasks are awaited; the others go with this block_on.
            for (task, what) in tasks {
                if rng.chance(3, 4) {
                    *step_now.lock().unwrap() =
                        format!("epoch {epoch}, the end: awaiting the task of {what}");
                    task.await;
                }
            }
        });
        p.drive();
        p.park(Some(Duration::from_micros(rng.below(500))));
    }
    *step_now.lock().unwrap() = "the end: the kept ops".into();
    for (op, fate) in kept {
        match fate {
            Fate::Forget => {
                forgot += 1;
                std::mem::forget(op);
            }
            Fate::Drop => drop(op),
            Fate::Cancel => checked_op("a kept op, cancelled", p.block_on(op.cancel())),
            Fate::Wait => checked_op("a kept op, awaited", p.block_on(op)),
        }
    }
    // Still sound: an op waited on, and the whole budget (or 8) at once.
    p.nop().wait().expect("a NOP after the run");
    let n = world.small.unwrap_or(8);
    let ops: Vec<_> = (0..n).map(|_| p.nop()).collect();
    p.block_on(async move {
        for op in ops {
            op.await.expect("a NOP of the budget");
        }
    });
    let stats = p.stats();
    done.store(true, Ordering::SeqCst);
    dog.join().unwrap();
    LP.with(|lp| lp.borrow_mut().take());
    let failures = FAILURES.with(|f| std::mem::take(&mut *f.borrow_mut()));
    let checked = CHECKED.with(|c| c.replace(0));
    assert!(
        checked > 0,
        "local chaos: seed {seed:#x}: nothing was checked"
    );
    assert!(
        failures.is_empty(),
        "local chaos: seed {seed:#x}: {failures:#?}\nreproduce with LOCAL_CHAOS_SEED={seed:#x}"
    );
    assert_eq!(stats.unexpected_cqes, 0, "seed {seed:#x}: {stats:?}");
    assert_eq!(stats.cq_overflow, 0, "seed {seed:#x}: {stats:?}");
    drop(world);
    drop(p);
    // A forgotten op keeps its LocalProactor (ring and eventfd) and its
    // file: none were forgotten, or the count may only grow.
    let after = fds();
    if forgot == 0 {
        assert_eq!(after, before, "seed {seed:#x}: fds leaked: {}", fd_names());
    }
}

/// A kept op's result: its output, or `ECANCELED` if it was cancelled.
fn checked_op(what: &str, res: io::Result<()>) {
    match res {
        Ok(()) => checked(),
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => checked(),
        Err(e) => fail(format!("{what}: {e}")),
    }
}

fn tempfile() -> std::fs::File {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "ring-local-chaos-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("a temporary file");
    f.write_all(&[0u8; 64 * 512 + 512]).expect("its contents");
    std::fs::remove_file(&path).expect("unlinked");
    f
}

fn quiet_intended_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() == Some(&INTENDED) {
                return;
            }
            prev(info);
        }));
    });
}

fn parse_seed(s: &str) -> u64 {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .expect("a seed: decimal or 0x-hex")
}

#[test]
fn local_chaos() {
    quiet_intended_panics();
    if let Ok(seed) = std::env::var("LOCAL_CHAOS_SEED") {
        run(parse_seed(&seed));
        return;
    }
    for seed in SEEDS {
        run(seed);
    }
    let Some(secs) = std::env::var("LOCAL_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return;
    };
    let start = Instant::now();
    let mut n = 0u64;
    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1);
    while start.elapsed() < Duration::from_secs(secs) {
        // (The fds of forgotten ops add up: stop before the limit.)
        if fds() > 15_000 {
            eprintln!(
                "local chaos: stopping after {n} seeds: {} fds open (forgotten ops)",
                fds()
            );
            break;
        }
        let seed = rng.next();
        eprintln!("local chaos: seed {seed:#x}");
        run(seed);
        n += 1;
    }
    eprintln!(
        "local chaos: {n} random seeds passed in {:?}",
        start.elapsed()
    );
}
