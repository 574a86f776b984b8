//! The LocalProactor (and the Proactor's lock-free completion path) against
//! hostile code in the same process: user code in every callback position
//! (a waker's `clone`, `wake` and `drop`, a buffer's or a file's `Drop`)
//! that polls, drops or creates ops, drives the ring re-entrantly, drops
//! the last handle or panics; forged completions posted into the ring
//! (`IORING_OP_MSG_RING` from another ring: it needs the ring's fd and an
//! `unsafe` push, so these stand for buggy or hostile `unsafe` code); ops
//! dropped at every point of their life; and sizes and durations at the
//! edges of their types. Only the public API is used.
//!
//! The tests run one at a time (a process-wide lock): some find rings
//! among the process's fds, some count fds.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

mod adversary;

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io::{self, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use adversary::*;
use common::pipe;
use ring_io_proactor::fs::OpenOptions;
use ring_io_proactor::{
    CURRENT_POSITION, IoBuf, IoBufMut, LocalOp, LocalProactor, Proactor, ProactorConfig,
};

fn local(entries: u32) -> LocalProactor {
    LocalProactor::new(ProactorConfig::new(entries)).expect("a LocalProactor")
}

// ---------------------------------------------------------------------------
// Wakers that run user code in clone, wake and drop.

/// Which waker method ran a hook.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Event {
    Clone,
    Wake,
    Drop,
}

type Hook = Box<dyn FnMut(Event)>;

thread_local! {
    /// The code this thread's hook wakers run (taken out while it runs,
    /// so the events it causes itself run nothing).
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

fn set_hook(f: impl FnMut(Event) + 'static) {
    let old = HOOK.with(|h| h.borrow_mut().replace(Box::new(f)));
    drop(old);
}

fn clear_hook() {
    let old = HOOK.with(|h| h.borrow_mut().take());
    drop(old);
}

fn run_hook(event: Event) {
    /// Puts the hook back, even if it panicked.
    struct Restore(Option<Hook>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                let _ = HOOK.try_with(|h| {
                    let mut h = h.borrow_mut();
                    if h.is_none() {
                        *h = Some(f);
                    }
                });
            }
        }
    }
    if thread::panicking() {
        // A test failing: its wakers dropped while it unwinds run nothing
        // (a hook that panics would abort).
        return;
    }
    let Some(f) = HOOK.try_with(|h| h.borrow_mut().take()).ok().flatten() else {
        return;
    };
    let mut restore = Restore(Some(f));
    (restore.0.as_mut().expect("just put"))(event);
}

/// What a hook waker counts.
#[derive(Default)]
struct Counts {
    clones: AtomicU32,
    wakes: AtomicU32,
    /// Wakers alive (made or cloned, not yet dropped or consumed).
    live: AtomicI64,
}

impl Counts {
    fn wakes(&self) -> u32 {
        self.wakes.load(Ordering::SeqCst)
    }
}

/// A hook waker's data: an `Arc`, so the waker is `Send + Sync`.
struct HookData {
    counts: Arc<Counts>,
    /// Clones are new allocations (a waker's contract allows a clone with
    /// another data pointer, for which `will_wake` is false).
    fresh: bool,
}

static VTABLE: RawWakerVTable =
    RawWakerVTable::new(hook_clone, hook_wake, hook_wake_by_ref, hook_drop);

/// A waker that counts what it does and runs this thread's hook on each
/// clone, wake and drop.
fn hook_waker(counts: &Arc<Counts>, fresh: bool) -> Waker {
    counts.live.fetch_add(1, Ordering::SeqCst);
    let data = Arc::new(HookData {
        counts: counts.clone(),
        fresh,
    });
    // SAFETY: the vtable's functions treat the pointer as an
    // `Arc<HookData>` (Send + Sync) made by `Arc::into_raw`, each clone
    // owning one count (or one allocation), released once by wake or drop.
    unsafe { Waker::from_raw(RawWaker::new(Arc::into_raw(data).cast(), &VTABLE)) }
}

/// # Safety
///
/// `p` is a live `Arc<HookData>` pointer made by `Arc::into_raw`.
unsafe fn hook_clone(p: *const ()) -> RawWaker {
    run_hook(Event::Clone);
    // SAFETY: the caller's contract.
    let data = unsafe { &*p.cast::<HookData>() };
    data.counts.clones.fetch_add(1, Ordering::SeqCst);
    data.counts.live.fetch_add(1, Ordering::SeqCst);
    if data.fresh {
        let new = Arc::new(HookData {
            counts: data.counts.clone(),
            fresh: true,
        });
        RawWaker::new(Arc::into_raw(new).cast(), &VTABLE)
    } else {
        // SAFETY: `p` came from `Arc::into_raw` and is alive.
        unsafe { Arc::increment_strong_count(p.cast::<HookData>()) };
        RawWaker::new(p, &VTABLE)
    }
}

/// # Safety
///
/// As [`hook_clone`]; consumes the pointer's count.
unsafe fn hook_wake(p: *const ()) {
    // SAFETY: the caller's contract: this waker's count, released once
    // (when `data` goes, even if the hook panics).
    let data = unsafe { Arc::from_raw(p.cast::<HookData>()) };
    data.counts.live.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: `data` keeps the pointer alive.
    unsafe { hook_wake_by_ref(p) };
}

/// # Safety
///
/// As [`hook_clone`].
unsafe fn hook_wake_by_ref(p: *const ()) {
    // SAFETY: the caller's contract.
    let data = unsafe { &*p.cast::<HookData>() };
    data.counts.wakes.fetch_add(1, Ordering::SeqCst);
    run_hook(Event::Wake);
}

/// # Safety
///
/// As [`hook_clone`]; consumes the pointer's count.
unsafe fn hook_drop(p: *const ()) {
    // SAFETY: the caller's contract: this waker's count, released once
    // (when `data` goes, even if the hook panics).
    let data = unsafe { Arc::from_raw(p.cast::<HookData>()) };
    data.counts.live.fetch_sub(1, Ordering::SeqCst);
    run_hook(Event::Drop);
}

// ---------------------------------------------------------------------------
// Buffers and files that watch what happens to them.

thread_local! {
    /// The LocalProactor that `Drop`s below use.
    static CURRENT: RefCell<Option<Rc<LocalProactor>>> = const { RefCell::new(None) };
    /// What those drops saw.
    static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// What a `Drop` run by the LocalProactor does: waits on a NOP of it (a
/// `block_on` inside its turn), and leaves a NOP in flight and one
/// dropped before it was polled.
fn reenter(who: &str) {
    let Some(p) = CURRENT.with(|c| c.borrow().clone()) else {
        return;
    };
    let res = p.nop().wait();
    let mut in_flight = p.nop();
    let pending = poll_once(&mut in_flight).is_pending();
    drop(p.timeout(Duration::from_secs(60)));
    let res2 = in_flight.wait();
    SEEN.with(|s| {
        s.borrow_mut()
            .push(format!("{who}: {res:?} {pending} {res2:?}"))
    });
}

/// A read buffer whose `Drop` uses the LocalProactor.
struct ReentrantBuf(Vec<u8>);

impl Drop for ReentrantBuf {
    fn drop(&mut self) {
        reenter("buf");
    }
}

// SAFETY: a vector's heap bytes, as `Vec<u8>`'s impl (the `Drop` above
// does not touch them).
unsafe impl IoBuf for ReentrantBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
    fn bytes_total(&self) -> usize {
        self.0.capacity()
    }
}

// SAFETY: as `Vec<u8>`'s impl.
unsafe impl IoBufMut for ReentrantBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.0.set_init(n) }
    }
}

/// A file whose `Drop` uses the LocalProactor.
struct ReentrantFile(OwnedFd);

impl AsFd for ReentrantFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Drop for ReentrantFile {
    fn drop(&mut self) {
        reenter("file");
    }
}

// ---------------------------------------------------------------------------
// User code in every callback position.

#[test]
fn wakers_that_use_the_local_proactor_in_clone_wake_and_drop_break_nothing() {
    let _serial = serial();
    // (A hang is named by the last step passed: seen once in 50 runs on
    // 5.10 aarch64 under TCG.)
    let dog = Watchdog::new("wakers_that_use_the_local_proactor_in_clone_wake_and_drop");
    let p = Rc::new(local(16));
    let counts = Arc::new(Counts::default());
    // Ops the hooks drop while they are in flight, and ops they create.
    let victims: Rc<RefCell<Vec<LocalOp<io::Result<()>>>>> = Rc::default();
    let made: Rc<RefCell<Vec<LocalOp<io::Result<()>>>>> = Rc::default();
    let nested = Rc::new(Cell::new(0u32));
    for _ in 0..12 {
        let mut t = p.timeout(Duration::from_secs(60));
        assert!(poll_once(&mut t).is_pending());
        victims.borrow_mut().push(t);
    }
    p.drive();
    dog.step(); // 1: victims armed
    {
        let (p, victims, made, nested) = (p.clone(), victims.clone(), made.clone(), nested.clone());
        set_hook(move |event| {
            // Every hook drops an op in flight and makes a new one.
            drop(victims.borrow_mut().pop());
            let mut op = p.nop();
            let _ = poll_once(&mut op);
            made.borrow_mut().push(op);
            match event {
                // Drives the ring while an op is storing this waker.
                Event::Clone => p.drive(),
                // Waits on an op inside the turn that woke it.
                Event::Wake => {
                    p.nop().wait().unwrap();
                    p.park(Some(Duration::ZERO));
                    nested.set(nested.get() + 1);
                }
                // Waits with a block_on of its own, polling the ops made.
                Event::Drop => {
                    let made = made.clone();
                    p.block_on(poll_fn(|cx| {
                        made.borrow_mut()
                            .retain_mut(|op| match Pin::new(op).poll(cx) {
                                Poll::Ready(res) => {
                                    res.unwrap();
                                    false
                                }
                                Poll::Pending => true,
                            });
                        Poll::Ready(())
                    }));
                }
            }
        });
    }
    // Reads polled with a new hook waker each time (fresh clones: the
    // LocalProactor clones each into the slot, running the hook).
    dog.step(); // 2: hook set
    let (r, w) = pipe();
    let r = Arc::new(r);
    let mut reads: Vec<_> = (0..4)
        .map(|_| p.read(&r, Vec::with_capacity(4), CURRENT_POSITION))
        .collect();
    for read in &mut reads {
        assert!(poll_with(read, &hook_waker(&counts, true)).is_pending());
    }
    p.drive();
    dog.step(); // 3: reads polled, a drive
    for read in &mut reads {
        assert!(poll_with(read, &hook_waker(&counts, true)).is_pending());
    }
    // Timers whose wake-ups come in a turn of the test's own (not one
    // that a hook runs, whose events run nothing).
    let mut timers: Vec<_> = (0..3)
        .map(|_| p.timeout(Duration::from_millis(1)))
        .collect();
    for t in &mut timers {
        assert!(poll_with(t, &hook_waker(&counts, false)).is_pending());
    }
    dog.step(); // 4: timers polled
    park_until(&p, "the timers' wakers", || nested.get() >= 1);
    dog.step(); // 5: a timer's waker woken
    for t in timers {
        t.wait().unwrap();
        dog.step(); // 6..8: a timer waited on
    }
    write_all(&w, b"0123456789abcdef");
    let mut got: Vec<Vec<u8>> = Vec::new();
    for mut read in reads {
        let (n, buf) = loop {
            let waker = hook_waker(&counts, true);
            if let Poll::Ready(out) = poll_with(&mut read, &waker) {
                break out;
            }
            let woken = counts.wakes();
            park_until(&p, "a read's waker woken", || counts.wakes() > woken);
        };
        assert_eq!(n.unwrap(), 4);
        got.push(buf);
        dog.step(); // 9..12: a read done
    }
    got.sort();
    assert_eq!(got.concat(), b"0123456789abcdef", "every chunk once");
    clear_hook();
    assert!(nested.get() > 0, "no waker was woken");
    assert!(counts.clones.load(Ordering::SeqCst) > 0);
    // Every op the hooks made completes once; every victim's timeout was
    // cancelled and freed.
    drop(victims.borrow_mut().drain(..));
    dog.step(); // 13: victims dropped
    for op in made.borrow_mut().drain(..) {
        op.wait().unwrap();
        dog.step(); // 14..: a made op waited on
    }
    park_until(&p, "the victims freed", || p.stats().orphans_freed >= 12);
    let p = Rc::try_unwrap(p).expect("the hooks let go of it");
    let stats = p.stats();
    assert_eq!(stats.unexpected_cqes, 0, "{stats:?}");
    drop(p);
    assert_eq!(counts.live.load(Ordering::SeqCst), 0, "a waker leaked");
}

/// A waker that panics in `wake`, counting its calls.
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
    let p = local(8);
    let (r, w) = pipe();
    let r = Arc::new(r);
    let panicky = Arc::new(Panicky(AtomicU32::new(0)));
    let waker = Waker::from(panicky.clone());
    let counts = Arc::new(Counts::default());
    let calm = hook_waker(&counts, false);
    let mut a = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
    let mut b = p.read(&r, Vec::with_capacity(8), CURRENT_POSITION);
    assert!(poll_with(&mut a, &waker).is_pending());
    assert!(poll_with(&mut b, &calm).is_pending());
    p.drive();
    write_all(&w, b"0123456789abcdef");
    // One turn completes both: the panic ends only its own wake-up.
    park_until(&p, "both woken", || {
        panicky.0.load(Ordering::SeqCst) > 0 && counts.wakes() > 0
    });
    let (n, a_buf) = a.wait();
    assert_eq!(n.unwrap(), 8);
    let (n, b_buf) = b.wait();
    assert_eq!(n.unwrap(), 8);
    let mut got = [a_buf, b_buf];
    got.sort();
    assert_eq!(got.concat(), b"0123456789abcdef");
    // A waker that panics when cloned or dropped: the panic comes out of
    // the poll that cloned (or replaced) it, and the op goes on.
    set_hook(|event| {
        if event != Event::Wake {
            panic!("a hook that panics on {event:?}");
        }
    });
    let mut c = p.read(&r, Vec::with_capacity(4), CURRENT_POSITION);
    let boom = hook_waker(&counts, true);
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll_with(&mut c, &boom).is_pending()
    }));
    assert!(polled.is_err(), "the clone's panic came out of poll");
    clear_hook();
    assert!(poll_with(&mut c, &boom).is_pending());
    set_hook(|event| {
        if event == Event::Drop {
            panic!("a hook that panics on drop");
        }
    });
    // Replacing the stored waker drops it (or, where the LocalProactor
    // shares one clone among the task's ops, one count of it): a panic
    // comes out of this poll, or later where the last count goes.
    let other = hook_waker(&counts, true);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll_with(&mut c, &other).is_pending()
    }));
    write_all(&w, b"wxyz");
    park_until(&p, "the read woken", || counts.wakes() > 1);
    clear_hook();
    let (n, buf) = c.wait();
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"wxyz"[..]));
    p.nop().wait().unwrap();
    drop((boom, other, calm));
}

/// What a waker below drops: the LocalProactor and ops of it.
type Bag = (LocalProactor, Vec<LocalOp<io::Result<()>>>);

/// A waker whose last drop panics (once armed).
struct DropBomb {
    armed: AtomicBool,
    wakes: AtomicU32,
}

impl Wake for DropBomb {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for DropBomb {
    fn drop(&mut self) {
        if self.armed.load(Ordering::SeqCst) && !thread::panicking() {
            panic!("a waker whose drop panics");
        }
    }
}

/// Task A's waker, whose drop panics, is shared by its ops (two in a row)
/// and kept by the LocalProactor after they are done; task B's ops then
/// replace it: its drop must not panic out of B's polls.
#[test]
fn a_waker_whose_drop_panics_harms_only_its_own_task() {
    let _serial = serial();
    let p = local(8);
    let bomb = Arc::new(DropBomb {
        armed: AtomicBool::new(false),
        wakes: AtomicU32::new(0),
    });
    let a_waker = Waker::from(bomb.clone());
    let mut a1 = p.nop();
    let mut a2 = p.nop();
    assert!(poll_with(&mut a1, &a_waker).is_pending());
    assert!(poll_with(&mut a2, &a_waker).is_pending());
    p.drive();
    assert!(bomb.wakes.load(Ordering::SeqCst) > 0);
    // Taken (Done: no waker is cloned for that).
    assert!(poll_once(&mut a1).is_ready());
    assert!(poll_once(&mut a2).is_ready());
    // Only the LocalProactor holds A's waker now (if it kept a clone).
    drop(a_waker);
    bomb.armed.store(true, Ordering::SeqCst);
    drop(bomb);
    // Task B: two ops in a row, then a third.
    let counts = Arc::new(Counts::default());
    let b_waker = hook_waker(&counts, false);
    let mut b: Vec<_> = (0..3).map(|_| p.nop()).collect();
    for op in &mut b {
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll_with(op, &b_waker).is_pending()
        }));
        assert!(
            matches!(polled, Ok(true)),
            "task A's waker's drop panicked out of task B's poll"
        );
    }
    p.drive();
    for op in &mut b {
        assert!(matches!(poll_with(op, &b_waker), Poll::Ready(Ok(()))));
    }
    drop(p);
    // A LocalProactor dropped while it keeps A's waker: no panic either.
    let p = local(8);
    let bomb = Arc::new(DropBomb {
        armed: AtomicBool::new(false),
        wakes: AtomicU32::new(0),
    });
    let a_waker = Waker::from(bomb.clone());
    let mut a: Vec<_> = (0..2).map(|_| p.nop()).collect();
    for op in &mut a {
        assert!(poll_with(op, &a_waker).is_pending());
    }
    p.drive();
    for op in &mut a {
        assert!(poll_once(op).is_ready());
    }
    drop(a);
    drop(a_waker);
    bomb.armed.store(true, Ordering::SeqCst);
    drop(bomb);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(p)));
    assert!(
        dropped.is_ok(),
        "a kept waker's drop panicked out of the LocalProactor's drop"
    );
}

#[test]
fn a_waker_may_drop_the_last_local_proactor_handle_and_ops_of_it() {
    let _serial = serial();
    let before = fds().len();
    let p = local(8);
    let counts = Arc::new(Counts::default());
    let (r, w) = pipe();
    let r = Arc::new(r);
    let read = p.read(&r, Canary::new(), CURRENT_POSITION);
    // Dropped by the waker: a timeout in flight, a NOP completed but not
    // taken, one never polled, and the NOP whose waker it is (completed).
    let mut timeout = p.timeout(Duration::from_secs(60));
    assert!(poll_once(&mut timeout).is_pending());
    let mut done = p.nop();
    assert!(poll_once(&mut done).is_pending());
    p.drive();
    let mut trigger = p.nop();
    assert!(poll_with(&mut trigger, &hook_waker(&counts, false)).is_pending());
    let bag: Rc<RefCell<Option<Bag>>> =
        Rc::new(RefCell::new(Some((p, vec![timeout, done, trigger]))));
    {
        let bag = bag.clone();
        set_hook(move |event| {
            if event == Event::Wake {
                drop(bag.borrow_mut().take());
            }
        });
    }
    write_all(&w, b"data");
    // The read's `wait` holds the last handle: the NOP's waker drops the
    // rest during its first turn.
    let start = Instant::now();
    let (n, buf) = read.wait();
    clear_hook();
    assert!(bag.borrow().is_none(), "the hook ran");
    assert_eq!(n.unwrap(), 4);
    assert_eq!(&buf.bytes[..4], b"data");
    drop(buf);
    // Dropping the last handle (the read's) cancelled the timeout at once.
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    graves_untouched();
    drop((r, w));
    assert_eq!(fds().len(), before, "an fd leaked");
    assert_eq!(counts.live.load(Ordering::SeqCst), 0, "a waker leaked");
}

#[test]
fn a_future_dropped_inside_a_waker_is_cancelled_or_released() {
    let _serial = serial();
    let p = Rc::new(local(8));
    let counts = Arc::new(Counts::default());
    let (r, w) = pipe();
    let r = Arc::new(r);
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let before = fds().len();
    // Dropped by the waker: an accept that completed in the same turn
    // (its connection must be closed), a read in flight (cancelled, its
    // canary freed after its CQE), and the task's own next op.
    let mut accept = p.accept(&listener);
    let mut pending = p.read(&r, Canary::new(), CURRENT_POSITION);
    assert!(poll_once(&mut accept).is_pending());
    assert!(poll_once(&mut pending).is_pending());
    let mut trigger = p.nop();
    assert!(poll_with(&mut trigger, &hook_waker(&counts, false)).is_pending());
    let doomed: Rc<RefCell<Vec<Box<dyn std::any::Any>>>> =
        Rc::new(RefCell::new(vec![Box::new(accept), Box::new(pending)]));
    {
        let doomed = doomed.clone();
        set_hook(move |event| {
            if event == Event::Wake {
                doomed.borrow_mut().clear();
            }
        });
    }
    // Queued in the listener: the accept completes in the NOP's turn.
    let client = TcpStream::connect(addr).unwrap();
    park_until(&p, "the waker woken", || counts.wakes() > 0);
    clear_hook();
    assert!(doomed.borrow().is_empty());
    trigger.wait().unwrap();
    park_until(&p, "the read freed", || p.stats().orphans_freed >= 1);
    write_all(&w, b"late data, for nobody");
    p.park(Some(Duration::from_millis(5)));
    graves_untouched();
    // The connection accepted for nobody was closed, not leaked.
    drop(client);
    assert_eq!(fds().len(), before, "an fd leaked");
}

#[test]
fn a_buffer_or_a_file_whose_drop_uses_the_local_proactor_works() {
    let _serial = serial();
    let p = Rc::new(local(8));
    CURRENT.with(|c| *c.borrow_mut() = Some(p.clone()));
    SEEN.with(|s| s.borrow_mut().clear());
    let (r, _w) = pipe();
    // A read whose buffer's Drop waits on ops of the LocalProactor, and
    // whose file's Drop does too; dropped in flight, both are dropped by
    // the LocalProactor when the cancelled read's CQE arrives.
    let file = Arc::new(ReentrantFile(r));
    let mut read = p.read(&file, ReentrantBuf(Vec::with_capacity(8)), CURRENT_POSITION);
    drop(file);
    assert!(poll_once(&mut read).is_pending());
    p.drive();
    drop(read);
    park_until(&p, "the read freed", || {
        SEEN.with(|s| s.borrow().len()) == 2
    });
    // Dropped before being polled: the drops run at once, in the caller.
    let (r2, _w2) = pipe();
    drop(p.read(
        Arc::new(ReentrantFile(r2)),
        ReentrantBuf(Vec::with_capacity(8)),
        0,
    ));
    let seen = SEEN.with(|s| s.borrow().clone());
    assert_eq!(seen.len(), 4, "{seen:?}");
    for s in &seen {
        assert!(s.ends_with(": Ok(()) true Ok(())"), "{seen:?}");
    }
    CURRENT.with(|c| c.borrow_mut().take());
    p.nop().wait().unwrap();
    assert_eq!(p.stats().unexpected_cqes, 0);
}

// ---------------------------------------------------------------------------
// The budget: ops waiting for room.

/// An op waiting for room that is dropped must not keep a place in the
/// queue: the room it was owed goes to the next waiter. Here the budget is
/// one, held by a read; a NOP of task A and one of task B wait, and B's is
/// dropped; when the read completes, A must be woken.
#[test]
fn an_op_dropped_while_waiting_for_room_gives_its_turn_to_the_next() {
    let _serial = serial();
    let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    let (a_counts, b_counts) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
    let (wa, wb) = (hook_waker(&a_counts, false), hook_waker(&b_counts, false));
    let (r, w) = pipe();
    let mut read = p.read(Arc::new(r), Vec::with_capacity(4), CURRENT_POSITION);
    assert!(poll_once(&mut read).is_pending());
    let mut a = p.nop();
    let mut b = p.nop();
    assert!(poll_with(&mut a, &wa).is_pending());
    assert!(poll_with(&mut b, &wb).is_pending());
    drop(b);
    // Whatever it was woken for, A polls again and still finds no room.
    if a_counts.wakes() > 0 {
        assert!(poll_with(&mut a, &wa).is_pending());
    }
    let woken = a_counts.wakes();
    write_all(&w, b"done");
    park_until(&p, "the read", || poll_once(&mut read).is_ready());
    assert!(
        a_counts.wakes() > woken,
        "room came back but the op waiting for it was not woken"
    );
    assert!(poll_with(&mut a, &wa).is_pending());
    park_until(&p, "A", || poll_with(&mut a, &wa).is_ready());
}

/// A chain first in the queue, needing more room than there is, holds up
/// the single op behind it (room builds up for the chain); dropped, it
/// must let that op have the room there is. The requests in flight never
/// complete (idle reads): nothing else would wake the op.
#[test]
fn a_chain_first_in_the_queue_dropped_lets_the_ops_behind_it_that_fit_go() {
    let _serial = serial();
    let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(3)).unwrap();
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
    let counts = Arc::new(Counts::default());
    let waker = hook_waker(&counts, false);
    let mut single = p.nop();
    assert!(poll_with(&mut single, &waker).is_pending());
    // The third read's credit comes back: one free, the chain needs
    // three. (The op is not polled again: nothing woke its task.)
    write_all(&w3, b"done");
    park_until(&p, "the third read", || poll_once(&mut third).is_ready());
    let woken = counts.wakes();
    drop(chain);
    assert!(
        counts.wakes() > woken,
        "the chain left the queue; the op behind it, which fits, was not woken"
    );
    park_until(&p, "the op behind the chain", || {
        poll_with(&mut single, &waker).is_ready()
    });
}

/// An op polled again while it waits for room (its task was woken for
/// something else) waits in one place in the queue: the room that comes
/// back after it took its own goes to the next waiter, not to it again.
#[test]
fn an_op_polled_twice_while_waiting_for_room_waits_once() {
    let _serial = serial();
    let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    let (a_counts, b_counts) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
    let (wa, wb) = (hook_waker(&a_counts, false), hook_waker(&b_counts, false));
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let mut first = p.read(Arc::new(r1), Vec::with_capacity(4), CURRENT_POSITION);
    assert!(poll_once(&mut first).is_pending());
    // A: a read on another idle pipe, polled three times while it waits.
    let mut a = p.read(Arc::new(r2), Vec::with_capacity(4), CURRENT_POSITION);
    for _ in 0..3 {
        assert!(poll_with(&mut a, &wa).is_pending());
    }
    let mut b = p.nop();
    assert!(poll_with(&mut b, &wb).is_pending());
    // The first read completes and is taken: A is woken, takes the room
    // and holds it.
    write_all(&w1, b"one!");
    park_until(&p, "the first read", || poll_once(&mut first).is_ready());
    assert!(a_counts.wakes() > 0, "A woken for the room");
    assert!(poll_with(&mut a, &wa).is_pending());
    p.drive();
    // A completes: its room goes to B.
    write_all(&w2, b"two!");
    park_until(&p, "A done", || poll_with(&mut a, &wa).is_ready());
    park_until(&p, "B woken for the room A gave back", || {
        b_counts.wakes() > 0
    });
    park_until(&p, "B", || poll_with(&mut b, &wb).is_ready());
}

/// The same for an op waiting for room ahead of another that is a
/// dropped stream, a cancelled op, or a dropped timed op.
#[test]
fn streams_and_cancelled_ops_waiting_for_room_give_their_turn_on() {
    let _serial = serial();
    let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(1)).unwrap();
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let (a_counts, b_counts) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
    let (wa, wb) = (hook_waker(&a_counts, false), hook_waker(&b_counts, false));
    for round in 0..3 {
        let (r, w) = pipe();
        let mut read = p.read(Arc::new(r), Vec::with_capacity(4), CURRENT_POSITION);
        assert!(poll_once(&mut read).is_pending());
        // B waits first, then A (but see round 2); B goes without ever
        // getting room.
        let mut a = p.nop();
        match round {
            0 => {
                let mut stream = p.accept_multi(&listener);
                let mut next = stream.next_item();
                match poll_with(&mut next, &wb) {
                    Poll::Pending => {}
                    // No multishot accept (Linux 5.19): B never waits.
                    Poll::Ready(Some(Err(e))) if e.kind() == io::ErrorKind::Unsupported => {
                        eprintln!("ring-skip: streams_waiting_for_room: round 0: {e}");
                    }
                    other => panic!("{other:?}"),
                }
                drop(next);
                assert!(poll_with(&mut a, &wa).is_pending());
                drop(stream);
            }
            1 => {
                let mut b = p.nop();
                assert!(poll_with(&mut b, &wb).is_pending());
                assert!(poll_with(&mut a, &wa).is_pending());
                let mut b = b.cancel();
                let res = poll_with(&mut b, &wb);
                assert!(
                    matches!(&res, Poll::Ready(Err(e)) if e.raw_os_error() == Some(libc::ECANCELED)),
                    "{res:?}"
                );
            }
            _ => {
                // A waits first this time; the op and its timer both wait
                // for room after it.
                assert!(poll_with(&mut a, &wa).is_pending());
                let mut b = p.nop().timeout(Duration::from_secs(60));
                assert!(poll_with(&mut b, &wb).is_pending());
                drop(b);
            }
        }
        if a_counts.wakes() > 0 {
            assert!(poll_with(&mut a, &wa).is_pending());
        }
        let woken = a_counts.wakes();
        write_all(&w, b"done");
        park_until(&p, "the read", || poll_once(&mut read).is_ready());
        assert!(
            a_counts.wakes() > woken,
            "round {round}: room came back but the op waiting for it was not woken"
        );
        park_until(&p, "A", || poll_with(&mut a, &wa).is_ready());
    }
}

// ---------------------------------------------------------------------------
// Forged completions.

/// A LocalProactor whose ring has an fd, and that fd: on Linux 6.5 and
/// later a ring has none unless the thread's 16 registered-ring slots are
/// taken, so LocalProactors are made (and kept, in the first element)
/// until one has an fd.
fn local_with_fd(config: ProactorConfig) -> (Vec<LocalProactor>, LocalProactor, Vec<RawFd>) {
    let mut keep = Vec::new();
    loop {
        let before = ring_fds();
        let p = LocalProactor::new(config.clone()).expect("a LocalProactor");
        if !p.has_no_fd() {
            let fds: Vec<RawFd> = ring_fds()
                .into_iter()
                .filter(|fd| !before.contains(fd))
                .collect();
            assert!(!fds.is_empty(), "the ring's fd is among the process's");
            return (keep, p, fds);
        }
        keep.push(p);
        assert!(keep.len() <= 16, "17 LocalProactors without an fd");
    }
}

#[test]
fn forged_completions_complete_nothing_early_overflow_nothing_and_are_counted() {
    let _serial = serial();
    let Some(mut forger) = Forger::new() else {
        skip!(
            "local_forged_completions",
            "IORING_OP_MSG_RING needs Linux 5.18"
        );
    };
    let (_keep, p, targets) = local_with_fd(ProactorConfig::new(32));
    // Reads in flight on idle pipes, each into 16 bytes after a prefix
    // that must stay.
    let pipes: Vec<_> = (0..4).map(|_| pipe()).collect();
    let mut reads: Vec<_> = pipes
        .iter()
        .map(|(r, _)| {
            let mut buf = Vec::with_capacity(20);
            buf.extend_from_slice(b"keep");
            p.read(
                Arc::new(r.try_clone().unwrap()),
                buf.slice(4..20),
                CURRENT_POSITION,
            )
        })
        .collect();
    for read in &mut reads {
        assert!(poll_once(read).is_pending());
    }
    // In the kernel, with the wake-up read armed.
    p.park(Some(Duration::ZERO));
    let results = [
        i32::MAX,
        1 << 20,
        17,
        16,
        0,
        -libc::ECANCELED,
        -libc::ENOENT,
        1,
    ];
    let flags = [
        0,
        ring_io_sys::IORING_CQE_F_MORE,
        ring_io_sys::IORING_CQE_F_BUFFER | (3 << ring_io_sys::IORING_CQE_BUFFER_SHIFT),
    ];
    let landed = forger.spray(&targets, &guesses(), &results, &flags);
    assert!(landed > 0, "the kernel refused every forged completion");
    park_until(&p, "every forgery counted", || {
        p.stats().unexpected_cqes >= landed
    });
    let stats = p.stats();
    assert_eq!(stats.unexpected_cqes, landed, "{stats:?}");
    assert_eq!(
        stats.completed, 0,
        "a forged CQE completed an op: {stats:?}"
    );
    for read in &mut reads {
        assert!(poll_once(read).is_pending(), "a read completed early");
    }
    // The real completions still arrive, each within its capacity.
    for (i, (_, w)) in pipes.iter().enumerate() {
        write_all(w, &[b'a' + i as u8; 32]);
    }
    for (i, read) in reads.into_iter().enumerate() {
        let (n, buf) = read.wait();
        assert_eq!(n.unwrap(), 16);
        let buf = buf.into_inner();
        assert_eq!(buf.len(), 20);
        assert_eq!(&buf[..4], b"keep");
        assert!(buf[4..].iter().all(|&b| b == b'a' + i as u8));
    }
    p.nop().wait().unwrap();
    // Dropped ops are still cancelled and freed, and the LocalProactor
    // still waits for the kernel at shutdown: orphans in the kernel, then
    // forgeries into it, then the drop.
    let mut canaries: Vec<_> = pipes
        .iter()
        .map(|(r, _)| {
            p.read(
                Arc::new(r.try_clone().unwrap()),
                Canary::new(),
                CURRENT_POSITION,
            )
        })
        .collect();
    for read in &mut canaries {
        assert!(poll_once(read).is_pending());
    }
    p.park(Some(Duration::ZERO));
    drop(canaries);
    let landed2 = forger.spray(&targets, &guesses(), &[0, -libc::ENOENT], &[0]);
    p.park(Some(Duration::ZERO));
    let start = Instant::now();
    drop(p);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "shutdown waited {:?}",
        start.elapsed()
    );
    for (_, w) in &pipes {
        write_all(w, &[b'z'; 64]);
    }
    thread::sleep(Duration::from_millis(5));
    graves_untouched();
    assert!(landed2 > 0);
}

#[test]
fn a_forged_completion_never_hands_out_or_closes_an_fd_it_does_not_own() {
    let _serial = serial();
    let Some(mut forger) = Forger::new() else {
        skip!("local_forged_fd", "IORING_OP_MSG_RING needs Linux 5.18");
    };
    let (_keep, p, targets) = local_with_fd(ProactorConfig::new(32));
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let mut accept = p.accept(&listener);
    assert!(poll_once(&mut accept).is_pending());
    p.drive();
    let (victim, _w) = pipe();
    let victim_fd = victim.as_raw_fd();
    let landed = forger.spray(&targets, &guesses(), &[victim_fd], &[0]);
    assert!(landed > 0);
    park_until(&p, "every forgery counted", || {
        p.stats().unexpected_cqes >= landed
    });
    assert!(poll_once(&mut accept).is_pending(), "accepted early");
    let _client = TcpStream::connect(addr).unwrap();
    let fd = accept.wait().unwrap();
    assert_ne!(fd.as_raw_fd(), victim_fd);
    drop(fd);
    drop(p);
    assert!(is_open(victim_fd), "the victim's fd was closed");
}

#[test]
fn forged_completions_into_an_idle_local_proactor_are_counted_not_fatal() {
    let _serial = serial();
    let Some(mut forger) = Forger::new() else {
        skip!("local_forged_idle", "IORING_OP_MSG_RING needs Linux 5.18");
    };
    // A small CQ: more forgeries than it holds.
    let (_keep, p, targets) = local_with_fd(ProactorConfig::new(4));
    p.nop().wait().unwrap();
    let landed = forger.spray(&targets, &guesses(), &[0, i32::MIN, i32::MAX], &[0]);
    assert!(landed > 0);
    p.nop().wait().unwrap();
    park_until(&p, "every forgery counted", || {
        p.stats().unexpected_cqes >= landed
    });
    assert_eq!(p.stats().unexpected_cqes, landed);
    for _ in 0..10 {
        p.nop().wait().unwrap();
    }
    let (r, w) = pipe();
    write_all(&w, b"ok");
    let (n, buf) = p.read(r, Vec::with_capacity(8), CURRENT_POSITION).wait();
    assert_eq!((n.unwrap(), &buf[..]), (2, &b"ok"[..]));
    let start = Instant::now();
    drop(p);
    assert!(start.elapsed() < Duration::from_secs(1));
}

// ---------------------------------------------------------------------------
// Every drop point.

#[test]
fn ops_and_streams_dropped_at_every_point_leak_no_fd_and_free_no_buffer_early() {
    let _serial = serial();
    let before = fds().len();
    let p = LocalProactor::new(ProactorConfig::new(8).max_in_flight(6)).unwrap();
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let read_only = OpenOptions::new().read(true).clone();
    let mut clients = Vec::new();
    let (r, w) = pipe();
    let r = Arc::new(r);
    // Writes into the pipe while ops on it are dropped.
    let writer = {
        let w = w.try_clone().unwrap();
        thread::spawn(move || {
            for _ in 0..200 {
                let _ = std::fs::File::from(w.try_clone().unwrap()).write_all(&[7u8; 16]);
                thread::sleep(Duration::from_micros(100));
            }
        })
    };
    for i in 0..100 {
        // Never polled.
        drop(p.open("/dev/null", &read_only));
        drop(p.close(OwnedFd::from(std::fs::File::open("/dev/null").unwrap())));
        drop(p.read(&r, Canary::new(), CURRENT_POSITION));
        // Polled (in the SQ), not submitted.
        let mut open = p.open("/dev/null", &read_only);
        assert!(poll_once(&mut open).is_pending());
        let mut read = p.read(&r, Canary::new(), CURRENT_POSITION);
        assert!(poll_once(&mut read).is_pending());
        drop(open);
        drop(read);
        // In the kernel (or completed: the race with the writer).
        let mut close = p.close(OwnedFd::from(std::fs::File::open("/dev/null").unwrap()));
        let mut read = p.read(&r, Canary::new(), CURRENT_POSITION);
        let mut open = p.open("/dev/null", &read_only);
        for op in [&mut close as &mut dyn PollOnce, &mut read, &mut open] {
            op.poll_once();
        }
        p.drive();
        drop(close);
        drop(read);
        // Completed (most likely), never taken.
        p.park(Some(Duration::from_millis(1)));
        p.park(Some(Duration::from_millis(1)));
        drop(open);
        // An accept in flight, and one that completed.
        if i % 10 == 0 {
            let mut accept = p.accept(&listener);
            assert!(poll_once(&mut accept).is_pending());
            p.drive();
            clients.push(TcpStream::connect(addr).unwrap());
            if i % 20 == 0 {
                thread::sleep(Duration::from_millis(1));
                p.park(Some(Duration::from_millis(1)));
            }
            drop(accept);
        }
        // Waiting for room: the budget is filled with timeouts first.
        if i % 25 == 0 {
            let mut full: Vec<_> = (0..6).map(|_| p.timeout(Duration::from_secs(60))).collect();
            for t in &mut full {
                assert!(poll_once(t).is_pending());
            }
            let mut waiting = p.read(&r, Canary::new(), CURRENT_POSITION);
            assert!(poll_once(&mut waiting).is_pending());
            let mut stream = p.accept_multi(&listener);
            let _ = poll_once(&mut stream.next_item());
            drop(waiting);
            drop(stream);
            drop(full);
        }
    }
    // Streams: dropped before polling, in the kernel with connections
    // queued, after some items, after a cancel.
    drop(p.accept_multi(&listener));
    let mut stream = p.accept_multi(&listener);
    let polled = poll_once(&mut stream.next_item());
    match polled {
        // Before 5.19 (no multishot accept): the stream failed at once. It
        // still holds the LocalProactor: dropped here, or the ring and its
        // eventfd would stay open to the end of the test.
        Poll::Ready(Some(Err(e))) if e.kind() == io::ErrorKind::Unsupported => drop(stream),
        _ => {
            for _ in 0..3 {
                clients.push(TcpStream::connect(addr).unwrap());
            }
            let first = stream.wait_next().unwrap().unwrap();
            drop(first);
            for _ in 0..3 {
                clients.push(TcpStream::connect(addr).unwrap());
            }
            thread::sleep(Duration::from_millis(5));
            p.park(Some(Duration::from_millis(1)));
            drop(stream);
            let mut stream = p.accept_multi(&listener);
            let _ = poll_once(&mut stream.next_item());
            stream.cancel();
            drop(stream);
        }
    }
    writer.join().unwrap();
    park_until(&p, "every dropped op freed", || {
        let s = p.stats();
        s.orphans_freed >= 100
    });
    let start = Instant::now();
    drop(p);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    write_all(&w, &[9u8; 4096]);
    thread::sleep(Duration::from_millis(5));
    assert!(graves_untouched() >= 300);
    drop(clients);
    drop(listener);
    drop((r, w));
    let after = fds().len();
    assert_eq!(after, before, "fds leaked: {before} before, {after} after");
}

/// Polls a future once with a no-op waker, whatever its output.
trait PollOnce {
    fn poll_once(&mut self);
}

impl<O> PollOnce for LocalOp<O> {
    fn poll_once(&mut self) {
        let _ = poll_once(self);
    }
}

// ---------------------------------------------------------------------------
// Sizes and durations at their limits.

#[test]
fn buffer_sizes_at_their_limits_are_errors_or_exact_not_overflows() {
    let _serial = serial();
    let p = local(8);
    let (r, w) = pipe();
    let r = Arc::new(r);
    // More room than an op's 32-bit length: refused, the buffer back
    // (reserved, never touched: no memory is committed; a machine that
    // refuses to reserve that much address space, such as a small VM
    // without overcommit, skips this part).
    let mut big = Vec::<u8>::new();
    match big.try_reserve_exact(u32::MAX as usize + 1) {
        Err(e) => eprintln!("ring-skip: buffers past 4 GiB: cannot reserve 4 GiB here: {e}"),
        Ok(()) => {
            let cap = big.capacity();
            let (n, big) = p.read(&r, big, CURRENT_POSITION).wait();
            let err = n.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            assert_eq!(big.capacity(), cap);
            // Exactly u32::MAX bytes of room, through a slice: allowed;
            // the kernel writes what there is.
            write_all(&w, b"abc");
            let slice = big.slice(1..=u32::MAX as usize);
            let (n, slice) = p.read(&r, slice, CURRENT_POSITION).wait();
            assert_eq!(n.unwrap(), 3);
            assert_eq!(&slice[..], b"abc");
            let big = slice.into_inner();
            assert_eq!(&big[..], b"\0abc", "the byte before the slice zeroed");
            drop(big);
            // Vectored: a total past u32 (usize arithmetic near it).
            let mut bufs = vec![Vec::<u8>::new(), Vec::new()];
            if bufs
                .iter_mut()
                .all(|b| b.try_reserve_exact(3 << 30).is_ok())
            {
                write_all(&w, b"defgh");
                let (n, bufs) = p.readv(&r, bufs, CURRENT_POSITION).wait();
                assert_eq!(n.unwrap(), 5);
                assert_eq!((&bufs[0][..], bufs[1].len()), (&b"defgh"[..], 0));
            }
        }
    }
    // No room: refused, never a 0-byte read (end of file).
    for res in [
        p.read(&r, Vec::new(), CURRENT_POSITION).wait().0,
        p.read(&r, vec![1u8; 8].slice(8..), CURRENT_POSITION)
            .wait()
            .0,
        p.read(&r, vec![1u8; 8].slice(3..3), CURRENT_POSITION)
            .wait()
            .0,
        p.readv(&r, vec![Vec::new(), Vec::new()], CURRENT_POSITION)
            .wait()
            .0,
        p.readv(&r, Vec::<Vec<u8>>::new(), CURRENT_POSITION)
            .wait()
            .0,
        p.recv_from(&r, Vec::new()).wait().0.map(|(n, _)| n),
    ] {
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
    // Empty writes are writes of nothing.
    let (n, _) = p
        .write(
            Arc::new(w.try_clone().unwrap()),
            Vec::new(),
            CURRENT_POSITION,
        )
        .wait();
    assert_eq!(n.unwrap(), 0);
    let (n, _) = p
        .writev(
            Arc::new(w.try_clone().unwrap()),
            Vec::<Vec<u8>>::new(),
            CURRENT_POSITION,
        )
        .wait();
    assert_eq!(n.unwrap(), 0);
    // Too many buffers for the kernel: its error, the buffers back.
    let (n, bufs) = p
        .readv(
            &r,
            (0..2000).map(|_| Vec::with_capacity(1)).collect(),
            CURRENT_POSITION,
        )
        .wait();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    assert_eq!(bufs.len(), 2000);
    // An offset past i64::MAX is refused, not taken for "the position".
    let err = p
        .splice(
            &r,
            Some(u64::MAX),
            Arc::new(w.try_clone().unwrap()),
            None,
            16,
        )
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // A path with a NUL: refused before the kernel.
    let err = p
        .open("a\0b", OpenOptions::new().read(true))
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    p.nop().wait().unwrap();
}

#[test]
fn durations_and_configs_at_their_limits_are_errors_or_clamps_not_panics() {
    let _serial = serial();
    // Ring sizes: none, and more than the kernel allows.
    for config in [
        ProactorConfig::new(0),
        ProactorConfig::new(u32::MAX),
        ProactorConfig::new(8).cq_entries(u32::MAX),
        ProactorConfig::new(8).cq_entries(1),
        ProactorConfig::new(8).fixed_buffers(4, 4096),
    ] {
        match LocalProactor::new(config.clone()) {
            Ok(p) => p.nop().wait().unwrap(),
            Err(e) => {
                let e = io::Error::from(e);
                assert!(
                    matches!(
                        e.kind(),
                        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                    ),
                    "{config:?}: {e}"
                );
            }
        }
    }
    assert!(LocalProactor::new(ProactorConfig::new(0)).is_err());
    // The smallest ring (1 SQ entry) runs many ops at once, and many
    // cancellations.
    let p = local(1);
    let n = p.block_on(async {
        let mut ops: Vec<_> = (0..64).map(|_| p.nop()).collect();
        let mut timeouts: Vec<_> = (0..16)
            .map(|_| p.timeout(Duration::from_secs(60)))
            .collect();
        poll_fn(|cx| {
            for t in &mut timeouts {
                assert!(Pin::new(t).poll(cx).is_pending());
            }
            Poll::Ready(())
        })
        .await;
        drop(timeouts);
        let mut n = 0;
        for op in ops.drain(..) {
            op.await.unwrap();
            n += 1;
        }
        n
    });
    assert_eq!(n, 64);
    park_until(&p, "the timeouts freed", || p.stats().orphans_freed == 16);
    assert_eq!(p.stats().cq_overflow, 0);
    drop(p);
    // Budgets: 0 is raised to 1, u32::MAX is taken as it is.
    let p = LocalProactor::new(ProactorConfig::new(4).max_in_flight(0)).unwrap();
    assert_eq!(p.max_in_flight(), 1);
    let ops: Vec<_> = (0..4).map(|_| p.nop()).collect();
    p.block_on(async {
        for op in ops {
            op.await.unwrap();
        }
    });
    drop(p);
    let p = LocalProactor::new(ProactorConfig::new(4).max_in_flight(u32::MAX)).unwrap();
    assert_eq!(p.max_in_flight(), u32::MAX);
    // Timeouts: zero ends at once, MAX never (until cancelled).
    p.timeout(Duration::ZERO).wait().unwrap();
    p.timeout(Duration::from_nanos(1)).wait().unwrap();
    let mut forever = p.timeout(Duration::MAX);
    assert!(poll_once(&mut forever).is_pending());
    p.park(Some(Duration::from_millis(10)));
    assert!(
        poll_once(&mut forever).is_pending(),
        "an endless timeout ended"
    );
    let res = forever.cancel().wait();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    // A read timed out at once: Elapsed, with its buffer; one with an
    // endless timeout gets its data.
    let (r, w) = pipe();
    let r = Arc::new(r);
    let elapsed = p
        .read(&r, Vec::with_capacity(4), CURRENT_POSITION)
        .timeout(Duration::ZERO)
        .wait()
        .unwrap_err();
    let (res, buf) = elapsed.into_inner();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(buf.capacity(), 4);
    write_all(&w, b"data");
    let (n, buf) = p
        .read(&r, Vec::with_capacity(4), CURRENT_POSITION)
        .timeout(Duration::MAX)
        .wait()
        .unwrap();
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"data"[..]));
}

#[test]
fn park_and_block_on_with_odd_timeouts_return_when_they_should() {
    let _serial = serial();
    let dog = Watchdog::new("park_and_block_on_with_odd_timeouts");
    let p = local(8);
    // Zero and tiny timeouts return at once, nothing pending or not.
    for t in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(1),
    ] {
        let start = Instant::now();
        p.park(Some(t));
        assert!(start.elapsed() < Duration::from_secs(1));
        let mut t = p.timeout(Duration::from_secs(60));
        assert!(poll_once(&mut t).is_pending());
        p.park(Some(Duration::ZERO));
        drop(t);
        dog.step();
    }
    // An endless park (None, and Duration::MAX) ends with an unpark from
    // another thread, before or during it.
    for timeout in [
        None,
        Some(Duration::MAX),
        Some(Duration::from_secs(u64::MAX / 2)),
    ] {
        p.unparker().unpark();
        p.park(timeout);
        dog.step();
        let unparker = p.unparker();
        let stop = Arc::new(AtomicBool::new(false));
        let t = {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(2));
                    unparker.unpark();
                }
            })
        };
        p.park(timeout);
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
        dog.step();
    }
    // A block_on inside a block_on (from a waker's wake) and one on a
    // future that is ready at once.
    assert_eq!(p.block_on(async { 7 }), 7);
    let q = Rc::new(p);
    let r = q.clone();
    let out = q.block_on(async move {
        let inner = r.block_on(async { r.nop().await });
        inner.unwrap();
        r.timeout(Duration::from_millis(1)).await
    });
    out.unwrap();
    // Many wake-ups from another thread: one park returns for them, the
    // next waits (here for a NOP).
    let unparker = q.unparker();
    thread::spawn(move || {
        for _ in 0..1000 {
            unparker.unpark();
        }
    })
    .join()
    .unwrap();
    q.park(None);
    q.nop().wait().unwrap();
    dog.step();
}

// ---------------------------------------------------------------------------
// The Proactor's lock-free completion path (cells).

/// A waker that counts its wake-ups and unparks a thread.
struct Flag {
    woken: AtomicU32,
    thread: Mutex<Option<thread::Thread>>,
}

impl Flag {
    fn new() -> Arc<Flag> {
        Arc::new(Flag {
            woken: AtomicU32::new(0),
            thread: Mutex::new(None),
        })
    }
    /// Waits (at most 10 s) for a wake-up after `seen`.
    fn wait_past(&self, seen: u32) -> bool {
        *self.thread.lock().unwrap() = Some(thread::current());
        let start = Instant::now();
        while self.woken.load(Ordering::SeqCst) <= seen {
            if start.elapsed() > Duration::from_secs(10) {
                return false;
            }
            thread::park_timeout(Duration::from_millis(1));
        }
        true
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = self.thread.lock().unwrap().as_ref() {
            t.unpark();
        }
    }
}

/// Ops that hop between threads, each poll with a new waker, while the
/// fallback thread completes them: the waker of the last pending poll is
/// always woken, and each op completes once with its own data.
#[test]
fn an_op_polled_from_many_threads_with_new_wakers_is_woken_and_completes_once() {
    let _serial = serial();
    const OPS: usize = 300;
    const HOPS: usize = 4;
    let p = Arc::new(Proactor::new(ProactorConfig::new(64)).unwrap());
    let (r, w) = pipe();
    let r = Arc::new(r);
    // Channels between the hopping threads; the last returns the output.
    type Item = (
        usize,
        ring_io_proactor::Op<ring_io_proactor::BufResult<usize, Vec<u8>>>,
    );
    let (done_tx, done_rx) = mpsc::channel::<(usize, Vec<u8>)>();
    let mut senders: Vec<mpsc::Sender<Item>> = Vec::new();
    let mut next: Option<mpsc::Sender<Item>> = None;
    let mut threads = Vec::new();
    for hop in (0..HOPS).rev() {
        let (tx, rx) = mpsc::channel::<Item>();
        let forward = next.take();
        let done_tx = done_tx.clone();
        threads.push(thread::spawn(move || {
            for (i, mut op) in rx {
                let flag = Flag::new();
                let waker = Waker::from(flag.clone());
                let seen = flag.woken.load(Ordering::SeqCst);
                match poll_with(&mut op, &waker) {
                    Poll::Ready((n, buf)) => {
                        assert_eq!(n.unwrap(), 8);
                        done_tx.send((i, buf)).unwrap();
                    }
                    Poll::Pending => match &forward {
                        Some(f) => f.send((i, op)).unwrap(),
                        None => {
                            // The last hop: its waker must be woken.
                            assert!(
                                flag.wait_past(seen),
                                "op {i}: the last waker never woken (hop {hop})"
                            );
                            let (n, buf) = match poll_with(&mut op, &waker) {
                                Poll::Ready(out) => out,
                                Poll::Pending => panic!("op {i}: woken but pending"),
                            };
                            assert_eq!(n.unwrap(), 8);
                            done_tx.send((i, buf)).unwrap();
                        }
                    },
                }
            }
        }));
        next = Some(tx.clone());
        senders.push(tx);
    }
    drop(done_tx);
    let first = next.take().unwrap();
    drop(senders);
    let writer = {
        let w = w.try_clone().unwrap();
        thread::spawn(move || {
            let mut f = std::fs::File::from(w);
            for i in 0..OPS {
                f.write_all(&[(i % 251) as u8; 8]).unwrap();
                if i % 16 == 0 {
                    thread::yield_now();
                }
            }
        })
    };
    for i in 0..OPS {
        first
            .send((i, p.read(&r, Vec::with_capacity(8), CURRENT_POSITION)))
            .unwrap();
    }
    drop(first);
    writer.join().unwrap();
    let mut got = vec![0usize; 251];
    let mut count = 0;
    for _ in 0..OPS {
        let (_, buf) = done_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("an op never completed");
        assert_eq!(buf.len(), 8);
        assert!(buf.iter().all(|&b| b == buf[0]), "{buf:?}");
        got[buf[0] as usize] += 1;
        count += 1;
    }
    assert_eq!(count, OPS);
    // Every 8-byte record read once (reads from one pipe take them in some
    // order, each whole).
    for (v, &n) in got.iter().enumerate() {
        let want = (0..OPS).filter(|i| i % 251 == v).count();
        assert_eq!(n, want, "record {v}");
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(p.stats().unexpected_cqes, 0);
}

/// Ops dropped on other threads at any moment of their completion: no
/// credit, fd or buffer is lost, and the Proactor still runs a full budget
/// of ops after.
#[test]
fn ops_dropped_concurrently_with_their_completion_leak_nothing() {
    let _serial = serial();
    const OPS: usize = 2000;
    let before = fds().len();
    let p = Arc::new(Proactor::new(ProactorConfig::new(32).max_in_flight(8)).unwrap());
    let read_only = OpenOptions::new().read(true).clone();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::sync_channel::<(u32, Box<dyn Send>)>(16);
    let dropper = {
        let dropped = dropped.clone();
        thread::spawn(move || {
            for (spin, op) in rx {
                for _ in 0..spin {
                    std::hint::spin_loop();
                }
                drop(op);
                dropped.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let flag = Flag::new();
    let waker = Waker::from(flag.clone());
    for i in 0..OPS {
        let spin = (i as u32 * 7919) % 5000;
        match i % 3 {
            0 => {
                let mut op = p.open("/dev/null", &read_only);
                let _ = poll_with(&mut op, &waker);
                tx.send((spin, Box::new(op))).unwrap();
            }
            1 => {
                let op = p.nop().start();
                tx.send((spin, Box::new(op))).unwrap();
            }
            _ => {
                let zero = Arc::new(std::fs::File::open("/dev/zero").unwrap());
                let mut op = p.read(zero, Canary::new(), 0);
                let _ = poll_with(&mut op, &waker);
                tx.send((spin, Box::new(op))).unwrap();
            }
        }
    }
    drop(tx);
    dropper.join().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), OPS);
    // The whole budget is free again: 8 ops at once, each completing.
    let q = p.clone();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let ops: Vec<_> = (0..8)
            .map(|_| q.timeout(Duration::from_millis(1)).start())
            .collect();
        for op in ops {
            op.wait().unwrap();
        }
        drop(q);
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("credit was lost: the budget never came back");
    let p = Arc::try_unwrap(p).unwrap_or_else(|_| panic!("the last handle"));
    drop(p);
    let (after, open) = fds_settled(before);
    assert_eq!(after, before, "an fd leaked: {open}");
    graves_untouched();
}

/// A waker whose `clone` drives the Proactor (the completion may be
/// published while the op stores its waker) and whose `drop` waits on
/// another op.
#[test]
fn a_waker_whose_clone_drives_the_proactor_loses_no_completion() {
    let _serial = serial();
    let p = Arc::new(Proactor::new(ProactorConfig::new(32)).unwrap());
    let counts = Arc::new(Counts::default());
    {
        let p = p.clone();
        set_hook(move |event| match event {
            Event::Clone => {
                p.drive();
            }
            Event::Drop => p.nop().wait().unwrap(),
            Event::Wake => {}
        });
    }
    for round in 0..200 {
        let mut op = p.nop();
        let mut polls = 0;
        loop {
            // A new waker each poll: the op clones it into its slot.
            let waker = hook_waker(&counts, round % 2 == 0);
            let woken = counts.wakes();
            match poll_with(&mut op, &waker) {
                Poll::Ready(res) => {
                    res.unwrap();
                    break;
                }
                Poll::Pending => {
                    polls += 1;
                    assert!(polls < 1000, "round {round}: never ready");
                    eventually("the stored waker woken", || {
                        p.drive();
                        counts.wakes() > woken
                    });
                }
            }
        }
    }
    clear_hook();
    assert_eq!(p.stats().unexpected_cqes, 0);
    let p = Arc::try_unwrap(p).unwrap_or_else(|_| panic!("the hook let go of it"));
    drop(p);
    assert_eq!(counts.live.load(Ordering::SeqCst), 0, "a waker leaked");
}

/// A LocalMulti polled with a waker whose clones are new allocations
/// (for which `will_wake` is false), whose clone drives the ring so that
/// an item arrives while the stream stores the waker: the poll returns
/// that item, or stores the waker to be woken; it never returns `Pending`
/// with an item waiting and no waker stored.
#[test]
fn a_stream_whose_waker_clone_drives_loses_no_item() {
    let _serial = serial();
    let p = Rc::new(local(16));
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let mut stream = p.accept_multi(&listener);
    let first = Arc::new(Counts::default());
    match poll_with(&mut stream.next_item(), &hook_waker(&first, true)) {
        Poll::Ready(Some(Err(e))) if e.kind() == io::ErrorKind::Unsupported => {
            skip!("a_stream_whose_waker_clone_drives", "{e}");
        }
        Poll::Pending => {}
        other => panic!("{other:?}"),
    }
    p.drive();
    let clients: Rc<RefCell<Vec<TcpStream>>> = Rc::default();
    {
        let (p, clients) = (p.clone(), clients.clone());
        set_hook(move |event| {
            if event == Event::Clone {
                // A connection arrives and is accepted while the stream
                // clones the waker it is about to store.
                clients.borrow_mut().push(TcpStream::connect(addr).unwrap());
                let start = Instant::now();
                let done = p.stats().completed;
                while p.stats().completed == done && start.elapsed() < Duration::from_secs(5) {
                    p.park(Some(Duration::from_millis(1)));
                }
            }
        });
    }
    for round in 0..5 {
        // Another task's waker each round (the stream moved between
        // tasks): the waker stored before is woken by the new item, but
        // that is another task's.
        let counts = Arc::new(Counts::default());
        let waker = hook_waker(&counts, true);
        let polled = poll_with(&mut stream.next_item(), &waker);
        match polled {
            Poll::Ready(Some(fd)) => drop(fd.unwrap()),
            Poll::Pending => {
                clear_hook();
                let lost = poll_once(&mut stream.next_item()).is_ready() && counts.wakes() == 0;
                assert!(
                    !lost,
                    "round {round}: an item arrived during the waker's clone; the poll \
                     returned Pending and its waker was never woken"
                );
                panic!("round {round}: no item, though one was accepted during the poll");
            }
            Poll::Ready(None) => panic!("the stream ended"),
        }
    }
    clear_hook();
    drop(stream);
    drop(clients);
}

/// An op first polled with a waker whose clones are new allocations: its
/// slot stores a clone, so the op must not remember the caller's waker as
/// the stored one. Here the caller's waker is dropped and another task's
/// waker comes to live at its address (with the same vtable: the same
/// `will_wake` identity, which a dead waker's address gives no right to);
/// polled with it, the op must store it, and wake it when it completes.
#[test]
fn an_op_never_takes_a_new_waker_at_a_dead_wakers_address_for_the_stored_one() {
    let _serial = serial();
    let p = Proactor::new(ProactorConfig::new(8)).unwrap();
    let (r, w) = pipe();
    let mut read = p.read(Arc::new(r), Vec::with_capacity(4), CURRENT_POSITION);
    let first = Arc::new(Counts::default());
    let second = Arc::new(Counts::default());
    let w1 = hook_waker(&first, true);
    let dead = w1.data();
    assert!(poll_with(&mut read, &w1).is_pending());
    drop(w1);
    // Another task's waker at the same address (the allocator hands the
    // freed block out again; others made meanwhile are kept).
    let mut others = Vec::new();
    let w2 = loop {
        let w = hook_waker(&second, true);
        if w.data() == dead {
            break w;
        }
        others.push(w);
        if others.len() > 1000 {
            skip!(
                "an_op_never_takes_a_new_waker_at_a_dead_wakers_address",
                "the allocator never reused the freed waker's block"
            );
        }
    };
    drop(others);
    assert!(poll_with(&mut read, &w2).is_pending());
    write_all(&w, b"data");
    let start = Instant::now();
    while second.wakes() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the op completed but woke the dead waker's clone ({} wake-ups), \
             not the waker it was last polled with",
            first.wakes()
        );
        thread::sleep(Duration::from_millis(1));
    }
    let (n, buf) = match poll_with(&mut read, &w2) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("woken but pending"),
    };
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"data"[..]));
}

#[test]
fn a_park_in_a_waker_run_by_block_on_leaves_block_on_its_wake_up() {
    // `block_on`'s NOP and an op polled with a hook waker complete in one
    // turn: the reap marks `block_on`'s own waker woken, then the hook
    // waker's wake (run by the turn, after the reap) parks. That park took
    // the wake-up: `block_on` then waited in the kernel for a completion
    // that had come (the hang seen about once in 50 runs of
    // wakers_that_use_the_local_proactor_in_clone_wake_and_drop_break_nothing
    // on 5.10 aarch64, where a hook waits on an op and then parks).
    let _serial = serial();
    let dog = Watchdog::new("a_park_in_a_waker_run_by_block_on");
    let p = Rc::new(local(8));
    let counts = Arc::new(Counts::default());
    let parks = Rc::new(Cell::new(0u32));
    {
        let (p, parks) = (p.clone(), parks.clone());
        set_hook(move |event| {
            if let Event::Wake = event {
                p.park(Some(Duration::ZERO));
                parks.set(parks.get() + 1);
            }
        });
    }
    let mut other = p.nop();
    assert!(poll_with(&mut other, &hook_waker(&counts, false)).is_pending());
    p.block_on(async { p.nop().await.unwrap() });
    dog.step();
    clear_hook();
    assert_eq!(parks.get(), 1, "the hook waker was woken, and parked");
    drop(other);
    drop(dog);
}
