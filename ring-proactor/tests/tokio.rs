//! The tokio drive task (`ring_io_proactor::tokio`): tasks on tokio's
//! runtimes served by it with the fallback thread out of the way, and by
//! the fallback thread again once it stops. Built with `--features tokio`.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

#[path = "../examples/echo_tokio.rs"]
mod echo_tokio;

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_proactor::tokio::spawn_driver;
use ring_io_proactor::{CURRENT_POSITION, Proactor, ProactorConfig};

/// The name of the Proactor's fallback thread.
const FALLBACK: &str = "ring-proactor";

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .build()
        .unwrap()
}

/// Polls `op` once with the calling task's context.
fn poll_once<F: Future + Unpin>(op: &mut F) -> impl Future<Output = Poll<F::Output>> + '_ {
    std::future::poll_fn(move |cx| Poll::Ready(Pin::new(&mut *op).poll(cx)))
}

/// Runs `inner`, counting in `on_fallback` the wake-ups of its task that
/// came from the Proactor's fallback thread.
struct Watch<F> {
    inner: Pin<Box<F>>,
    on_fallback: Arc<AtomicU64>,
}

struct WatchWaker {
    on_fallback: Arc<AtomicU64>,
    parent: Waker,
}

impl Wake for WatchWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if thread::current().name() == Some(FALLBACK) {
            self.on_fallback.fetch_add(1, Ordering::Relaxed);
        }
        self.parent.wake_by_ref();
    }
}

impl<F: Future> Future for Watch<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(WatchWaker {
            on_fallback: self.on_fallback.clone(),
            parent: cx.waker().clone(),
        }));
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

fn watch<F: Future>(on_fallback: &Arc<AtomicU64>, inner: F) -> Watch<F> {
    Watch {
        inner: Box::pin(inner),
        on_fallback: on_fallback.clone(),
    }
}

/// Waits (a bounded time) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn echo_serves_eight_clients_through_the_drive_task() {
    const CLIENTS: usize = 8;
    const BYTES: usize = 256 * 1024;
    let rt = multi_thread(4);
    // A small ring: the clients' requests outnumber its SQ entries.
    let p = Arc::new(Proactor::new(ProactorConfig::new(8).cq_entries(32)).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let driver = {
        let _in = rt.enter();
        spawn_driver(&p).unwrap()
    };
    let listener = ring_io_proactor::net::TcpListener::from_std(&p, listener).unwrap();
    let server = rt.spawn(echo_tokio::serve(listener, Some(CLIENTS)));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let data: Vec<u8> = (0..BYTES).map(|i| (i * 31 + c * 7) as u8).collect();
                let mut s = TcpStream::connect(addr).unwrap();
                let mut r = s.try_clone().unwrap();
                let reader = thread::spawn(move || {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).unwrap();
                    got
                });
                // Odd-sized writes so reads and writes interleave.
                for chunk in data.chunks(7919) {
                    s.write_all(chunk).unwrap();
                }
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let got = reader.join().unwrap();
                assert_eq!(got.len(), data.len(), "client {c}");
                assert!(got == data, "client {c}: the bytes differ");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    rt.block_on(server).unwrap().unwrap();
    let stats = p.stats();
    // Every accept, recv and send was submitted and completed by the drive
    // task: the fallback thread never took the ring.
    assert_eq!(stats.fallback_takeovers, 0, "{stats:?}");
    assert_eq!(stats.cq_overflow, 0, "{stats:?}");
    assert!(!driver.is_finished());
    eprintln!(
        "ring-note: tokio echo: {} completions in {} enters, {} overflow pauses",
        stats.completed, stats.enters, stats.overflow_pauses
    );
}

#[test]
fn nops_from_many_tasks_complete_once_each_through_the_drive_task() {
    const TASKS: u64 = 64;
    const ROUNDS: u64 = 100;
    // Each round: one NOP awaited alone, then 8 started together.
    const PER_TASK: u64 = ROUNDS * 9;
    let rt = multi_thread(4);
    let p = Arc::new(Proactor::new(ProactorConfig::new(32)).unwrap());
    let driver = {
        let _in = rt.enter();
        spawn_driver(&p).unwrap()
    };
    let before = p.stats();
    let on_fallback = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (p, done) = (p.clone(), done.clone());
                tokio::spawn(watch(&on_fallback, async move {
                    for _ in 0..ROUNDS {
                        p.nop().await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                        let batch: Vec<_> = (0..8).map(|_| p.nop().start()).collect();
                        for op in batch {
                            op.await.unwrap();
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }))
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let stats = p.stats();
    assert_eq!(done.load(Ordering::Relaxed), TASKS * PER_TASK);
    // One completion dispatched per NOP: none lost, none twice.
    assert_eq!(
        stats.completed - before.completed,
        TASKS * PER_TASK,
        "{stats:?}"
    );
    assert_eq!(stats.fallback_takeovers, 0, "{stats:?}");
    // Tasks are woken by the fallback thread only in a turn it took over
    // from a drive task stuck 50 ms in user code (preempted there: seen
    // under TCG).
    if stats.token_takeovers == 0 {
        assert_eq!(
            on_fallback.load(Ordering::Relaxed),
            0,
            "tasks woken by the fallback thread"
        );
    }
    assert!(!driver.is_finished());
    eprintln!(
        "ring-note: tokio: {} NOPs from {TASKS} tasks on 4 workers in {} enters",
        TASKS * PER_TASK,
        stats.enters - before.enters
    );
}

#[test]
fn ops_in_flight_complete_through_the_fallback_once_the_drive_task_stops() {
    let rt = multi_thread(2);
    let p = Arc::new(Proactor::new(ProactorConfig::new(16)).unwrap());
    let driver = {
        let _in = rt.enter();
        spawn_driver(&p).unwrap()
    };
    let (r, w) = common::pipe();
    let r = Arc::new(r);
    let (submitted, is_submitted) = mpsc::channel();
    let read = {
        let p = p.clone();
        rt.spawn(async move {
            let mut read = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
            assert!(poll_once(&mut read).await.is_pending());
            // Queued after the read: once it completes, the read is in
            // the kernel.
            p.nop().await.unwrap();
            submitted.send(()).unwrap();
            read.await
        })
    };
    is_submitted.recv().unwrap();
    assert_eq!(p.stats().fallback_takeovers, 0);
    rt.block_on(driver.stop());
    // Nothing drives the ring but the fallback thread now (tokio's
    // block_on does not): the read completes through it.
    std::fs::File::from(w).write_all(b"late").unwrap();
    let (n, buf) = rt.block_on(read).unwrap();
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"late"[..]));
    assert!(p.stats().fallback_takeovers >= 1, "{:?}", p.stats());
    // New ops of tasks too.
    let nop = {
        let p = p.clone();
        rt.spawn(async move { p.nop().await })
    };
    rt.block_on(nop).unwrap().unwrap();
    // A new drive task takes the ring back.
    let takeovers = p.stats().fallback_takeovers;
    let _driver = {
        let _in = rt.enter();
        spawn_driver(&p).unwrap()
    };
    let nops = {
        let p = p.clone();
        rt.spawn(async move {
            for _ in 0..100 {
                p.nop().await.unwrap();
            }
        })
    };
    rt.block_on(nops).unwrap();
    assert_eq!(p.stats().fallback_takeovers, takeovers, "{:?}", p.stats());
}

#[test]
fn the_fallback_thread_takes_over_when_the_runtime_shuts_down() {
    let rt = multi_thread(2);
    let p = Arc::new(Proactor::new(ProactorConfig::new(16)).unwrap());
    let (r, w) = common::pipe();
    let r = Arc::new(r);
    // A read in flight from before the drive task: the fallback thread
    // submitted it, and hands the ring over when the task is spawned.
    let mut read = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION).start();
    wait_until("the read is in the kernel", || p.stats().max_in_ring >= 2);
    let taken = p.stats().fallback_takeovers;
    let _driver = {
        let _in = rt.enter();
        spawn_driver(&p).unwrap()
    };
    let nops = {
        let p = p.clone();
        rt.spawn(async move {
            for _ in 0..100 {
                p.nop().await.unwrap();
            }
        })
    };
    rt.block_on(nops).unwrap();
    assert_eq!(p.stats().fallback_takeovers, taken, "{:?}", p.stats());
    // The runtime goes, with the drive task: the fallback thread drives
    // the read (pollster parks the thread, it never drives).
    drop(rt);
    std::fs::File::from(w).write_all(b"after").unwrap();
    let (n, buf) = pollster::block_on(&mut read);
    assert_eq!((n.unwrap(), &buf[..]), (5, &b"after"[..]));
    assert!(p.stats().fallback_takeovers > taken, "{:?}", p.stats());
    pollster::block_on(p.nop()).unwrap();
}

#[test]
fn a_current_thread_runtime_drives_its_tasks_ops() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let p = Arc::new(Proactor::new(ProactorConfig::new(16)).unwrap());
    let on_fallback = Arc::new(AtomicU64::new(0));
    let (r, w) = common::pipe();
    let r = Arc::new(r);
    let (submitted, is_submitted) = mpsc::channel::<()>();
    // Writes once the read is in the kernel: a completion the kernel posts
    // while the runtime's only thread waits in epoll.
    let writer = thread::spawn(move || {
        is_submitted.recv().unwrap();
        thread::sleep(Duration::from_millis(5));
        std::fs::File::from(w).write_all(b"ping").unwrap();
    });
    rt.block_on(watch(&on_fallback, async {
        let driver = spawn_driver(&p).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(watch(&on_fallback, async move {
                    for _ in 0..100 {
                        p.nop().await.unwrap();
                    }
                }))
            })
            .collect();
        let mut read = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
        assert!(poll_once(&mut read).await.is_pending());
        p.nop().await.unwrap();
        submitted.send(()).unwrap();
        let (n, buf) = read.await;
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"ping"[..]));
        for t in tasks {
            t.await.unwrap();
        }
        driver.stop().await;
    }));
    writer.join().unwrap();
    let stats = p.stats();
    assert_eq!(stats.fallback_takeovers, 0, "{stats:?}");
    if stats.token_takeovers == 0 {
        assert_eq!(on_fallback.load(Ordering::Relaxed), 0);
    }
    drop(rt);
    // Without a drive task the fallback thread drives again.
    pollster::block_on(p.nop()).unwrap();
    assert_eq!(p.stats().fallback_takeovers, 1, "{:?}", p.stats());
}

#[test]
fn one_drive_task_at_a_time_and_it_ends_with_the_proactor() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let err = spawn_driver(&p).unwrap_err();
    assert!(err.to_string().contains("runtime"), "{err}");
    let rt = multi_thread(1);
    let _in = rt.enter();
    let driver = spawn_driver(&p).unwrap();
    let err = spawn_driver(&p).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    rt.block_on(driver.stop());
    let driver = spawn_driver(&p).unwrap();
    // In flight when the Proactor is dropped: cancelled, and the drive
    // task ends.
    let (r, _w) = common::pipe();
    let read = rt.spawn(p.read(r, Vec::with_capacity(8), CURRENT_POSITION));
    wait_until("the read is in the kernel", || p.stats().max_in_ring >= 2);
    drop(p);
    wait_until("the drive task ended", || driver.is_finished());
    let (n, _) = rt.block_on(read).unwrap();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn an_op_a_worker_submitted_completes_after_the_runtime_is_gone() {
    let rt = multi_thread(2);
    let p = Arc::new(Proactor::new(ProactorConfig::new(16)).unwrap());
    let (r, w) = common::pipe();
    let r = Arc::new(r);
    let _driver = {
        let _in = rt.enter();
        spawn_driver(&p).unwrap()
    };
    // Submitted by the drive task, on a worker thread: when the worker
    // exits, the kernel fails it with ECANCELED, and the Proactor submits
    // it again.
    let mut read = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION).start();
    let nop = {
        let p = p.clone();
        rt.spawn(async move { p.nop().await })
    };
    rt.block_on(nop).unwrap().unwrap();
    // The worker threads exit with the runtime.
    drop(rt);
    std::fs::File::from(w).write_all(b"after").unwrap();
    let (n, buf) = pollster::block_on(&mut read);
    assert_eq!((n.unwrap(), &buf[..]), (5, &b"after"[..]));
    assert_eq!(p.stats().resubmitted, 1, "{:?}", p.stats());
}

/// A credit wake-up that went to an op polled once and kept (never polled
/// again) is passed on while the drive task is attached: the fallback
/// thread, which drives nothing then, still looks at the credit waiters,
/// and a task waiting for credit behind the kept op gets it.
#[test]
fn a_lost_credit_wake_up_is_passed_on_while_the_drive_task_is_attached() {
    let rt = multi_thread(2);
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    let driver = {
        let _in = rt.enter();
        spawn_driver(&p).unwrap()
    };
    // Holds the only credit for 20 ms.
    let timer = p.timeout(Duration::from_millis(20)).start();
    let mut kept = p.nop();
    let polled = Pin::new(&mut kept).poll(&mut Context::from_waker(Waker::noop()));
    assert!(polled.is_pending());
    let q = p.clone();
    let task = rt.spawn(async move { q.nop().await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !task.is_finished() {
        let stats = p.stats();
        assert!(
            Instant::now() < deadline,
            "a task behind a kept op still waits after 5 s: {stats:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
    rt.block_on(task).unwrap().expect("the NOP");
    let stats = p.stats();
    assert!(stats.credit_lapses >= 1, "{stats:?}");
    assert_eq!(
        stats.fallback_takeovers, 0,
        "the drive task drove: {stats:?}"
    );
    assert!(!driver.is_finished());
    drop((kept, timer));
}
