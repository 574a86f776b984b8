//! The Proactor against hostile code in the same process and hostile user
//! code: forged completions posted into its ring (`IORING_OP_MSG_RING` from
//! another ring: it needs the target's fd and an `unsafe` push, so these
//! tests stand for buggy or hostile `unsafe` code), `Drop`s and
//! wakers that call back into it or panic, ops dropped in every state, and
//! arguments at the edges of their types. Only the public API is used: these
//! tests are the regression net for any rewrite of the Proactor.
//!
//! The tests run one at a time (a process-wide lock): some find the
//! Proactor's ring among the process's fds, some count fds.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

mod adversary;

use std::future::Future;
use std::io::{self, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use adversary::*;
use common::pipe;
use ring_io_proactor::fs::OpenOptions;
use ring_io_proactor::{CURRENT_POSITION, IoBuf, Proactor, ProactorConfig};

/// The io_uring fds a new Proactor made (the attacker finds them by
/// comparing scans before and after; its own ring exists before both).
fn new_proactor(config: ProactorConfig) -> (Proactor, Vec<RawFd>) {
    let before = ring_fds();
    let p = Proactor::new(config).expect("a proactor");
    let after: Vec<RawFd> = ring_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    assert!(!after.is_empty(), "the Proactor's ring is among the fds");
    (p, after)
}

#[test]
fn forged_completions_complete_nothing_early_overflow_nothing_and_are_counted() {
    let _serial = serial();
    let Some(mut forger) = Forger::new() else {
        skip!("forged_completions", "IORING_OP_MSG_RING needs Linux 5.18");
    };
    let (p, targets) = new_proactor(ProactorConfig::new(32));
    // Reads in flight on idle pipes, each into 16 bytes after a prefix
    // that must stay.
    let pipes: Vec<_> = (0..4).map(|_| pipe()).collect();
    let mut reads: Vec<_> = pipes
        .iter()
        .map(|(r, _)| {
            let mut buf = Vec::with_capacity(20);
            buf.extend_from_slice(b"keep");
            let r = Arc::new(r.try_clone().unwrap());
            p.read(&r, buf.slice(4..20), CURRENT_POSITION)
        })
        .collect();
    for read in &mut reads {
        assert!(poll_once(read).is_pending());
    }
    eventually("the reads in the ring", || p.stats().max_in_ring >= 5);
    // Lengths past the capacity, a negative errno, an fd number, zero.
    let results = [i32::MAX, 1 << 20, 17, 16, 0, -libc::ECANCELED, 1];
    let flags = [
        0,
        ring_io_sys::IORING_CQE_F_MORE,
        ring_io_sys::IORING_CQE_F_BUFFER | (3 << ring_io_sys::IORING_CQE_BUFFER_SHIFT),
    ];
    let landed = forger.spray(&targets, &guesses(), &results, &flags);
    assert!(landed > 0, "the kernel refused every forged completion");
    eventually("every forgery counted", || {
        p.stats().unexpected_cqes >= landed
    });
    let stats = p.stats();
    assert_eq!(stats.unexpected_cqes, landed, "{stats:?}");
    assert_eq!(
        stats.completed, 0,
        "no forged CQE completed an op: {stats:?}"
    );
    for read in &mut reads {
        assert!(poll_once(read).is_pending(), "a read completed early");
    }
    // The real completions still arrive, each within its capacity.
    for (i, (_, w)) in pipes.iter().enumerate() {
        let mut w = std::fs::File::from(w.try_clone().unwrap());
        w.write_all(&[b'a' + i as u8; 32]).unwrap();
    }
    for (i, read) in reads.into_iter().enumerate() {
        let (n, buf) = read.wait();
        assert_eq!(n.unwrap(), 16);
        let buf = buf.into_inner();
        assert_eq!(buf.len(), 20);
        assert_eq!(&buf[..4], b"keep");
        assert!(buf[4..].iter().all(|&b| b == b'a' + i as u8));
    }
    // And new ops work as before.
    p.nop().wait().unwrap();
    assert_eq!(p.stats().unexpected_cqes, landed);
}

#[test]
fn a_forged_completion_never_hands_out_or_closes_an_fd_it_does_not_own() {
    let _serial = serial();
    let Some(mut forger) = Forger::new() else {
        skip!("forged_fd", "IORING_OP_MSG_RING needs Linux 5.18");
    };
    let (p, targets) = new_proactor(ProactorConfig::new(32));
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let mut accept = p.accept(&listener);
    assert!(poll_once(&mut accept).is_pending());
    // A file someone else owns: a forged accept must not hand out (and
    // later close) its number.
    let (victim, _w) = pipe();
    let victim_fd = victim.as_raw_fd();
    eventually("the accept in the ring", || p.stats().max_in_ring >= 2);
    let landed = forger.spray(&targets, &guesses(), &[victim_fd], &[0]);
    assert!(landed > 0);
    eventually("every forgery counted", || {
        p.stats().unexpected_cqes >= landed
    });
    assert!(
        poll_once(&mut accept).is_pending(),
        "the accept completed early"
    );
    let _client = TcpStream::connect(addr).unwrap();
    let fd = accept.wait().unwrap();
    assert_ne!(fd.as_raw_fd(), victim_fd);
    drop(fd);
    drop(p);
    assert!(is_open(victim_fd), "the victim's fd was closed");
    drop(victim);
}

#[test]
fn forged_completions_into_an_idle_proactor_are_counted_not_fatal() {
    let _serial = serial();
    let Some(mut forger) = Forger::new() else {
        skip!("forged_idle", "IORING_OP_MSG_RING needs Linux 5.18");
    };
    // A small CQ: more forged CQEs than it holds at once.
    let (p, targets) = new_proactor(ProactorConfig::new(4));
    p.nop().wait().unwrap();
    let landed = forger.spray(&targets, &guesses(), &[0, i32::MIN, i32::MAX], &[0]);
    assert!(landed > 0);
    // An idle Proactor has nobody in the kernel: the forgeries (more than
    // the CQ holds, the rest in the kernel's overflow backlog) are reaped
    // by the next driver, here the caller waiting on a NOP.
    p.nop().wait().unwrap();
    eventually("every forgery counted", || {
        p.stats().unexpected_cqes >= landed
    });
    // The Proactor still works, and shuts down.
    for _ in 0..10 {
        p.nop().wait().unwrap();
    }
    let (r, w) = pipe();
    std::fs::File::from(w).write_all(b"ok").unwrap();
    let (n, buf) = p.read(r, Vec::with_capacity(8), CURRENT_POSITION).wait();
    assert_eq!((n.unwrap(), &buf[..]), (2, &b"ok"[..]));
    within(Duration::from_secs(5), "dropping the Proactor", move || {
        drop(p)
    });
}

/// A file whose `Drop` starts an op on the Proactor.
struct Reentrant {
    fd: OwnedFd,
    proactor: Arc<Proactor>,
    started: mpsc::Sender<ring_io_proactor::Op<io::Result<()>>>,
}

impl AsFd for Reentrant {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        let _ = self.started.send(self.proactor.nop().start());
    }
}

#[test]
fn a_drop_run_by_the_proactor_may_start_ops() {
    let _serial = serial();
    let p = Arc::new(Proactor::new(ProactorConfig::new(8)).unwrap());
    let (r, _w) = pipe();
    let (tx, rx) = mpsc::channel();
    let file = Arc::new(Reentrant {
        fd: r,
        proactor: p.clone(),
        started: tx,
    });
    let mut read = p.read(&file, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_once(&mut read).is_pending());
    // The op holds the last reference to the file: dropping the op leaves
    // the file to the Proactor, which drops it once the read's CQE
    // (cancelled) has arrived, and its Drop starts a NOP.
    drop(file);
    drop(read);
    let nop = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the file was dropped");
    within(
        Duration::from_secs(5),
        "the NOP started by a Drop",
        move || nop.wait(),
    )
    .unwrap();
    let q = p.clone();
    within(Duration::from_secs(5), "a NOP after it", move || {
        q.nop().wait()
    })
    .unwrap();
}

struct Panicky(AtomicU32);

impl Wake for Panicky {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a waker that panics");
    }
}

#[test]
fn a_waker_that_panics_harms_only_its_own_task() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (r, w) = pipe();
    let r = Arc::new(r);
    let panicky = Arc::new(Panicky(AtomicU32::new(0)));
    let waker = Waker::from(panicky.clone());
    let mut read = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(
        Pin::new(&mut read)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    // Another task's op, in flight at the same time.
    let mut other = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_once(&mut other).is_pending());
    eventually("both reads in the ring", || p.stats().max_in_ring >= 3);
    std::fs::File::from(w)
        .write_all(b"0123456789abcdef")
        .unwrap();
    eventually("the waker called", || panicky.0.load(Ordering::SeqCst) > 0);
    // The op the panicking waker belongs to still completes.
    let (n, _) = within(
        Duration::from_secs(5),
        "the op of the panicking waker",
        move || read.wait(),
    );
    assert_eq!(n.unwrap(), 8);
    let (n, _) = within(Duration::from_secs(5), "the other op", move || other.wait());
    assert_eq!(n.unwrap(), 8);
    // The Proactor lives on for everyone.
    p.nop().wait().unwrap();
}

/// A waker whose clone panics.
fn clone_panics() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        panic!("a waker whose clone panics")
    }
    fn ignore(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, ignore, ignore, ignore);
    // SAFETY: no function of the vtable uses the data pointer, and each is
    // safe to call from any thread (clone never returns).
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

#[test]
fn an_op_polled_with_a_waker_whose_clone_panics_is_still_cancelled_when_dropped() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (r, _w) = pipe();
    let mut read = p.read(Arc::new(r), Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_once(&mut read).is_pending());
    eventually("the read in the ring", || p.stats().max_in_ring >= 2);
    // Another task polls it: storing its waker means a clone, which panics.
    let waker = clone_panics();
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Pin::new(&mut read).poll(&mut Context::from_waker(&waker))
    }));
    assert!(polled.is_err(), "the clone panicked");
    // Still in flight: dropped, it is cancelled, its buffer kept until the
    // kernel's CQE (not freed at once, while the kernel may write it).
    drop(read);
    eventually("the cancellation sent", || p.stats().cancels == 1);
    eventually("the buffer released after its CQE", || {
        p.stats().orphans_freed == 1
    });
    p.nop().wait().unwrap();
}

#[test]
fn dropping_the_proactor_wakes_every_op_waiting_for_credit() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    assert_eq!(p.max_in_flight(), 1);
    // A read that holds the only credit.
    let (r, _w) = pipe();
    let mut read = p.read(Arc::new(r), Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_once(&mut read).is_pending());
    // Three callers wait for credit, each on its own thread.
    let (tx, rx) = mpsc::channel();
    for _ in 0..3 {
        let op = p.nop();
        let tx = tx.clone();
        thread::spawn(move || {
            let _ = tx.send(op.wait());
        });
    }
    thread::sleep(Duration::from_millis(50));
    assert!(rx.try_recv().is_err(), "no credit yet");
    within(Duration::from_secs(5), "dropping the Proactor", move || {
        drop(p)
    });
    for i in 0..3 {
        let res = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("waiter {i} of 3 still waits for credit"));
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::NotConnected);
    }
    let (n, _) = read.wait();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn ops_dropped_in_any_state_leak_no_fd() {
    let _serial = serial();
    let before = fds().len();
    let p = Proactor::new(ProactorConfig::new(32)).unwrap();
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let read = OpenOptions::new().read(true).clone();
    let mut clients = Vec::new();
    for i in 0..100 {
        // Opened, never polled: dropped before or after its CQE.
        drop(p.open("/dev/null", &read).start());
        // A close never submitted, and one submitted.
        drop(p.close(OwnedFd::from(std::fs::File::open("/dev/null").unwrap())));
        drop(
            p.close(OwnedFd::from(std::fs::File::open("/dev/null").unwrap()))
                .start(),
        );
        // An accepted connection nobody takes.
        if i % 10 == 0 {
            clients.push(TcpStream::connect(addr).unwrap());
            drop(p.accept(&listener).start());
        }
    }
    // Completed and dropped unpolled, for sure.
    let op = p.open("/dev/null", &read).start();
    let done = p.stats().completed;
    p.nop().wait().unwrap();
    eventually("the open completed", || p.stats().completed > done);
    drop(op);
    // A multishot accept dropped with connections queued.
    let done = p.stats().completed;
    let mut multi = p.accept_multi(&listener);
    match poll_once(&mut multi.next_item()) {
        Poll::Ready(Some(Err(e))) if e.kind() == io::ErrorKind::Unsupported => {}
        _ => {
            for _ in 0..3 {
                clients.push(TcpStream::connect(addr).unwrap());
            }
            eventually("the connections accepted", || {
                p.stats().completed >= done + 3
            });
        }
    }
    drop(multi);
    within(Duration::from_secs(5), "dropping the Proactor", move || {
        drop(p)
    });
    drop(clients);
    drop(listener);
    let after = fds().len();
    assert_eq!(after, before, "fds leaked: {before} before, {after} after");
}

#[test]
fn sizes_and_durations_at_their_limits_are_errors_or_clamps_not_panics() {
    let _serial = serial();
    // No ring at all.
    let err = io::Error::from(Proactor::new(ProactorConfig::new(0)).unwrap_err());
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    // The smallest ring (1 SQ entry, 2 CQ entries) still runs many ops at
    // once: a full SQ is submitted, completions past the CQ wait in the
    // kernel's backlog.
    let p = Proactor::new(ProactorConfig::new(1)).unwrap();
    let ops: Vec<_> = (0..10).map(|_| p.nop().start()).collect();
    for op in ops {
        op.wait().unwrap();
    }
    assert_eq!(p.stats().cq_overflow, 0);
    drop(p);
    // An in-flight limit of 0 is raised to 1.
    let p = Proactor::new(ProactorConfig::new(2).max_in_flight(0)).unwrap();
    assert_eq!(p.max_in_flight(), 1);
    p.nop().wait().unwrap();
    drop(p);
    // A delay no Instant can hold: batches wait until full.
    let p = Proactor::new(ProactorConfig::new(8).batch(2).submit_delay(Duration::MAX)).unwrap();
    let a = p.nop().start();
    let b = p.nop().start();
    within(
        Duration::from_secs(5),
        "a full batch under an endless delay",
        move || {
            a.wait().unwrap();
            b.wait().unwrap();
        },
    );
    drop(p);
    let p = Arc::new(Proactor::new(ProactorConfig::new(8).max_in_flight(u32::MAX)).unwrap());
    // A timeout of Duration::MAX waits (it is clamped, not negative).
    let mut forever = p.timeout(Duration::MAX);
    assert!(poll_once(&mut forever).is_pending());
    thread::sleep(Duration::from_millis(20));
    assert!(
        poll_once(&mut forever).is_pending(),
        "an endless timeout ended"
    );
    drop(forever);
    let (nop, timeout) = p.nop().link(p.link_timeout(Duration::MAX)).wait();
    nop.unwrap();
    assert_eq!(timeout.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    // Linking an op that already failed fails the chain.
    let read = OpenOptions::new().read(true).clone();
    let (open, nop) = p.open("a\0b", &read).link(p.nop()).wait();
    assert_eq!(open.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert_eq!(nop.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    let (nop, open) = p.nop().link(p.open("a\0b", &read)).wait();
    assert_eq!(nop.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(open.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    // Linking ops of two Proactors fails them.
    let other = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (a, b) = p.nop().link(other.nop()).wait();
    assert_eq!(a.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert_eq!(b.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    // An offset past i64::MAX is refused, not taken for "the position".
    let file = Arc::new(std::fs::File::open("/proc/self/exe").unwrap());
    let (r, w) = pipe();
    let err = p
        .splice(&file, Some(u64::MAX), w, None, 16)
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    drop(r);
    // Buffers with no room: refused (not a read of 0 bytes, which would
    // read as end of file), and handed back.
    let (r, w) = pipe();
    std::fs::File::from(w).write_all(b"abc").unwrap();
    let (n, bufs) = p
        .readv(r, vec![Vec::<u8>::new(); 3], CURRENT_POSITION)
        .wait();
    let err = n.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("no room"), "{err}");
    assert_eq!(bufs.len(), 3);
}

/// A file whose `Drop` drops the last handle of the Proactor.
struct LastHandle {
    fd: OwnedFd,
    proactor: Mutex<Option<Proactor>>,
    done: mpsc::Sender<Duration>,
}

impl AsFd for LastHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for LastHandle {
    fn drop(&mut self) {
        let start = Instant::now();
        drop(self.proactor.lock().unwrap().take());
        let _ = self.done.send(start.elapsed());
    }
}

#[test]
fn the_proactor_dropped_by_a_drop_it_runs_shuts_down_at_once() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (r, _w) = pipe();
    let (tx, rx) = mpsc::channel();
    let file = Arc::new(LastHandle {
        fd: r,
        proactor: Mutex::new(None),
        done: tx,
    });
    let mut read = p.read(&file, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_once(&mut read).is_pending());
    // The Proactor's last handle goes into the file, whose last reference
    // the dropped op leaves to the Proactor's thread.
    *file.proactor.lock().unwrap() = Some(p);
    drop(file);
    drop(read);
    let took = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the file was dropped");
    assert!(
        took < Duration::from_millis(500),
        "dropping the Proactor on its thread took {took:?}"
    );
}

#[test]
fn the_proactor_offers_no_way_to_send_a_msg_ring() {
    // Serialized as every test here: it opens fds (the source files) that
    // the fd-counting tests would otherwise see come and go.
    let _serial = serial();
    // The soundness docs (ring-io-driver's and the Proactor's) say that no
    // safe code can forge a completion because pushing an entry is unsafe
    // and no safe API sends a MSG_RING, the Proactor included. An op that
    // builds one (whatever its name) must revisit that claim: this fails
    // when the Proactor's code (comments aside) mentions a MSG_RING.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    if !src.is_dir() {
        // In a test VM the binary runs without the source tree.
        skip!(
            "the_proactor_offers_no_way_to_send_a_msg_ring",
            "no source tree at {}",
            src.display()
        );
    }
    let mut dirs = vec![src];
    let mut found = Vec::new();
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if ["MsgRing", "MSG_RING"].iter().any(|w| code.contains(w)) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(files > 10, "read only {files} source files");
    assert!(
        found.is_empty(),
        "the Proactor builds a MSG_RING; update the soundness docs (forged \
         completions) before allowing this:\n{}",
        found.join("\n")
    );
}

/// `block_on`'s NOP and an op polled with a waker that parks on the
/// Proactor complete in one turn: the park, run by `block_on`'s turn
/// (nested: this thread holds the token), takes no wake-up of
/// `block_on`'s (its waker and flag are its own, not the thread's park
/// state), so `block_on` returns. (The LocalProactor had this hang:
/// `local_adversarial`'s `a_park_in_a_waker_run_by_block_on_...`.) The
/// park returns at once, or after waiting its 1 ms in the kernel (nothing
/// else completes: a longer park would hold `block_on` up that long, as
/// any waker that blocks does).
#[test]
fn a_park_in_a_waker_run_by_block_on_leaves_block_on_its_wake_up() {
    let _serial = serial();
    let dog = Watchdog::new("a_park_in_a_waker_run_by_block_on (Proactor)");
    struct Parks {
        p: Proactor,
        timeout: Option<Duration>,
        parks: AtomicU32,
    }
    impl Wake for Parks {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.p.park(self.timeout);
            self.parks.fetch_add(1, Ordering::Relaxed);
        }
    }
    for timeout in [Some(Duration::ZERO), Some(Duration::from_millis(1))] {
        let p = Proactor::new(ProactorConfig::new(8)).unwrap();
        let parks = Arc::new(Parks {
            p: p.clone(),
            timeout,
            parks: AtomicU32::new(0),
        });
        let waker = Waker::from(parks.clone());
        for _ in 0..50 {
            let mut other = p.nop();
            assert!(poll_with(&mut other, &waker).is_pending());
            let start = Instant::now();
            ring_io_proactor::block_on(async { p.nop().await.unwrap() });
            assert!(start.elapsed() < Duration::from_secs(10), "{timeout:?}");
            dog.step();
            drop(other);
        }
        assert!(parks.parks.load(Ordering::Relaxed) >= 1, "{timeout:?}");
    }
    drop(dog);
}

/// A chain first in the queue for credit, needing more than there is,
/// holds up the single op behind it (credit builds up for the chain);
/// dropped, it must let that op have the credit there is. The requests in
/// flight never complete (idle reads): only the fallback thread's look at
/// the credit waiters (every `CREDIT_LAPSE` or more) would wake the op.
#[test]
fn a_chain_first_in_the_queue_dropped_lets_the_ops_behind_it_that_fit_go() {
    let p = Proactor::new(ProactorConfig::new(8).max_in_flight(3)).unwrap();
    let (r1, _w1) = pipe();
    let (r2, _w2) = pipe();
    let mut idle1 = p.read(Arc::new(r1), Vec::with_capacity(4), CURRENT_POSITION);
    let mut idle2 = p.read(Arc::new(r2), Vec::with_capacity(4), CURRENT_POSITION);
    assert!(poll_once(&mut idle1).is_pending());
    assert!(poll_once(&mut idle2).is_pending());
    // The third credit: a read that ends when the test writes.
    let (r3, w3) = pipe();
    let mut third = p.read(Arc::new(r3), Vec::with_capacity(4), CURRENT_POSITION);
    assert!(poll_once(&mut third).is_pending());
    let mut chain = p.nop().link(p.nop()).link(p.nop());
    assert!(poll_once(&mut chain).is_pending());
    let (tx, rx) = mpsc::channel();
    let waker = Waker::from(Arc::new(Signal(Mutex::new(tx))));
    let mut single = p.nop();
    assert!(poll_with(&mut single, &waker).is_pending());
    // The third read's credit comes back (the fallback thread drives):
    // one free, the chain needs three. (The op is not polled again:
    // nothing woke its task.)
    write_all(&w3, b"done");
    eventually("the third read", || poll_once(&mut third).is_ready());
    while rx.try_recv().is_ok() {}
    drop(chain);
    // Woken by the drop itself (the fallback thread's look at the credit
    // waiters would wake it too, but only later).
    rx.try_recv()
        .expect("the chain left the queue; the op behind it, which fits, was not woken");
    eventually("the op behind the chain", || {
        poll_with(&mut single, &waker).is_ready()
    });
}

/// A waker that sends on a channel.
struct Signal(Mutex<mpsc::Sender<()>>);

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
    }
}
