//! The Proactor on the running kernel: every op it offers, drop
//! cancellation, back-pressure through a small CQ, and shutdown.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ring_io_proactor::fs::OpenOptions;
use ring_io_proactor::{
    CURRENT_POSITION, Domain, IoBuf, MsgFlags, Op, PollEvents, Proactor, ProactorConfig,
    SocketType, StatxFlags,
};

fn proactor() -> Proactor {
    Proactor::new(ProactorConfig::new(32)).expect("a proactor on this kernel")
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 returned two new fds that nothing else owns.
    unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ring-proactor-{}-{name}", std::process::id()))
}

/// Polls a future once with a waker that counts wake-ups.
fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

struct Flag(Mutex<u32>);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        *self.0.lock().unwrap() += 1;
    }
}

#[test]
fn nop_completes() {
    let p = proactor();
    p.nop().wait().unwrap();
    let stats = p.stats();
    assert_eq!(stats.completed, 1);
    assert_eq!(stats.cq_overflow, 0);
}

#[test]
fn write_then_read_a_file_with_owned_buffers() {
    let p = proactor();
    let path = temp_path("rw");
    let file = std::fs::File::create_new(&path).unwrap();
    let file = Arc::new(file);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let (n, back) = p.write(&file, data.clone(), 0).wait();
    assert_eq!(n.unwrap(), data.len());
    assert_eq!(back, data, "the write hands its buffer back unchanged");
    p.fsync(&file, false).wait().unwrap();
    p.fsync(&file, true).wait().unwrap();
    // A read fills the buffer from its start, up to its capacity; the
    // length becomes max(len, n): old bytes past `n` stay.
    let mut buf = Vec::with_capacity(20_000);
    buf.resize(15_000, 1);
    let (n, buf) = p.read(&file, buf, 100).wait();
    let n = n.unwrap();
    assert_eq!(n, data.len() - 100);
    assert_eq!(&buf[..n], &data[100..]);
    assert_eq!(buf.len(), 15_000, "max(len, n)");
    assert!(buf[n..].iter().all(|&b| b == 1));
    // A shorter length grows to `n`.
    let (n, buf) = p.read(&file, buf, 9_000).wait();
    assert_eq!(n.unwrap(), 1_000);
    assert_eq!(&buf[..1_000], &data[9_000..]);
    assert_eq!(buf.len(), 15_000);
    let (n, buf) = p.read(&file, Vec::with_capacity(20_000), 0).wait();
    assert_eq!((n.unwrap(), buf), (data.len(), data));
    drop(file);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_pending_read_completes_when_data_arrives() {
    let p = proactor();
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut op = p.read(&r, Vec::with_capacity(64), CURRENT_POSITION);
    let flag = Arc::new(Flag(Mutex::new(0)));
    let waker = Waker::from(flag.clone());
    assert!(poll_once(&mut op, &waker).is_pending());
    thread::sleep(Duration::from_millis(20));
    assert!(poll_once(&mut op, &waker).is_pending(), "no data yet");
    assert_eq!(
        *flag.0.lock().unwrap(),
        0,
        "no wake-up without a completion"
    );
    std::fs::File::from(w).write_all(b"ping").unwrap();
    let (n, buf) = op.wait();
    assert_eq!(n.unwrap(), 4);
    assert_eq!(buf, b"ping");
}

#[test]
fn a_file_passed_by_value_stays_open_until_the_op_finishes() {
    let p = proactor();
    // The read end moves into the op; the op is pending when it is made.
    let (r, w) = pipe();
    let mut op = p.read(r, Vec::with_capacity(16), CURRENT_POSITION);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    assert!(poll_once(&mut op, &waker).is_pending());
    thread::sleep(Duration::from_millis(5));
    std::fs::File::from(w).write_all(b"by value").unwrap();
    let (n, buf) = op.wait();
    assert_eq!(n.unwrap(), 8, "the op's file was not closed under it");
    assert_eq!(buf, b"by value");
    // The same for a write to a file that is not polled until later.
    let path = temp_path("by-value");
    let op = p.write(
        std::fs::File::create_new(&path).unwrap(),
        b"kept".to_vec(),
        0,
    );
    thread::sleep(Duration::from_millis(5));
    assert_eq!(op.wait().0.unwrap(), 4);
    assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_op_holds_a_shared_file_until_its_last_cqe() {
    let p = proactor();
    let (r, w) = pipe();
    let r = Arc::new(r);
    // The caller lets go of its handle while the read is pending: the op's
    // clone keeps the pipe open.
    let op = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION);
    assert_eq!(Arc::strong_count(&r), 2);
    drop(r);
    thread::sleep(Duration::from_millis(5));
    std::fs::File::from(w).write_all(b"still open").unwrap();
    let (n, buf) = op.wait();
    assert_eq!(n.unwrap(), 10);
    assert_eq!(buf, b"still open");
    // A dropped op lets the file go only after its CQE (the cancel's).
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let mut op = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    assert!(poll_once(&mut op, &waker).is_pending());
    thread::sleep(Duration::from_millis(5));
    drop(op);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // The count first: the thread counts the orphan (under its lock)
        // before it frees the resources, so a count of 2 read before the
        // stat moved was read before the CQE.
        let count = Arc::strong_count(&r);
        if p.stats().orphans_freed > 0 {
            break;
        }
        assert_eq!(count, 2, "let go before the CQE");
        assert!(
            Instant::now() < deadline,
            "the cancelled read's CQE never came"
        );
        thread::sleep(Duration::from_millis(1));
    }
    only_owner(&r, "the cancelled read's pipe");
    // A completed op lets it go at once.
    let (n, _) = p.write(&r, b"x".to_vec(), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(Arc::strong_count(&r), 1);
}

/// Waits (at most 5 s) until the test holds the only reference to `arc`:
/// the Proactor counts a dropped op in `orphans_freed` under its lock when
/// the op's last CQE is reaped, and frees what the op held just after,
/// outside the lock (`ProactorStats::orphans_freed`), so the reference goes
/// a moment after the count moves.
fn only_owner<T>(arc: &Arc<T>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(arc) != 1 {
        assert!(
            Instant::now() < deadline,
            "{what} is still held 5 s after its last CQE ({} references)",
            Arc::strong_count(arc)
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn started_ops_run_together_before_they_are_polled() {
    // A budget of 7 ops.
    let p = Proactor::new(ProactorConfig::new(8).cq_entries(16).max_in_flight(7)).unwrap();
    assert_eq!(p.max_in_flight(), 7);
    let (r, w) = pipe();
    let r = Arc::new(r);
    let reads: Vec<_> = (0..10)
        .map(|_| p.read(&r, Vec::with_capacity(4), CURRENT_POSITION).start())
        .collect();
    // Seven are in the kernel (with the wake-up read) before any is polled;
    // the other three wait for the budget and go in when polled.
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().max_in_ring < 8 {
        assert!(Instant::now() < deadline, "{:?}", p.stats());
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(10));
    assert_eq!(p.stats().max_in_ring, 8, "no more than the budget");
    let mut w = std::fs::File::from(w);
    w.write_all(&[7; 40]).unwrap();
    let mut total = 0;
    for read in reads {
        let (n, buf) = read.wait();
        assert_eq!(n.unwrap(), buf.len());
        assert!(buf.iter().all(|&b| b == 7));
        total += buf.len();
    }
    assert_eq!(total, 40);
}

#[test]
fn a_started_op_cannot_be_linked() {
    let p = proactor();
    // The started op runs alone; the op linked after it fails, clearly.
    let (started, next) = p.nop().start().link(p.nop()).wait();
    started.unwrap();
    let err = next.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "a started or polled op cannot be linked");
}

#[test]
fn fixed_buffers_write_read_and_go_back_to_the_pool() {
    let p = Proactor::new(ProactorConfig::new(16).fixed_buffers(4, 4096)).unwrap();
    assert!(proactor().fixed_buffer().is_none(), "none registered");
    let mut bufs: Vec<_> = (0..4).map(|_| p.fixed_buffer().unwrap()).collect();
    assert!(p.fixed_buffer().is_none(), "all four taken");
    let mut indices: Vec<u16> = bufs.iter().map(|b| b.index()).collect();
    indices.sort();
    assert_eq!(indices, [0, 1, 2, 3]);
    let mut out = bufs.pop().unwrap();
    let back = bufs.pop().unwrap();
    drop(bufs);
    // Write from one, read into another after a prefix.
    let path = temp_path("fixed");
    let file = Arc::new(std::fs::File::create_new(&path).unwrap());
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
    assert_eq!(into.len(), 3000);
    drop(into);
    // A dropped read keeps its buffer out of the pool until its CQE.
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let taken: Vec<_> = (0..3).map(|_| p.fixed_buffer().unwrap()).collect();
    let mut op = p.read_fixed(&r, p.fixed_buffer().unwrap(), CURRENT_POSITION);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    assert!(poll_once(&mut op, &waker).is_pending());
    thread::sleep(Duration::from_millis(5));
    drop(op);
    drop(taken);
    // Every free buffer, held until the count is taken.
    let free = || {
        std::iter::from_fn(|| p.fixed_buffer())
            .collect::<Vec<_>>()
            .len()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().orphans_freed == 0 {
        assert!(
            Instant::now() < deadline,
            "the cancelled read's CQE never came"
        );
        // The count first (see an_op_holds_a_shared_file_until_its_last_cqe).
        let n = free();
        if p.stats().orphans_freed == 0 {
            assert_eq!(n, 3, "the read's buffer came back before its CQE");
        }
        thread::sleep(Duration::from_millis(1));
    }
    // Counted under the lock when the CQE is reaped, freed just after it
    // (outside the lock): the buffer is back a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while free() != 4 {
        assert!(
            Instant::now() < deadline,
            "the read's buffer never came back"
        );
        thread::sleep(Duration::from_millis(1));
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn errors_come_back_as_io_errors_with_the_buffer() {
    let p = proactor();
    let (r, _w) = pipe();
    let r = Arc::new(r);
    // Writing to the read end of a pipe fails with EBADF.
    let (n, buf) = p.write(&r, b"xyz".to_vec(), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(buf, b"xyz");
}

#[test]
fn dropping_a_pending_read_cancels_it_and_frees_its_buffer_after_the_cqe() {
    let p = proactor();
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut w = std::fs::File::from(w);
    let flag = Arc::new(Flag(Mutex::new(0)));
    let waker = Waker::from(flag);
    for round in 0..50u32 {
        let mut op = p.read(&r, Vec::with_capacity(4096), CURRENT_POSITION);
        assert!(poll_once(&mut op, &waker).is_pending());
        if round % 2 == 1 {
            // Give the thread time to submit it, so the cancel meets it in
            // the kernel.
            thread::sleep(Duration::from_millis(2));
        }
        drop(op);
    }
    // Every dropped read's CQE arrives (cancelled), and only then its
    // buffer is freed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().orphans_freed < 50 {
        assert!(
            Instant::now() < deadline,
            "orphans not freed: {:?}",
            p.stats()
        );
        thread::sleep(Duration::from_millis(1));
    }
    let stats = p.stats();
    assert_eq!(stats.orphans_freed, 50);
    assert_eq!(stats.cancels, 50);
    // No cancelled read consumed data: what is written now is all read.
    w.write_all(b"after the cancels").unwrap();
    let (n, buf) = p.read(&r, Vec::with_capacity(64), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 17);
    assert_eq!(buf, b"after the cancels");
}

#[test]
fn dropped_reads_racing_with_writes_lose_no_bytes_to_live_reads() {
    // Reads are dropped while a writer fills the pipe: a dropped read may
    // have taken bytes (into its orphaned buffer, freed after its CQE), but
    // the bytes the live reads return are in order and unchanged.
    let p = proactor();
    let (r, w) = pipe();
    let r = Arc::new(r);
    let writer = thread::spawn(move || {
        let mut w = std::fs::File::from(w);
        for i in 0..2000u32 {
            w.write_all(&i.to_le_bytes()).unwrap();
        }
    });
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    let mut live = Vec::new();
    for i in 0..200 {
        let mut op = p.read(&r, Vec::with_capacity(4), CURRENT_POSITION);
        let _ = poll_once(&mut op, &waker);
        if i % 2 == 0 {
            drop(op);
        } else {
            let (n, buf) = op.wait();
            let n = n.unwrap();
            assert_eq!(buf.len(), n);
            live.push(buf);
        }
    }
    writer.join().unwrap();
    assert_eq!(live.len(), 100);
    assert!(live.iter().all(|b| !b.is_empty() && b.len() <= 4));
    drop(p);
}

#[test]
fn a_million_nops_through_a_64_entry_cq_each_complete_exactly_once() {
    let total: u64 = std::env::var("RING_PROACTOR_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        });
    let p = Proactor::new(ProactorConfig::new(32).cq_entries(64)).unwrap();
    assert_eq!(p.stats().cq_entries, 64);
    assert_eq!(p.max_in_flight(), ring_io_proactor::DEFAULT_MAX_IN_FLIGHT);
    // A tiny executor that never drives the Proactor (the fallback thread
    // does): 256 ops at once, four times the CQ, so completions outrun it
    // and wait in the kernel's overflow backlog. Each waker records its
    // index; an op completed twice would poll after `Ready` and panic.
    const LIVE: usize = 256;
    struct Ready {
        queue: Mutex<Vec<usize>>,
        thread: thread::Thread,
    }
    struct Slot(Arc<Ready>, usize);
    impl Wake for Slot {
        fn wake(self: Arc<Self>) {
            self.0.queue.lock().unwrap().push(self.1);
            self.0.thread.unpark();
        }
    }
    let ready = Arc::new(Ready {
        queue: Mutex::new((0..LIVE).collect()),
        thread: thread::current(),
    });
    let wakers: Vec<Waker> = (0..LIVE)
        .map(|i| Waker::from(Arc::new(Slot(ready.clone(), i))))
        .collect();
    let mut ops: Vec<Option<Op<io::Result<()>>>> = (0..LIVE).map(|_| Some(p.nop())).collect();
    let mut started = LIVE as u64;
    let mut done = 0u64;
    let start = Instant::now();
    while done < total {
        let batch = std::mem::take(&mut *ready.queue.lock().unwrap());
        if batch.is_empty() {
            thread::park_timeout(Duration::from_millis(100));
            continue;
        }
        for i in batch {
            let Some(op) = ops[i].as_mut() else { continue };
            if let Poll::Ready(res) = poll_once(op, &wakers[i]) {
                res.unwrap();
                done += 1;
                ops[i] = None;
                if started < total {
                    ops[i] = Some(p.nop());
                    started += 1;
                    ready.queue.lock().unwrap().push(i);
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "stuck at {done}"
        );
    }
    let stats = p.stats();
    eprintln!("{total} NOPs in {:?}: {stats:?}", start.elapsed());
    assert_eq!(stats.completed, total, "every completion delivered once");
    assert_eq!(stats.cq_overflow, 0, "no CQE dropped");
    assert!(
        stats.max_in_ring > 64,
        "more in flight than the CQ holds: {stats:?}"
    );
    assert!(stats.enters < total, "batched submissions: {stats:?}");
}

#[test]
fn blocking_waits_from_many_threads_past_the_budget() {
    let p = Arc::new(Proactor::new(ProactorConfig::new(4).max_in_flight(2)).unwrap());
    assert_eq!(p.max_in_flight(), 2);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let p = p.clone();
            thread::spawn(move || {
                for _ in 0..500 {
                    p.nop().wait().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = p.stats();
    assert_eq!(stats.completed, 4000);
    // Two user ops plus their cancels (none here) plus the wake-up read.
    assert!(stats.max_in_ring <= 3, "{stats:?}");
}

#[test]
fn timeout_waits_at_least_its_duration() {
    let p = proactor();
    let start = Instant::now();
    p.timeout(Duration::from_millis(30)).wait().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn open_statx_close() {
    let p = proactor();
    let path = temp_path("open");
    let create_new = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .clone();
    let fd = p.open(&path, &create_new).wait().unwrap();
    let fd = Arc::new(fd);
    let (n, _) = p.write(&fd, vec![7; 1234], 0).wait();
    assert_eq!(n.unwrap(), 1234);
    let st = p.statx(&path, StatxFlags::empty()).wait().unwrap();
    assert_eq!(st.len(), 1234);
    assert!(st.is_file());
    assert_eq!(st.mode() & 0o777, 0o600);
    let fd = Arc::try_unwrap(fd).expect("the write has finished with it");
    p.close(fd).wait().unwrap();
    let err = p.open(&path, &create_new).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    let read = OpenOptions::new().read(true).clone();
    let err = p.open("/no/such\0path", &read).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    std::fs::remove_file(&path).unwrap();
    let err = p.statx(&path, StatxFlags::empty()).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn accept_connect_send_recv_on_loopback() {
    let p = proactor();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = Arc::new(listener);
    let addr = listener.local_addr().unwrap();
    // Futures are lazy: poll the accept once so it is in flight before
    // the connect is waited on.
    let mut accept = p.accept(&listener);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    assert!(poll_once(&mut accept, &waker).is_pending());
    // SAFETY: socket(2) takes no pointers; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0);
    // SAFETY: a new fd nothing else owns.
    let client = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let client = Arc::new(client);
    let connect = p.connect(&client, addr);
    connect.wait().unwrap();
    let server = accept.wait().unwrap();
    let server = Arc::new(server);
    let (n, _) = p
        .send(&client, b"hello over tcp".to_vec(), MsgFlags::empty())
        .wait();
    assert_eq!(n.unwrap(), 14);
    let mut got = Vec::new();
    while got.len() < 14 {
        let (n, buf) = p
            .recv(&server, Vec::with_capacity(64), MsgFlags::empty())
            .wait();
        assert!(n.unwrap() > 0);
        got.extend_from_slice(&buf);
    }
    assert_eq!(got, b"hello over tcp");
    drop(client);
    let (n, _) = p
        .recv(&server, Vec::with_capacity(64), MsgFlags::empty())
        .wait();
    assert_eq!(n.unwrap(), 0, "end of stream");
    // Connection refused is an error, not a hang.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free.local_addr().unwrap();
    drop(free);
    // SAFETY: as above.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: as above.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let sock = Arc::new(sock);
    let err = p.connect(&sock, closed).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn socket_connect_and_shutdown_or_a_clear_unsupported_error() {
    let p = proactor();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let kernel = common::kernel();
    let sock = match p.socket(Domain::IPV4, SocketType::STREAM, None).wait() {
        Ok(sock) => Arc::new(sock),
        Err(e) => {
            // Before 5.19 the op is refused up front, naming what it needs.
            assert!(!kernel.at_least(5, 19), "{e}");
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
            assert!(e.to_string().starts_with("Socket needs Linux 5.19"), "{e}");
            // SAFETY: socket(2) takes no pointers; the result is checked.
            let raw =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            assert!(raw >= 0);
            // SAFETY: a new fd nothing else owns.
            Arc::new(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
        }
    };
    p.connect(&sock, addr).wait().unwrap();
    let (mut server, _) = listener.accept().unwrap();
    match p.shutdown(&sock, std::net::Shutdown::Write).wait() {
        Ok(()) => {
            // The peer reads end of stream.
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
        }
        Err(e) => {
            assert!(!kernel.at_least(5, 11), "{e}");
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
            assert!(
                e.to_string().starts_with("Shutdown needs Linux 5.11"),
                "{e}"
            );
        }
    }
}

#[test]
fn readv_and_writev_split_across_buffers() {
    let p = proactor();
    let (a, b) = UnixStream::pair().unwrap();
    let a = Arc::new(a);
    let b = Arc::new(b);
    let bufs = vec![b"one-".to_vec(), b"two-".to_vec(), b"three".to_vec()];
    let (n, back) = p.writev(&a, bufs.clone(), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 13);
    assert_eq!(back, bufs);
    // Each buffer is filled from its start, up to its capacity, in turn.
    let mut first = Vec::with_capacity(6);
    first.extend_from_slice(b"<");
    let read = vec![first, Vec::with_capacity(3), Vec::with_capacity(100)];
    let (n, got) = p.readv(&b, read, CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 13);
    assert_eq!(got[0], b"one-tw");
    assert_eq!(got[1], b"o-t");
    assert_eq!(got[2], b"hree");
}

#[test]
fn poll_reports_readiness() {
    let p = proactor();
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Arc::new(a);
    let events = p.poll(&a, PollEvents::OUT).wait().unwrap();
    assert!(events.contains(PollEvents::OUT));
    let mut op = p.poll(&a, PollEvents::IN);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    assert!(poll_once(&mut op, &waker).is_pending());
    b.write_all(b"x").unwrap();
    let events = op.wait().unwrap();
    assert!(events.contains(PollEvents::IN));
}

#[test]
fn splice_moves_bytes_through_a_pipe() {
    let p = proactor();
    let path = temp_path("splice");
    std::fs::write(&path, b"spliced bytes").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let file = Arc::new(file);
    let (r, w) = pipe();
    let w = Arc::new(w);
    let n = p.splice(&file, Some(0), &w, None, 64).wait().unwrap();
    assert_eq!(n, 13);
    let mut out = [0; 13];
    std::fs::File::from(r).read_exact(&mut out).unwrap();
    assert_eq!(&out, b"spliced bytes");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn dropping_the_proactor_cancels_what_is_in_flight() {
    let p = proactor();
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    let mut live = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION);
    assert!(poll_once(&mut live, &waker).is_pending());
    let mut dropped = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION);
    assert!(poll_once(&mut dropped, &waker).is_pending());
    drop(dropped);
    let unpolled = p.nop();
    thread::sleep(Duration::from_millis(10));
    let start = Instant::now();
    drop(p);
    assert!(start.elapsed() < Duration::from_secs(5));
    let (n, buf) = live.wait();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert!(buf.is_empty());
    assert_eq!(
        unpolled.wait().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
}

#[test]
fn ops_are_futures_for_any_executor() {
    // Join several ops in one future, driven by block_on.
    let p = proactor();
    let (a, b) = UnixStream::pair().unwrap();
    let b = Arc::new(b);
    let a = Arc::new(a);
    let out = ring_io_proactor::block_on(async {
        let read = p.read(&b, Vec::with_capacity(8), CURRENT_POSITION);
        let (n, _) = p.write(&a, b"async".to_vec(), CURRENT_POSITION).await;
        n.unwrap();
        p.nop().await.unwrap();
        read.await
    });
    let (n, buf) = out;
    assert_eq!(n.unwrap(), 5);
    assert_eq!(buf, b"async");
    let _ = a.as_fd().as_raw_fd();
}

/// A task's waker for [`a_batch_of_one_tasks_ops_wakes_it_once_and_its_next_ops_reuse_its_wakers`]:
/// counts its wake-ups and passes them on to `block_on`'s.
struct Task {
    woken: Mutex<u32>,
    outer: Mutex<Option<Waker>>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock().unwrap() += 1;
        if let Some(outer) = &*self.outer.lock().unwrap() {
            outer.wake_by_ref();
        }
    }
}

#[test]
fn a_batch_of_one_tasks_ops_wakes_it_once_and_its_next_ops_reuse_its_wakers() {
    // Eight NOPs of one task complete in one turn of the thread in
    // `block_on`: the task is woken once, and the seven other clones of
    // its waker are kept for its next ops (no clone, no drop), not
    // dropped; none outlives the ops. The task's count of references is
    // what shows it: its own two (`task`, `waker`), plus the clones.
    let p = proactor();
    let task = Arc::new(Task {
        woken: Mutex::new(0),
        outer: Mutex::new(None),
    });
    let waker = Waker::from(task.clone());
    let mut ops: Vec<Op<io::Result<()>>> = Vec::new();
    let mut round = 0;
    let mut kept = Vec::new();
    ring_io_proactor::block_on(std::future::poll_fn(|cx| {
        *task.outer.lock().unwrap() = Some(cx.waker().clone());
        let mut inner = Context::from_waker(&waker);
        loop {
            if ops.is_empty() {
                if round == 2 {
                    return Poll::Ready(());
                }
                round += 1;
                // The clones kept from the last batch (none before the
                // first), in the poll that took its results.
                kept.push(Arc::strong_count(&task) - 2);
                ops = (0..8).map(|_| p.nop()).collect();
            }
            ops.retain_mut(|op| match Pin::new(op).poll(&mut inner) {
                Poll::Ready(res) => {
                    res.unwrap();
                    false
                }
                Poll::Pending => true,
            });
            if !ops.is_empty() {
                return Poll::Pending;
            }
        }
    }));
    let stats = p.stats();
    let takeovers = stats.token_takeovers + stats.fallback_takeovers;
    task.outer.lock().unwrap().take();
    let woken = *task.woken.lock().unwrap();
    drop(waker);
    assert_eq!(Arc::strong_count(&task), 1, "no clone outlives the ops");
    if takeovers > 0 {
        // The fallback thread drove (this thread was held up 50 ms inside
        // its poll, on a loaded machine), completing ops one by one: the
        // batch was not this thread's to wake.
        eprintln!("the fallback thread took over ({takeovers}): batch counts not checked");
        return;
    }
    assert_eq!(woken, 2, "one wake-up per batch");
    assert_eq!(kept, [0, 7], "the first batch's wakers, but the one woken");
}

#[test]
fn linked_write_then_read_run_in_order() {
    let p = proactor();
    let path = temp_path("link");
    let file = std::fs::File::create_new(&path).unwrap();
    let file = Arc::new(file);
    let ((w, _), (r, buf)) = p
        .write(&file, b"linked".to_vec(), 0)
        .link(p.read(&file, Vec::with_capacity(16), 0))
        .wait();
    assert_eq!(w.unwrap(), 6);
    assert_eq!(r.unwrap(), 6);
    assert_eq!(buf, b"linked");
    // A failing head cancels the rest of the chain.
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let ((w, _), n) = p
        .write(&r, b"x".to_vec(), CURRENT_POSITION)
        .link(p.nop())
        .wait();
    assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    drop(file);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn chains_of_any_length_run_in_order_and_stop_at_the_first_failure() {
    let p = proactor();
    let path = temp_path("chain");
    let file = Arc::new(std::fs::File::create_new(&path).unwrap());
    // write -> write -> fsync -> read, built left to right.
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
    // A chain linked after an op (right-nested) is one chain too; an op in
    // the middle that falls short (a 7-byte read of 16: a failure, for a
    // chain) cancels every op after it and none before. (A failure found
    // when the kernel takes the entry, such as a bad fd, cancels the whole
    // chain before Linux 5.17; a short read is found when the op runs.)
    let (first, (short, (third, fourth))) = p
        .nop()
        .link(
            p.read(&file, Vec::with_capacity(16), 0)
                .link(p.nop().link(p.read(&file, Vec::with_capacity(4), 0))),
        )
        .wait();
    first.unwrap();
    assert_eq!(short.0.unwrap(), 7);
    assert_eq!(third.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(fourth.0.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(p.stats().cq_overflow, 0);
    drop(file);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_link_timeout_bounds_a_read_that_never_completes() {
    let p = proactor();
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let start = Instant::now();
    let ((n, buf), timeout) = p
        .read(&r, Vec::with_capacity(8), CURRENT_POSITION)
        .link(p.link_timeout(Duration::from_millis(30)))
        .wait();
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert!(buf.is_empty());
    assert_eq!(timeout.unwrap_err().raw_os_error(), Some(libc::ETIME));
    // Completing first cancels the timeout.
    let (a, b) = UnixStream::pair().unwrap();
    let b = Arc::new(b);
    (&a).write_all(b"quick").unwrap();
    let ((n, buf), timeout) = p
        .read(&b, Vec::with_capacity(8), CURRENT_POSITION)
        .link(p.link_timeout(Duration::from_secs(10)))
        .wait();
    assert_eq!(n.unwrap(), 5);
    assert_eq!(buf, b"quick");
    assert_eq!(timeout.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(p.stats().cq_overflow, 0);
}

#[test]
fn cancel_fd_cancels_pending_reads() {
    let p = proactor();
    if !common::kernel().at_least(5, 19) {
        skip!(
            "cancel_fd_cancels_pending_reads",
            "IORING_ASYNC_CANCEL_FD needs Linux 5.19"
        );
    }
    let (r, _w) = pipe();
    let r = Arc::new(r);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    let mut ops: Vec<_> = (0..3)
        .map(|_| p.read(&r, Vec::with_capacity(8), CURRENT_POSITION))
        .collect();
    for op in &mut ops {
        assert!(poll_once(op, &waker).is_pending());
    }
    thread::sleep(Duration::from_millis(10));
    assert_eq!(p.cancel_fd(&r).wait().unwrap(), 3);
    for op in ops {
        let (n, _) = op.wait();
        assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    }
}

#[test]
fn send_to_and_recv_from_on_udp() {
    let p = proactor();
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = Arc::new(a);
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = Arc::new(b);
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut recv = p.recv_from(&b, Vec::with_capacity(64));
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    assert!(poll_once(&mut recv, &waker).is_pending());
    let (n, buf) = p.send_to(&a, b"datagram".to_vec(), b_addr).wait();
    assert_eq!(n.unwrap(), 8);
    assert_eq!(buf, b"datagram");
    let (res, buf) = recv.wait();
    let (n, from) = res.unwrap();
    assert_eq!(n, 8);
    assert_eq!(buf, b"datagram");
    assert_eq!(from, Some(a_addr));
    // IPv6 loopback, where the host has it.
    if let Ok(c) = std::net::UdpSocket::bind("[::1]:0") {
        let c = Arc::new(c);
        let c_addr = c.local_addr().unwrap();
        let d = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let d = Arc::new(d);
        let (n, _) = p.send_to(&d, b"six".to_vec(), c_addr).wait();
        assert_eq!(n.unwrap(), 3);
        let (res, buf) = p.recv_from(&c, Vec::with_capacity(8)).wait();
        assert_eq!(res.unwrap(), (3, Some(d.local_addr().unwrap())));
        assert_eq!(buf, b"six");
    }
}

#[test]
fn a_burst_of_connections_past_the_accept_streams_headroom_loses_none() {
    if !common::kernel().at_least(5, 19) {
        skip!(
            "a_burst_of_connections_past_the_accept_streams_headroom_loses_none",
            "multishot accept needs Linux 5.19"
        );
    }
    // A 16-entry CQ: 100 connections arrive while nobody takes them. The
    // kernel posts one CQE each; past the CQ's room they wait in its
    // overflow backlog (IORING_FEAT_NODROP), which the driver flushes, or
    // the kernel ends the request, which the stream re-arms.
    let p = Proactor::new(ProactorConfig::new(8).cq_entries(16)).unwrap();
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let mut conns = p.accept_multi(&listener);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    assert!(
        conns
            .poll_next(&mut Context::from_waker(&waker))
            .is_pending()
    );
    thread::sleep(Duration::from_millis(10));
    const N: usize = 100;
    let clients: Vec<_> = (0..N)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(50));
    let mut peers = std::collections::HashSet::new();
    for _ in 0..N {
        let conn = conns.wait_next().expect("a connection").unwrap();
        let conn = std::net::TcpStream::from(conn);
        assert!(peers.insert(conn.peer_addr().unwrap()));
    }
    let mine: std::collections::HashSet<_> =
        clients.iter().map(|c| c.local_addr().unwrap()).collect();
    assert_eq!(peers, mine, "every client accepted once");
    let stats = p.stats();
    assert_eq!(stats.cq_overflow, 0, "nothing dropped: {stats:?}");
}

#[test]
fn multishot_accept_yields_every_connection() {
    if !common::kernel().at_least(5, 19) {
        skip!(
            "multishot_accept_yields_every_connection",
            "multishot accept needs Linux 5.19"
        );
    }
    let p = proactor();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = Arc::new(listener);
    let addr = listener.local_addr().unwrap();
    let mut conns = p.accept_multi(&listener);
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    assert!(
        conns
            .poll_next(&mut Context::from_waker(&waker))
            .is_pending()
    );
    let clients: Vec<_> = (0..5u8)
        .map(|i| {
            thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(&[i]).unwrap();
                s
            })
        })
        .collect();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let conn = conns.wait_next().expect("a connection").unwrap();
        let conn = Arc::new(conn);
        let (n, buf) = p
            .recv(&conn, Vec::with_capacity(4), MsgFlags::empty())
            .wait();
        assert_eq!(n.unwrap(), 1);
        seen.push(buf[0]);
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    let _clients: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let before = p.stats().orphans_freed;
    assert_eq!(
        Arc::strong_count(&listener),
        2,
        "the stream holds the socket"
    );
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().orphans_freed == before {
        assert!(
            Instant::now() < deadline,
            "the dropped stream's last CQE never came"
        );
        thread::sleep(Duration::from_millis(1));
    }
    only_owner(&listener, "the dropped accept stream's socket");
    assert_eq!(p.stats().cq_overflow, 0);
}

#[test]
fn multishot_recv_with_a_library_buffer_ring_gets_every_byte() {
    if !common::kernel().at_least(6, 0) {
        skip!(
            "multishot_recv_with_a_library_buffer_ring_gets_every_byte",
            "multishot recv needs Linux 6.0"
        );
    }
    let p = Proactor::new(ProactorConfig::new(16)).unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let b = Arc::new(b);
    const LEN: usize = 1 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i * 131 % 251) as u8).collect();
    let expect = data.clone();
    let writer = thread::spawn(move || {
        let mut a = a;
        for chunk in data.chunks(10_007) {
            a.write_all(chunk).unwrap();
        }
    });
    let mut stream = p.recv_multi(&b, 4, 4096);
    let mut got = Vec::with_capacity(LEN);
    let mut turns = 0u32;
    while let Some(chunk) = stream.wait_next() {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty() && chunk.len() <= 4096);
        got.extend_from_slice(&chunk);
        turns += 1;
        if turns % 50 == 0 {
            // A slow consumer: the kernel runs out of buffers (ENOBUFS) and
            // the stream re-arms.
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
    assert!(stats.max_in_ring <= stats.cq_entries, "{stats:?}");
}

#[test]
fn dropping_a_multishot_recv_frees_its_buffer_ring_after_the_last_cqe() {
    if !common::kernel().at_least(6, 0) {
        skip!(
            "dropping_a_multishot_recv_frees_its_buffer_ring_after_the_last_cqe",
            "multishot recv needs Linux 6.0"
        );
    }
    let p = proactor();
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = Arc::new(b);
    let mut stream = p.recv_multi(&b, 8, 64);
    a.write_all(b"first").unwrap();
    assert_eq!(stream.wait_next().unwrap().unwrap(), b"first");
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().orphans_freed == 0 {
        assert!(
            Instant::now() < deadline,
            "the dropped stream's last CQE never came"
        );
        thread::sleep(Duration::from_millis(1));
    }
    // Nothing reads the socket any more: the bytes stay there.
    a.write_all(b"second").unwrap();
    let (n, buf) = p.recv(&b, Vec::with_capacity(16), MsgFlags::empty()).wait();
    assert_eq!(n.unwrap(), 6);
    assert_eq!(buf, b"second");
}

#[path = "../examples/cp_proactor.rs"]
mod cp;

#[test]
fn cp_on_the_proactor_copies_every_byte() {
    let p = proactor();
    let (src, dst) = (temp_path("cp-src"), temp_path("cp-dst"));
    // Not a multiple of the 1 MiB block, more blocks than tasks.
    let data: Vec<u8> = (0..(5 << 20) + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let copied = cp::copy(&p, &src, &dst).unwrap();
    assert_eq!(copied, data.len() as u64);
    let back = std::fs::read(&dst).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the copy differs");
    std::fs::remove_file(&src).unwrap();
    std::fs::remove_file(&dst).unwrap();
    assert_eq!(p.stats().cq_overflow, 0);
}

#[test]
fn a_spinning_thread_serves_work_queued_while_it_polls_and_after_it_sleeps() {
    let spin = Duration::from_millis(20);
    let p = Proactor::new(ProactorConfig::new(16).spin(spin)).unwrap();
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut w = std::fs::File::from(w);
    for round in 0..6u32 {
        // Alternately within the spin (the thread polls, nobody wakes it)
        // and well after it (the thread sleeps in the kernel, the caller
        // writes its eventfd).
        let pause = if round % 2 == 0 {
            Duration::from_millis(1)
        } else {
            spin * 3
        };
        thread::sleep(pause);
        p.nop().wait().unwrap();
        let read = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION).start();
        thread::sleep(pause);
        w.write_all(&round.to_le_bytes()).unwrap();
        let (n, buf) = read.wait();
        assert_eq!(n.unwrap(), 4);
        assert_eq!(buf, round.to_le_bytes());
        // A dropped op is cancelled the same way.
        let mut op = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
        let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
        assert!(poll_once(&mut op, &waker).is_pending());
        drop(op);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().orphans_freed < 6 {
        assert!(Instant::now() < deadline, "{:?}", p.stats());
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(p.stats().cq_overflow, 0);
}

#[test]
fn a_submit_delay_gathers_a_batch() {
    let delay = Duration::from_millis(40);
    let p = Proactor::new(ProactorConfig::new(16).batch(4).submit_delay(delay)).unwrap();
    // A lone op waits out the delay: its batch never fills.
    let start = Instant::now();
    p.nop().wait().unwrap();
    assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
    // Four ops queued together fill the batch and go in one push.
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    let mut ops: Vec<_> = (0..4).map(|_| p.nop()).collect();
    for op in &mut ops {
        assert!(poll_once(op, &waker).is_pending());
    }
    for op in ops {
        op.wait().unwrap();
    }
    let stats = p.stats();
    assert_eq!(
        stats.max_in_ring, 5,
        "four ops and the wake-up read: {stats:?}"
    );
}

#[test]
fn proactor_ops_and_streams_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Proactor>();
    send::<Op<(io::Result<usize>, Vec<u8>)>>();
    send::<ring_io_proactor::Link<Op<io::Result<()>>, Op<io::Result<()>>>>();
    send::<ring_io_proactor::Multi<Vec<u8>>>();
    // An op made on one thread completes on another.
    let p = proactor();
    let (a, b) = UnixStream::pair().unwrap();
    let b = Arc::new(b);
    let op = p.read(&b, Vec::with_capacity(8), CURRENT_POSITION);
    let t = thread::spawn(move || op.wait());
    (&a).write_all(b"moved").unwrap();
    let (n, buf) = t.join().unwrap();
    assert_eq!(n.unwrap(), 5);
    assert_eq!(buf, b"moved");
}

#[test]
fn many_threads_dropping_and_completing_ops_leave_nothing_behind() {
    // Dropped ops are reads that only a cancellation ends (nothing is ever
    // written); live ops are NOPs and linked write/read pairs.
    let p = Arc::new(Proactor::new(ProactorConfig::new(8).cq_entries(16)).unwrap());
    let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let p = p.clone();
            let waker = waker.clone();
            thread::spawn(move || {
                let (idle, _keep) = pipe();
                let idle = Arc::new(idle);
                let (a, b) = UnixStream::pair().unwrap();
                let a = Arc::new(a);
                let b = Arc::new(b);
                let mut got = 0usize;
                for i in 0..300u32 {
                    let mut dropped = p.read(&idle, Vec::with_capacity(16), CURRENT_POSITION);
                    let _ = poll_once(&mut dropped, &waker);
                    if (i + t) % 2 == 0 {
                        drop(dropped);
                        p.nop().wait().unwrap();
                    } else {
                        let ((w, _), (r, buf)) = p
                            .write(&a, b"0123456789".to_vec(), CURRENT_POSITION)
                            .link(p.read(&b, Vec::with_capacity(16), CURRENT_POSITION))
                            .wait();
                        assert_eq!(w.unwrap(), 10);
                        assert_eq!(r.unwrap(), buf.len());
                        got += buf.len();
                        drop(dropped);
                    }
                }
                got
            })
        })
        .collect();
    for t in threads {
        let got = t.join().unwrap();
        assert!(got > 0);
    }
    // Every dropped op's CQE arrives and frees its buffer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = p.stats();
        if s.orphans_freed == s.cancels {
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        thread::sleep(Duration::from_millis(1));
    }
    let s = p.stats();
    assert!(s.cancels > 0, "{s:?}");
    assert_eq!(s.cq_overflow, 0, "no CQE dropped: {s:?}");
}

/// Rounds of the cancel race: on Linux 6.1 the kernel answers some
/// cancellations with ENOENT or EALREADY while the read is still armed.
const CANCEL_ROUNDS: u32 = 200;

#[test]
fn a_dropped_read_never_swallows_later_data_and_the_proactor_drops_promptly() {
    // Half the rounds read a pipe or a socket the usual way: the kernel
    // arms a poll, which a cancellation always finds. The other half link
    // the read after an fsync, which runs in an io-wq worker; the worker
    // then runs the read too, blocking, without a poll. A cancellation
    // that comes while the fsync runs finds nothing (ENOENT: a link member
    // is not cancellable before it starts), one that comes while the read
    // blocks finds it running (EALREADY, reported as ENOENT by 6.1) and
    // interrupts it, or not yet. Either way the read is still armed after
    // the first answer, and only a retried cancellation ends it (counted
    // by `cancel_retries`: 91 of 100 first cancellations of such reads
    // missed on 6.18, see tests/cancel_race.rs for the kernel's answers).
    let dir = std::env::temp_dir();
    let synced = Arc::new(
        std::fs::File::create(dir.join(format!("ring-proactor-{}-race", std::process::id())))
            .unwrap(),
    );
    let mut slowest = Duration::ZERO;
    let mut slowest_cancel = Duration::ZERO;
    let (mut retries, mut io_wq_retries) = (0, 0);
    for round in 0..CANCEL_ROUNDS {
        let p = Proactor::new(ProactorConfig::new(8)).expect("a proactor");
        // A pipe, or a socket (reads of both wait for data by polling).
        let (r, w): (OwnedFd, OwnedFd) = if round % 2 == 0 {
            pipe()
        } else {
            let (a, b) = UnixStream::pair().unwrap();
            (a.into(), b.into())
        };
        let io_wq = round % 4 >= 2;
        let r = Arc::new(r);
        let mut w = std::fs::File::from(w);
        let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
        let read = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION);
        let mut op: Pin<Box<dyn Future<Output = ()> + Send>> = if io_wq {
            let link = p.fsync(&synced, false).link(read);
            Box::pin(async move {
                let _ = link.await;
            })
        } else {
            Box::pin(async move {
                let _ = read.await;
            })
        };
        assert!(poll_once(&mut op, &waker).is_pending());
        // Drop it at different points of its way into the kernel.
        match round / 4 % 4 {
            0 => {}
            1 => thread::yield_now(),
            2 => {
                while p.stats().max_in_ring < 2 {
                    thread::yield_now();
                }
            }
            _ => thread::sleep(Duration::from_millis(1)),
        }
        drop(op);
        // The dropped read's CQE arrives without any data written: it was
        // cancelled, not left armed (the op holds its clone of `r` until its
        // CQE has come).
        let dropped = Instant::now();
        let deadline = dropped + Duration::from_secs(3);
        while Arc::strong_count(&r) > 1 || p.stats().orphans_freed < 1 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the dropped read is still armed: {:?}",
                p.stats()
            );
            thread::sleep(Duration::from_millis(1));
        }
        slowest_cancel = slowest_cancel.max(dropped.elapsed());
        // So data written now goes to a fresh read.
        w.write_all(b"x").unwrap();
        let (n, buf) = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION).wait();
        assert_eq!((n.unwrap(), &buf[..]), (1, &b"x"[..]), "round {round}");
        let s = p.stats();
        retries += s.cancel_retries;
        if io_wq {
            io_wq_retries += s.cancel_retries;
        }
        let start = Instant::now();
        drop(p);
        slowest = slowest.max(start.elapsed());
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "round {round}: dropping the Proactor took {:?}",
            start.elapsed()
        );
    }
    eprintln!(
        "ring-note: cancel race: {CANCEL_ROUNDS} rounds ({} through io-wq), {retries} \
         cancellations retried ({io_wq_retries} in the io-wq rounds), slowest cancel \
         {slowest_cancel:?}, slowest Proactor drop {slowest:?}",
        CANCEL_ROUNDS / 2
    );
}

#[test]
fn dropping_the_proactor_with_a_dropped_read_still_armed_returns_promptly() {
    for _ in 0..20 {
        let p = proactor();
        let (r, _w) = pipe();
        let r = Arc::new(r);
        let waker = Waker::from(Arc::new(Flag(Mutex::new(0))));
        let mut read = p.read(&r, Vec::with_capacity(16), CURRENT_POSITION);
        assert!(poll_once(&mut read, &waker).is_pending());
        while p.stats().max_in_ring < 2 {
            thread::yield_now();
        }
        drop(read);
        let start = Instant::now();
        drop(p);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
}

#[test]
fn an_oversize_ring_names_the_maximum_to_ask_proactor_config_for() {
    // The Proactor has no Builder: its error names the maximum to ask for.
    let err = Proactor::new(ProactorConfig::new(100_000))
        .expect_err("a 100000-entry Proactor is refused");
    // Its Display says it, and so does the io::Error `?` makes of it.
    assert!(err.to_string().contains("ProactorConfig::new"), "{err}");
    let io = std::io::Error::from(err);
    let text = io.to_string();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput, "{text}");
    assert!(
        text.contains("100000") && text.contains("32768") && text.contains("ProactorConfig::new"),
        "{text}"
    );
    assert!(!text.contains("Builder::clamp"), "{text}");
}

#[test]
fn a_receive_completes_while_the_thread_that_submitted_it_sleeps_elsewhere() {
    // Thread A drives the ring (inside `block_on`) and submits a receive,
    // then stops driving and sleeps outside the Proactor; thread B waits on
    // the receive. The kernel runs a socket request's completion work on
    // the thread that submitted it, and io_uring_setup(2) warns against
    // IORING_SETUP_COOP_TASKRUN where the waiter is not the submitter (no
    // interrupt then forces that work to run), so the Proactor's ring is
    // set up without it. (On Linux 6.18 this case completes at once even
    // with it, measured; the test guards the behaviour on every kernel.)
    let p = Arc::new(proactor());
    let (a, b) = UnixStream::pair().unwrap();
    let b = Arc::new(b);
    let (tx, rx) = std::sync::mpsc::channel();
    let submitter = {
        let p = p.clone();
        let b = b.clone();
        thread::spawn(move || {
            let mut recv = Some(p.recv(&b, Vec::with_capacity(8), MsgFlags::empty()));
            // One poll queues the receive; the NOP's wait drives the ring
            // here, pushing and submitting both from this thread.
            ring_io_proactor::block_on(std::future::poll_fn(|cx| {
                let pending = Pin::new(recv.as_mut().unwrap()).poll(cx).is_pending();
                assert!(pending, "nothing was sent yet");
                Poll::Ready(())
            }));
            p.nop().wait().unwrap();
            tx.send(recv.take().unwrap()).unwrap();
            // Asleep outside the Proactor, far longer than the test waits.
            thread::sleep(Duration::from_millis(1500));
        })
    };
    let recv = rx.recv().unwrap();
    let waiter = thread::spawn(move || {
        let start = Instant::now();
        let (n, buf) = recv.wait();
        (n.unwrap(), buf, start.elapsed())
    });
    thread::sleep(Duration::from_millis(50));
    (&a).write_all(b"hi").unwrap();
    let (n, buf, took) = waiter.join().unwrap();
    assert_eq!((n, &buf[..]), (2, &b"hi"[..]));
    assert!(
        took < Duration::from_millis(1000),
        "the receive waited {took:?} for its submitter to wake"
    );
    submitter.join().unwrap();
}

#[test]
fn a_proactor_refused_by_the_io_uring_disabled_sysctl_says_so() {
    let test = "a_proactor_refused_by_the_io_uring_disabled_sysctl_says_so";
    if !common::sysctls_are_ours(test) {
        return;
    }
    {
        let _off = common::Sysctl::set(common::DISABLED, "2");
        let err = Proactor::new(ProactorConfig::new(8)).expect_err("io_uring is disabled");
        let text = err.to_string();
        assert!(text.contains("kernel.io_uring_disabled = 2"), "{text}");
        // `?` into an io::Error keeps the kernel's code.
        assert_eq!(io::Error::from(err).raw_os_error(), Some(libc::EPERM));
    }
    proactor().nop().wait().unwrap();
}
