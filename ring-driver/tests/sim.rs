//! The driver's loops against ring-core's simulated kernel, with faults the
//! real kernel produces rarely: EINTR, EBUSY, EAGAIN, short submits,
//! dropped completions, SQPOLL sleeping, indices crossing u32::MAX.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use ring_io_core::{Enter, Fault, FlagsRead, Geometry, SimCompletion, SimConfig, SimKernel};
use ring_io_driver::{
    Cqe, Kernel, Push128Error, Ring, Sim, TIMEOUT_USER_DATA, WaitArgs, WrongRing,
};
use ring_io_ops::Nop;
use ring_io_sys::{
    Errno, Features, SetupFlags, SqFlags, io_uring_cqe, io_uring_cqe32, io_uring_sqe,
    io_uring_sqe128,
};

fn geometry(sq: u32, cq: u32, flags: SetupFlags, features: Features) -> Geometry {
    Geometry::new(sq, cq, flags, features).unwrap()
}

fn ring(sq: u32, cq: u32) -> Ring<Sim> {
    let g = geometry(sq, cq, SetupFlags::empty(), Features::NODROP);
    Ring::simulated(g, SimConfig::new(&g)).unwrap()
}

fn push(ring: &mut Ring<Sim>, ids: impl IntoIterator<Item = u64>) {
    let mut sq = ring.sq();
    for id in ids {
        // SAFETY: NOPs carry no pointers.
        unsafe { sq.push(Nop::new().build().user_data(id)) }.unwrap();
    }
}

fn ids(ring: &mut Ring<Sim>) -> Vec<u64> {
    ring.cq().map(|c: Cqe| c.user_data()).collect()
}

#[test]
fn eintr_is_retried() {
    let mut ring = ring(4, 8);
    for _ in 0..3 {
        ring.sim_mut()
            .inner_mut()
            .inject(Fault::Error(Errno::EINTR));
    }
    push(&mut ring, [1, 2]);
    assert_eq!(ring.submitter().submit_and_wait(2).unwrap(), 2);
    assert_eq!(ids(&mut ring), [1, 2]);
    assert_eq!(
        ring.kernel().enters(),
        4,
        "three interrupted enters, then one that worked"
    );
}

#[test]
fn a_short_submit_leaves_the_rest_pending_then_submits_it() {
    let mut ring = ring(8, 16);
    ring.sim_mut().inner_mut().inject(Fault::ShortSubmit(2));
    push(&mut ring, 0..5);
    assert_eq!(ring.submitter().submit().unwrap(), 2);
    assert_eq!(ring.submitter().pending(), 3);
    assert_eq!(ring.submitter().submit_and_wait(5).unwrap(), 3);
    assert_eq!(ids(&mut ring), [0, 1, 2, 3, 4]);
}

#[test]
fn ebusy_is_resolved_by_reaping_and_nothing_is_lost() {
    let mut ring = ring(4, 4);
    // Fill the CQ: 4 completions ready, not reaped.
    push(&mut ring, 0..4);
    ring.submitter().submit_and_wait(4).unwrap();
    // The kernel refuses the next enter until the CQ has room.
    ring.sim_mut()
        .inner_mut()
        .inject(Fault::Error(Errno::EBUSY));
    push(&mut ring, 4..8);
    assert_eq!(ring.submitter().submit_and_wait(4).unwrap(), 4);
    // The moved completions come first, in order, then the new ones.
    assert_eq!(ids(&mut ring), (0..8).collect::<Vec<_>>());
    assert_eq!(ring.overflow(), 0);
}

#[test]
fn eagain_with_nothing_to_reap_is_reported() {
    let mut ring = ring(4, 8);
    ring.sim_mut()
        .inner_mut()
        .inject(Fault::Error(Errno::EAGAIN));
    push(&mut ring, [1]);
    let err = ring.submitter().submit().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    // The entry is still pending, not lost: the next submit sends it.
    assert_eq!(ring.submitter().submit_and_wait(1).unwrap(), 1);
    assert_eq!(ids(&mut ring), [1]);
}

#[test]
fn without_nodrop_excess_completions_are_counted_as_overflow() {
    let g = geometry(8, 8, SetupFlags::empty(), Features::empty());
    let mut ring = Ring::simulated(
        g,
        SimConfig {
            nodrop: false,
            ..SimConfig::new(&g)
        },
    )
    .unwrap();
    push(&mut ring, 0..8);
    ring.submitter().submit_and_wait(8).unwrap();
    push(&mut ring, 8..12);
    ring.submitter().submit().unwrap();
    assert_eq!(ring.overflow(), 4, "four completions had no slot");
    assert_eq!(ids(&mut ring), (0..8).collect::<Vec<_>>());
}

#[test]
fn nodrop_backlog_is_flushed_into_the_cq() {
    let mut ring = ring(8, 8);
    push(&mut ring, 0..8);
    ring.submitter().submit().unwrap();
    push(&mut ring, 8..16);
    ring.submitter().submit().unwrap();
    let mut seen = ids(&mut ring);
    ring.submitter().flush().unwrap();
    seen.extend(ids(&mut ring));
    assert_eq!(seen, (0..16).collect::<Vec<_>>());
    assert_eq!(ring.overflow(), 0);
}

#[test]
fn indices_cross_u32_max() {
    let g = geometry(4, 8, SetupFlags::empty(), Features::NODROP);
    let kernel = SimKernel::with_start(g, SimConfig::new(&g), u32::MAX - 5).unwrap();
    let mut ring = Ring::with_kernel(Sim::from_kernel(kernel));
    let mut next = 0u64;
    for _ in 0..6 {
        push(&mut ring, next..next + 4);
        ring.submitter().submit_and_wait(4).unwrap();
        assert_eq!(ids(&mut ring), (next..next + 4).collect::<Vec<_>>());
        next += 4;
    }
    assert!(
        ring.kernel().inner().sq_head() < 100,
        "the SQ head wrapped past u32::MAX"
    );
}

#[test]
fn sqpoll_needs_an_enter_only_to_wake_the_thread() {
    let g = geometry(4, 8, SetupFlags::SQPOLL, Features::NODROP);
    let mut ring = Ring::simulated(
        g,
        SimConfig {
            sqpoll_idle: 2,
            ..SimConfig::new(&g)
        },
    )
    .unwrap();
    push(&mut ring, [1]);
    // The thread is awake: publishing is enough; no enter to submit.
    assert_eq!(ring.submitter().submit().unwrap(), 0);
    assert_eq!(ring.kernel().enters(), 0);
    while ring.sim_mut().inner_mut().step() {}
    assert_eq!(ids(&mut ring), [1]);
    // Now idle long enough to sleep: the next submit must wake it.
    assert!(
        ring.kernel()
            .inner()
            .sq_flags()
            .contains(ring_io_sys::SqFlags::NEED_WAKEUP)
    );
    push(&mut ring, [2]);
    ring.submitter().submit().unwrap();
    assert_eq!(ring.kernel().enters(), 1, "one enter, with SQ_WAKEUP");
    while ring.sim_mut().inner_mut().step() {}
    assert_eq!(ids(&mut ring), [2]);
}

#[test]
fn a_full_sq_hands_back_and_a_reaped_head_frees_it() {
    let mut ring = ring(2, 4);
    push(&mut ring, [1, 2]);
    // SAFETY: a NOP carries no pointers.
    let back = unsafe { ring.sq().push(Nop::new().build().user_data(3)) }.unwrap_err();
    assert_eq!(back.0.get_user_data(), 3);
    let err: io::Error = back.into();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    ring.submitter().submit().unwrap();
    // SAFETY: as above.
    unsafe { ring.sq().push(Nop::new().build().user_data(3)) }.unwrap();
}

#[test]
fn a_completion_posted_since_the_last_look_satisfies_a_submit_and_wait() {
    // Entering to submit, the driver decides with the CQ tail it loaded
    // last (the kernel may have posted more since): GETEVENTS then counts
    // what is already there, and the wait ends at once.
    let g = geometry(4, 8, SetupFlags::empty(), Features::NODROP);
    let mut ring = Ring::simulated(
        g,
        SimConfig {
            lag: 1,
            ..SimConfig::new(&g)
        },
    )
    .unwrap();
    push(&mut ring, [1]);
    assert_eq!(ring.submitter().submit().unwrap(), 1);
    ring.sim_mut().inner_mut().step();
    assert_eq!(ring.kernel().inner().cq_tail(), 1, "posted, not yet seen");
    push(&mut ring, [2]);
    assert_eq!(ring.submitter().submit_and_wait(1).unwrap(), 1);
    assert_eq!(ring.kernel().enters(), 2);
    assert_eq!(ids(&mut ring), [1], "2 is still in flight");
    // Nothing to submit: the tail is loaded before deciding to wait.
    assert_eq!(ring.submitter().submit_and_wait(1).unwrap(), 0);
    assert_eq!(ids(&mut ring), [2]);
    assert_eq!(ring.submitter().submit_and_wait(0).unwrap(), 0);
    assert_eq!(ring.kernel().enters(), 3, "no enter without work");
}

#[test]
fn stashed_completions_come_first_across_views_and_partial_reads() {
    let mut ring = ring(4, 4);
    push(&mut ring, 0..4);
    ring.submitter().submit_and_wait(4).unwrap();
    ring.sim_mut()
        .inner_mut()
        .inject(Fault::Error(Errno::EBUSY));
    push(&mut ring, 4..8);
    assert_eq!(ring.submitter().submit_and_wait(4).unwrap(), 4);
    // Read part of the stash, drop the view, read on: nothing is lost or
    // repeated, and the order holds.
    let mut got: Vec<u64> = ring.cq().take(3).map(|c| c.user_data()).collect();
    {
        let mut cq = ring.cq();
        assert_eq!(cq.len(), 5);
        assert_eq!(cq.peek().map(|c| c.user_data()), Some(3));
        got.extend(cq.by_ref().take(2).map(|c| c.user_data()));
        cq.sync();
        got.extend(cq.map(|c| c.user_data()));
    }
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    // With the stash empty again, later completions read as usual.
    push(&mut ring, 8..12);
    ring.submitter().submit_and_wait(4).unwrap();
    assert_eq!(ids(&mut ring), (8..12).collect::<Vec<_>>());
    assert!(ring.cq().next().is_none());
}

#[test]
fn thirty_two_byte_cqes_are_read_whole() {
    let g = geometry(4, 8, SetupFlags::CQE32, Features::NODROP);
    let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
    for round in 0..3u64 {
        push(&mut ring, (0..4).map(|i| round * 10 + i));
        ring.submitter().submit_and_wait(4).unwrap();
        let cqes: Vec<Cqe> = ring.cq().collect();
        let ids: Vec<u64> = cqes.iter().map(Cqe::user_data).collect();
        assert_eq!(ids, (0..4).map(|i| round * 10 + i).collect::<Vec<_>>());
        assert!(
            cqes.iter()
                .all(|c| c.big() == [0, 0] && c.result() == Ok(0))
        );
    }
}

#[test]
fn a_full_view_reloads_the_head_once_the_sqpoll_thread_consumed() {
    let g = geometry(4, 8, SetupFlags::SQPOLL, Features::NODROP);
    let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
    push(&mut ring, 0..4);
    // Awake, the thread takes the entries without an enter; the ring has
    // not looked at the head since.
    assert_eq!(ring.submitter().submit().unwrap(), 0);
    ring.sim_mut().inner_mut().step();
    assert_eq!(ring.kernel().inner().sq_head(), 4, "consumed by the thread");
    {
        let mut sq = ring.sq();
        assert_eq!(sq.space(), 0, "as last known");
        // Full as far as the view knows: it reads the head and finds room,
        // for single entries and for a batch that fits.
        // SAFETY: NOPs carry no pointers.
        unsafe { sq.push(Nop::new().build().user_data(4)) }.unwrap();
        let batch = [
            Nop::new().build().user_data(5),
            Nop::new().build().user_data(6),
        ];
        // SAFETY: as above.
        unsafe { sq.push_batch(&batch) }.unwrap();
        assert_eq!(sq.space(), 1);
        // SAFETY: as above.
        let refused = unsafe { sq.push_batch(&[batch[0], batch[1]]) }.unwrap_err();
        assert_eq!(refused.0, 1, "one slot left: all or nothing");
    }
    assert_eq!(ring.submitter().submit().unwrap(), 0);
    while ring.sim_mut().inner_mut().step() {}
    let mut got = ids(&mut ring);
    got.sort_unstable();
    assert_eq!(got, (0..7).collect::<Vec<_>>());
}

#[test]
fn a_leaked_sq_view_pushes_nothing_and_the_ring_goes_on() {
    let mut ring = ring(4, 8);
    {
        let mut sq = ring.sq();
        // SAFETY: a NOP carries no pointers.
        unsafe { sq.push(Nop::new().build().user_data(1)) }.unwrap();
        std::mem::forget(sq);
    }
    assert_eq!(
        ring.submitter().submit().unwrap(),
        0,
        "nothing was committed"
    );
    push(&mut ring, [2, 3]);
    assert_eq!(ring.submitter().submit_and_wait(2).unwrap(), 2);
    assert_eq!(ids(&mut ring), [2, 3]);
}

#[test]
fn a_wait_counts_stashed_completions_and_asks_the_kernel_only_for_the_rest() {
    // Requests complete a step after they are consumed, so a wait really
    // waits.
    let g = geometry(4, 8, SetupFlags::empty(), Features::NODROP);
    let mut ring = Ring::simulated(
        g,
        SimConfig {
            lag: 1,
            ..SimConfig::new(&g)
        },
    )
    .unwrap();
    push(&mut ring, [0, 1]);
    ring.submitter().submit_and_wait(2).unwrap();
    // EBUSY on the next enter moves the two ready CQEs into the stash.
    ring.sim_mut()
        .inner_mut()
        .inject(Fault::Error(Errno::EBUSY));
    push(&mut ring, [2]);
    assert_eq!(ring.submitter().submit().unwrap(), 1);
    // Three wanted: two stashed, one in flight. The kernel must be asked
    // for one, not three (which it could never reach: a real kernel would
    // sleep forever, the simulated one reports ETIME).
    ring.submitter().submit_and_wait(3).unwrap();
    assert_eq!(ids(&mut ring), [0, 1, 2]);
}

/// Runs `f` on another thread and fails, instead of hanging, if it has not
/// returned within `limit` (a loop around enter that makes no progress).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    // Under Miri, whose clock runs with the (far slower) interpreted code,
    // the same loop takes many times longer.
    let limit = if cfg!(miri) { limit * 100 } else { limit };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => {
            panic!("no return within {limit:?}: a loop around enter makes no progress")
        }
        Err(RecvTimeoutError::Disconnected) => panic!("the call panicked"),
    }
}

#[test]
fn a_wait_for_more_than_the_cq_holds_returns_once_it_is_full() {
    // Four completions in the CQ, four in the overflow backlog: the kernel
    // can post no more until the caller reaps, so a wait for eight ends
    // with the four there (the kernel, too, clamps `min_complete` to the
    // CQ size); it used to enter again and again, forever.
    for (name, features) in [
        ("ext_arg", Features::NODROP | Features::EXT_ARG),
        ("timeout sqe", Features::NODROP),
    ] {
        let g = geometry(4, 4, SetupFlags::empty(), features);
        let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
        push(&mut ring, 0..4);
        ring.submitter().submit().unwrap();
        push(&mut ring, 4..8);
        ring.submitter().submit().unwrap();
        assert_eq!(ring.kernel().inner().backlog(), 4, "{name}");
        let (mut ring, untimed, timed) = within(Duration::from_secs(5), move || {
            let untimed = ring.submitter().submit_and_wait(8);
            let timed = ring
                .submitter()
                .submit_and_wait_timeout(8, Duration::from_secs(1));
            (ring, untimed, timed)
        });
        assert_eq!(untimed.unwrap(), 0, "{name}");
        timed.unwrap();
        // Nothing is lost: the rest comes once the CQ has room.
        let mut got = ids(&mut ring);
        ring.submitter().flush().unwrap();
        got.extend(ids(&mut ring));
        assert_eq!(got, (0..8).collect::<Vec<_>>(), "{name}");
        assert_eq!(ring.kernel().inner().backlog(), 0, "{name}");
    }
}

#[test]
fn a_timed_wait_that_submits_times_out_when_fewer_are_ready_and_keeps_them() {
    // The kernel returns the number it submitted even when the wait that
    // follows timed out (io_uring_enter reports the submission first), and
    // 0 instead of ETIME when the CQ is not empty; the driver checks what
    // is ready. Before 5.11 (no EXT_ARG) it queues an IORING_OP_TIMEOUT,
    // which the simulated kernel fires at once here.
    for (name, features) in [
        ("ext_arg", Features::NODROP | Features::EXT_ARG),
        ("timeout sqe", Features::NODROP),
    ] {
        let g = geometry(4, 8, SetupFlags::empty(), features);
        let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
        for _ in 0..2 {
            ring.sim_mut()
                .inner_mut()
                .script(TIMEOUT_USER_DATA, [SimCompletion::new(-libc::ETIME, 0)]);
        }
        push(&mut ring, [1]);
        let err = ring
            .submitter()
            .submit_and_wait_timeout(2, Duration::from_millis(5))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{name}: {err}");
        assert_eq!(ring.submitter().pending(), 0, "{name}: submitted");
        assert_eq!(ids(&mut ring), [1], "{name}: what arrived stays");
        // Nothing to submit, one ready, two wanted.
        push(&mut ring, [2]);
        ring.submitter().submit().unwrap();
        let err = ring
            .submitter()
            .submit_and_wait_timeout(2, Duration::from_millis(5))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{name}: {err}");
        assert_eq!(ids(&mut ring), [2], "{name}");
    }
    // The minimum-wait variant: an entry that posts nothing (CQE_SKIP_SUCCESS).
    let g = geometry(
        4,
        8,
        SetupFlags::empty(),
        Features::NODROP | Features::EXT_ARG | Features::MIN_TIMEOUT,
    );
    let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
    // SAFETY: a NOP carries no pointers.
    unsafe {
        ring.sq()
            .push(Nop::new().build().user_data(1).skip_success())
    }
    .unwrap();
    let err = ring
        .submitter()
        .submit_and_wait_min(1, Duration::from_millis(1), Some(Duration::from_millis(5)))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "min wait: {err}");
    assert_eq!(ring.submitter().pending(), 0);
}

#[test]
fn a_result_of_i32_min_is_an_error_not_an_overflow() {
    let cqe = Cqe::from(ring_io_sys::io_uring_cqe {
        user_data: 1,
        res: i32::MIN,
        flags: 0,
        big_cqe: [],
    });
    assert_eq!(cqe.result(), Err(Errno(i32::MAX)));
    let cqe = Cqe::from(ring_io_sys::io_uring_cqe {
        res: -libc::EINVAL,
        ..Default::default()
    });
    assert_eq!(cqe.result(), Err(Errno::EINVAL));
}

/// What [`Hostile`] shows instead of the truth (shared with the test).
#[derive(Default)]
struct Lies {
    /// Added to the CQ tail (wrapping: `u32::MAX` shows it one back).
    cq_skew: AtomicU32,
    /// Subtracted from the SQ head (wrapping).
    sq_back: AtomicU32,
    /// Show the SQ head stuck where it is once this is set.
    sq_stuck: AtomicBool,
    stuck_at: AtomicU32,
}

/// A kernel that lies about the ring words, over the simulator (which
/// touches no memory): as a broken kernel or a stray write into the
/// shared ring would.
struct Hostile {
    sim: Sim,
    lies: Arc<Lies>,
}

// SAFETY: over the simulator, which acts on no memory: lying about the
// ring words makes nothing unsound (the ring refuses what it cannot
// trust); the unsafe methods forward to the simulator's under the same
// contracts.
unsafe impl Kernel for Hostile {
    fn geometry(&self) -> &Geometry {
        self.sim.geometry()
    }
    fn sq_head(&self) -> u32 {
        let real = self.sim.sq_head();
        if self.lies.sq_stuck.load(Relaxed) {
            return self.lies.stuck_at.load(Relaxed);
        }
        self.lies.stuck_at.store(real, Relaxed);
        real.wrapping_sub(self.lies.sq_back.load(Relaxed))
    }
    unsafe fn set_sq_tail(&mut self, tail: u32) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.sim.set_sq_tail(tail) }
    }
    fn sq_flags(&self, read: FlagsRead) -> SqFlags {
        self.sim.sq_flags(read)
    }
    fn sq_dropped(&self) -> u32 {
        self.sim.sq_dropped()
    }
    fn cq_tail(&self) -> u32 {
        self.sim
            .cq_tail()
            .wrapping_add(self.lies.cq_skew.load(Relaxed))
    }
    unsafe fn set_cq_head(&mut self, head: u32) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.sim.set_cq_head(head) }
    }
    fn cq_overflow(&self) -> u32 {
        self.sim.cq_overflow()
    }
    unsafe fn write_sqe(&mut self, index: u32, sqe: &io_uring_sqe) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.sim.write_sqe(index, sqe) }
    }
    unsafe fn write_sqe128(&mut self, index: u32, sqe: &io_uring_sqe128) -> Result<(), WrongRing> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.sim.write_sqe128(index, sqe) }
    }
    unsafe fn cqe(&self, index: u32) -> io_uring_cqe {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.sim.cqe(index) }
    }
    unsafe fn cqe32(&self, index: u32) -> Result<io_uring_cqe32, WrongRing> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.sim.cqe32(index) }
    }
    unsafe fn enter(&mut self, enter: &Enter, wait: &WaitArgs) -> Result<u32, Errno> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.sim.enter(enter, wait) }
    }
}

fn hostile(features: Features) -> (Ring<Hostile>, Arc<Lies>) {
    hostile_with(SetupFlags::empty(), features)
}

fn hostile_with(flags: SetupFlags, features: Features) -> (Ring<Hostile>, Arc<Lies>) {
    let g = geometry(4, 8, flags, features);
    let lies = Arc::new(Lies::default());
    let sim = Sim::new(g, SimConfig::new(&g)).unwrap();
    let ring = Ring::with_kernel(Hostile {
        sim,
        lies: Arc::clone(&lies),
    });
    (ring, lies)
}

fn push_to<K: Kernel>(ring: &mut Ring<K>, ids: impl IntoIterator<Item = u64>) {
    let mut sq = ring.sq();
    for id in ids {
        // SAFETY: NOPs carry no pointers.
        unsafe { sq.push(Nop::new().build().user_data(id)) }.unwrap();
    }
}

fn assert_invalid_data(r: io::Result<u32>, what: &str) {
    let err = r.expect_err(what);
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
    assert!(err.to_string().contains(what), "{what}: {err}");
}

#[test]
fn a_cq_tail_beyond_the_ring_is_an_error_in_every_wait() {
    // No debug_assert! to lean on: the same outcome in debug and release.
    let (ring, lies) = hostile(Features::NODROP | Features::EXT_ARG);
    let mut ring = within(Duration::from_secs(5), move || {
        let mut ring = ring;
        push_to(&mut ring, [1]);
        ring.submitter().submit_and_wait(1).unwrap();
        assert_eq!(ring.cq().count(), 1, "the CQE before the lie");
        lies.cq_skew.store(1000, Relaxed);
        push_to(&mut ring, [2]);
        // A submit that waits for nothing does not look at the CQ.
        assert_eq!(ring.submitter().submit().unwrap(), 1);
        // (A submit that also waits decides whether to wait again from a
        // look at the tail; the tail is refused where it is handled: by
        // the CQ view, which then shows nothing, or the next call.)
        assert_invalid_data(ring.submitter().submit_and_wait(1), "CQ tail");
        assert_invalid_data(ring.submitter().submit_and_wait(1), "CQ tail");
        assert_invalid_data(
            ring.submitter()
                .submit_and_wait_timeout(1, Duration::from_millis(5)),
            "CQ tail",
        );
        assert_invalid_data(ring.submitter().flush().map(|()| 0), "CQ tail");
        // The views show nothing they cannot trust.
        assert_eq!(ring.cq().count(), 0);
        // A tail that goes back, once the ring has seen the true one.
        lies.cq_skew.store(0, Relaxed);
        assert_eq!(ring.cq().len(), 1);
        lies.cq_skew.store(u32::MAX, Relaxed);
        assert_invalid_data(ring.submitter().submit_and_wait(2), "CQ tail");
        lies.cq_skew.store(0, Relaxed);
        ring
    });
    // Once the kernel tells the truth again, nothing was lost.
    assert_eq!(ring.cq().map(|c| c.user_data()).collect::<Vec<_>>(), [2]);
}

#[test]
fn an_sq_head_that_goes_back_or_never_moves_is_an_error_not_a_spin() {
    let (ring, lies) = hostile(Features::NODROP);
    within(Duration::from_secs(5), move || {
        let mut ring = ring;
        push_to(&mut ring, [1]);
        ring.submitter().submit_and_wait(1).unwrap();
        assert_eq!(ring.cq().count(), 1);
        // Back by two: below the head already seen. A submit whose count
        // is every entry pending proves the head without reading the word
        // (the kernel consumed them all); a short one reads it, and refuses
        // it.
        lies.sq_back.store(2, Relaxed);
        push_to(&mut ring, [2]);
        assert_eq!(ring.submitter().submit().unwrap(), 1);
        push_to(&mut ring, [3, 4]);
        // SAFETY: the simulator acts on no memory an SQE names (as
        // `Ring::sim_mut` says): injecting a fault breaks nothing.
        unsafe { ring.kernel_mut() }
            .sim
            .inner_mut()
            .inject(Fault::ShortSubmit(1));
        assert_invalid_data(ring.submitter().submit(), "head");
        lies.sq_back.store(0, Relaxed);
        ring.submitter().submit().unwrap();
        // A head that never moves: the SQ stays full however often the
        // ring enters; waiting for room must end with an error.
        lies.sq_stuck.store(true, Relaxed);
        push_to(&mut ring, [5, 6, 7, 8]);
        let err = ring.submitter().sq_wait().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("SQ head"), "{err}");
        // With nothing ready, the timed wait before 5.11 needs a slot for
        // its timeout entry, which cannot come.
        assert_eq!(ring.cq().count(), 7);
        let err = ring
            .submitter()
            .submit_and_wait_timeout(1, Duration::from_millis(5))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    });
}

#[test]
fn under_sqpoll_waiting_for_room_from_a_kernel_thread_that_never_consumes_is_an_error() {
    // Under SQPOLL an enter does not consume entries itself: `sq_wait`
    // enters with IORING_ENTER_SQ_WAIT, which a kernel ends only once the
    // thread made room (or a signal came), and looks again. A kernel whose
    // head never moves used to keep it entering forever.
    let (ring, lies) = hostile_with(SetupFlags::SQPOLL, Features::NODROP);
    within(Duration::from_secs(5), move || {
        let mut ring = ring;
        // The thread consumes while the kernel tells the truth.
        push_to(&mut ring, [1, 2, 3, 4]);
        ring.submitter().sq_wait().unwrap();
        assert!(ring.sq().space() > 0);
        ring.submitter().submit_and_wait(4).unwrap();
        assert_eq!(ring.cq().count(), 4);
        lies.sq_stuck.store(true, Relaxed);
        push_to(&mut ring, [5, 6, 7, 8]);
        let err = ring.submitter().sq_wait().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("SQ head"), "{err}");
        // Every time: the ring's view did not move.
        let err = ring.submitter().sq_wait().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // Once the head is told again, the room the thread made is there.
        lies.sq_stuck.store(false, Relaxed);
        ring.submitter().sq_wait().unwrap();
        assert!(ring.sq().space() > 0);
    });
}

#[test]
fn a_128_byte_entry_on_a_64_byte_ring_is_refused_as_such_and_handed_back() {
    // It used to come back as `Full`, forever: a caller that submits and
    // pushes again on `Full` never got out.
    let mut ring = ring(4, 8);
    let entry = ring_io_ops::Entry128::from(Nop::new().build().user_data(7));
    // SAFETY: a NOP carries no pointers (and is refused anyway).
    let err = unsafe { ring.sq().push128(entry) }.unwrap_err();
    assert!(matches!(err, Push128Error::NotSqe128(_)), "{err:?}");
    assert_eq!(err.into_inner().get_user_data(), 7);
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("SQE128"), "{err}");
    assert_eq!(ring.submitter().submit().unwrap(), 0, "nothing was pushed");
    // On a 128-byte ring it fits until the SQ is full, then says so.
    let g = geometry(2, 4, SetupFlags::SQE128, Features::NODROP);
    let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
    for _ in 0..2 {
        // SAFETY: as above.
        unsafe { ring.sq().push128(entry) }.unwrap();
    }
    // SAFETY: as above.
    let err = unsafe { ring.sq().push128(entry) }.unwrap_err();
    assert!(matches!(err, Push128Error::Full(_)), "{err:?}");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::WouldBlock);
    assert_eq!(ring.submitter().submit_and_wait(2).unwrap(), 2);
    assert_eq!(ids(&mut ring), [7, 7]);
}

#[test]
fn entries_of_the_wrong_size_are_errors_from_the_kernel_trait() {
    let mut ring = ring(4, 8);
    push(&mut ring, [1]);
    ring.submitter().submit_and_wait(1).unwrap();
    let sim = ring.sim_mut();
    // SAFETY: index 0 holds a posted CQE, not reaped; slot 1 is free.
    unsafe {
        assert_eq!(sim.cqe32(0).unwrap_err(), WrongRing::NotCqe32);
        assert_eq!(
            sim.write_sqe128(1, &ring_io_sys::io_uring_sqe128::default()),
            Err(WrongRing::NotSqe128)
        );
    }
    assert_eq!(ids(&mut ring), [1]);
}

#[test]
fn swapping_two_simulated_kernels_is_an_error_not_a_panic_or_a_spin() {
    // Safe for the simulator (it acts on no memory); the rings' bookkeeping
    // then disagrees with their kernels, which they must notice.
    let (mut a, mut b) = (ring(4, 8), ring(4, 8));
    push(&mut a, [1, 2, 3]);
    a.submitter().submit_and_wait(3).unwrap();
    assert_eq!(a.cq().len(), 3, "seen, not reaped");
    within(Duration::from_secs(5), move || {
        std::mem::swap(a.sim_mut(), b.sim_mut());
        // `a` knows of three CQEs; its kernel now shows none (a tail
        // that went back); `b` sees three it never asked for (a tail
        // that moved forward within the ring: nothing to refuse).
        let err = a.submitter().submit_and_wait(4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("backwards"), "{err}");
        // What `a` still shows are its three slots as the other kernel
        // holds them: nonsense, but nothing worse.
        assert_eq!(a.cq().count(), 3);
        assert_eq!(ids(&mut b), [1, 2, 3]);
    });
}
