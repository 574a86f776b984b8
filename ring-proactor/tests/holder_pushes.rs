//! A `block_on` that drives the ring and finds nothing but its own work
//! pushes the ops its future submits straight into the SQ, and its next
//! turn takes the Proactor's lock only to reap (`ProactorStats::
//! holder_pushes` counts those ops). Everything else must still be seen:
//! another thread's ops and cancellations, the holder's own cancellations
//! and queued work, a pushed op whose future then blocks in user code, a
//! full SQ, nested `block_on`s, several threads taking the token from each
//! other, a shutdown.
//!
//! Progress-based, not timed: each test gives up after [`LIMIT`], which
//! fails it.

use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_proactor::{MsgFlags, Proactor, ProactorConfig, block_on};

/// How long a test waits for progress at most.
const LIMIT: Duration = Duration::from_secs(10);

/// NOPs awaited one at a time in the holder's `block_on` before it is
/// expected to push its own (the Proactor waits for 16 quiet turns).
const WARM: usize = 40;

/// A socket pair: the writing end, and what a thread reads from the other
/// (the first 5 bytes, sent once read), and that thread.
fn five_bytes_reader() -> (
    Arc<UnixStream>,
    mpsc::Receiver<[u8; 5]>,
    thread::JoinHandle<()>,
) {
    let (a, mut b) = UnixStream::pair().unwrap();
    let (read_tx, read_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut got = [0u8; 5];
        b.read_exact(&mut got).unwrap();
        read_tx.send(got).unwrap();
    });
    (Arc::new(a), read_rx, reader)
}

/// Awaits `n` NOPs one at a time.
async fn nops(p: &Proactor, n: usize) {
    for _ in 0..n {
        p.nop().await.expect("a NOP");
    }
}

/// A waker that unparks a thread.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `op` on this thread (which never drives: it only polls and
/// parks) until it completes or [`LIMIT`] passes.
fn poll_only<F: Future + Unpin>(mut op: F) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let start = Instant::now();
    loop {
        if let Poll::Ready(out) = Pin::new(&mut op).poll(&mut cx) {
            return Some(out);
        }
        if start.elapsed() > LIMIT {
            return None;
        }
        thread::park_timeout(Duration::from_millis(20));
    }
}

#[test]
fn a_block_on_awaiting_one_op_at_a_time_pushes_its_own_ops() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    block_on(nops(&p, 200));
    let stats = p.stats();
    // All but the first turns' ops (16 quiet turns first).
    assert!(
        stats.holder_pushes >= 150,
        "pushed by the holder: {} of 200",
        stats.holder_pushes
    );
    assert_eq!(stats.unexpected_cqes, 0);
    // The thread let the token go: another thread's ops go on as usual.
    let q = p.clone();
    thread::spawn(move || q.nop().wait().expect("another thread's NOP"))
        .join()
        .unwrap();
    // A new `block_on` starts without pushing its own, and reads its
    // results right.
    let before = p.stats().holder_pushes;
    let zero = Arc::new(std::fs::File::open("/dev/zero").unwrap());
    block_on(async {
        for i in 0..100 {
            let (n, buf) = p.read(&zero, vec![1u8; 64 + i], 0).await;
            assert_eq!(n.expect("a read"), 64 + i);
            assert!(buf.iter().all(|&b| b == 0));
        }
    });
    assert!(p.stats().holder_pushes >= before + 50);
}

#[test]
fn ops_another_thread_only_polls_complete_while_the_holder_pushes_its_own() {
    // The holder runs NOPs one at a time until the other thread is done;
    // the other thread only polls its ops (it never drives): each is
    // queued while the holder pushes its own, which must wake or tell
    // the holder. Some arrive while it waits in the kernel, some while its
    // future runs.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (warm_tx, warm_rx) = mpsc::channel();
    let holder = {
        let (p, done) = (p.clone(), done.clone());
        thread::spawn(move || {
            block_on(async {
                nops(&p, WARM).await;
                warm_tx.send(()).unwrap();
                let start = Instant::now();
                let mut n = 0u64;
                while !done.load(Ordering::Acquire) && start.elapsed() < LIMIT {
                    p.nop().await.expect("the holder's NOP");
                    n += 1;
                }
                n
            })
        })
    };
    warm_rx.recv().unwrap();
    assert!(p.stats().holder_pushes > 0, "the holder pushes its own");
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Arc::new(a);
    for i in 0..200u32 {
        let out = if i % 2 == 0 {
            poll_only(p.nop()).map(|r| r.expect("a polled NOP"))
        } else {
            b.write_all(&i.to_ne_bytes()).unwrap();
            poll_only(p.recv(&a, vec![0u8; 4], MsgFlags::empty())).map(|(n, buf)| {
                assert_eq!(n.expect("a polled recv"), 4);
                assert_eq!(buf, i.to_ne_bytes());
            })
        };
        assert!(
            out.is_some(),
            "op {i} of a thread that only polls never completed"
        );
    }
    done.store(true, Ordering::Release);
    let turns = holder.join().unwrap();
    assert!(turns > 0);
    let stats = p.stats();
    assert_eq!(stats.unexpected_cqes, 0);
    assert_eq!(stats.cq_overflow, 0);
    // Quiet again, the holder pushed its own between the other's ops.
    assert!(stats.holder_pushes >= WARM as u64 / 2, "{stats:?}");
}

#[test]
fn an_op_the_holder_pushed_reaches_the_kernel_while_its_future_blocks() {
    // The holder's future pushes a write into the SQ, then blocks in user
    // code until another thread has read what it wrote. The write sits in
    // the SQ, not yet entered: the fallback thread must see the holder
    // stuck with work in flight, take the ring over and submit it.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (a, read_rx, reader) = five_bytes_reader();
    let got = block_on(async {
        nops(&p, WARM).await;
        let pushed = p.stats().holder_pushes;
        assert!(pushed > 0, "the holder pushes its own");
        let mut write = p.write(&a, b"hello".to_vec(), 0);
        // One poll: pushed, not entered.
        let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut write).poll(cx))).await;
        assert!(polled.is_pending());
        assert_eq!(
            p.stats().holder_pushes,
            pushed + 1,
            "the write went straight in"
        );
        // Blocks, as user code may, until the reader got the bytes.
        let got = read_rx.recv_timeout(LIMIT);
        let (n, _) = write.await;
        assert_eq!(n.expect("the write"), 5);
        got
    });
    assert_eq!(
        &got.expect("the pushed write never reached the kernel"),
        b"hello"
    );
    reader.join().unwrap();
    assert!(p.stats().token_takeovers >= 1, "{:?}", p.stats());
}

#[test]
fn an_op_queued_by_a_block_on_whose_future_then_blocks_reaches_the_kernel() {
    for warm in [0, 3] {
        let p = Proactor::new(ProactorConfig::new(8)).unwrap();
        queued_then_blocks(&p, warm);
        assert_eq!(p.stats().holder_pushes, 0, "(not pushed by the holder)");
    }
}

/// The same with the tokio drive task attached: the fallback thread then
/// drives nothing itself, and the drive task is not told of work a
/// thread that drives next queues.
#[cfg(feature = "tokio")]
#[test]
fn an_op_queued_by_a_block_on_whose_future_then_blocks_reaches_the_kernel_beside_a_drive_task() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .unwrap();
    for warm in [0, 3] {
        let p = Proactor::new(ProactorConfig::new(8)).unwrap();
        let driver = rt.block_on(async { ring_io_proactor::tokio::spawn_driver(&p).unwrap() });
        // The drive task waits for work.
        thread::sleep(Duration::from_millis(20));
        queued_then_blocks(&p, warm);
        driver.abort();
    }
}

/// The first thing `block_on`'s future does after `warm` NOPs: queue a
/// write (its thread has not taken the token yet when `warm` is 0: it
/// takes it once the future returns; else it holds it, stepped out), then
/// block in user code until another thread has read what it wrote.
/// Nobody drives: another driver must take the ring once the caller that
/// was to drive has not, and submit it.
fn queued_then_blocks(p: &Proactor, warm: usize) {
    let (a, read_rx, reader) = five_bytes_reader();
    let got = block_on(async {
        nops(p, warm).await;
        let mut write = p.write(&a, b"hello".to_vec(), 0);
        let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut write).poll(cx))).await;
        assert!(polled.is_pending());
        let got = read_rx.recv_timeout(LIMIT);
        let (n, _) = write.await;
        assert_eq!(n.expect("the write"), 5);
        got
    });
    assert_eq!(
        &got.unwrap_or_else(|e| panic!(
            "after {warm} ops: the queued write never reached the kernel: {e}"
        )),
        b"hello"
    );
    reader.join().unwrap();
}

#[test]
fn the_holders_own_cancellations_and_queued_work_go_out() {
    // While the holder pushes its own: its future drops a receive that
    // waits for ever (a cancellation to send), starts a linked chain (the
    // queue, not the SQ), and drops more in a waker's turn. Each must go
    // out at the holder's next turn: the receives' buffers come back
    // (orphans freed) and the chains complete.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let a = Arc::new(a);
    let start = p.stats();
    block_on(async {
        nops(&p, WARM).await;
        for round in 0..20 {
            let mut recv = p.recv(&a, vec![0u8; 16], MsgFlags::empty());
            let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut recv).poll(cx))).await;
            assert!(polled.is_pending(), "round {round}: no data was sent");
            p.nop().await.expect("a NOP while the receive waits");
            drop(recv);
            // A chain goes through the queue.
            let (first, second) = p.nop().link(p.nop()).await;
            first.expect("the chain's first NOP");
            second.expect("the chain's second NOP");
            nops(&p, 20).await;
        }
    });
    let deadline = Instant::now() + LIMIT;
    while p.stats().orphans_freed < start.orphans_freed + 20 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let stats = p.stats();
    assert_eq!(stats.orphans_freed - start.orphans_freed, 20, "{stats:?}");
    assert!(stats.cancels - start.cancels >= 20, "{stats:?}");
    assert!(stats.holder_pushes > 0);
    assert_eq!(stats.unexpected_cqes, 0);
}

#[test]
fn more_ops_at_once_than_the_sq_holds_while_the_holder_pushes_its_own() {
    // Entries for 4: the holder's future submits 64 at once, each refilled
    // as it completes, so most of a poll's ops find the SQ full and go to
    // the queue; all complete, each once.
    let p = Proactor::new(ProactorConfig::new(4).max_in_flight(64)).unwrap();
    let completed = AtomicUsize::new(0);
    block_on(async {
        nops(&p, WARM).await;
        let mut ops: Vec<_> = (0..64).map(|_| Some(p.nop())).collect();
        let mut left = 64 * 20;
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for op in &mut ops {
                while let Some(o) = op {
                    match Pin::new(o).poll(cx) {
                        Poll::Ready(r) => {
                            r.expect("a NOP");
                            completed.fetch_add(1, Ordering::Relaxed);
                            left -= 1;
                            *op = (left >= 64).then(|| p.nop());
                        }
                        Poll::Pending => {
                            pending = true;
                            break;
                        }
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    });
    assert_eq!(completed.load(Ordering::Relaxed), 64 * 20);
    let stats = p.stats();
    assert!(stats.holder_pushes > 0);
    assert_eq!(stats.unexpected_cqes, 0);
}

#[test]
fn nested_block_ons_inside_a_holder_that_pushes_its_own() {
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let n = block_on(async {
        nops(&p, WARM).await;
        let mut n = 0;
        for _ in 0..50 {
            // A nested `block_on` (an op's `wait`) takes the token again on
            // this thread, then lets the outer one go on.
            p.nop().wait().expect("a nested wait");
            block_on(nops(&p, 20));
            p.nop().await.expect("the outer's NOP");
            n += 1;
        }
        n
    });
    assert_eq!(n, 50);
    let stats = p.stats();
    assert!(stats.holder_pushes > 500, "{stats:?}");
    assert_eq!(stats.unexpected_cqes, 0);
}

#[test]
fn threads_that_take_the_token_from_each_other_while_pushing_their_own() {
    // Four threads, each a `block_on` of NOPs one at a time: one holds the
    // token and pushes its own, the others' ops are queued (and wake it),
    // or they take the token over; every op completes once.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let total = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (p, total) = (p.clone(), total.clone());
            thread::spawn(move || {
                block_on(async {
                    for i in 0..2000 {
                        p.nop().await.expect("a NOP");
                        total.fetch_add(1, Ordering::Relaxed);
                        if (i + t) % 500 == 0 {
                            // User code that takes a while.
                            thread::sleep(Duration::from_millis(2));
                        }
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(total.load(Ordering::Relaxed), 8000);
    let stats = p.stats();
    assert_eq!(stats.unexpected_cqes, 0);
    assert_eq!(stats.cq_overflow, 0);
}

#[test]
fn the_last_handle_dropped_by_another_thread_while_the_holder_pushes_its_own() {
    // The holder's future holds no handle: it runs ops of one it is sent,
    // then drops it; the other thread drops the last one while the holder
    // waits on its next op.
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let q = p.clone();
    let (started_tx, started_rx) = mpsc::channel();
    let holder = thread::spawn(move || {
        block_on(async move {
            nops(&q, WARM).await;
            let pushed = q.stats().holder_pushes;
            let mut timer = q.timeout(Duration::from_millis(200));
            // Pushed (polled once) before the handle goes.
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut timer).poll(cx))).await;
            assert!(polled.is_pending());
            assert_eq!(q.stats().holder_pushes, pushed + 1);
            drop(q);
            started_tx.send(pushed).unwrap();
            timer.await
        })
    });
    let pushed = started_rx.recv().unwrap();
    assert!(pushed > 0);
    drop(p);
    let timer = holder.join().unwrap();
    // Cancelled by the shutdown, or ended first: either way it ended.
    assert!(
        timer.is_ok()
            || timer
                .as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::ECANCELED)),
        "{timer:?}"
    );
}
