//! The LocalProactor on the running kernel: ops on one thread, driven by
//! `block_on`, `park` or `drive`; wake-ups from other threads; drops,
//! cancellation and the budget; shutdown with requests in the kernel.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_proactor::{CURRENT_POSITION, LocalProactor, MsgFlags, ProactorConfig};

fn local() -> LocalProactor {
    LocalProactor::new(ProactorConfig::new(16)).expect("a LocalProactor on this kernel")
}

#[test]
fn nops_complete_in_one_enter_per_batch() {
    let p = local();
    let n = p.block_on(async {
        let ops: Vec<_> = (0..64).map(|_| p.nop()).collect();
        let mut n = 0;
        for op in ops {
            op.await.unwrap();
            n += 1;
        }
        n
    });
    assert_eq!(n, 64);
    let stats = p.stats();
    assert_eq!(stats.completed, 64);
    assert!(stats.enters <= 4 * 64, "{stats:?}");
    // Polled one at a time, each op waits for one turn.
    for _ in 0..10 {
        p.nop().wait().unwrap();
    }
    assert_eq!(p.stats().completed, 74);
}

#[test]
fn a_timeout_takes_its_time_and_a_cancelled_one_ends_at_once() {
    let p = local();
    let start = Instant::now();
    p.timeout(Duration::from_millis(20)).wait().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(20));
    // Cancelled once submitted: ECANCELED, long before its time.
    let start = Instant::now();
    let res = p.block_on(async {
        let mut t = p.timeout(Duration::from_secs(60));
        // Submit it (one poll), then cancel it.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut t).poll(cx))).await;
        assert!(first.is_pending());
        t.cancel().await
    });
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert!(start.elapsed() < Duration::from_secs(10));
    // Never polled: not submitted at all.
    let before = p.stats();
    let res = p.timeout(Duration::from_secs(60)).cancel().wait();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(p.stats().completed, before.completed);
}

#[test]
fn a_dropped_op_is_cancelled_and_freed_after_its_cqe() {
    let p = local();
    let mut t = p.timeout(Duration::from_secs(60));
    assert!(
        Pin::new(&mut t)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    p.drive();
    drop(t);
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().orphans_freed == 0 {
        assert!(Instant::now() < deadline, "{:?}", p.stats());
        p.park(Some(Duration::from_millis(10)));
    }
    let stats = p.stats();
    assert_eq!((stats.cancels, stats.orphans_freed), (1, 1), "{stats:?}");
}

/// A one-shot channel whose sender wakes the receiving task from another
/// thread.
#[derive(Default)]
struct Slot {
    value: Option<u32>,
    waker: Option<Waker>,
}

#[test]
fn block_on_wakes_for_another_threads_wake_up() {
    let p = local();
    let slot = Arc::new(Mutex::new(Slot::default()));
    let sender = {
        let slot = slot.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            let mut s = slot.lock().unwrap();
            s.value = Some(7);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        })
    };
    let start = Instant::now();
    let got = p.block_on(poll_fn(|cx| {
        let mut s = slot.lock().unwrap();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }));
    assert_eq!(got, 7);
    assert!(start.elapsed() < Duration::from_secs(5));
    sender.join().unwrap();
}

/// Ping-pong between two threads and a `block_on` whose future acks each
/// value they send: every send must wake it (a lost wake-up hangs the
/// round), whether it is polling, between polls (the senders' wakes then
/// coalesce and skip the eventfd write) or asleep in the kernel with a NOP
/// in flight.
#[test]
fn wake_ups_from_other_threads_are_never_lost() {
    // Enough to catch a lost wake-up (one stalls the round trips at once)
    // and quick under an emulated VM, where a round trip takes milliseconds.
    const ROUNDS: u64 = 5_000;
    #[derive(Default)]
    struct Pong {
        sent: u64,
        acked: u64,
        waker: Option<Waker>,
    }
    let p = local();
    let pong = Arc::new((Mutex::new(Pong::default()), std::sync::Condvar::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A lost wake-up stalls the round trips for good: no progress for 20 s
    // fails the test (a slow machine only makes progress slower).
    let watchdog = {
        let (done, pong) = (done.clone(), pong.clone());
        thread::spawn(move || {
            let (mut last, mut since) = (u64::MAX, Instant::now());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let now = pong.0.lock().unwrap().acked;
                if now != last {
                    (last, since) = (now, Instant::now());
                } else if since.elapsed() > Duration::from_secs(20) {
                    eprintln!("a wake-up was lost: no round trip for 20 s, {now} acked");
                    std::process::exit(1);
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let pong = pong.clone();
            thread::spawn(move || {
                loop {
                    let (lock, acked) = &*pong;
                    let mut s = lock.lock().unwrap();
                    while s.acked < s.sent {
                        s = acked.wait(s).unwrap();
                    }
                    if s.sent == ROUNDS {
                        return;
                    }
                    s.sent += 1;
                    let waker = s.waker.take();
                    drop(s);
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
            })
        })
        .collect();
    let mut nop = Some(p.nop());
    let got = p.block_on(poll_fn(|cx| {
        // Sometimes a NOP in flight: the turn then waits in the kernel.
        if let Some(op) = nop.as_mut() {
            if let Poll::Ready(res) = Pin::new(op).poll(cx) {
                res.unwrap();
                nop = None;
            }
        }
        let (lock, acked) = &*pong;
        let mut s = lock.lock().unwrap();
        if s.acked < s.sent {
            s.acked = s.sent;
            if s.acked % 64 == 0 && nop.is_none() {
                nop = Some(p.nop());
            }
            acked.notify_all();
        }
        if s.acked == ROUNDS {
            return Poll::Ready(s.acked);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(got, ROUNDS);
    for s in senders {
        s.join().unwrap();
    }
    watchdog.join().unwrap();
}

#[test]
fn an_executor_that_parks_is_woken_by_the_unparker() {
    let p = local();
    let waker = Waker::from(Arc::new(p.unparker()));
    let mut cx = Context::from_waker(&waker);
    // A task pending on an op and on a value another thread sends.
    let slot = Arc::new(Mutex::new(Slot::default()));
    let sender = {
        let slot = slot.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            let mut s = slot.lock().unwrap();
            s.value = Some(1);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        })
    };
    let mut task = Box::pin(async {
        p.nop().await.unwrap();
        poll_fn(|cx| {
            let mut s = slot.lock().unwrap();
            match s.value.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let v = loop {
        if let Poll::Ready(v) = task.as_mut().poll(&mut cx) {
            break v;
        }
        assert!(Instant::now() < deadline);
        p.park(None);
    };
    assert_eq!(v, 1);
    sender.join().unwrap();
}

#[test]
fn the_budget_bounds_ops_in_flight_and_each_completes_once() {
    let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(3)).unwrap();
    let done = p.block_on(async {
        let mut ops: Vec<_> = (0..50).map(|_| Some(p.nop())).collect();
        let mut done = 0;
        poll_fn(|cx| {
            for op in ops.iter_mut() {
                if let Some(o) = op {
                    if let Poll::Ready(r) = Pin::new(o).poll(cx) {
                        r.unwrap();
                        *op = None;
                        done += 1;
                    }
                }
            }
            if done == 50 {
                Poll::Ready(done)
            } else {
                Poll::Pending
            }
        })
        .await
    });
    assert_eq!(done, 50);
    let stats = p.stats();
    assert_eq!(stats.completed, 50);
    // Three ops and the wake-up read.
    assert!(stats.max_in_ring <= 4, "{stats:?}");
}

/// With the default budget (far above the CQ), 100,000 ops in flight at
/// once through an 8-entry SQ and a 16-entry CQ: the CQ overflows into the
/// kernel's backlog and every completion is still delivered, each once.
#[test]
fn far_more_ops_than_the_cq_holds_each_complete_once() {
    const OPS: usize = 100_000;
    let p = LocalProactor::new(ProactorConfig::new(8)).unwrap();
    let done = p.block_on(async {
        let mut ops: Vec<_> = (0..OPS).map(|_| Some(p.nop())).collect();
        let (mut done, mut first) = (0, true);
        // The first poll pushes every op; later ones go from the oldest
        // pending op up to the first still pending (NOPs complete in
        // order), so the test is not quadratic.
        let mut next = 0;
        poll_fn(|cx| {
            for op in ops[next..].iter_mut() {
                if let Some(o) = op {
                    match Pin::new(o).poll(cx) {
                        Poll::Ready(r) => {
                            r.unwrap();
                            *op = None;
                            done += 1;
                        }
                        Poll::Pending if !first => break,
                        Poll::Pending => {}
                    }
                }
            }
            first = false;
            while next < OPS && ops[next].is_none() {
                next += 1;
            }
            if done == OPS {
                Poll::Ready(done)
            } else {
                Poll::Pending
            }
        })
        .await
    });
    assert_eq!(done, OPS);
    let stats = p.stats();
    assert_eq!(stats.completed, OPS as u64, "{stats:?}");
    assert_eq!(stats.unexpected_cqes, 0, "{stats:?}");
    // Far more in the kernel at once than the CQ holds: the rest waited in
    // its overflow backlog, and none was dropped.
    assert!(stats.max_in_ring > 10 * stats.cq_entries, "{stats:?}");
    assert_eq!(stats.cq_overflow, 0, "{stats:?}");
}

#[test]
fn dropping_the_last_handle_with_requests_in_the_kernel_waits_for_them() {
    let p = local();
    let mut ops: Vec<_> = (0..8).map(|_| p.timeout(Duration::from_secs(60))).collect();
    for op in &mut ops {
        assert!(
            Pin::new(op)
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
    }
    // A park arms the read that lets other threads wake this one: it is
    // in the kernel too.
    p.park(Some(Duration::from_millis(1)));
    let start = Instant::now();
    drop(ops);
    drop(p);
    // Cancelled at once, not waited out (for the 2 s after which the
    // ring would be leaked).
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_local_proactor_is_set_up_with_deferred_task_work_where_the_kernel_has_it() {
    let p = local();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().unwrap().parse().unwrap();
    let minor: u32 = parts.next().unwrap().parse().unwrap();
    assert_eq!(p.defers_task_work(), (major, minor) >= (6, 1), "{release}");
    assert_eq!(p.has_no_fd(), (major, minor) >= (6, 5), "{release}");
}

/// A ring without an fd takes one of the thread's 16 registered-ring
/// slots: the 17th LocalProactor of a thread gets a ring with an fd
/// instead, and works; dropped, each gives its slot back.
#[test]
fn more_local_proactors_than_registered_ring_slots_all_work() {
    let no_fd = local().has_no_fd();
    for _round in 0..3 {
        let ps: Vec<_> = (0..20).map(|_| local()).collect();
        for p in &ps {
            p.nop().wait().unwrap();
        }
        let without = ps.iter().filter(|p| p.has_no_fd()).count();
        if no_fd {
            // The test harness's thread may hold none of its slots.
            assert!(
                (15..=16).contains(&without),
                "{without} rings without an fd"
            );
        } else {
            assert_eq!(without, 0);
        }
    }
}

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;
use common::pipe;

#[test]
fn files_are_written_and_read_back() {
    let p = local();
    let path = std::env::temp_dir().join(format!("ring-local-{}", std::process::id()));
    let file = Arc::new(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap(),
    );
    std::fs::remove_file(&path).unwrap();
    p.block_on(async {
        let (n, _) = p.write(&file, b"hello, local".to_vec(), 0).await;
        assert_eq!(n.unwrap(), 12);
        p.fsync(&file, true).await.unwrap();
        let (n, buf) = p.read(&file, vec![0u8; 64], 7).await;
        assert_eq!(&buf[..n.unwrap()], b"local");
        let (n, bufs) = p.readv(&file, vec![vec![0u8; 5], vec![0u8; 7]], 0).await;
        assert_eq!(n.unwrap(), 12);
        assert_eq!(
            (&bufs[0][..], &bufs[1][..]),
            (&b"hello"[..], &b", local"[..])
        );
    });
}

#[test]
fn a_tcp_echo_between_two_local_ops() {
    use futures_util::future::join;
    let p = local();
    let listener = Arc::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let client = Arc::new(std::net::TcpStream::connect(addr).unwrap());
    p.block_on(async {
        let server = p.accept(&listener).await.unwrap();
        let server = Arc::new(server);
        for i in 0..100u32 {
            let msg = i.to_le_bytes().to_vec();
            let (sent, (got, buf)) = join(
                p.send(&client, msg.clone(), MsgFlags::empty()),
                p.recv(&server, Vec::with_capacity(16), MsgFlags::empty()),
            )
            .await;
            assert_eq!(sent.0.unwrap(), 4);
            assert_eq!(&buf[..got.unwrap()], &msg[..]);
        }
    });
    assert_eq!(p.stats().completed, 201);
}

#[test]
fn a_dropped_read_leaves_the_data_for_the_next() {
    let p = local();
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut read = p.read(&r, vec![0u8; 8], CURRENT_POSITION);
    assert!(
        Pin::new(&mut read)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    p.drive();
    drop(read);
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().orphans_freed == 0 {
        assert!(Instant::now() < deadline, "{:?}", p.stats());
        p.park(Some(Duration::from_millis(10)));
    }
    use std::io::Write as _;
    std::fs::File::from(w).write_all(b"kept").unwrap();
    let (n, buf) = p.read(&r, vec![0u8; 8], CURRENT_POSITION).wait();
    assert_eq!(&buf[..n.unwrap()], b"kept");
}

#[test]
fn a_multishot_accept_stream_yields_every_connection_and_ends_on_cancel() {
    if !common::kernel().at_least(5, 19) {
        skip!(
            "a_multishot_accept_stream_yields_every_connection_and_ends_on_cancel",
            "multishot accept needs Linux 5.19"
        );
    }
    use futures_util::StreamExt as _;
    let p = local();
    let listener = Arc::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let mut accepts = p.accept_multi(&listener);
    const CLIENTS: usize = 20;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut accepted = p.block_on(async {
        let mut n = 0;
        // Through the futures Stream trait.
        while n < CLIENTS / 2 {
            accepts.next().await.unwrap().unwrap();
            n += 1;
        }
        n
    });
    // Cancelled: what it accepted still comes, then it ends.
    accepts.cancel();
    while let Some(item) = accepts.wait_next() {
        match item {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ECANCELED)),
        }
    }
    assert!(accepts.wait_next().is_none(), "ended for good");
    listener.set_nonblocking(true).unwrap();
    while listener.accept().is_ok() {
        accepted += 1;
    }
    assert_eq!(accepted, CLIENTS, "no connection lost");
    drop(clients);
}

#[test]
fn a_dropped_accept_stream_closes_what_it_accepted_and_frees_its_slot() {
    if !common::kernel().at_least(5, 19) {
        skip!(
            "a_dropped_accept_stream_closes_what_it_accepted_and_frees_its_slot",
            "multishot accept needs Linux 5.19"
        );
    }
    // One op at a time: the stream's slot must come back for the NOP below.
    let p = LocalProactor::new(ProactorConfig::new(16).max_in_flight(1)).unwrap();
    let listener = Arc::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let mut accepts = p.accept_multi(&listener);
    let _ = accepts.poll_next(&mut Context::from_waker(Waker::noop()));
    p.drive();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    // The accept's CQE arrives, nobody takes it; then the stream goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().completed == 0 {
        assert!(Instant::now() < deadline, "{:?}", p.stats());
        p.park(Some(Duration::from_millis(10)));
    }
    drop(accepts);
    while p.stats().orphans_freed == 0 {
        assert!(Instant::now() < deadline, "{:?}", p.stats());
        p.park(Some(Duration::from_millis(10)));
    }
    // The accepted socket was closed: the client sees end of stream.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    use std::io::Read as _;
    let mut b = [0u8; 1];
    assert_eq!(client.read(&mut b).unwrap_or(0), 0);
    // Its slot is back: the budget of one lets another op through.
    p.nop().wait().unwrap();
    assert_eq!(p.stats().orphans_freed, 1);
}

#[path = "../examples/echo_local.rs"]
#[allow(dead_code, reason = "only `serve` is used here")]
mod echo_local;

/// The `echo_local` example's server, 8 clients at once.
#[test]
fn the_echo_local_example_serves_eight_clients() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const CLIENTS: usize = 8;
    const TRIPS: usize = 50;
    let server = thread::spawn(move || echo_local::serve(listener, Some(CLIENTS)));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                for t in 0..TRIPS {
                    let msg = format!("client {c} trip {t:03}");
                    s.write_all(msg.as_bytes()).unwrap();
                    let mut back = vec![0u8; msg.len()];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg.as_bytes());
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let echoed = server.join().unwrap().unwrap();
    let expect: usize = (0..CLIENTS)
        .map(|c| {
            (0..TRIPS)
                .map(|t| format!("client {c} trip {t:03}").len())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(echoed, expect as u64);
}

/// A waker that counts its clones, drops and wake-ups.
#[derive(Default)]
struct Counted {
    clones: std::sync::atomic::AtomicUsize,
    drops: std::sync::atomic::AtomicUsize,
    wakes: std::sync::atomic::AtomicUsize,
}

fn counted_waker(c: &Arc<Counted>) -> Waker {
    use std::sync::atomic::Ordering::Relaxed;
    use std::task::{RawWaker, RawWakerVTable};
    static VTABLE: RawWakerVTable = RawWakerVTable::new(
        |p| {
            // SAFETY: `p` came from `Arc::into_raw` of a `Counted`.
            let c = unsafe { &*p.cast::<Counted>() };
            c.clones.fetch_add(1, Relaxed);
            // SAFETY: as above; one more reference for the clone.
            unsafe { Arc::increment_strong_count(p.cast::<Counted>()) };
            RawWaker::new(p, &VTABLE)
        },
        |p| {
            // SAFETY: as above; this consumes the waker's reference.
            let c = unsafe { Arc::from_raw(p.cast::<Counted>()) };
            c.wakes.fetch_add(1, Relaxed);
            c.drops.fetch_add(1, Relaxed);
        },
        |p| {
            // SAFETY: as above.
            unsafe { &*p.cast::<Counted>() }.wakes.fetch_add(1, Relaxed);
        },
        |p| {
            // SAFETY: as above; this consumes the waker's reference.
            let c = unsafe { Arc::from_raw(p.cast::<Counted>()) };
            c.drops.fetch_add(1, Relaxed);
        },
    );
    let raw = RawWaker::new(Arc::into_raw(c.clone()).cast(), &VTABLE);
    // SAFETY: the vtable keeps the `Arc` count in step with the wakers.
    unsafe { Waker::from_raw(raw) }
}

#[test]
fn one_tasks_many_ops_share_one_clone_of_its_waker_and_wake_it_once_per_turn() {
    use std::sync::atomic::Ordering::Relaxed;
    let p = LocalProactor::new(ProactorConfig::new(64)).unwrap();
    let c = Arc::new(Counted::default());
    let waker = counted_waker(&c);
    let mut cx = Context::from_waker(&waker);
    for round in 0..3 {
        let mut ops: Vec<_> = (0..32).map(|_| p.nop()).collect();
        for op in &mut ops {
            assert!(Pin::new(op).poll(&mut cx).is_pending());
        }
        // The first two ops ever clone the waker (the second one's clone
        // is shared from then on); every later op shares it.
        assert_eq!(c.clones.load(Relaxed), 2, "round {round}");
        let wakes = c.wakes.load(Relaxed);
        p.drive();
        // All 32 completed in one turn: one wake-up for the task.
        assert_eq!(c.wakes.load(Relaxed), wakes + 1, "round {round}");
        for op in &mut ops {
            assert!(matches!(Pin::new(op).poll(&mut cx), Poll::Ready(Ok(()))));
        }
    }
    // Another task's waker, twice in a row, replaces the shared one: the
    // old clone is dropped (after the borrow), none leaks.
    let other = Arc::new(Counted::default());
    let other_waker = counted_waker(&other);
    let mut other_cx = Context::from_waker(&other_waker);
    let mut a = p.nop();
    let mut b = p.nop();
    assert!(Pin::new(&mut a).poll(&mut other_cx).is_pending());
    assert!(Pin::new(&mut b).poll(&mut other_cx).is_pending());
    assert_eq!(c.drops.load(Relaxed), c.clones.load(Relaxed));
    p.drive();
    assert_eq!(other.wakes.load(Relaxed), 1);
    assert!(Pin::new(&mut a).poll(&mut other_cx).is_ready());
    assert!(Pin::new(&mut b).poll(&mut other_cx).is_ready());
    drop(p);
    // The LocalProactor's last clone goes with it (the ops hold `Rc`s of
    // it too: gone with them).
    drop((a, b));
    assert_eq!(other.drops.load(Relaxed), other.clones.load(Relaxed));
    assert_eq!(Arc::strong_count(&other), 2, "the test's Arc and its waker");
}

#[test]
fn block_on_polls_with_one_waker_and_sees_a_completion_its_poll_reaped() {
    // In a thread, with a deadline: a lost wake-up waits in the kernel
    // for a completion that has already come, forever.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let p = local();
        // One waker for the LocalProactor's life, which its ops share.
        let first = p.block_on(poll_fn(|cx| Poll::Ready(cx.waker().clone())));
        let same = p.block_on(poll_fn(|cx| Poll::Ready(cx.waker().will_wake(&first))));
        let mut op = p.nop();
        let mut polls = 0;
        let out = p.block_on(poll_fn(|cx| {
            polls += 1;
            match Pin::new(&mut op).poll(cx) {
                Poll::Ready(out) => Poll::Ready(out),
                Poll::Pending => {
                    // Submitted, waiting with block_on's waker: a turn run
                    // here, inside the poll, reaps it and wakes that waker.
                    let done = p.stats().completed;
                    while p.stats().completed == done {
                        p.drive();
                    }
                    Poll::Pending
                }
            }
        }));
        tx.send((same, out.is_ok(), polls)).unwrap();
    });
    let (same, ok, polls) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("block_on waited for a completion its own poll had reaped");
    assert!(same, "block_on polls with one waker");
    assert!(ok);
    assert_eq!(polls, 2, "polled again at once, not after a wait");
}

#[test]
fn a_multishot_recv_delivers_every_byte_in_order_through_a_slow_consumer() {
    let test = "a_multishot_recv_delivers_every_byte_in_order_through_a_slow_consumer";
    if !common::kernel().at_least(6, 0) {
        skip!(test, "multishot recv needs Linux 6.0");
    }
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    let p = local();
    let (a, b) = UnixStream::pair().unwrap();
    const LEN: usize = 1 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i * 131 % 251) as u8).collect();
    let expect = data.clone();
    let writer = thread::spawn(move || {
        let mut a = a;
        for chunk in data.chunks(10_007) {
            a.write_all(chunk).unwrap();
        }
    });
    // Through the ring's name in this thread's table where it has no fd
    // (6.5+), through its fd before.
    let mut stream = p.recv_multi(Arc::new(b), 4, 4096);
    let mut got = Vec::with_capacity(LEN);
    let mut items = 0u32;
    while let Some(chunk) = stream.wait_next() {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty() && chunk.len() <= 4096);
        got.extend_from_slice(&chunk);
        items += 1;
        if items % 50 == 0 {
            // A slow consumer: the kernel runs out of buffers (ENOBUFS)
            // and the stream re-arms.
            thread::sleep(Duration::from_millis(2));
        }
    }
    writer.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got == expect, "the bytes differ");
    let stats = p.stats();
    assert!(
        stats.stream_restarts > 0,
        "the slow consumer ran the ring dry: {stats:?}"
    );
    assert_eq!(stats.cq_overflow, 0);
}

#[test]
fn a_dropped_multishot_recv_frees_its_buffer_group_and_leaves_later_bytes() {
    let test = "a_dropped_multishot_recv_frees_its_buffer_group_and_leaves_later_bytes";
    if !common::kernel().at_least(6, 0) {
        skip!(test, "multishot recv needs Linux 6.0");
    }
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    let p = local();
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = Arc::new(b);
    // Each stream registers a new buffer group, unregistered (through the
    // ring's index where it has no fd: ring-driver's bufring tests) when
    // its resources are released after the last CQE.
    const STREAMS: u64 = 600;
    for round in 0..STREAMS {
        let mut stream = p.recv_multi(&b, 2, 64);
        // Submitted, then dropped: cancelled, its group unregistered once
        // the last CQE is in.
        let polled = p.block_on(poll_fn(|cx| Poll::Ready(stream.poll_next(cx))));
        assert!(polled.is_pending(), "round {round}: {polled:?}");
        drop(stream);
        if round % 64 == 63 {
            // Let the cancellations finish (the budget would bound the
            // streams in flight anyway).
            while p.stats().orphans_freed <= round - 32 {
                p.park(Some(Duration::from_millis(10)));
            }
        }
    }
    let mut waited = 0;
    while p.stats().orphans_freed < STREAMS {
        waited += 1;
        assert!(waited < 1000, "dropped streams' last CQEs: {:?}", p.stats());
        p.park(Some(Duration::from_millis(10)));
    }
    // Nothing reads the socket any more: the bytes stay there.
    a.write_all(b"second").unwrap();
    let (n, buf) = p.recv(&b, Vec::with_capacity(16), MsgFlags::empty()).wait();
    assert_eq!(n.unwrap(), 6);
    assert_eq!(buf, b"second");
    // And a new stream receives.
    let mut stream = p.recv_multi(&b, 2, 64);
    a.write_all(b"third").unwrap();
    assert_eq!(stream.wait_next().unwrap().unwrap(), b"third");
}

#[test]
fn drive_alone_delivers_completions_that_arrive_later() {
    use std::io::Write as _;
    let p = local();
    let (r, w) = {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) writes two fds into the array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both are new fds that nothing else owns.
        unsafe {
            use std::os::fd::FromRawFd;
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        }
    };
    let mut read = p.read(Arc::new(r), Vec::with_capacity(8), CURRENT_POSITION);
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(Pin::new(&mut read).poll(&mut cx).is_pending());
    p.drive();
    // Completed by a write from another thread after the read is in the
    // kernel: an executor that only ever calls `drive` (never blocks in
    // the ring) must still see it.
    thread::spawn(move || {
        let mut w = w;
        w.write_all(b"later").unwrap();
    })
    .join()
    .unwrap();
    let start = Instant::now();
    loop {
        p.drive();
        if let Poll::Ready((n, buf)) = Pin::new(&mut read).poll(&mut cx) {
            assert_eq!(n.unwrap(), 5);
            assert_eq!(buf, b"later");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "drive never delivered the read: {:?}",
            p.stats()
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// A file in the temp dir, open for reading and writing, its name removed.
fn temp_file(name: &str) -> Arc<std::fs::File> {
    let path = std::env::temp_dir().join(format!("ring-local-{}-{name}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    Arc::new(file)
}

/// Polls `f` (with a waker that wakes nothing) and drives `p` until `f` is
/// ready; fails after 10 s without it.
fn drive_until<F: Future + Unpin>(p: &LocalProactor, f: &mut F, what: &str) -> F::Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Poll::Ready(out) = Pin::new(&mut *f).poll(&mut Context::from_waker(Waker::noop())) {
            return out;
        }
        assert!(Instant::now() < deadline, "{what}: {:?}", p.stats());
        p.park(Some(Duration::from_millis(1)));
    }
}

#[test]
fn linked_local_ops_run_in_order_and_stop_at_the_first_failure() {
    let p = local();
    let file = temp_file("link");
    // write -> write -> fsync -> read, each op with its own output.
    let ((((w1, _), (w2, _)), sync), (r, buf)) = p
        .write(&file, b"one,".to_vec(), 0)
        .link(p.write(&file, b"two".to_vec(), 4))
        .link(p.fsync(&file, false))
        .link(p.read(&file, Vec::with_capacity(16), 0))
        .wait();
    assert_eq!((w1.unwrap(), w2.unwrap()), (4, 3));
    sync.unwrap();
    assert_eq!(r.unwrap(), 7);
    assert_eq!(buf, b"one,two");
    // Right-nested, awaited in a task: one chain too. The read falls short
    // (7 bytes of 16: a failure, for a chain) and cancels every op after
    // it and none before.
    let (first, (short, (third, fourth))) = p.block_on(async {
        p.nop()
            .link(
                p.read(&file, Vec::with_capacity(16), 0)
                    .link(p.nop().link(p.read(&file, Vec::with_capacity(4), 0))),
            )
            .await
    });
    first.unwrap();
    assert_eq!(short.0.unwrap(), 7);
    assert_eq!(third.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(fourth.0.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    // A failing head (a write to a pipe's read end) cancels the rest.
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let ((w, _), n) = p
        .write(&r, b"x".to_vec(), CURRENT_POSITION)
        .link(p.nop())
        .wait();
    assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    let stats = p.stats();
    assert_eq!(
        (stats.unexpected_cqes, stats.cq_overflow),
        (0, 0),
        "{stats:?}"
    );
}

#[test]
fn a_chain_goes_to_the_kernel_whole_even_when_the_sq_is_nearly_full() {
    // An 8-entry SQ holding 7 entries: the chain's two do not fit. Pushed
    // one by one, with a submit when the SQ is full, the kernel would take
    // the first as a chain of one (its link flag dangling at the end of the
    // submission) and the second alone: the NOP would then succeed after
    // the failed write. Pushed whole (after a submit that makes room), the
    // NOP is cancelled with the chain.
    let p = LocalProactor::new(ProactorConfig::new(8)).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut nops: Vec<_> = (0..7).map(|_| p.nop()).collect();
    for nop in &mut nops {
        assert!(Pin::new(nop).poll(&mut cx).is_pending());
    }
    assert_eq!(p.stats().enters, 0, "the NOPs wait in the SQ");
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let mut chain = p.write(&r, b"x".to_vec(), CURRENT_POSITION).link(p.nop());
    assert!(Pin::new(&mut chain).poll(&mut cx).is_pending());
    assert_eq!(p.stats().enters, 1, "the SQ had no room for the chain");
    let ((w, _), n) = drive_until(&p, &mut chain, "the chain");
    assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    for mut nop in nops {
        drive_until(&p, &mut nop, "a NOP").unwrap();
    }
}

#[test]
fn a_linked_timeout_bounds_a_local_read() {
    let p = local();
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let start = Instant::now();
    let mut bounded = p
        .read(&r, Vec::with_capacity(8), CURRENT_POSITION)
        .link(p.link_timeout(Duration::from_millis(20)));
    let ((n, buf), timeout) = drive_until(&p, &mut bounded, "the bounded read");
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert!(buf.is_empty());
    assert_eq!(timeout.unwrap_err().raw_os_error(), Some(libc::ETIME));
    // Completing first cancels the timeout.
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let b = Arc::new(b);
    use std::io::Write as _;
    (&a).write_all(b"quick").unwrap();
    let ((n, buf), timeout) = p
        .read(&b, Vec::with_capacity(8), CURRENT_POSITION)
        .link(p.link_timeout(Duration::from_secs(60)))
        .wait();
    assert_eq!(n.unwrap(), 5);
    assert_eq!(buf, b"quick");
    assert_eq!(timeout.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    // Alone, the kernel refuses it.
    let alone = p.link_timeout(Duration::from_millis(1)).wait();
    assert_eq!(alone.unwrap_err().raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn a_local_chain_that_cannot_be_linked_fails_each_op_clearly() {
    use std::io::ErrorKind::InvalidInput;
    let p = LocalProactor::new(ProactorConfig::new(4).max_in_flight(3)).unwrap();
    // A polled op runs alone; the op linked after it fails.
    let mut polled = p.nop();
    assert!(
        Pin::new(&mut polled)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    let (polled, next) = polled.link(p.nop()).wait();
    polled.unwrap();
    let err = next.unwrap_err();
    assert_eq!(err.kind(), InvalidInput);
    assert_eq!(err.to_string(), "a started or polled op cannot be linked");
    // An op that failed already: the rest fail as the kernel would fail
    // them, with ECANCELED.
    let options = ring_io_proactor::fs::OpenOptions::new().read(true).clone();
    let (open, next) = p.open("a\0b", &options).link(p.nop()).wait();
    assert_eq!(open.unwrap_err().kind(), InvalidInput);
    assert_eq!(next.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    // Ops of two LocalProactors.
    let q = local();
    let (a, b) = p.nop().link(q.nop()).wait();
    for e in [a.unwrap_err(), b.unwrap_err()] {
        assert_eq!(e.to_string(), "linked ops must come from the same Proactor");
    }
    // Longer than the budget (3), or than the SQ (4) with a larger budget:
    // every op fails, none is submitted.
    let before = p.stats().completed;
    let mut four = p.nop().link(p.nop()).link(p.nop().link(p.nop()));
    let ((a, b), (c, d)) = drive_until(&p, &mut four, "a chain longer than the budget");
    let ((e, f), (g, h)) = {
        let q = LocalProactor::new(ProactorConfig::new(4)).unwrap();
        let chain = q.nop().link(q.nop()).link(q.nop().link(q.nop()));
        let five = chain.link(q.nop());
        let (four, fifth) = five.wait();
        assert!(fifth.is_err());
        four
    };
    for e in [a, b, c, d, e, f, g, h] {
        let e = e.unwrap_err();
        assert_eq!(e.kind(), InvalidInput);
        assert_eq!(
            e.to_string(),
            "a linked chain longer than the Proactor's budget or SQ"
        );
    }
    assert_eq!(p.stats().completed, before);
    // As long as the budget, it runs.
    let ((a, b), c) = p.nop().link(p.nop()).link(p.nop()).wait();
    a.and(b).and(c).unwrap();
}

#[test]
fn a_chain_takes_credit_for_all_its_ops_and_a_dropped_chain_gives_it_back() {
    use std::io::Write as _;
    let p = LocalProactor::new(ProactorConfig::new(16).max_in_flight(4)).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut w = std::fs::File::from(w);
    // Two reads wait in the kernel: room for two more ops.
    let mut reads: Vec<_> = (0..2)
        .map(|_| p.read(&r, vec![0u8; 1], CURRENT_POSITION))
        .collect();
    for read in &mut reads {
        assert!(Pin::new(read).poll(&mut cx).is_pending());
    }
    // A chain of three waits for credit for all three: never submitted.
    let mut nops = p.nop().link(p.nop()).link(p.nop());
    for _ in 0..3 {
        assert!(Pin::new(&mut nops).poll(&mut cx).is_pending());
        p.drive();
    }
    assert_eq!(p.stats().completed, 0, "{:?}", p.stats());
    // One read completes (either: both wait on the pipe): the chain fits,
    // and runs.
    w.write_all(b"1").unwrap();
    let mut either = poll_fn(|cx| {
        for (i, read) in reads.iter_mut().enumerate() {
            if let Poll::Ready((n, _)) = Pin::new(read).poll(cx) {
                return Poll::Ready((i, n));
            }
        }
        Poll::Pending
    });
    let (i, n) = drive_until(&p, &mut either, "a read");
    assert_eq!(n.unwrap(), 1);
    drop(either);
    drop(reads.remove(i));
    let ((a, b), c) = drive_until(&p, &mut nops, "the chain");
    a.and(b).and(c).unwrap();
    // A chain in the kernel (a read that waits, then two NOPs) holds three
    // credits; a chain of two waits behind it. Dropped mid-flight, the
    // first is cancelled whole and gives its credit back once each op's CQE
    // has come: the second runs.
    let mut held = p
        .read(&r, vec![0u8; 1], CURRENT_POSITION)
        .link(p.nop().link(p.nop()));
    assert!(Pin::new(&mut held).poll(&mut cx).is_pending());
    p.drive();
    let mut waiting = p.nop().link(p.nop());
    assert!(Pin::new(&mut waiting).poll(&mut cx).is_pending());
    p.drive();
    assert!(Pin::new(&mut waiting).poll(&mut cx).is_pending());
    let freed = p.stats().orphans_freed;
    drop(held);
    let (a, b) = drive_until(&p, &mut waiting, "the chain behind the dropped one");
    a.and(b).unwrap();
    assert_eq!(p.stats().orphans_freed, freed + 3, "{:?}", p.stats());
    // The dropped chain's read took nothing: the data goes to the read
    // still waiting.
    w.write_all(b"2").unwrap();
    let (n, buf) = drive_until(&p, &mut reads[0], "the last read");
    assert_eq!((n.unwrap(), &buf[..]), (1, &b"2"[..]));
}

/// Two reads fill a budget of two; a chain of two waits for credit,
/// polled again and again (as a `join` polls every future of its task),
/// and an op of another task waits behind it. An entry more that the chain
/// left in the queue would take a wake-up meant for the op, which would
/// then never be woken.
#[test]
fn a_chain_waiting_for_credit_holds_one_place_in_the_queue_however_often_polled() {
    use std::io::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let p = LocalProactor::new(ProactorConfig::new(16).max_in_flight(2)).unwrap();
    let mut idle = Context::from_waker(Waker::noop());
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut reads: Vec<_> = (0..2)
        .map(|_| Some(p.read(&r, vec![0u8; 1], CURRENT_POSITION)))
        .collect();
    for read in reads.iter_mut().flatten() {
        assert!(Pin::new(read).poll(&mut idle).is_pending());
    }
    let first_task = Arc::new(Counted::default());
    let first_waker = counted_waker(&first_task);
    let mut first_cx = Context::from_waker(&first_waker);
    let mut first = Some(p.nop().link(p.nop()));
    for _ in 0..4 {
        let chain = first.as_mut().unwrap();
        assert!(Pin::new(chain).poll(&mut first_cx).is_pending());
    }
    let op_task = Arc::new(Counted::default());
    let op_waker = counted_waker(&op_task);
    let mut op = p.nop();
    assert!(
        Pin::new(&mut op)
            .poll(&mut Context::from_waker(&op_waker))
            .is_pending()
    );
    // The reads complete and are taken: the chain runs, and the op behind
    // it, polled (as an executor polls a task) only when woken, is woken
    // for room and runs too.
    std::fs::File::from(w).write_all(b"ab").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the op behind the chain was never woken for room: {:?}",
            p.stats()
        );
        for read in &mut reads {
            if let Some(r) = read {
                if let Poll::Ready((n, _)) = Pin::new(r).poll(&mut idle) {
                    assert_eq!(n.unwrap(), 1);
                    *read = None;
                }
            }
        }
        if let Some(f) = &mut first {
            if let Poll::Ready((a, b)) = Pin::new(f).poll(&mut first_cx) {
                a.and(b).unwrap();
                first = None;
            }
        }
        let wakes = op_task.wakes.load(Relaxed);
        if wakes > seen {
            seen = wakes;
            if let Poll::Ready(res) = Pin::new(&mut op).poll(&mut Context::from_waker(&op_waker)) {
                res.unwrap();
                break;
            }
        }
        p.park(Some(Duration::from_millis(1)));
    }
    assert!(first.is_none() && reads.iter().all(Option::is_none));
}

#[test]
fn local_fixed_buffers_write_read_and_go_back_to_the_pool() {
    use ring_io_proactor::IoBuf;
    let none = local();
    assert!(none.fixed_buffer().is_none(), "none registered");
    let p = LocalProactor::new(ProactorConfig::new(16).fixed_buffers(4, 4096)).unwrap();
    let mut bufs: Vec<_> = (0..4).map(|_| p.fixed_buffer().unwrap()).collect();
    assert!(p.fixed_buffer().is_none(), "all four taken");
    let mut indices: Vec<u16> = bufs.iter().map(|b| b.index()).collect();
    indices.sort();
    assert_eq!(indices, [0, 1, 2, 3]);
    let mut out = bufs.pop().unwrap();
    let back = bufs.pop().unwrap();
    drop(bufs);
    // Write from one, read into another after a prefix.
    let file = temp_file("fixed");
    assert_eq!(out.extend_from_slice(&[9; 5000]), 4096, "as much as fits");
    out.truncate(3000);
    out[..5].copy_from_slice(b"fixed");
    let (n, out) = p.write_fixed(&file, out, 0).wait();
    assert_eq!(n.unwrap(), 3000);
    assert_eq!(out.len(), 3000, "handed back unchanged");
    drop(out);
    // A fixed read fills the buffer from its start, as any read: the
    // length becomes max(len, n).
    let mut into = back;
    into.clear();
    into.extend_from_slice(b"<>");
    let (n, into) = p.read_fixed(&file, into, 0).wait();
    assert_eq!(n.unwrap(), 3000);
    assert_eq!(&into[..5], b"fixed");
    assert_eq!(into.len(), 3000);
    assert!(into[5..].iter().all(|&b| b == 9));
    // A FixedBuf is a buffer for the plain ops too, and can be sliced.
    let (n, into) = p.read(&file, into.slice(10..20), 0).wait();
    assert_eq!(n.unwrap(), 10);
    let into = into.into_inner();
    assert_eq!(into[..15], [&b"fixed"[..], &[9; 5], b"fixed"].concat());
    // Fixed ops link like any other.
    let mut head = p.fixed_buffer().unwrap();
    head.extend_from_slice(b"FIX");
    let ((w, head), (r, into)) = p
        .write_fixed(&file, head, 0)
        .link(p.read_fixed(&file, into, 0))
        .wait();
    assert_eq!((w.unwrap(), r.unwrap()), (3, 3000));
    assert_eq!(&into[..8], b"FIXed\x09\x09\x09");
    drop((head, into));
    // A dropped read keeps its buffer out of the pool until its CQE.
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let taken: Vec<_> = (0..3).map(|_| p.fixed_buffer().unwrap()).collect();
    let mut op = p.read_fixed(&r, p.fixed_buffer().unwrap(), CURRENT_POSITION);
    assert!(
        Pin::new(&mut op)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    p.drive();
    drop(op);
    drop(taken);
    let free = || {
        std::iter::from_fn(|| p.fixed_buffer())
            .collect::<Vec<_>>()
            .len()
    };
    assert_eq!(free(), 3, "the read's buffer came back before its CQE");
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().orphans_freed == 0 {
        assert!(Instant::now() < deadline, "{:?}", p.stats());
        p.park(Some(Duration::from_millis(1)));
    }
    assert_eq!(free(), 4, "every buffer back in the pool");
    // A buffer outlives its LocalProactor (the pool is kept for it).
    let mut kept = p.fixed_buffer().unwrap();
    drop(p);
    kept.extend_from_slice(b"still mine");
    assert_eq!(&kept[..], b"still mine");
    // An empty pool is refused at setup.
    let err = LocalProactor::new(ProactorConfig::new(8).fixed_buffers(0, 4096)).unwrap_err();
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn a_fixed_buffer_of_another_runtime_is_refused_clearly_and_comes_back() {
    use ring_io_proactor::Proactor;
    let file = temp_file("fixed-foreign");
    let a = LocalProactor::new(ProactorConfig::new(8).fixed_buffers(2, 4096)).unwrap();
    let b = LocalProactor::new(ProactorConfig::new(8).fixed_buffers(2, 4096)).unwrap();
    let shared = Proactor::new(ProactorConfig::new(8).fixed_buffers(2, 4096)).unwrap();
    let none = local();
    let mut buf = a.fixed_buffer().unwrap();
    buf.extend_from_slice(b"a's");
    let index = buf.index();
    // The same index exists in b's table: without the check the kernel
    // would see an address outside b's buffer (EFAULT).
    let (res, buf) = b.write_fixed(&file, buf, 0).wait();
    let e = res.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("another"), "{e}");
    let (res, buf) = b.read_fixed(&file, buf, 0).wait();
    assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let (res, buf) = shared.write_fixed(&file, buf, 0).wait();
    assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let (res, buf) = none.read_fixed(&file, buf, 0).wait();
    assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    // Handed back whole, still a's: it works there and goes back to a's pool.
    assert_eq!((buf.index(), &buf[..]), (index, &b"a's"[..]));
    let (n, buf) = a.write_fixed(&file, buf, 0).wait();
    assert_eq!(n.unwrap(), 3);
    drop(buf);
    assert_eq!((0..2).filter_map(|_| a.fixed_buffer()).count(), 2);
    // Nothing was submitted for the refused ops.
    assert_eq!(b.stats().completed + none.stats().completed, 0);
}

#[test]
fn a_timeout_fires_while_its_op_holds_the_last_credit() {
    // The timer of `timeout` is an op too: with the budget spent by the
    // op it times, it goes past the budget rather than wait for a credit
    // that only the timed op's end gives back.
    let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let start = Instant::now();
    let out = p
        .recv(Arc::new(a), Vec::with_capacity(8), MsgFlags::empty())
        .timeout(Duration::from_millis(5))
        .wait();
    assert!(out.is_err(), "nothing was sent, yet the receive completed");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // Both gave their credits back: the next op runs.
    p.nop().wait().expect("a NOP after");
}

/// An op polled once (waiting for room) and then kept, and a task of a
/// `futures` `LocalPool` waiting for room behind it: the room the timer
/// gives back (when its CQE is reaped) is granted to the kept op only.
/// `step` moves the LocalProactor on; the task must still complete within
/// 5 s.
fn a_task_behind_a_kept_op_completes(step: impl Fn(&LocalProactor)) {
    use futures_util::task::LocalSpawnExt;
    let p = std::rc::Rc::new(LocalProactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap());
    // Holds the only slot for 20 ms.
    let timer = p.timeout(Duration::from_millis(20));
    let mut timer = std::pin::pin!(timer);
    assert!(
        timer
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    let mut kept = p.nop();
    assert!(
        Pin::new(&mut kept)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert!(format!("{kept:?}").contains("waiting for"), "{kept:?}");
    let mut pool = futures_executor::LocalPool::new();
    let (q, done) = (p.clone(), std::rc::Rc::new(std::cell::Cell::new(None)));
    let out = done.clone();
    pool.spawner()
        .spawn_local(async move { out.set(Some(q.nop().await)) })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut timed_out = false;
    loop {
        // The timer is taken when done (its room came back at its CQE).
        if !timed_out {
            let poll = timer.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            timed_out = poll.is_ready();
        }
        pool.run_until_stalled();
        if let Some(res) = done.take() {
            res.expect("the NOP");
            break;
        }
        let stats = p.stats();
        assert!(
            Instant::now() < deadline,
            "a task behind a kept op still waits after 5 s: {stats:?}"
        );
        step(&p);
    }
    assert!(p.stats().credit_lapses >= 1, "{:?}", p.stats());
    // The kept op lost nothing: polled again, it takes its slot.
    assert!(format!("{kept:?}").contains("waiting for"), "{kept:?}");
    kept.wait().expect("the kept NOP");
}

/// Parked: the turn about to wait in the kernel wakes the next waiter.
#[test]
fn a_kept_op_waiting_for_room_does_not_hold_up_the_waiters_behind_it_when_parked() {
    a_task_behind_a_kept_op_completes(|p| p.park(Some(Duration::from_millis(50))));
}

/// Driven only (turns that never wait): the next waiter is woken once the
/// room has stayed free for `CREDIT_LAPSE`.
#[test]
fn a_kept_op_waiting_for_room_does_not_hold_up_the_waiters_behind_it_when_driven() {
    a_task_behind_a_kept_op_completes(|p| {
        p.drive();
        thread::sleep(Duration::from_millis(1));
    });
}

/// A waker that starts an op whenever it is woken (here: spawns a task
/// that takes a slot; a waker must be `Send`, so it finds its
/// LocalProactor through a thread-local) does not take its own op's room:
/// woken because a slot came back, its task finds the slot still there,
/// not taken by the task the waker spawned (which ran first, and once
/// took it: the NOP completed only after a spawned task's timer).
#[test]
fn a_waker_that_starts_an_op_when_woken_does_not_take_its_own_ops_room() {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::task::Wake;
    thread_local! {
        static LP: RefCell<Option<Rc<LocalProactor>>> = const { RefCell::new(None) };
        static SPAWNED_DONE: Cell<u32> = const { Cell::new(0) };
    }
    struct Spawns {
        inner: Waker,
    }
    impl Wake for Spawns {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            LP.with(|lp| {
                if let Some(p) = lp.borrow().as_ref() {
                    let q = p.clone();
                    // Detached: it takes a slot when it runs.
                    drop(p.spawn(async move {
                        q.timeout(Duration::from_millis(1)).await.expect("a timer");
                        SPAWNED_DONE.with(|d| d.set(d.get() + 1));
                    }));
                }
            });
            self.inner.wake_by_ref();
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let p = Rc::new(LocalProactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap());
        LP.with(|lp| *lp.borrow_mut() = Some(p.clone()));
        let out = p.block_on(async {
            // Holds the only slot for 20 ms.
            let mut timer = std::pin::pin!(p.timeout(Duration::from_millis(20)));
            let mut timed_out = false;
            poll_fn(|cx| {
                assert!(timer.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            let mut op = p.nop();
            let out = poll_fn(|cx| {
                let hostile = Waker::from(Arc::new(Spawns {
                    inner: cx.waker().clone(),
                }));
                let polled = Pin::new(&mut op).poll(&mut Context::from_waker(&hostile));
                // The timer's room comes back with its CQE, in a turn
                // after the NOP was polled: the NOP's waker runs then.
                if !timed_out {
                    timed_out = timer.as_mut().poll(cx).is_ready();
                }
                polled
            })
            .await;
            (out, SPAWNED_DONE.with(Cell::get))
        });
        LP.with(|lp| lp.borrow_mut().take());
        let _ = tx.send(out);
    });
    let (out, spawned_done) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the NOP still waits for room after 5 s");
    out.expect("the NOP");
    assert_eq!(
        spawned_done, 0,
        "a task its waker spawned took the room the NOP was woken for"
    );
}

/// Ops of a LocalProactor with a small budget, at random, as a polling
/// executor runs them (no-op wakers: it polls what it likes): made and
/// polled once, polled again, dropped (waiting for room, or in flight),
/// kept unpolled for a while, the ring moved on by `drive` or `park`. Room
/// that came back is granted to the op it woke, so ops kept unpolled hold
/// grants until they lapse; in the end every op still alive completes,
/// and the ops that finished got their results.
#[test]
fn local_credit_under_random_interleavings_completes_every_op() {
    use ring_io_proactor::LocalOp;
    let noop = Waker::noop();
    for seed in 1..=40u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let budget = 1 + next(3) as u32;
        let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(budget)).unwrap();
        let mut ops: Vec<LocalOp<std::io::Result<()>>> = Vec::new();
        let mut done = 0;
        let poll = |op: &mut LocalOp<std::io::Result<()>>| match Pin::new(op)
            .poll(&mut Context::from_waker(noop))
        {
            Poll::Ready(res) => {
                res.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                true
            }
            Poll::Pending => false,
        };
        for _ in 0..50 {
            match next(6) {
                0 | 1 if ops.len() < 10 => {
                    let mut op = if next(2) == 0 {
                        p.nop()
                    } else {
                        p.timeout(Duration::from_micros(next(2000)))
                    };
                    if poll(&mut op) {
                        done += 1;
                    } else {
                        ops.push(op);
                    }
                }
                2 if !ops.is_empty() => {
                    let i = next(ops.len() as u64) as usize;
                    if poll(&mut ops[i]) {
                        drop(ops.swap_remove(i));
                        done += 1;
                    }
                }
                3 if !ops.is_empty() => {
                    let i = next(ops.len() as u64) as usize;
                    drop(ops.swap_remove(i));
                }
                4 => p.drive(),
                _ => p.park(Some(Duration::from_micros(500))),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ops.is_empty() {
            assert!(
                Instant::now() < deadline,
                "seed {seed}: {} ops still pending after 5 s: {:?}",
                ops.len(),
                p.stats()
            );
            let mut i = 0;
            while i < ops.len() {
                if poll(&mut ops[i]) {
                    drop(ops.swap_remove(i));
                    done += 1;
                } else {
                    i += 1;
                }
            }
            p.park(Some(Duration::from_millis(1)));
        }
        assert!(done > 0, "seed {seed}: nothing completed");
    }
}

/// An op done but kept, or forgotten (`mem::forget`, safe code), holds no
/// room: the budget is whole for the ops after it. Its room came back only
/// when its result was taken, so on a budget of one a forgotten op stopped
/// every op after it, for ever (found by the local chaos: seed
/// 0x9da3aaf7653116cb, a chain of two that waited behind forgotten NOPs).
#[test]
fn an_op_done_but_kept_or_forgotten_holds_no_room() {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
        let mut kept = p.nop();
        let mut forgotten = p.nop();
        let noop = &mut Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut kept).poll(noop).is_pending());
        // Both CQEs reaped (the second op took the room when the first's
        // came back).
        while p.stats().completed < 1 {
            p.park(Some(Duration::from_millis(1)));
        }
        assert!(Pin::new(&mut forgotten).poll(noop).is_pending());
        while p.stats().completed < 2 {
            p.park(Some(Duration::from_millis(1)));
        }
        std::mem::forget(forgotten);
        // The budget is whole: an op, then a chain as long as it.
        p.nop().wait().expect("a NOP after them");
        let out = p.block_on(async { p.nop().await });
        let _ = tx.send(out);
        drop(kept);
    });
    let out = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("an op still waits for room after 5 s: the kept and forgotten ops hold it");
    out.expect("the NOP");
}
