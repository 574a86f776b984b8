//! `SimKernel`: the kernel's side of the ring protocol, on plain memory.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use ring_io_sys::{
    EnterFlags, Errno, IOSQE_CQE_SKIP_SUCCESS, SetupFlags, SqFlags, io_uring_cqe, io_uring_cqe32,
    io_uring_sqe,
};

use crate::{Geometry, GeometryError};

/// One completion the simulated kernel posts for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SimCompletion {
    /// `cqe.res`.
    pub res: i32,
    /// `cqe.flags` (set `IORING_CQE_F_MORE` on all but the last CQE of a
    /// multishot script).
    pub flags: u32,
    /// The extra 16 bytes of a 32-byte CQE (`IORING_SETUP_CQE32`).
    pub big: [u64; 2],
}

impl SimCompletion {
    /// A completion with this result and flags.
    pub const fn new(res: i32, flags: u32) -> Self {
        SimCompletion {
            res,
            flags,
            big: [0; 2],
        }
    }
}

/// A fault injected into the next [`SimKernel::enter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The next enter does nothing and fails with this error (`EINTR`,
    /// `EAGAIN`, `EBUSY`, ...).
    Error(Errno),
    /// The next enter consumes at most this many SQEs (a short submit).
    ShortSubmit(u32),
}

/// How the simulated kernel behaves. [`SimConfig::new`] gives the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimConfig {
    /// Keep completions that do not fit in an overflow backlog and set
    /// `IORING_SQ_CQ_OVERFLOW` (`IORING_FEAT_NODROP`), or drop them and count
    /// them in `cq.overflow`. Default: whether the geometry has
    /// `IORING_FEAT_NODROP`.
    pub nodrop: bool,
    /// At most this many SQEs consumed per enter, or per step of the SQPOLL
    /// thread. Default: no limit.
    pub max_submit: Option<u32>,
    /// Steps between consuming an SQE and its completion. Default 0: a
    /// request completes as it is consumed.
    pub lag: u32,
    /// Steps the SQPOLL thread spins with nothing to do before it sets
    /// `IORING_SQ_NEED_WAKEUP` and sleeps. Default 2.
    pub sqpoll_idle: u32,
    /// Post the completions that become due together (in one step, or one
    /// enter) in reverse order of submission, as a real kernel may: code
    /// must match completions by `user_data`, never by position. Default
    /// false.
    pub reorder: bool,
}

impl SimConfig {
    /// The defaults for a ring of this geometry.
    pub fn new(geometry: &Geometry) -> Self {
        SimConfig {
            nodrop: geometry.features().contains(ring_io_sys::Features::NODROP),
            max_submit: None,
            lag: 0,
            sqpoll_idle: 2,
            reorder: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Posted {
    user_data: u64,
    c: SimCompletion,
}

/// A deterministic in-memory kernel: the kernel's side of one io_uring.
///
/// It owns the ring memory an application shares with the kernel (the SQ
/// and CQ indices and flags, the SQ index array, the SQEs and CQEs) as
/// plain fields, which the application side reads and writes through the
/// accessors (`sq_head`, `set_sq_tail`, `sqe_mut`, `cqe`, `set_cq_head`,
/// ...), and implements what the kernel does with it:
///
/// - [`enter(to_submit, min_complete, flags)`](Self::enter), like
///   `io_uring_enter(2)`: consumes SQEs (through the SQ index array, or in
///   order with `IORING_SETUP_NO_SQARRAY`; an array entry `>= sq_entries` is
///   counted in `sq.dropped` and ends the submission, as `io_get_sqe` does),
///   returns the number submitted, skips the wait after a short submit,
///   wakes the SQPOLL thread for `IORING_ENTER_SQ_WAKEUP`, and with
///   `IORING_ENTER_GETEVENTS` runs task work, flushes the overflow backlog,
///   polls (IOPOLL) and lets time pass until `min_complete` CQEs are ready;
/// - [`step()`](Self::step): time passes by one tick: the SQPOLL thread
///   consumes SQEs or, idle for `sqpoll_idle` steps, sets
///   `IORING_SQ_NEED_WAKEUP` and sleeps; requests whose `lag` elapsed
///   complete. Returns whether more steps can change anything: drive it like
///   quinn's `Pair`, `while sim.step() {}`.
///
/// Completions follow the script given with [`script`](Self::script) for
/// the request's `user_data` (one or more CQEs, e.g. a multishot series
/// with `IORING_CQE_F_MORE`), or are a single `res = 0` CQE. A request with
/// `IOSQE_CQE_SKIP_SUCCESS` posts no CQE for a result `>= 0`. A CQE that
/// does not fit goes to the backlog (`nodrop`, setting `IORING_SQ_CQ_OVERFLOW`)
/// or is dropped (counted in `cq.overflow`). With `IORING_SETUP_DEFER_TASKRUN`
/// or `IORING_SETUP_TASKRUN_FLAG`, completions first wait as task work
/// (the latter sets `IORING_SQ_TASKRUN`) and are posted by the next enter
/// (with `GETEVENTS` for DEFER_TASKRUN). Under `IORING_SETUP_IOPOLL` without
/// SQPOLL, completions appear only when an enter with `GETEVENTS` polls.
///
/// Faults ([`inject`](Self::inject)) make the next enter fail with an errno
/// or submit short. A wait that a real kernel would never finish (nothing
/// in flight, nothing to flush) returns `ETIME`, as if a timeout expired,
/// unless entries were submitted by the same call (then their count, as the
/// kernel returns it).
///
/// Not simulated: `IORING_SETUP_CQE_MIXED` (refused), the second half of
/// 128-byte SQEs, the contents of SQEs beyond `user_data` and `flags`,
/// linked requests, registered resources.
///
/// With [`SimConfig::reorder`], each batch of completions that become due
/// together is posted in reverse order.
#[derive(Debug, Clone)]
pub struct SimKernel {
    geo: Geometry,
    cfg: SimConfig,
    // The shared memory.
    sq_head: u32,
    sq_tail: u32,
    sq_flags: SqFlags,
    sq_dropped: u32,
    sq_array: Vec<u32>,
    sqes: Vec<io_uring_sqe>,
    cq_head: u32,
    cq_tail: u32,
    cq_overflow: u32,
    cqes: Vec<io_uring_cqe>,
    // The kernel's own state.
    tick: u64,
    in_flight: VecDeque<(u64, Posted)>,
    task_work: VecDeque<Posted>,
    backlog: VecDeque<Posted>,
    scripts: BTreeMap<u64, VecDeque<Vec<SimCompletion>>>,
    faults: VecDeque<Fault>,
    sqpoll_awake: bool,
    idle_steps: u32,
    consumed: Vec<u64>,
}

impl SimKernel {
    /// A kernel for a fresh ring of this geometry (every index 0).
    pub fn new(geometry: Geometry, config: SimConfig) -> Result<Self, GeometryError> {
        Self::with_start(geometry, config, 0)
    }

    /// A kernel whose SQ and CQ indices all start at `start` (to test the
    /// wrap of `u32` indices).
    pub fn with_start(
        geometry: Geometry,
        config: SimConfig,
        start: u32,
    ) -> Result<Self, GeometryError> {
        if geometry.cqe_mixed() {
            return Err(GeometryError::IncompatibleFlags(
                "SimKernel does not simulate IORING_SETUP_CQE_MIXED",
            ));
        }
        let sq_array = if geometry.has_sq_array() {
            (0..geometry.sq_entries()).collect()
        } else {
            Vec::new()
        };
        Ok(SimKernel {
            sq_head: start,
            sq_tail: start,
            sq_flags: SqFlags::empty(),
            sq_dropped: 0,
            sq_array,
            sqes: vec![
                io_uring_sqe::default();
                (geometry.sq_entries() as usize) << geometry.sqe_shift()
            ],
            cq_head: start,
            cq_tail: start,
            cq_overflow: 0,
            cqes: vec![
                io_uring_cqe::default();
                (geometry.cq_entries() as usize) << geometry.cqe_shift()
            ],
            tick: 0,
            in_flight: VecDeque::new(),
            task_work: VecDeque::new(),
            backlog: VecDeque::new(),
            scripts: BTreeMap::new(),
            faults: VecDeque::new(),
            sqpoll_awake: geometry.sqpoll(),
            idle_steps: 0,
            consumed: Vec::new(),
            geo: geometry,
            cfg: config,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The configuration, to change between steps.
    pub fn config_mut(&mut self) -> &mut SimConfig {
        &mut self.cfg
    }

    // ------------------------------------------------ the shared memory

    /// `sq.head` (kernel-written).
    pub fn sq_head(&self) -> u32 {
        self.sq_head
    }

    /// `sq.tail` as last stored by the application.
    pub fn sq_tail(&self) -> u32 {
        self.sq_tail
    }

    /// Store `sq.tail` (the application's release store).
    pub fn set_sq_tail(&mut self, tail: u32) {
        self.sq_tail = tail;
    }

    /// `sq.flags` (kernel-written).
    pub fn sq_flags(&self) -> SqFlags {
        self.sq_flags
    }

    /// `sq.dropped` (kernel-written).
    pub fn sq_dropped(&self) -> u32 {
        self.sq_dropped
    }

    /// The SQ index array (empty with `IORING_SETUP_NO_SQARRAY`); filled with
    /// the identity at creation, as liburing leaves it.
    pub fn sq_array_mut(&mut self) -> &mut [u32] {
        &mut self.sq_array
    }

    /// The SQE of ring index `index` (its first 64 bytes).
    pub fn sqe_mut(&mut self, index: u32) -> &mut io_uring_sqe {
        let i = self.geo.sqe_index(index);
        &mut self.sqes[i]
    }

    /// `cq.head` as last stored by the application.
    pub fn cq_head(&self) -> u32 {
        self.cq_head
    }

    /// Store `cq.head` (the application's release store).
    pub fn set_cq_head(&mut self, head: u32) {
        self.cq_head = head;
    }

    /// `cq.tail` (kernel-written).
    pub fn cq_tail(&self) -> u32 {
        self.cq_tail
    }

    /// `cq.overflow` (kernel-written).
    pub fn cq_overflow(&self) -> u32 {
        self.cq_overflow
    }

    /// The CQE of ring index `index` (the first 16 bytes of its slot).
    pub fn cqe(&self, index: u32) -> io_uring_cqe {
        self.cqes[self.geo.cqe_index(index)]
    }

    /// The 32-byte CQE of ring index `index` (`IORING_SETUP_CQE32`; in a
    /// 16-byte ring `big_cqe` is zero).
    pub fn cqe32(&self, index: u32) -> io_uring_cqe32 {
        let i = self.geo.cqe_index(index);
        let mut out = io_uring_cqe32 {
            cqe: self.cqes[i],
            big_cqe: [0; 2],
        };
        if self.geo.cqe_shift() == 1 {
            let second = self.cqes[i + 1];
            out.big_cqe = [
                second.user_data,
                u64::from(second.res as u32) | (u64::from(second.flags) << 32),
            ];
        }
        out
    }

    // -------------------------------------------------- scripting

    /// Script the CQEs of the next request consumed with this `user_data`
    /// (each call scripts one more request). An empty script posts nothing.
    pub fn script(&mut self, user_data: u64, completions: impl IntoIterator<Item = SimCompletion>) {
        self.scripts
            .entry(user_data)
            .or_default()
            .push_back(completions.into_iter().collect());
    }

    /// Make the next [`enter`](Self::enter) fail or submit short. Faults
    /// apply in the order injected, one per enter.
    pub fn inject(&mut self, fault: Fault) {
        self.faults.push_back(fault);
    }

    // ------------------------------------------------- observation

    /// The `user_data` of every SQE consumed so far, in order.
    pub fn consumed(&self) -> &[u64] {
        &self.consumed
    }

    /// Requests consumed whose completions are not posted yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Completions waiting in the overflow backlog.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Completions waiting as task work.
    pub fn task_work(&self) -> usize {
        self.task_work.len()
    }

    /// Whether the SQPOLL thread is awake.
    pub fn sqpoll_awake(&self) -> bool {
        self.sqpoll_awake
    }

    /// Steps taken so far.
    pub fn now(&self) -> u64 {
        self.tick
    }

    // ------------------------------------------------- the kernel

    /// `io_uring_enter(2)`: returns the number of SQEs submitted, or an
    /// error (see the type's doc).
    pub fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: EnterFlags,
    ) -> Result<u32, Errno> {
        let mut limit = self.cfg.max_submit.unwrap_or(u32::MAX);
        match self.faults.pop_front() {
            Some(Fault::Error(e)) => return Err(e),
            Some(Fault::ShortSubmit(k)) => limit = limit.min(k),
            None => {}
        }
        let setup = self.geo.setup_flags();
        let mut submitted = 0;
        if self.geo.sqpoll() {
            if flags.contains(EnterFlags::SQ_WAKEUP) {
                self.sqpoll_awake = true;
                self.idle_steps = 0;
                self.sq_flags.remove(SqFlags::NEED_WAKEUP);
            }
            if flags.contains(EnterFlags::SQ_WAIT)
                && self.sq_available() == self.geo.sq_entries()
                && self.sqpoll_awake
            {
                // io_sqpoll_wait_sq: sleep until the thread made room.
                self.sqpoll_step();
            }
            // Under SQPOLL, io_uring_enter returns to_submit.
            submitted = to_submit;
        } else if to_submit > 0 {
            let nr = to_submit.min(self.sq_available()).min(limit);
            submitted = self.consume(nr);
            if submitted != to_submit {
                // io_uring_enter: `if (ret != to_submit) goto out;` no wait.
                return Ok(submitted);
            }
        }
        let getevents = flags.contains(EnterFlags::GETEVENTS);
        if self.task_work_mode().is_some()
            && (getevents || !setup.contains(SetupFlags::DEFER_TASKRUN))
        {
            self.run_task_work();
        }
        if getevents {
            self.poll_and_flush();
            let want = min_complete.min(self.geo.cq_entries());
            while self.cq_ready() < want {
                let sq_thread_busy =
                    self.geo.sqpoll() && self.sqpoll_awake && self.sq_available() > 0;
                if self.in_flight.is_empty() && !sq_thread_busy {
                    // Nothing can arrive: a real kernel would sleep until a
                    // timeout or signal.
                    return if submitted > 0 {
                        Ok(submitted)
                    } else {
                        Err(Errno::ETIME)
                    };
                }
                self.step();
                self.poll_and_flush();
            }
        }
        Ok(submitted)
    }

    /// One tick of time: the SQPOLL thread runs, requests whose lag elapsed
    /// complete. Returns whether another step could change anything.
    pub fn step(&mut self) -> bool {
        self.tick += 1;
        if self.geo.sqpoll() && self.sqpoll_awake {
            self.sqpoll_step();
        }
        // Under IOPOLL the SQPOLL thread polls; without it only enter does.
        let polled = self.geo.sqpoll() || !self.geo.setup_flags().contains(SetupFlags::IOPOLL);
        if polled {
            self.complete_due();
        }
        !self.is_idle()
    }

    /// Whether no step can change anything: nothing completes with time,
    /// and no SQPOLL thread is awake.
    pub fn is_idle(&self) -> bool {
        let polled = self.geo.sqpoll() || !self.geo.setup_flags().contains(SetupFlags::IOPOLL);
        (self.in_flight.is_empty() || !polled) && !(self.geo.sqpoll() && self.sqpoll_awake)
    }

    /// Check the kernel's own invariants: the CQ holds at most `cq_entries`
    /// past the application's head (unless that head is itself past the
    /// tail, an application bug the kernel tolerates), and the ring flags
    /// agree with the kernel's state (`CQ_OVERFLOW` with the backlog,
    /// `TASKRUN` with the task work, `NEED_WAKEUP` with a sleeping SQPOLL
    /// thread).
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let used = self.cq_tail.wrapping_sub(self.cq_head);
        if used > self.geo.cq_entries() && used <= u32::MAX / 2 {
            return Err("sim: CQ tail more than cq_entries past the head");
        }
        if self.backlog.is_empty() == self.sq_flags.contains(SqFlags::CQ_OVERFLOW) {
            return Err("sim: CQ_OVERFLOW flag disagrees with the backlog");
        }
        if self.geo.setup_flags().contains(SetupFlags::TASKRUN_FLAG)
            && self.task_work.is_empty() == self.sq_flags.contains(SqFlags::TASKRUN)
        {
            return Err("sim: TASKRUN flag disagrees with the task work");
        }
        if self.geo.sqpoll() && self.sq_flags.contains(SqFlags::NEED_WAKEUP) == self.sqpoll_awake {
            return Err("sim: NEED_WAKEUP disagrees with the SQPOLL thread's state");
        }
        Ok(())
    }

    fn task_work_mode(&self) -> Option<bool> {
        let s = self.geo.setup_flags();
        if s.contains(SetupFlags::DEFER_TASKRUN) || s.contains(SetupFlags::TASKRUN_FLAG) {
            Some(s.contains(SetupFlags::TASKRUN_FLAG))
        } else {
            None
        }
    }

    fn sq_available(&self) -> u32 {
        // io_sqring_entries: min(tail - cached head, sq_entries).
        self.sq_tail
            .wrapping_sub(self.sq_head)
            .min(self.geo.sq_entries())
    }

    fn cq_ready(&self) -> u32 {
        self.cq_tail.wrapping_sub(self.cq_head)
    }

    fn sqpoll_step(&mut self) {
        let limit = self.cfg.max_submit.unwrap_or(u32::MAX);
        let nr = self.sq_available().min(limit);
        if nr > 0 && self.consume(nr) > 0 {
            self.idle_steps = 0;
            return;
        }
        if nr > 0 {
            // Everything consumed was dropped: still work done.
            self.idle_steps = 0;
            return;
        }
        self.idle_steps += 1;
        if self.idle_steps >= self.cfg.sqpoll_idle {
            // io_sq_thread: set NEED_WAKEUP, smp_mb__after_atomic(), recheck
            // the tail; sleep only if still nothing to do.
            self.sq_flags.insert(SqFlags::NEED_WAKEUP);
            if self.sq_available() == 0 {
                self.sqpoll_awake = false;
            } else {
                self.sq_flags.remove(SqFlags::NEED_WAKEUP);
                self.idle_steps = 0;
            }
        }
    }

    /// io_submit_sqes: consume up to `nr` SQEs; returns how many were
    /// submitted (a dropped entry is consumed, counted, and ends the run).
    fn consume(&mut self, nr: u32) -> u32 {
        let mask = self.geo.sq_mask();
        let mut submitted = 0;
        for _ in 0..nr {
            let head = self.sq_head;
            self.sq_head = head.wrapping_add(1);
            let slot = if self.geo.has_sq_array() {
                let idx = self.sq_array[(head & mask) as usize];
                if idx >= self.geo.sq_entries() {
                    self.sq_dropped = self.sq_dropped.wrapping_add(1);
                    break;
                }
                idx
            } else {
                head & mask
            };
            let sqe = self.sqes[(slot as usize) << self.geo.sqe_shift()];
            submitted += 1;
            self.consumed.push(sqe.user_data);
            let completions = self
                .scripts
                .get_mut(&sqe.user_data)
                .and_then(VecDeque::pop_front)
                .unwrap_or_else(|| vec![SimCompletion::default()]);
            let skip_success = sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0;
            let due = self.tick + u64::from(self.cfg.lag);
            for c in completions {
                if skip_success && c.res >= 0 {
                    continue;
                }
                let p = Posted {
                    user_data: sqe.user_data,
                    c,
                };
                self.in_flight.push_back((due, p));
            }
        }
        if self.cfg.lag == 0 && !self.geo.setup_flags().contains(SetupFlags::IOPOLL) {
            self.complete_due();
        }
        submitted
    }

    fn complete_due(&mut self) {
        let mut due_now = Vec::new();
        while let Some(&(due, p)) = self.in_flight.front() {
            if due > self.tick {
                break;
            }
            self.in_flight.pop_front();
            due_now.push(p);
        }
        if self.cfg.reorder {
            due_now.reverse();
        }
        for p in due_now {
            match self.task_work_mode() {
                Some(flag) => {
                    self.task_work.push_back(p);
                    if flag {
                        self.sq_flags.insert(SqFlags::TASKRUN);
                    }
                }
                None => self.post(p),
            }
        }
    }

    fn poll_and_flush(&mut self) {
        if self.geo.setup_flags().contains(SetupFlags::IOPOLL) && !self.geo.sqpoll() {
            // io_iopoll_check: polling finds every request whose lag elapsed.
            self.complete_due();
        }
        self.run_task_work();
        self.flush_backlog();
    }

    fn run_task_work(&mut self) {
        while let Some(p) = self.task_work.pop_front() {
            self.post(p);
        }
        self.sq_flags.remove(SqFlags::TASKRUN);
    }

    fn cq_full(&self) -> bool {
        self.cq_tail.wrapping_sub(self.cq_head) >= self.geo.cq_entries()
    }

    fn post(&mut self, p: Posted) {
        if !self.backlog.is_empty() || self.cq_full() {
            if self.cfg.nodrop {
                self.backlog.push_back(p);
                self.sq_flags.insert(SqFlags::CQ_OVERFLOW);
            } else {
                self.cq_overflow = self.cq_overflow.wrapping_add(1);
            }
            return;
        }
        self.write_cqe(p);
    }

    fn write_cqe(&mut self, p: Posted) {
        let i = self.geo.cqe_index(self.cq_tail);
        self.cqes[i] = io_uring_cqe {
            user_data: p.user_data,
            res: p.c.res,
            flags: p.c.flags,
            big_cqe: [],
        };
        if self.geo.cqe_shift() == 1 {
            self.cqes[i + 1] = io_uring_cqe {
                user_data: p.c.big[0],
                res: p.c.big[1] as u32 as i32,
                flags: (p.c.big[1] >> 32) as u32,
                big_cqe: [],
            };
        }
        // io_commit_cqring: smp_store_release(&rings->cq.tail).
        self.cq_tail = self.cq_tail.wrapping_add(1);
    }

    fn flush_backlog(&mut self) {
        while !self.cq_full() {
            let Some(p) = self.backlog.pop_front() else {
                break;
            };
            self.write_cqe(p);
        }
        if self.backlog.is_empty() {
            self.sq_flags.remove(SqFlags::CQ_OVERFLOW);
        }
    }
}
