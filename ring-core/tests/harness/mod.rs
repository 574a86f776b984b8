//! A model-checking harness shared by the proptests (`tests/model.rs`) and
//! the fuzz target `core_actions` (which includes this file by path).
//!
//! It drives `SqState`, `CqState`, `CqCredit`,
//! `decide_enter` and `SimKernel` with a sequence of [`Action`]s and checks
//! them against a plain `VecDeque` model: every SQE published is consumed
//! once, in order (or dropped, if its SQ-array entry was corrupted), every
//! completion is reaped once, in order, with its scripted result; the
//! `check_invariants()` of every state machine holds after every action.
//! Any violation is returned as `Err(String)`.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::format;
use std::string::String;
use std::vec::Vec;

use ring_io_core::{
    CqCredit, CqState, EnterInput, Fault, Geometry, Reservation, SimCompletion, SimConfig,
    SimKernel, SqState, decide_enter,
};
use ring_io_sys::{EnterFlags, Errno, Features, IORING_CQE_F_MORE, SetupFlags, SqFlags};

/// The ring and simulator configuration, decoded from four bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) sq_entries: u32,
    pub(crate) cq_entries: u32,
    pub(crate) setup: SetupFlags,
    pub(crate) nodrop: bool,
    pub(crate) credit: bool,
    pub(crate) lag: u32,
    pub(crate) max_submit: Option<u32>,
    pub(crate) start: u32,
}

impl Config {
    pub(crate) fn decode(b: [u8; 4]) -> Config {
        let sq_entries = 1 << (b[0] % 4); // 1..=8
        let cq_entries = sq_entries << (b[0] / 4 % 2); // x1 or x2
        let mut setup = SetupFlags::empty();
        let f = b[1];
        if f & 1 != 0 {
            setup |= SetupFlags::SQPOLL;
        }
        if f & 2 != 0 {
            setup |= SetupFlags::NO_SQARRAY;
        }
        if f & 4 != 0 {
            setup |= SetupFlags::CQE32;
        }
        match f / 8 % 4 {
            1 => setup |= SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG,
            2 if !setup.contains(SetupFlags::SQPOLL) => {
                setup |= SetupFlags::DEFER_TASKRUN | SetupFlags::SINGLE_ISSUER
            }
            3 => setup |= SetupFlags::IOPOLL,
            _ => {}
        }
        Config {
            sq_entries,
            cq_entries,
            setup,
            nodrop: f & 32 == 0,
            credit: f & 64 != 0,
            lag: u32::from(b[2] % 4),
            max_submit: match b[2] / 4 % 4 {
                0 => None,
                k => Some(u32::from(k)),
            },
            // Near u32::MAX, so the indices cross the wrap.
            start: u32::MAX - u32::from(b[3] % 64),
        }
    }
}

/// One thing the application, the kernel or the test does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Reserve this many SQ slots and fill them, as the mode says.
    Reserve(u32, ReserveMode),
    /// Commit the oldest open reservation.
    Commit,
    /// Cancel the newest open reservation.
    Cancel,
    /// Publish committed entries (store the SQ tail).
    Publish,
    /// Enter as `decide_enter` says, wanting this many completions.
    Enter(u32),
    /// Let the simulated kernel's time pass one step.
    Step,
    /// Peek at the next CQE.
    Peek,
    /// Reap up to this many CQEs, as the mode says.
    Reap(u32, ReapMode),
    /// Release reaped CQEs to the kernel (store the CQ head).
    Release,
    /// Inject a fault into the next enter.
    Fault(u8),
    /// Corrupt the SQ-array entry of the next reserved SQE.
    CorruptNext,
    /// Script the next reserved SQE as a multishot with this many CQEs.
    MultishotNext(u8),
}

/// How [`Action::Reap`] takes its CQEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReapMode {
    /// `reap_batch`.
    Batch,
    /// `peek_batch`, then `advance`.
    Peek,
    /// A `reader`'s `pop_front`, then `release` (which hands the head to
    /// the kernel, as [`Action::Release`] does).
    Reader,
}

/// How [`Action::Reserve`] takes its slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReserveMode {
    /// `reserve`, committed later by [`Action::Commit`].
    Open,
    /// `reserve_committed`: no commit needed.
    Committed,
    /// A `pusher`'s `next_index`, then `publish` (committing; what it
    /// publishes is checked on a copy, the queue publishes on `Publish`).
    Pusher,
}

impl Action {
    pub(crate) fn decode(tag: u8, arg: u8) -> Action {
        match tag % 16 {
            0 | 1 => Action::Reserve(
                u32::from(arg % 5),
                match arg >> 6 {
                    0 | 1 => ReserveMode::Open,
                    2 => ReserveMode::Committed,
                    _ => ReserveMode::Pusher,
                },
            ),
            2 | 3 => Action::Commit,
            4 => Action::Cancel,
            5 | 6 => Action::Publish,
            7 | 8 => Action::Enter(u32::from(arg % 4)),
            9 => Action::Step,
            10 => Action::Peek,
            11 | 12 => Action::Reap(
                u32::from(arg % 6),
                match arg >> 6 {
                    0 => ReapMode::Batch,
                    1 => ReapMode::Reader,
                    _ => ReapMode::Peek,
                },
            ),
            13 => Action::Release,
            14 => match arg % 8 {
                0..=5 => Action::Fault(arg),
                6 => Action::CorruptNext,
                _ => Action::MultishotNext(2 + arg / 8 % 3),
            },
            _ => Action::Release,
        }
    }
}

#[derive(Debug, Clone)]
struct Expected {
    user_data: u64,
    res: i32,
    flags: u32,
}

pub(crate) struct Harness {
    cfg: Config,
    geo: Geometry,
    sq: SqState,
    cq: CqState,
    credit: CqCredit,
    k: SimKernel,
    next_ud: u64,
    /// Open reservations, oldest first, with the user_data written.
    open: VecDeque<(Reservation, Vec<u64>)>,
    /// Committed, not yet published.
    committed: VecDeque<u64>,
    /// Published, not yet consumed.
    published: VecDeque<u64>,
    /// user_data whose SQ-array entry was corrupted.
    corrupt: Vec<u64>,
    corrupt_next: bool,
    multishot_next: Option<u8>,
    /// user_data -> scripted CQEs.
    scripts: Vec<(u64, Vec<SimCompletion>)>,
    consumed_seen: usize,
    dropped: u32,
    /// CQEs expected, in order.
    expected: VecDeque<Expected>,
    /// Reaped, not yet released: whether each returns a credit.
    unreleased_credit: u32,
    faults: VecDeque<Fault>,
    skipped: u32,
    multishot_used: bool,
}

impl Harness {
    pub(crate) fn new(cfg: Config) -> Result<Harness, String> {
        let features = if cfg.nodrop {
            Features::NODROP
        } else {
            Features::empty()
        };
        let geo = Geometry::new(cfg.sq_entries, cfg.cq_entries, cfg.setup, features)
            .map_err(|e| format!("geometry: {e}"))?;
        let sim_cfg = SimConfig {
            lag: cfg.lag,
            max_submit: cfg.max_submit,
            ..SimConfig::new(&geo)
        };
        Ok(Harness {
            cfg,
            sq: SqState::with_start(&geo, cfg.start),
            cq: CqState::with_start(&geo, cfg.start),
            credit: CqCredit::for_geometry(&geo),
            k: SimKernel::with_start(geo, sim_cfg, cfg.start).map_err(|e| format!("{e}"))?,
            geo,
            next_ud: 1,
            open: VecDeque::new(),
            committed: VecDeque::new(),
            published: VecDeque::new(),
            corrupt: Vec::new(),
            corrupt_next: false,
            multishot_next: None,
            scripts: Vec::new(),
            consumed_seen: 0,
            dropped: 0,
            expected: VecDeque::new(),
            unreleased_credit: 0,
            faults: VecDeque::new(),
            skipped: 0,
            multishot_used: false,
        })
    }

    pub(crate) fn apply(&mut self, action: Action) -> Result<(), String> {
        match action {
            Action::Reserve(n, ReserveMode::Pusher) => self.push_with_pusher(n)?,
            Action::Reserve(n, mode) => self.reserve(n, mode == ReserveMode::Committed)?,
            Action::Commit => {
                if let Some((r, uds)) = self.open.pop_front() {
                    self.sq.commit(r).map_err(|e| format!("commit: {e}"))?;
                    self.committed.extend(uds);
                }
            }
            Action::Cancel => {
                if let Some((r, uds)) = self.open.pop_back() {
                    self.sq.cancel(r).map_err(|e| format!("cancel: {e}"))?;
                    if self.cfg.credit {
                        self.credit
                            .release(uds.len() as u32)
                            .map_err(|e| format!("{e}"))?;
                    }
                    for ud in uds {
                        self.scripts.retain(|s| s.0 != ud);
                        self.corrupt.retain(|&c| c != ud);
                    }
                }
            }
            Action::Publish => {
                let mut n = 0;
                while let Some(t) = self.sq.poll_publish() {
                    self.k.set_sq_tail(t);
                    n += 1;
                }
                if n > 1 {
                    return Err("poll_publish returned twice in a row".into());
                }
                self.published.extend(self.committed.drain(..));
                if self.sq.unpublished() != 0 {
                    return Err("entries left unpublished".into());
                }
            }
            Action::Enter(wait) => self.enter(wait)?,
            Action::Step => {
                self.k.step();
            }
            Action::Peek => {
                self.cq
                    .handle_tail(self.k.cq_tail())
                    .map_err(|e| format!("{e}"))?;
                if let Some(i) = self.cq.peek() {
                    let ud = self.k.cqe(i).user_data;
                    if self.cfg.nodrop {
                        let want = self.expected.front().map(|e| e.user_data);
                        if want != Some(ud) {
                            return Err(format!("peek saw {ud}, expected {want:?}"));
                        }
                    }
                    if self.cq.peek() != Some(i) {
                        return Err("peek consumed".into());
                    }
                }
            }
            Action::Reap(max, mode) => self.reap(max, mode)?,
            Action::Release => {
                while let Some(h) = self.cq.poll_release_head() {
                    self.k.set_cq_head(h);
                }
                self.release_credit()?;
            }
            Action::Fault(a) => {
                let f = match a % 6 {
                    0 => Fault::Error(Errno::EINTR),
                    1 => Fault::Error(Errno::EAGAIN),
                    2 => Fault::Error(Errno::EBUSY),
                    k => Fault::ShortSubmit(u32::from(k) - 3),
                };
                self.k.inject(f);
                self.faults.push_back(f);
            }
            Action::CorruptNext => self.corrupt_next = self.geo.has_sq_array(),
            Action::MultishotNext(k) => self.multishot_next = Some(k),
        }
        self.sync()
    }

    fn reserve(&mut self, n: u32, committed: bool) -> Result<(), String> {
        if self.cfg.credit && self.credit.acquire_n(n, ()).is_err() {
            return Ok(());
        }
        // With an uncommitted reservation open, reserve_committed sees no space.
        let space_before = self.sq.space();
        let uncommitted_before = self.sq.uncommitted();
        let before = if committed && uncommitted_before != 0 {
            0
        } else {
            space_before
        };
        let got = if committed {
            self.sq.reserve_committed(n)
        } else {
            self.sq.reserve(n)
        };
        let r = match got {
            Ok(r) => r,
            Err(full) => {
                if full.space != before || n <= before {
                    return Err(format!("bad SqFull {full:?} with space {before}"));
                }
                if self.cfg.credit {
                    self.credit.release(n).map_err(|e| format!("{e}"))?;
                }
                return Ok(());
            }
        };
        if self.sq.space() != space_before - n {
            return Err("reserve did not take n slots".into());
        }
        if committed && self.sq.uncommitted() != uncommitted_before {
            return Err("reserve_committed left slots uncommitted".into());
        }
        let uds = self.fill(r.indices());
        if committed {
            // The SQEs are written above, before anything publishes. Open
            // reservations can only be empty here (nothing was uncommitted)
            // and are passed over: an empty one needs no commit.
            if uncommitted_before == 0 {
                self.open.clear();
            }
            self.committed.extend(uds);
        } else {
            self.open.push_back((r, uds));
        }
        Ok(())
    }

    /// Push `n` entries through a pusher (all or none, as the driver's
    /// `push_batch` does), then commit them.
    fn push_with_pusher(&mut self, n: u32) -> Result<(), String> {
        if self.cfg.credit && self.credit.acquire_n(n, ()).is_err() {
            return Ok(());
        }
        let space_before = self.sq.space();
        let give_back = |h: &mut Self| -> Result<(), String> {
            if h.cfg.credit {
                h.credit.release(n).map_err(|e| format!("{e}"))?;
            }
            Ok(())
        };
        let uncommitted = self.sq.uncommitted();
        let start = self.sq.tail().wrapping_add(self.sq.unpublished());
        let Some(mut p) = self.sq.pusher() else {
            if uncommitted == 0 {
                return Err("pusher refused with nothing uncommitted".into());
            }
            return give_back(self);
        };
        if p.space() != space_before {
            return Err(format!("pusher space {} != {space_before}", p.space()));
        }
        if n > p.space() {
            drop(p);
            return give_back(self);
        }
        let indices: Vec<u32> = (0..n).map_while(|_| p.next_index()).collect();
        if indices.len() != n as usize
            || indices
                .iter()
                .enumerate()
                .any(|(i, &idx)| idx != start.wrapping_add(i as u32))
        {
            return Err(format!("pusher gave {indices:?} from {start}"));
        }
        if p.queue().space() != space_before {
            return Err("a pusher moved the queue before committing".into());
        }
        drop(p);
        if self.sq.space() != space_before {
            return Err("a pusher dropped unpublished pushed something".into());
        }
        // Again, and this time commit: the SQEs are written first.
        let mut p = self
            .sq
            .pusher()
            .ok_or("pusher refused on the second take")?;
        let again: Vec<u32> = (0..n).map_while(|_| p.next_index()).collect();
        if again != indices {
            return Err(format!("the second pusher gave {again:?}, not {indices:?}"));
        }
        drop(p);
        let uds = self.fill(indices.into_iter());
        // `publish` commits and publishes; the harness publishes on its own
        // action, so it is checked on a copy, and the queue commits through
        // `handle_head` with the head it has (which changes nothing else).
        let mut published = self.sq.clone();
        let mut twin = published.clone();
        let mut p = published
            .pusher()
            .ok_or("pusher refused on the third take")?;
        for _ in 0..n {
            let _ = p.next_index();
        }
        let tail = p.publish();
        drop(p);
        let want = start.wrapping_add(n);
        if (n > 0 || self.sq.unpublished() > 0) && tail != Some(want) {
            return Err(format!("publish said {tail:?}, not {want}"));
        }
        // publish_tail: the same queue after, and the tail always.
        let mut t = twin.pusher().ok_or("pusher refused on a twin")?;
        for _ in 0..n {
            let _ = t.next_index();
        }
        let always = t.publish_tail();
        drop(t);
        if always != want || twin != published {
            return Err(format!("publish_tail said {always}, not {want}"));
        }
        let head = self.sq.head();
        let mut p = self.sq.pusher().ok_or("pusher refused on the last take")?;
        for _ in 0..n {
            let _ = p.next_index();
        }
        p.handle_head(head)
            .map_err(|e| format!("pusher handle_head: {e}"))?;
        drop(p);
        if self.sq.space() != space_before - n || self.sq.uncommitted() != 0 {
            return Err("the pusher did not commit n slots".into());
        }
        // Open reservations can only be empty (nothing was uncommitted).
        self.open.clear();
        self.committed.extend(uds);
        Ok(())
    }

    /// Write one SQE per index (user_data, SQ array, scripts) and return
    /// their user_data.
    fn fill(&mut self, indices: impl Iterator<Item = u32>) -> Vec<u64> {
        let mut uds = Vec::new();
        for idx in indices {
            let ud = self.next_ud;
            self.next_ud += 1;
            let sqe = self.k.sqe_mut(idx);
            *sqe = Default::default();
            sqe.user_data = ud;
            if self.geo.has_sq_array() {
                let slot = (idx & self.geo.sq_mask()) as usize;
                let entries = self.geo.sq_entries();
                self.k.sq_array_mut()[slot] = if self.corrupt_next {
                    self.corrupt_next = false;
                    self.corrupt.push(ud);
                    entries + (ud as u32 % 7)
                } else {
                    slot as u32
                };
            }
            if let Some(k) = self.multishot_next.take() {
                let mut script: Vec<SimCompletion> = (0..k)
                    .map(|i| SimCompletion::new(i32::from(i), IORING_CQE_F_MORE))
                    .collect();
                script.push(SimCompletion::new(-125, 0));
                self.k.script(ud, script.iter().copied());
                self.scripts.push((ud, script));
                self.multishot_used = true;
            }
            uds.push(ud);
        }
        uds
    }

    fn enter(&mut self, wait: u32) -> Result<(), String> {
        self.cq
            .handle_tail(self.k.cq_tail())
            .map_err(|e| format!("{e}"))?;
        let input = EnterInput {
            to_submit: self.sq.pending(),
            wait_nr: wait,
            cq_ready: self.cq.ready(),
            setup: self.geo.setup_flags(),
            sq_flags: self.k.sq_flags(),
            features: self.geo.features(),
            ..EnterInput::default()
        };
        let sqpoll = self.geo.sqpoll();
        let Some(e) = decide_enter(&input) else {
            // No enter: sound only if the kernel has nothing to do for us.
            let submit_ok =
                input.to_submit == 0 || (sqpoll && !input.sq_flags.contains(SqFlags::NEED_WAKEUP));
            // With an empty CQ, completions the kernel holds back (IOPOLL,
            // overflow backlog, task work) need an enter to appear.
            let held_back = (self.geo.setup_flags().contains(SetupFlags::IOPOLL) && !sqpoll)
                || input
                    .sq_flags
                    .intersects(SqFlags::CQ_OVERFLOW | SqFlags::TASKRUN);
            if !submit_ok || wait > input.cq_ready || (held_back && input.cq_ready == 0) {
                return Err(format!("decide_enter said no enter for {input:?}"));
            }
            return Ok(());
        };
        let head_before = self.k.sq_head();
        let dropped_before = self.k.sq_dropped();
        let r = self.k.enter(e.to_submit, e.min_complete, e.flags);
        let fault = self.faults.pop_front();
        match (r, fault) {
            (Err(got), Some(Fault::Error(want))) if got == want => return Ok(()),
            (_, Some(Fault::Error(want))) => {
                return Err(format!("injected {want:?}, enter returned {r:?}"));
            }
            (Err(Errno::ETIME), _) if e.min_complete > 0 => {}
            (Err(err), _) => return Err(format!("enter failed: {err:?}")),
            (Ok(n), _) => {
                if sqpoll {
                    if n != e.to_submit {
                        return Err("SQPOLL enter must return to_submit".into());
                    }
                } else {
                    // A count of every entry pending proves the head
                    // (checked on a copy: `sync` reads the head itself).
                    let mut proved = self.sq.clone();
                    if proved.handle_submitted(n) && proved.head() != self.k.sq_head() {
                        return Err(format!(
                            "handle_submitted({n}) proved head {}, the kernel's is {}",
                            proved.head(),
                            self.k.sq_head()
                        ));
                    }
                    let consumed = self.k.sq_head().wrapping_sub(head_before);
                    let dropped = self.k.sq_dropped().wrapping_sub(dropped_before);
                    if consumed != n + dropped {
                        return Err(format!(
                            "enter returned {n}, consumed {consumed}, dropped {dropped}"
                        ));
                    }
                    if n == e.to_submit && dropped == 0 && e.flags.contains(EnterFlags::GETEVENTS) {
                        let in_cq = self.k.cq_tail().wrapping_sub(self.k.cq_head());
                        // The wait may end early only if nothing could
                        // still arrive (the simulator's stand-in for a
                        // timeout); then it returns the submitted count.
                        let could_arrive = self.k.in_flight() + self.k.task_work() > 0;
                        if in_cq < e.min_complete.min(self.geo.cq_entries()) && could_arrive {
                            return Err("GETEVENTS returned before min_complete".into());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The credit of the CQEs released to the kernel comes back.
    fn release_credit(&mut self) -> Result<(), String> {
        if self.cfg.credit {
            self.credit
                .release(self.unreleased_credit)
                .map_err(|e| format!("credit: {e}"))?;
        }
        self.unreleased_credit = 0;
        Ok(())
    }

    fn reap(&mut self, max: u32, mode: ReapMode) -> Result<(), String> {
        self.cq
            .handle_tail(self.k.cq_tail())
            .map_err(|e| format!("{e}"))?;
        let ready = self.cq.ready();
        let mut release = None;
        let batch = if mode == ReapMode::Reader {
            // Read through a reader, then release: nothing is consumed
            // before, and the head released is just past what was read.
            let before = self.cq.clone();
            let mut r = self.cq.reader();
            if r.rest().len() != ready || r.rest().start() != before.head() {
                return Err("a reader's CQEs are not the ready ones".into());
            }
            let mut n = 0;
            while n < max {
                let Some(i) = r.pop_front() else {
                    break;
                };
                if i != before.head().wrapping_add(n) {
                    return Err("reader pop_front out of order".into());
                }
                n += 1;
            }
            if *r.queue() != before {
                return Err("a reader consumed before release".into());
            }
            let mut twin = before.clone();
            let mut t = twin.reader();
            for _ in 0..n {
                let _ = t.pop_front();
            }
            let always = t.release_head();
            drop(t);
            let head = r.release();
            drop(r);
            if twin != self.cq || always != self.cq.released() {
                return Err(format!("reader release_head said {always}"));
            }
            let moved = before.released() != before.head().wrapping_add(n);
            if head.is_some() != moved
                || self.cq.head() != before.head().wrapping_add(n)
                || self.cq.released() != self.cq.head()
            {
                return Err(format!("reader release said {head:?}"));
            }
            release = Some(head);
            (n > 0).then(|| before.peek_batch(n))
        } else if mode == ReapMode::Peek {
            // Read through peek_batch, then advance: nothing is consumed
            // before advance, and advancing past the tail is refused.
            let before = self.cq.clone();
            let mut batch = self.cq.peek_batch(max);
            if self.cq != before || batch.len() != ready.min(max) {
                return Err("peek_batch consumed, or its length is wrong".into());
            }
            if !batch.is_empty() && self.cq.peek() != Some(batch.start()) {
                return Err("peek_batch disagrees with peek".into());
            }
            let whole = batch;
            let mut n = 0;
            while let Some(i) = batch.pop_front() {
                if i != whole.start().wrapping_add(n) {
                    return Err("pop_front out of order".into());
                }
                n += 1;
            }
            if self.cq.advance(ready + 1).is_ok() || self.cq != before {
                return Err("advance past the tail accepted".into());
            }
            self.cq.advance(n).map_err(|e| format!("advance: {e}"))?;
            (n > 0).then_some(whole)
        } else {
            self.cq.reap_batch(max)
        };
        let Some(batch) = batch else {
            if ready != 0 && max != 0 {
                return Err("reap_batch returned nothing with CQEs ready".into());
            }
            return self.hand_back(release);
        };
        if batch.len() != ready.min(max) {
            return Err("reap_batch length".into());
        }
        for i in batch.indices() {
            let c = self.k.cqe(i);
            loop {
                let Some(want) = self.expected.pop_front() else {
                    return Err(format!("unexpected CQE {c:?}"));
                };
                if want.user_data == c.user_data {
                    if (want.res, want.flags) != (c.res, c.flags) {
                        return Err(format!("CQE {c:?}, expected {want:?}"));
                    }
                    break;
                }
                if self.cfg.nodrop {
                    return Err(format!("CQE {c:?} out of order, expected {want:?}"));
                }
                // Without NODROP the kernel may have dropped it.
                self.skipped += 1;
            }
            if ring_io_core::cqe_returns_credit(c.flags) {
                self.unreleased_credit += 1;
            }
        }
        self.hand_back(release)
    }

    /// After a reader's release (`Some`; its CQEs copied out): the head to
    /// the kernel, and the credit back.
    fn hand_back(&mut self, release: Option<Option<u32>>) -> Result<(), String> {
        let Some(head) = release else {
            return Ok(());
        };
        if let Some(h) = head {
            self.k.set_cq_head(h);
        }
        self.release_credit()
    }

    /// Read what the kernel shows, check the model and every invariant.
    fn sync(&mut self) -> Result<(), String> {
        let head_before = self.sq.head();
        self.sq
            .handle_head(self.k.sq_head())
            .map_err(|e| format!("sq head: {e}"))?;
        self.sq.handle_dropped(self.k.sq_dropped());
        self.cq
            .handle_tail(self.k.cq_tail())
            .map_err(|e| format!("cq tail: {e}"))?;
        self.cq.handle_overflow(self.k.cq_overflow());
        let advanced = self.sq.head().wrapping_sub(head_before);
        let consumed = self.k.consumed();
        for _ in 0..advanced {
            let Some(ud) = self.published.pop_front() else {
                return Err("kernel consumed an unpublished entry".into());
            };
            if let Some(p) = self.corrupt.iter().position(|&c| c == ud) {
                self.corrupt.swap_remove(p);
                self.dropped += 1;
                if self.cfg.credit {
                    self.credit.release(1).map_err(|e| format!("{e}"))?;
                }
                continue;
            }
            let Some(&got) = consumed.get(self.consumed_seen) else {
                return Err(format!("{ud} consumed but not recorded"));
            };
            if got != ud {
                return Err(format!("kernel consumed {got}, expected {ud}"));
            }
            self.consumed_seen += 1;
            match self.scripts.iter().position(|s| s.0 == ud) {
                Some(p) => {
                    let (_, script) = self.scripts.swap_remove(p);
                    for c in script {
                        self.expected.push_back(Expected {
                            user_data: ud,
                            res: c.res,
                            flags: c.flags,
                        });
                    }
                }
                None => self.expected.push_back(Expected {
                    user_data: ud,
                    res: 0,
                    flags: 0,
                }),
            }
        }
        if consumed.len() != self.consumed_seen {
            return Err("kernel consumed entries the head does not show".into());
        }
        if self.dropped != self.sq.dropped() {
            return Err(format!(
                "dropped {} but the kernel says {}",
                self.dropped,
                self.sq.dropped()
            ));
        }
        let in_sq = (self.published.len() + self.committed.len()) as u32
            + self.open.iter().map(|o| o.1.len() as u32).sum::<u32>();
        if self.sq.space() != self.geo.sq_entries() - in_sq {
            return Err(format!("SQ space {} with {in_sq} in it", self.sq.space()));
        }
        if self.sq.pending() as usize != self.published.len() {
            return Err("SQ pending disagrees with the model".into());
        }
        if self.cfg.nodrop && self.skipped != 0 {
            return Err("CQEs skipped with NODROP".into());
        }
        if self.skipped > self.cq.overflow() {
            return Err(format!(
                "{} CQEs lost but overflow is {}",
                self.skipped,
                self.cq.overflow()
            ));
        }
        if self.cfg.credit && !self.multishot_used {
            // Every request took credit, released only after its CQE's slot
            // went back to the kernel: the CQ cannot have overflowed.
            if self.cq.overflow() != 0 || self.k.backlog() != 0 {
                return Err("overflow despite CQ credit".into());
            }
        }
        self.sq.check_invariants()?;
        self.cq.check_invariants()?;
        self.credit.check_invariants()?;
        self.k.check_invariants()?;
        Ok(())
    }

    /// Drain everything: publish, enter, step, reap until nothing is left;
    /// then every published entry must have completed.
    pub(crate) fn finish(&mut self) -> Result<(), String> {
        while !self.open.is_empty() {
            self.apply(Action::Commit)?;
        }
        self.apply(Action::Publish)?;
        // Enough rounds for everything outstanding to drain, a CQ slot at a
        // time (every CQE expected, every entry left in the SQ, every fault).
        let rounds = 4 * self.geo.sq_entries()
            + 64
            + self.faults.len() as u32
            + 2 * (self.published.len() as u32 + self.expected.len() as u32)
            + 8 * self.scripts.len() as u32;
        for _ in 0..rounds {
            // Wait for one completion while any is due: with DEFER_TASKRUN
            // or IOPOLL only a waiting enter makes completions visible.
            // DEFER_TASKRUN shows no flag: only a waiting enter runs it.
            let defer = self.geo.setup_flags().contains(SetupFlags::DEFER_TASKRUN);
            let wait = u32::from(defer && !self.expected.is_empty() && self.cq.ready() == 0);
            self.apply(Action::Enter(wait))?;
            self.apply(Action::Step)?;
            self.apply(Action::Reap(u32::MAX, ReapMode::Batch))?;
            self.apply(Action::Release)?;
            if self.published.is_empty()
                && self.k.in_flight() == 0
                && self.k.task_work() == 0
                && self.k.backlog() == 0
                && self.cq.ready() == 0
            {
                break;
            }
        }
        if !self.published.is_empty() {
            return Err(format!("{} entries never consumed", self.published.len()));
        }
        if self.cfg.nodrop && !self.expected.is_empty() {
            return Err(format!("{} completions never reaped", self.expected.len()));
        }
        if !self.cfg.nodrop && self.expected.len() as u32 + self.skipped > self.cq.overflow() {
            return Err("completions lost beyond the overflow count".into());
        }
        Ok(())
    }
}
