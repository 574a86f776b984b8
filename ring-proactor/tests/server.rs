//! The Proactor as servers and executors use it: thousands of idle
//! connections beside new ones, a million ops through a tiny CQ driven by
//! the waiting caller, the same work on any executor (futures, pollster,
//! the crate's `block_on`, plain `wait()`, tokio's multi-thread runtime),
//! and who drives the ring (the caller that waits, or the fallback thread
//! when nobody does).

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, BufRead as _, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::pipe;
use ring_io_proactor::{
    CURRENT_POSITION, IoBuf, MsgFlags, Proactor, ProactorConfig, Unparker, block_on,
};

/// The name of the Proactor's fallback thread.
const FALLBACK: &str = "ring-proactor";

/// Polls `op` once with the calling task's context: `Pending` once it is
/// submitted and not complete.
fn poll_once<F: Future + Unpin>(op: &mut F) -> impl Future<Output = Poll<F::Output>> + '_ {
    std::future::poll_fn(move |cx| Poll::Ready(Pin::new(&mut *op).poll(cx)))
}

/// The name of the calling thread (the test harness names each test's).
fn me() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

// ---------------------------------------------------------------------
// 1. Ten thousand idle connections
// ---------------------------------------------------------------------

/// Raises the soft `RLIMIT_NOFILE` to at least `need` (up to the hard
/// limit; an unprivileged process cannot raise that). `Err` says why it
/// could not.
fn raise_nofile(need: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!("getrlimit: {}", io::Error::last_os_error()));
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    let hard = lim.rlim_max;
    // Past the hard limit only with CAP_SYS_RESOURCE (root: the VMs of
    // the kernel matrix), up to fs.nr_open.
    let new = libc::rlimit {
        rlim_cur: need,
        rlim_max: hard.max(need),
    };
    // SAFETY: `new` is a valid rlimit; setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        return Err(format!(
            "RLIMIT_NOFILE: {need} fds needed, the hard limit is {hard} (setrlimit: {})",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Makes `close` of `s` reset the connection (`SO_LINGER` 0): no socket is
/// left in `TIME_WAIT`, so running the test again and again does not run
/// out of ports.
fn reset_on_close(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// A one-thread executor that parks on the Proactor
/// ([`Proactor::park`], woken by an [`Unparker`]): while all its tasks
/// wait for ops, its thread drives the ring.
struct ParkExecutor {
    proactor: Arc<Proactor>,
    tasks: Vec<Option<(Task, Waker)>>,
    free: Vec<usize>,
    ready: Arc<Mutex<Vec<usize>>>,
    spawned: Rc<RefCell<Vec<Task>>>,
    unparker: Unparker,
    /// Wake-ups that ran on another thread than this one.
    foreign: Arc<AtomicU64>,
}

/// A task's waker: queues the task and unparks the executor.
struct TaskWaker {
    index: usize,
    ready: Arc<Mutex<Vec<usize>>>,
    unparker: Unparker,
    /// Wake-ups on another thread than the executor's (the fallback
    /// thread drove).
    foreign: Arc<AtomicU64>,
    home: thread::ThreadId,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if thread::current().id() != self.home {
            self.foreign.fetch_add(1, Ordering::Relaxed);
        }
        self.ready.lock().unwrap().push(self.index);
        self.unparker.unpark();
    }
}

/// Spawns tasks on the [`ParkExecutor`] of this thread (from its tasks).
#[derive(Clone)]
struct Spawner(Rc<RefCell<Vec<Task>>>);

impl Spawner {
    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.0.borrow_mut().push(Box::pin(task));
    }
}

impl ParkExecutor {
    fn new(proactor: Arc<Proactor>) -> Self {
        let unparker = proactor.unparker();
        ParkExecutor {
            proactor,
            tasks: Vec::new(),
            free: Vec::new(),
            ready: Arc::default(),
            spawned: Rc::default(),
            unparker,
            foreign: Arc::default(),
        }
    }

    fn spawner(&self) -> Spawner {
        Spawner(self.spawned.clone())
    }

    /// Runs the tasks until `stop` is set (and the executor unparked or
    /// its park timed out); the tasks left are dropped with it.
    fn run(&mut self, stop: &AtomicBool) {
        loop {
            let new = std::mem::take(&mut *self.spawned.borrow_mut());
            for task in new {
                let index = self.free.pop().unwrap_or_else(|| {
                    self.tasks.push(None);
                    self.tasks.len() - 1
                });
                let waker = Waker::from(Arc::new(TaskWaker {
                    index,
                    ready: self.ready.clone(),
                    unparker: self.unparker.clone(),
                    foreign: self.foreign.clone(),
                    home: thread::current().id(),
                }));
                self.tasks[index] = Some((task, waker));
                self.ready.lock().unwrap().push(index);
            }
            let batch = std::mem::take(&mut *self.ready.lock().unwrap());
            if batch.is_empty() {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                self.proactor.park(Some(Duration::from_millis(100)));
                continue;
            }
            for index in batch {
                let Some((task, waker)) = self.tasks[index].as_mut() else {
                    continue;
                };
                if task
                    .as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_ready()
                {
                    self.tasks[index] = None;
                    self.free.push(index);
                }
            }
        }
    }
}

/// Echoes what arrives on `fd` until the peer closes (or resets) it.
async fn echo(p: Arc<Proactor>, fd: OwnedFd) {
    let fd = Arc::new(fd);
    let mut buf = vec![0u8; 64];
    loop {
        let (n, back) = p.recv(&fd, buf, MsgFlags::empty()).await;
        buf = back;
        let n = match n {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut sent = 0;
        while sent < n {
            let (k, back) = p.send(&fd, buf.slice(sent..n), MsgFlags::empty()).await;
            buf = back.into_inner();
            let Ok(k) = k else { return };
            sent += k;
        }
    }
}

/// Accepts connections forever, each served by an [`echo`] task.
async fn accept_loop(
    p: Arc<Proactor>,
    listener: Arc<TcpListener>,
    spawner: Spawner,
    accepted: Arc<AtomicUsize>,
) {
    loop {
        let fd = p.accept(&listener).await.expect("accept");
        spawner.spawn(echo(p.clone(), fd));
        accepted.fetch_add(1, Ordering::Release);
    }
}

/// Sends a message on `s` and reads the echo back.
fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back)
        .expect("the echo, before the read timeout");
    assert_eq!(back, msg);
}

/// The idle connections of [`ten_thousand_idle_connections_leave_room_for_new_clients`].
const IDLE: usize = 10_000;
/// The client process connects this many at a time, then waits for the
/// server to accept them: the accept queue (4096 at most) never fills, so
/// no connection waits for a SYN retransmit (a second).
const CLIENT_BATCH: usize = 1_000;
/// The environment variable that makes [`client_process`] the client.
const CLIENT_ENV: &str = "RING_PROACTOR_TEST_IDLE_CLIENTS_OF";
/// What starts each line the client process says.
const CLIENT_SAYS: &str = "idle-clients:";

/// The other end of the idle connections, in a process of its own (both
/// ends in one process would need 20,000 fds, past common hard limits).
/// A no-op unless [`ten_thousand_idle_connections_leave_room_for_new_clients`]
/// runs it, with [`CLIENT_ENV`] naming the server's address: then it
/// connects [`IDLE`] clients in batches (saying `connected N` after each,
/// going on at `more`), echoes through a sample of them at `echo` (saying
/// `echoed`), and resets them all when its stdin closes.
#[test]
fn client_process() {
    let Ok(addr) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    raise_nofile((IDLE + 64) as u64).unwrap();
    let mut commands = io::stdin().lines();
    let mut idle = Vec::with_capacity(IDLE);
    while idle.len() < IDLE {
        for _ in 0..CLIENT_BATCH.min(IDLE - idle.len()) {
            let s = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {}: {e}", idle.len()));
            reset_on_close(&s);
            idle.push(s);
        }
        println!("{CLIENT_SAYS} connected {}", idle.len());
        if idle.len() < IDLE {
            let said = commands.next().expect("the server test went on").unwrap();
            assert_eq!(said, "more");
        }
    }
    let said = commands.next().expect("the server test went on").unwrap();
    assert_eq!(said, "echo");
    for (i, s) in idle.iter_mut().enumerate().step_by(IDLE / 10) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        echo_once(s, format!("idle client {i} wakes up").as_bytes());
    }
    println!("{CLIENT_SAYS} echoed");
    assert!(commands.next().is_none(), "stdin closes at the end");
}

/// A server of [`idle_connections_leave_room_for_new_clients`], on its own
/// thread: how many connections it accepted, its stats, and how to stop it
/// (it drops its tasks, cancelling their receives, and its Proactor).
struct IdleServer {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// `(max_in_ring, cq_overflow)` so far.
    stats: Box<dyn Fn() -> (u32, u32)>,
    stop: Box<dyn FnOnce() -> String>,
}

/// A listener with the longest backlog (std listens with 128).
fn idle_listener() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: a listening socket; listen(2) again sets its backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 4096) }, 0);
    listener
}

#[test]
fn ten_thousand_idle_connections_leave_room_for_new_clients() {
    idle_connections_leave_room_for_new_clients("Proactor", || {
        let p = Arc::new(Proactor::new(ProactorConfig::new(256)).unwrap());
        let listener = idle_listener();
        let addr = listener.local_addr().unwrap();
        let listener = Arc::new(listener);
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (unparker_tx, unparker_rx) = mpsc::channel();
        let server = {
            let (p, accepted, stop) = (p.clone(), accepted.clone(), stop.clone());
            thread::spawn(move || {
                let mut exec = ParkExecutor::new(p.clone());
                unparker_tx.send(p.unparker()).unwrap();
                let spawner = exec.spawner();
                // Two accepts pending at a time.
                for _ in 0..2 {
                    spawner.spawn(accept_loop(
                        p.clone(),
                        listener.clone(),
                        spawner.clone(),
                        accepted.clone(),
                    ));
                }
                exec.run(&stop);
                exec.foreign.load(Ordering::Relaxed)
            })
        };
        let server_unparker: Unparker = unparker_rx.recv().unwrap();
        let stats = {
            let p = p.clone();
            Box::new(move || {
                let s = p.stats();
                (s.max_in_ring, s.cq_overflow)
            })
        };
        IdleServer {
            addr,
            accepted,
            stats,
            stop: Box::new(move || {
                stop.store(true, Ordering::Release);
                server_unparker.unpark();
                let foreign = server.join().unwrap();
                let p = Arc::into_inner(p).expect("the server thread let its Proactor go");
                let stats = format!("{:?}", p.stats());
                drop(p);
                format!("{foreign} wake-ups on another thread than the executor's; {stats}")
            }),
        }
    });
}

/// The same on a LocalProactor: a task per connection
/// (`LocalProactor::spawn`, as the echo_local example), two accept loops,
/// all in its `block_on`, which polls a task only when one of its ops
/// completes.
#[test]
fn ten_thousand_idle_connections_on_a_local_proactor_leave_room_for_new_clients() {
    idle_connections_leave_room_for_new_clients("LocalProactor", || {
        let listener = idle_listener();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
        let (unparker_tx, unparker_rx) = mpsc::channel();
        let server = {
            let (accepted, stats) = (accepted.clone(), stats.clone());
            thread::spawn(move || {
                let p = ring_io_proactor::LocalProactor::new(ProactorConfig::new(256)).unwrap();
                let stop = Arc::new(AtomicBool::new(false));
                unparker_tx.send((p.unparker(), stop.clone())).unwrap();
                let listener = Arc::new(listener);
                p.block_on(async {
                    for _ in 0..2 {
                        let (p2, listener, accepted) =
                            (p.clone(), listener.clone(), accepted.clone());
                        drop(p.spawn(async move {
                            loop {
                                let fd = Arc::new(p2.accept(&listener).await.expect("accept"));
                                drop(p2.spawn(local_echo(p2.clone(), fd)));
                                accepted.fetch_add(1, Ordering::Release);
                            }
                        }));
                    }
                    // Until stopped (the unparker wakes this future), the
                    // stats at each poll and at least every 100 ms.
                    let mut tick = p.timeout(Duration::from_millis(100));
                    std::future::poll_fn(|cx| {
                        let s = p.stats();
                        stats.0.store(s.max_in_ring, Ordering::Relaxed);
                        stats.1.store(s.cq_overflow, Ordering::Relaxed);
                        if stop.load(Ordering::Acquire) {
                            return Poll::Ready(());
                        }
                        while Pin::new(&mut tick).poll(cx).is_ready() {
                            tick = p.timeout(Duration::from_millis(100));
                        }
                        Poll::Pending
                    })
                    .await;
                    // Returning drops the tasks: 10,000 receives and the
                    // accepts are cancelled.
                });
                format!("{:?}", p.stats())
            })
        };
        let (unparker, stop) = unparker_rx.recv().unwrap();
        IdleServer {
            addr,
            accepted,
            stats: Box::new(move || {
                (
                    stats.0.load(Ordering::Relaxed),
                    stats.1.load(Ordering::Relaxed),
                )
            }),
            stop: Box::new(move || {
                stop.store(true, Ordering::Release);
                unparker.unpark();
                server.join().unwrap()
            }),
        }
    });
}

/// [`echo`] on a LocalProactor.
async fn local_echo(p: ring_io_proactor::LocalProactor, fd: Arc<OwnedFd>) {
    let mut buf = vec![0u8; 64];
    loop {
        let (n, back) = p.recv(&fd, buf, MsgFlags::empty()).await;
        buf = back;
        let Ok(n @ 1..) = n else { return };
        let (k, back) = p.send(&fd, buf.slice(..n), MsgFlags::empty()).await;
        buf = back.into_inner();
        if k.ok() != Some(n) {
            return;
        }
    }
}

/// Ten thousand idle connections (a client process holds their other
/// ends) on the server `start` makes, each with a receive in the kernel,
/// while new clients are accepted and echoed at once; then a sample of the
/// idle ones wakes up and is echoed too.
fn idle_connections_leave_room_for_new_clients(what: &str, start: impl FnOnce() -> IdleServer) {
    const NEW: usize = 10;
    // One server at a time: both would need twice the fds.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The server's end of every connection, plus some spare for the
    // listener, the rings and the tests running beside this one.
    if let Err(why) = raise_nofile((IDLE + NEW + 512) as u64) {
        skip!("ten_thousand_idle_connections", "{why}");
    }
    let server = start();
    let (addr, accepted) = (server.addr, server.accepted.clone());
    let start = Instant::now();
    let mut client = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "client_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CLIENT_ENV, addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_client = client.stdin.take().unwrap();
    let mut from_client = io::BufReader::new(client.stdout.take().unwrap()).lines();
    // The next thing the client says (libtest's own lines skipped).
    let mut hear = || loop {
        let line = from_client
            .next()
            .expect("the client process is alive")
            .unwrap();
        if let Some(at) = line.find(CLIENT_SAYS) {
            break line[at + CLIENT_SAYS.len()..].trim().to_owned();
        }
    };
    loop {
        let said = hear();
        let n: usize = said
            .strip_prefix("connected ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the client said {said:?}"));
        assert!(
            common::wait_until(Duration::from_secs(20), || accepted.load(Ordering::Acquire)
                >= n),
            "{} of {n} connections accepted",
            accepted.load(Ordering::Acquire)
        );
        if n == IDLE {
            break;
        }
        writeln!(to_client, "more").unwrap();
    }
    // Every idle connection's receive is in the kernel (besides the
    // accepts and the wake-up read): far past what a CQ credit per request
    // allowed ((512 - 1) / 2 = 255 with this ring).
    assert!(
        common::wait_until(Duration::from_secs(20), || (server.stats)().0 as usize
            > IDLE),
        "{what}: the idle receives did not all reach the ring: {:?}",
        (server.stats)()
    );
    let connected = start.elapsed();

    // New clients are accepted and echoed at once.
    let mut slowest = Duration::ZERO;
    for c in 0..NEW {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        reset_on_close(&s);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let msg = format!("new client {c}: hello through {IDLE} idle connections");
        echo_once(&mut s, msg.as_bytes());
        let took = t.elapsed();
        slowest = slowest.max(took);
        assert!(took < Duration::from_secs(1), "client {c} took {took:?}");
    }
    // The idle connections' receives are live too (a sample of them).
    writeln!(to_client, "echo").unwrap();
    assert_eq!(hear(), "echoed");
    assert_eq!((server.stats)().1, 0, "{what}: CQEs dropped");

    // Shutdown: the executor drops its tasks (cancelling 10,000 receives
    // and the accepts), then the Proactor goes.
    let t = Instant::now();
    let IdleServer { stop, stats, .. } = server;
    // (The Proactor's stats hold a handle of it, which must go first.)
    drop(stats);
    let said = stop();
    let teardown = t.elapsed();
    drop(to_client);
    assert!(
        client.wait().unwrap().success(),
        "the client process failed"
    );
    eprintln!(
        "{what}: {IDLE} idle connections in {connected:?}; slowest new client {slowest:?}; \
         teardown {teardown:?}; {said}"
    );
}

/// Lets the fallback thread start and go idle. A fallback thread that
/// starts late may find a caller's first op queued before the caller took
/// the driver token, and drive it. Settled (after an op a caller drove and
/// a few 5 ms grace periods with no work) it sleeps until asked to drive,
/// which an op queued by a caller about to drive does not do.
fn settle(p: &Proactor) {
    p.nop().wait().unwrap();
    // In the kernel matrix's emulated (TCG) guests a new thread may first
    // run tens of milliseconds late.
    let vm = std::env::var_os("RING_XTASK_VM").is_some();
    thread::sleep(Duration::from_millis(if vm { 300 } else { 30 }));
}

// ---------------------------------------------------------------------
// 2. A million ops through a tiny CQ, the caller driving
// ---------------------------------------------------------------------

/// A future that runs `inner` with a waker that counts the wake-ups that
/// ran on another thread than `caller` (the completion was dispatched by
/// another driver).
struct CountForeignWakes<F> {
    inner: F,
    foreign: Arc<AtomicU64>,
    waker: Option<Waker>,
}

struct ForeignWaker {
    caller: thread::ThreadId,
    foreign: Arc<AtomicU64>,
    parent: Waker,
}

impl Wake for ForeignWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if thread::current().id() != self.caller {
            self.foreign.fetch_add(1, Ordering::Relaxed);
        }
        self.parent.wake_by_ref();
    }
}

impl<F: Future + Unpin> Future for CountForeignWakes<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        // The parent waker of `block_on`'s FuturesUnordered is the same on
        // every poll of a task: one waker per op is enough.
        let waker = this.waker.get_or_insert_with(|| {
            Waker::from(Arc::new(ForeignWaker {
                caller: thread::current().id(),
                foreign: this.foreign.clone(),
                parent: cx.waker().clone(),
            }))
        });
        Pin::new(&mut this.inner).poll(&mut Context::from_waker(waker))
    }
}

#[test]
fn a_million_nops_through_an_8_entry_cq_driven_by_the_caller_each_complete_once() {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let total: usize = std::env::var("RING_PROACTOR_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        // A million takes ~7 s unoptimized (and more beside other tests).
        .unwrap_or(if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        });
    // No new op after this long (an emulated kernel, as in the kernel
    // matrix's TCG guests, runs ~50 times slower): every op started still
    // completes exactly once.
    const TIME: Duration = Duration::from_secs(20);
    // 256 ops in flight at once through a CQ of 8.
    const LIVE: usize = 256;
    let p = Proactor::new(ProactorConfig::new(4)).unwrap();
    assert_eq!(p.stats().cq_entries, 8);
    settle(&p);
    let before = p.stats();
    let foreign = Arc::new(AtomicU64::new(0));
    let nop = |id: usize| {
        let op = CountForeignWakes {
            inner: p.nop(),
            foreign: foreign.clone(),
            waker: None,
        };
        async move {
            op.await.unwrap();
            id
        }
    };
    let mut seen = vec![0u8; total];
    let start = Instant::now();
    let started = block_on(async {
        let mut live = FuturesUnordered::new();
        let mut next = 0;
        while next < LIVE.min(total) {
            live.push(nop(next));
            next += 1;
        }
        while let Some(id) = live.next().await {
            seen[id] += 1;
            if next < total && start.elapsed() < TIME {
                live.push(nop(next));
                next += 1;
            }
        }
        next
    });
    let took = start.elapsed();
    let stats = p.stats();
    eprintln!("{started} of {total} NOPs, the caller driving, in {took:?}: {stats:?}");
    let wrong: Vec<_> = seen[..started]
        .iter()
        .enumerate()
        .filter(|(_, n)| **n != 1)
        .collect();
    assert!(wrong.is_empty(), "not completed exactly once: {wrong:?}");
    assert!(
        seen[started..].iter().all(|n| *n == 0),
        "only ops started complete"
    );
    assert_eq!(
        stats.completed,
        started as u64 + 1,
        "every completion delivered once (and the one of `settle`)"
    );
    assert_eq!(stats.cq_overflow, 0, "no CQE dropped: {stats:?}");
    assert!(
        stats.overflow_pauses > 0,
        "the CQ overflowed (the backlog held completions): {stats:?}"
    );
    assert!(
        stats.max_in_ring > 8,
        "more in flight than the CQ holds: {stats:?}"
    );
    // The caller drives: its turns dispatch every completion. The one
    // exception the design allows is a fallback thread that found work
    // queued and the ring free for its grace period (a caller descheduled
    // between its first poll and taking the token, seen in a TCG guest):
    // it then completes one window of ops, and the caller takes the ring
    // back at its next wait.
    let foreign = foreign.load(Ordering::Relaxed);
    let takeovers = stats.fallback_takeovers + stats.token_takeovers
        - before.fallback_takeovers
        - before.token_takeovers;
    if takeovers == 0 {
        assert_eq!(
            foreign, 0,
            "every completion was dispatched on the caller's thread"
        );
    } else {
        eprintln!(
            "ring-note: the fallback thread drove {takeovers} time(s): {foreign} foreign wake-ups"
        );
        assert!(
            takeovers <= 2 && foreign <= 2 * LIVE as u64,
            "the caller drove, but for a window of ops: {takeovers} takeovers, \
             {foreign} foreign wake-ups"
        );
    }
}

// ---------------------------------------------------------------------
// 3. Any executor
// ---------------------------------------------------------------------

/// A small workload: a read from a pipe after a write, a NOP, and a read
/// dropped while in flight (its file is released once the kernel is done
/// with it, and it swallowed none of the bytes written after).
async fn workload(p: &Proactor) {
    let (r, w) = pipe();
    let (r, w) = (Arc::new(r), Arc::new(w));
    let (n, _) = p.write(&w, b"ping".to_vec(), CURRENT_POSITION).await;
    assert_eq!(n.unwrap(), 4);
    let (n, buf) = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION).await;
    assert_eq!(n.unwrap(), 4);
    assert_eq!(buf, b"ping");
    p.nop().await.unwrap();

    let (r, w) = pipe();
    let (r, w) = (Arc::new(r), Arc::new(w));
    {
        let mut read = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION);
        assert!(
            poll_once(&mut read).await.is_pending(),
            "nothing to read yet"
        );
        // Dropped in flight: cancelled.
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&r) > 1 {
        assert!(
            Instant::now() < deadline,
            "the dropped read still holds its file"
        );
        p.timeout(Duration::from_millis(1)).await.unwrap();
    }
    let (n, _) = p.write(&w, b"after".to_vec(), CURRENT_POSITION).await;
    assert_eq!(n.unwrap(), 5);
    let (n, buf) = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION).await;
    assert_eq!(n.unwrap(), 5);
    assert_eq!(buf, b"after", "the dropped read took none of it");
}

/// [`workload`] with blocking `wait()`s (the dropped op is started, then
/// dropped).
fn workload_blocking(p: &Proactor) {
    let (r, w) = pipe();
    let (r, w) = (Arc::new(r), Arc::new(w));
    let (n, _) = p.write(&w, b"ping".to_vec(), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 4);
    let (n, buf) = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 4);
    assert_eq!(buf, b"ping");
    p.nop().wait().unwrap();

    let (r, w) = pipe();
    let (r, w) = (Arc::new(r), Arc::new(w));
    drop(p.read(&r, Vec::with_capacity(16), CURRENT_POSITION).start());
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            p.nop().wait().unwrap();
            Arc::strong_count(&r) == 1
        }),
        "the dropped read still holds its file"
    );
    let (n, _) = p.write(&w, b"after".to_vec(), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 5);
    let (n, buf) = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 5);
    assert_eq!(buf, b"after", "the dropped read took none of it");
}

/// Copies of the workload run at once on each executor.
const TASKS: usize = 8;

fn proactor() -> Arc<Proactor> {
    Arc::new(Proactor::new(ProactorConfig::new(16)).unwrap())
}

/// Checks, after the executor is done, that nothing was lost.
fn check_clean(p: Arc<Proactor>) {
    let stats = p.stats();
    assert_eq!(stats.cq_overflow, 0, "{stats:?}");
    assert!(stats.cancels >= 1, "the dropped reads were cancelled");
    assert!(
        stats.orphans_freed >= 1,
        "their files were released: {stats:?}"
    );
    let p = Arc::into_inner(p).expect("no task keeps the Proactor");
    drop(p);
}

#[test]
fn any_executor_futures_local_pool() {
    let p = proactor();
    let mut pool = futures_executor::LocalPool::new();
    let done = Rc::new(std::cell::Cell::new(0));
    for _ in 0..TASKS {
        let (p, done) = (p.clone(), done.clone());
        futures_util::task::LocalSpawnExt::spawn_local(&pool.spawner(), async move {
            workload(&p).await;
            done.set(done.get() + 1);
        })
        .unwrap();
    }
    pool.run();
    assert_eq!(done.get(), TASKS);
    futures_executor::block_on(workload(&p));
    check_clean(p);
}

#[test]
fn any_executor_pollster() {
    let p = proactor();
    pollster::block_on(async {
        let mut all: Vec<_> = (0..TASKS).map(|_| Box::pin(workload(&p))).collect();
        // A plain join: poll each until all are done.
        std::future::poll_fn(|cx| {
            all.retain_mut(|f| f.as_mut().poll(cx).is_pending());
            if all.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    });
    check_clean(p);
}

#[test]
fn any_executor_the_crates_block_on() {
    let p = proactor();
    block_on(async {
        let mut all: Vec<_> = (0..TASKS).map(|_| Box::pin(workload(&p))).collect();
        std::future::poll_fn(|cx| {
            all.retain_mut(|f| f.as_mut().poll(cx).is_pending());
            if all.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    });
    check_clean(p);
}

#[test]
fn any_executor_plain_wait() {
    let p = proactor();
    for _ in 0..TASKS {
        workload_blocking(&p);
    }
    check_clean(p);
}

#[test]
fn any_executor_plain_wait_from_several_threads() {
    let p = proactor();
    // No thread exits while another's ops are in flight: a request is the
    // kernel's task of the thread that submitted it, which may be any
    // thread that waits (see
    // `an_op_survives_the_exit_of_the_thread_that_submitted_it`).
    let done = Arc::new(std::sync::Barrier::new(TASKS));
    let threads: Vec<_> = (0..TASKS)
        .map(|_| {
            let (p, done) = (p.clone(), done.clone());
            thread::spawn(move || {
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    workload_blocking(&p)
                }));
                done.wait();
                if let Err(panic) = out {
                    std::panic::resume_unwind(panic);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    check_clean(p);
}

#[test]
fn any_executor_tokio_multi_thread() {
    let p = proactor();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let polled_on = Arc::new(Mutex::new(std::collections::HashSet::new()));
    rt.block_on(async {
        let tasks: Vec<_> = (0..4 * TASKS)
            .map(|_| {
                let (p, polled_on) = (p.clone(), polled_on.clone());
                tokio::spawn(async move {
                    workload(&p).await;
                    polled_on.lock().unwrap().insert(thread::current().id());
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(rt);
    eprintln!(
        "tokio: tasks finished on {} worker threads",
        polled_on.lock().unwrap().len()
    );
    check_clean(p);
}

// ---------------------------------------------------------------------
// 4. Who drives
// ---------------------------------------------------------------------

/// A future that runs `inner` with a waker that records the name of each
/// thread that woke it, then wakes the task.
struct RecordWakes<F> {
    inner: F,
    woken_on: Arc<Mutex<Vec<String>>>,
}

struct RecordingWaker {
    woken_on: Arc<Mutex<Vec<String>>>,
    parent: Waker,
}

impl Wake for RecordingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken_on.lock().unwrap().push(me());
        self.parent.wake_by_ref();
    }
}

impl<F: Future + Unpin> Future for RecordWakes<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(RecordingWaker {
            woken_on: self.woken_on.clone(),
            parent: cx.waker().clone(),
        }));
        Pin::new(&mut self.inner).poll(&mut Context::from_waker(&waker))
    }
}

#[test]
fn a_caller_blocking_on_its_op_completes_it_on_its_own_thread() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    settle(&p);
    let caller = me();
    let woken_on = Arc::new(Mutex::new(Vec::new()));
    for i in 0..100 {
        // An op that completes at once.
        let nop = RecordWakes {
            inner: p.nop(),
            woken_on: woken_on.clone(),
        };
        block_on(nop).unwrap();
        // And one that completes while the caller waits in the kernel:
        // another thread writes the bytes it reads.
        let (r, w) = pipe();
        let read = RecordWakes {
            inner: p.read(r, Vec::with_capacity(8), CURRENT_POSITION),
            woken_on: woken_on.clone(),
        };
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(if i % 10 == 0 { 5 } else { 0 }));
            std::fs::File::from(w).write_all(b"late").unwrap();
        });
        let (n, buf) = block_on(read);
        assert_eq!(n.unwrap(), 4);
        assert_eq!(buf, b"late");
        writer.join().unwrap();
    }
    // Op::wait is block_on: the same, without a recording waker.
    for _ in 0..100 {
        p.nop().wait().unwrap();
    }
    let woken_on = woken_on.lock().unwrap();
    assert!(
        woken_on.len() >= 200,
        "each op was woken: {}",
        woken_on.len()
    );
    let elsewhere: Vec<_> = woken_on.iter().filter(|t| **t != caller).collect();
    assert!(
        elsewhere.is_empty(),
        "completions dispatched on other threads than {caller:?}: {elsewhere:?}"
    );
    assert_eq!(p.stats().completed, 301);
}

/// A waker that sends the name of the thread that woke it.
struct SendWake(Mutex<mpsc::Sender<String>>);

impl Wake for SendWake {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(me());
    }
}

/// Polls `op` once with `waker`.
fn poll_with<F: Future + Unpin>(op: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(op).poll(&mut Context::from_waker(waker))
}

#[test]
fn ops_polled_by_a_thread_that_never_drives_complete_through_the_fallback() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    // A fresh waker and channel per phase: the driver may still be waking
    // the last phase's ops (wakes run after the completions are published,
    // so an op can be Ready before its wake is sent), and a late wake must
    // not be taken for this phase's.
    let fresh = || {
        let (tx, rx) = mpsc::channel();
        (Waker::from(Arc::new(SendWake(Mutex::new(tx)))), rx)
    };
    let limit = Duration::from_secs(10);
    for round in 0..2 {
        if round == 1 {
            // Now after a caller drove: the fallback waits out its grace
            // period, then drives what nobody else does.
            p.nop().wait().unwrap();
        }
        // A NOP: polled, then the thread waits on a channel only.
        let (waker, rx) = fresh();
        let mut nop = p.nop();
        assert!(poll_with(&mut nop, &waker).is_pending());
        let by = rx.recv_timeout(limit).expect("the NOP completes");
        assert_eq!(by, FALLBACK, "round {round}");
        assert!(matches!(poll_with(&mut nop, &waker), Poll::Ready(Ok(()))));

        // A read completed by a write that comes later.
        let (waker, rx) = fresh();
        let (r, w) = pipe();
        let mut read = p.read(r, Vec::with_capacity(8), CURRENT_POSITION);
        assert!(poll_with(&mut read, &waker).is_pending());
        thread::sleep(Duration::from_millis(10));
        assert!(rx.try_recv().is_err(), "nothing to read yet");
        std::fs::File::from(w).write_all(b"pong").unwrap();
        let by = rx.recv_timeout(limit).expect("the read completes");
        assert_eq!(by, FALLBACK, "round {round}");
        let Poll::Ready((n, buf)) = poll_with(&mut read, &waker) else {
            panic!("woken, so complete");
        };
        assert_eq!(n.unwrap(), 4);
        assert_eq!(buf, b"pong");

        // Many at once.
        let (waker, rx) = fresh();
        let mut nops: Vec<_> = (0..100).map(|_| p.nop()).collect();
        for op in &mut nops {
            assert!(poll_with(op, &waker).is_pending());
        }
        // (Wake-ups of one task in one batch of completions may come as
        // one: poll them all after each.)
        while !nops.is_empty() {
            assert_eq!(rx.recv_timeout(limit).unwrap(), FALLBACK);
            nops.retain_mut(|op| match poll_with(op, &waker) {
                Poll::Ready(res) => {
                    res.unwrap();
                    false
                }
                Poll::Pending => true,
            });
        }

        // With a no-op waker, polled again and again until done.
        let mut nop = p.nop();
        let start = Instant::now();
        loop {
            match poll_with(&mut nop, Waker::noop()) {
                Poll::Ready(res) => break res.unwrap(),
                Poll::Pending => {
                    assert!(start.elapsed() < limit, "a NOP nobody waits for is stuck");
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    assert_eq!(p.stats().completed, 2 * (1 + 1 + 100 + 1) + 1);
}

/// Waits for the fallback thread to take the ring for an op nobody drives
/// (after its grace period; longer on a loaded machine).
fn fallback_takes_over(p: &Proactor) {
    let start = Instant::now();
    while p.stats().fallback_takeovers == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the fallback never drove the idle read"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Completions the fallback thread may dispatch, beyond two per takeover,
/// because the caller was preempted at the wrong moment (1 in the turn it
/// is in when the caller first waits, the rest slack for a loaded
/// machine): a caller that never takes the ring back leaves it all 1000.
const PREEMPTED: u64 = 8;

/// An executor that parks on the Proactor drives it, even after the
/// fallback thread took the driver token (for an op nobody waited for):
/// its ops complete on its own thread, as `block_on`'s do.
#[test]
fn an_executor_parking_on_the_proactor_takes_over_from_the_fallback() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    // A long-lived op nobody drives: the fallback takes the token (and,
    // while the op is in flight, has work to drive).
    let (r, _w) = pipe();
    let mut idle = p.read(r, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_with(&mut idle, Waker::noop()).is_pending());
    fallback_takes_over(&p);
    // Now an executor that parks on the Proactor.
    let woken_on = Arc::new(Mutex::new(Vec::new()));
    /// Records the waking thread and unparks the executor.
    struct W(Unparker, Arc<Mutex<Vec<String>>>);
    impl Wake for W {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(me());
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(W(p.unparker(), woken_on.clone())));
    let takeovers_before = drives(&p);
    assert!(
        p.stats().fallback_takeovers >= 1,
        "the fallback never drove the idle read"
    );
    for _ in 0..1000 {
        let mut op = p.nop();
        loop {
            match poll_with(&mut op, &waker) {
                Poll::Ready(r) => break r.unwrap(),
                Poll::Pending => p.park(None),
            }
        }
    }
    let woken_on = woken_on.lock().unwrap();
    let by_fallback = woken_on.iter().filter(|t| *t == FALLBACK).count() as u64;
    // The fallback may finish the turn it is in when the executor parks.
    // It takes the ring again only when no caller drove for a grace period
    // (a slow or preempted machine, such as a TCG VM, sees a few), and each
    // such takeover ends at the executor's next park: at most the op in
    // flight and the one that parks are dispatched by it. A park that does
    // not take the ring back leaves every op to the fallback. (A few more
    // are allowed: a caller preempted between queuing an op and parking,
    // on a loaded machine, leaves that op to the fallback's turn in
    // progress; seen once in about 90 runs beside 3 CPU-bound processes.)
    let takeovers = drives(&p) - takeovers_before;
    assert!(
        by_fallback <= PREEMPTED + 2 * takeovers,
        "{by_fallback} of {} completions dispatched by the fallback thread, \
         which took the ring {takeovers} times",
        woken_on.len()
    );
}

/// `block_on` takes the ring back from the fallback thread as `park`
/// does, even when the fallback completes each op before `block_on` would
/// wait (its wake-up then comes first, and `block_on` polls again without
/// waiting).
#[test]
fn block_on_takes_over_from_the_fallback() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (r, _w) = pipe();
    let mut idle = p.read(r, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_with(&mut idle, Waker::noop()).is_pending());
    fallback_takes_over(&p);
    let takeovers_before = drives(&p);
    assert!(
        p.stats().fallback_takeovers >= 1,
        "the fallback never drove the idle read"
    );
    let woken_on = Arc::new(Mutex::new(Vec::new()));
    block_on(async {
        for _ in 0..1000 {
            let nop = RecordWakes {
                inner: p.nop(),
                woken_on: woken_on.clone(),
            };
            nop.await.unwrap();
        }
    });
    let woken_on = woken_on.lock().unwrap();
    let by_fallback = woken_on.iter().filter(|t| *t == FALLBACK).count() as u64;
    // As in the test above: at most two per time the fallback took the ring
    // (and a few for a preempted caller).
    let takeovers = drives(&p) - takeovers_before;
    assert!(
        by_fallback <= PREEMPTED + 2 * takeovers,
        "{by_fallback} of {} completions dispatched by the fallback thread, \
         which took the ring {takeovers} times",
        woken_on.len()
    );
}

/// Has thread B submit `op`, then exit: B drives (it waits in the kernel
/// for a read of its own), `op` is polled once (queued while B drives, so
/// B's turn submits it), then B's read completes and B returns and exits.
fn submitted_by_a_thread_that_exits<F: Future + Unpin>(p: &Arc<Proactor>, op: &mut F) {
    let (r2, w2) = pipe();
    let b = {
        let p = p.clone();
        thread::spawn(move || {
            let (n, _) = p.read(r2, Vec::with_capacity(8), CURRENT_POSITION).wait();
            n.unwrap();
        })
    };
    thread::sleep(Duration::from_millis(50));
    assert!(poll_with(op, Waker::noop()).is_pending());
    thread::sleep(Duration::from_millis(50));
    std::fs::File::from(w2).write_all(b"b").unwrap();
    b.join().unwrap();
}

/// An op keeps going when the thread that happened to submit it (a caller
/// that drove the ring while it waited) exits. The kernel ties a request
/// to the task that submitted it: when that task has exited, a request
/// armed for readiness is failed with `ECANCELED` once it is ready (and on
/// kernels that punt pipe reads to the submitter's io-wq, such as the
/// 5.10 series, queued work is cancelled when the submitter exits).
#[test]
fn an_op_survives_the_exit_of_the_thread_that_submitted_it() {
    let p = Arc::new(Proactor::new(ProactorConfig::new(8)).unwrap());
    settle(&p);
    let (r1, w1) = pipe();
    let mut a = p.read(r1, Vec::with_capacity(8), CURRENT_POSITION);
    submitted_by_a_thread_that_exits(&p, &mut a);
    // Then A's data arrives.
    std::fs::File::from(w1).write_all(b"for a").unwrap();
    let (n, buf) = a.wait();
    assert_eq!(n.expect("A's read, submitted by B, outlives B"), 5);
    assert_eq!(buf, b"for a");
    let stats = p.stats();
    assert_eq!(stats.cancels, 0, "the Proactor cancelled nothing");
    assert_eq!(stats.resubmitted, 1, "the kernel failed A's read once");
}

/// A linked chain keeps its promise when the thread that happened to
/// submit it exits: a read bounded by a linked timeout ends (with
/// `ECANCELED`) instead of waiting for ever. Once the submitter has
/// exited, the kernel no longer fires the linked timeout's cancellation
/// (the timeout ends with `ECANCELED` and leaves the read armed), nor runs
/// the rest of a chain; the exit cancels the chains it submitted, through
/// the Proactor.
#[test]
fn a_linked_timeout_still_ends_its_read_when_the_thread_that_submitted_it_exits() {
    let p = Arc::new(Proactor::new(ProactorConfig::new(8)).unwrap());
    settle(&p);
    let (r1, _w1) = pipe();
    // A read that nothing will feed, bounded by a linked timeout; B exits
    // before the timeout.
    let mut chain = p
        .read(r1, Vec::with_capacity(8), CURRENT_POSITION)
        .link(p.link_timeout(Duration::from_millis(200)));
    submitted_by_a_thread_that_exits(&p, &mut chain);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(chain.wait());
    });
    let ((read, _), timeout) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the read bounded by a linked timeout ended");
    assert_eq!(
        read.unwrap_err().raw_os_error(),
        Some(libc::ECANCELED),
        "the read, cancelled"
    );
    // The timeout fired (ETIME), or was ended with the chain (ECANCELED).
    let timeout = timeout.unwrap_err().raw_os_error();
    assert!(
        matches!(timeout, Some(libc::ETIME) | Some(libc::ECANCELED)),
        "{timeout:?}"
    );
}

/// A thread that drove the ring for a while (submitting a server's accepts
/// and receives queued meanwhile), then exited: the requests it submitted
/// are failed by the kernel as they become ready, and the Proactor submits
/// them again, so the server sees its connections and its bytes.
#[test]
fn a_servers_accepts_and_receives_survive_the_exit_of_the_thread_that_submitted_them() {
    let multishot = common::kernel().at_least(5, 19);
    let p = Arc::new(Proactor::new(ProactorConfig::new(8)).unwrap());
    settle(&p);
    let (rb, wb) = pipe();
    let b = {
        let p = p.clone();
        thread::spawn(move || {
            let (n, _) = p.read(rb, Vec::with_capacity(8), CURRENT_POSITION).wait();
            n.unwrap();
        })
    };
    thread::sleep(Duration::from_millis(50));
    // Queued while B drives: B's turns submit them.
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let stream_listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let stream_addr = stream_listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let server_side = Arc::new(listener.accept().unwrap().0);
    let mut accept = p.accept(&listener);
    let mut recv = p.recv(&server_side, Vec::with_capacity(16), MsgFlags::empty());
    // Multishot accept needs Linux 5.19: before, the single-shot requests
    // are the test.
    let mut accepts = multishot.then(|| p.accept_multi(&stream_listener));
    assert!(poll_with(&mut accept, Waker::noop()).is_pending());
    assert!(poll_with(&mut recv, Waker::noop()).is_pending());
    if let Some(accepts) = &mut accepts {
        let polled = accepts.poll_next(&mut Context::from_waker(Waker::noop()));
        assert!(polled.is_pending());
    }
    thread::sleep(Duration::from_millis(50));
    std::fs::File::from(wb).write_all(b"b").unwrap();
    b.join().unwrap();
    // Now the clients come and talk.
    let _second = TcpStream::connect(addr).unwrap();
    client.write_all(b"hello").unwrap();
    accept.wait().expect("the accept B submitted outlives B");
    let (n, buf) = recv.wait();
    assert_eq!(n.expect("the receive B submitted outlives B"), 5);
    assert_eq!(buf, b"hello");
    let mut resubmitted = 2;
    if let Some(accepts) = &mut accepts {
        let _third = TcpStream::connect(stream_addr).unwrap();
        accepts
            .wait_next()
            .expect("the stream goes on")
            .expect("the multishot accept B submitted outlives B");
        resubmitted += 1;
    }
    let stats = p.stats();
    assert_eq!(stats.cancels, 0, "the Proactor cancelled nothing");
    assert_eq!(stats.resubmitted, resubmitted, "{stats:?}");
}

/// `cancel_fd` still cancels a request whose submitter exited: its
/// `ECANCELED` may be the cancellation's, so it is not submitted again.
#[test]
fn cancel_fd_still_cancels_requests_whose_submitter_exited() {
    if !common::kernel().at_least(5, 19) {
        skip!(
            "cancel_fd_still_cancels_requests_whose_submitter_exited",
            "IORING_ASYNC_CANCEL_FD needs Linux 5.19"
        );
    }
    let p = Arc::new(Proactor::new(ProactorConfig::new(8)).unwrap());
    settle(&p);
    let (ra, _wa) = pipe();
    let (rb, wb) = pipe();
    let b = {
        let p = p.clone();
        thread::spawn(move || {
            let (n, _) = p.read(rb, Vec::with_capacity(8), CURRENT_POSITION).wait();
            n.unwrap();
        })
    };
    thread::sleep(Duration::from_millis(50));
    let ra = Arc::new(ra);
    let mut a = p.read(&ra, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_with(&mut a, Waker::noop()).is_pending());
    thread::sleep(Duration::from_millis(50));
    std::fs::File::from(wb).write_all(b"b").unwrap();
    b.join().unwrap();
    assert_eq!(p.cancel_fd(&ra).wait().unwrap(), 1);
    let (n, _) = a.wait();
    assert_eq!(
        n.expect_err("cancelled").raw_os_error(),
        Some(libc::ECANCELED)
    );
    assert_eq!(p.stats().resubmitted, 0);
}

/// A thread that asked for the driver token is woken when it is let go,
/// even if another thread that asked for it no longer needs it. Here Z,
/// then Y, wait for the token while X drives; Y's op completes first, so
/// when X lets the token go, the wake-up it hands to Y (the last to ask)
/// is lost, and Z sleeps with its op unreaped.
#[test]
fn a_thread_waiting_for_the_driver_token_is_not_forgotten() {
    let p = Arc::new(Proactor::new(ProactorConfig::new(8)).unwrap());
    settle(&p);
    let (rx, wx) = pipe();
    let (ry, wy) = pipe();
    let (rz, wz) = pipe();
    let (tx, done) = mpsc::channel();
    // The readers stay alive to the end: a thread that submitted others'
    // requests cancels them when it exits (see
    // `an_op_survives_the_exit_of_the_thread_that_submitted_it`).
    let end = Arc::new(std::sync::Barrier::new(4));
    let reader = |name: &'static str, r: OwnedFd| {
        let (p, tx, end) = (p.clone(), tx.clone(), end.clone());
        thread::spawn(move || {
            let (n, _) = p.read(r, Vec::with_capacity(8), CURRENT_POSITION).wait();
            tx.send((name, n.map_err(|e| e.to_string()))).unwrap();
            end.wait();
        })
    };
    let a_moment = || thread::sleep(Duration::from_millis(50));
    let limit = Duration::from_secs(5);
    // X drives, waiting in the kernel for its read.
    let x = reader("x", rx);
    a_moment();
    // Z, then Y, wait for the token (X's turns push their reads).
    let z = reader("z", rz);
    a_moment();
    let y = reader("y", ry);
    a_moment();
    // Y's read completes (X dispatches it): Y returns.
    std::fs::File::from(wy).write_all(b"y").unwrap();
    assert_eq!(done.recv_timeout(limit).unwrap(), ("y", Ok(1)));
    // X's read completes: X lets the token go.
    std::fs::File::from(wx).write_all(b"x").unwrap();
    assert_eq!(done.recv_timeout(limit).unwrap(), ("x", Ok(1)));
    a_moment();
    // Z's read completes in the kernel: someone must reap it.
    std::fs::File::from(wz).write_all(b"z").unwrap();
    let got = done.recv_timeout(limit);
    assert_eq!(
        got.map_err(|_| p.stats()),
        Ok(("z", Ok(1))),
        "Z's read was never reaped"
    );
    end.wait();
    for t in [x, y, z] {
        t.join().unwrap();
    }
}

/// The threads of this process named [`FALLBACK`] (Proactors' fallback
/// threads).
fn fallback_threads() -> Vec<u32> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| {
            let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            (comm.trim() == FALLBACK).then_some(tid)
        })
        .collect()
}

/// How many times thread `tid` of this process has gone to sleep.
fn sleeps(tid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

/// A server whose connections are idle (a caller blocks in the ring with
/// receives pending) lets the fallback thread sleep: it does not wake
/// every few milliseconds to look, as an idle server should cost nothing.
#[test]
fn an_idle_server_leaves_the_fallback_thread_asleep() {
    // This Proactor's fallback thread: the one that was not there before
    // (other tests make and drop Proactors at the same time: tried again
    // if two came at once, or if another came or went in the 50 ms after:
    // the first new one seen may be another test's, whose own names itself
    // first, and which may exit before this one looks at it).
    let (p, fallback) = (0..100)
        .find_map(|_| {
            let before = fallback_threads();
            let p = Proactor::new(ProactorConfig::new(8)).expect("proactor");
            let new = || -> Vec<u32> {
                fallback_threads()
                    .into_iter()
                    .filter(|t| !before.contains(t))
                    .collect()
            };
            // (The thread names itself once it runs.)
            let start = Instant::now();
            loop {
                let seen = new();
                if !seen.is_empty() || start.elapsed() > Duration::from_secs(1) {
                    if seen.len() != 1 {
                        return None;
                    }
                    thread::sleep(Duration::from_millis(50));
                    return (new() == seen).then(|| (p, seen[0]));
                }
                thread::sleep(Duration::from_millis(1));
            }
        })
        .expect("a Proactor's fallback thread");
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (_c, d) = std::os::unix::net::UnixStream::pair().unwrap();
    let (b, d) = (Arc::new(b), Arc::new(d));
    let (tid_tx, tid) = mpsc::channel();
    let server = {
        let (p, b, d) = (p.clone(), b.clone(), d.clone());
        thread::spawn(move || {
            // SAFETY: gettid takes nothing and cannot fail.
            tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
            // A receive only polled (a task of an executor that does not
            // drive), then a `wait` (set-up, say): the caller drives the
            // ring and lets it go with the receive still in flight.
            let mut polled = p.recv(&d, Vec::with_capacity(8), MsgFlags::empty());
            assert!(
                Pin::new(&mut polled)
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            );
            p.nop().wait().expect("a NOP");
            // An idle connection: a receive that waits until the test
            // writes, in `block_on`, which drives the ring meanwhile.
            let (n, _) = block_on(p.recv(&b, Vec::with_capacity(8), MsgFlags::empty()));
            drop(polled);
            n.expect("the receive")
        })
    };
    // The server waits in the kernel once its receive is in the ring
    // (beside the other one and the read of the eventfd that wakes a
    // driver).
    let start = Instant::now();
    while p.stats().max_in_ring < 3 {
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", p.stats());
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(50));
    let server_tid = tid.recv().unwrap();
    let (before, server_before) = (sleeps(fallback), sleeps(server_tid));
    thread::sleep(Duration::from_millis(500));
    let woke = sleeps(fallback) - before;
    let server_woke = sleeps(server_tid) - server_before;
    (&a).write_all(b"x").unwrap();
    assert_eq!(server.join().unwrap(), 1);
    // The holder sleeps in the kernel until its receive completes.
    assert!(
        server_woke <= 2,
        "the idle server's thread woke {server_woke} times in 500 ms"
    );
    // 500 ms with a 5 ms look-around is 100 wake-ups; a fallback that
    // only watches for a holder stuck in user code wakes a few times.
    assert!(
        woke <= 20,
        "the fallback thread woke {woke} times in 500 ms of an idle server"
    );
}

/// Times the fallback thread took the ring: free, or from a holder stuck
/// in user code (a caller preempted there, on a slow machine).
fn drives(p: &Proactor) -> u64 {
    let stats = p.stats();
    stats.fallback_takeovers + stats.token_takeovers
}
