//! `BufRingState` against a model of the kernel's side (io_uring/kbuf.c): the
//! kernel consumes published entries in ring order (one, or several for a
//! bundle), its requests complete in any order, a failed one may name a
//! buffer it did not consume (6.12), and forged or replayed completions
//! arrive in between. Whatever the sequence, no buffer is ever lent twice
//! (in the kernel's view and the application's at once, or twice in the
//! kernel's view) and none is lost.

use std::collections::VecDeque;

use proptest::prelude::*;
use ring_io_core::{BufRingError, BufRingState, TakenBufs};
use ring_io_sys::{CqeFlags, IORING_CQE_BUFFER_SHIFT};

const LEN: u32 = 8;

fn cases(normal: u32) -> u32 {
    if cfg!(miri) { 8 } else { normal }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    /// The application publishes its tail.
    Publish,
    /// The application gives back the `n`-th buffer set it holds.
    GiveBack(u8),
    /// The kernel consumes one entry (or up to `k` for a bundle) for a
    /// request; `fail` makes the request fail after consuming.
    Consume {
        k: u8,
        bundle: bool,
        fail: bool,
        res: u8,
    },
    /// A failed request names the head entry without consuming it (6.12).
    FailWithoutConsuming,
    /// The `n`-th request in flight posts its completion.
    Complete(u8),
    /// The application handles the `n`-th posted completion.
    Handle(u8),
    /// A completion built by hand (or replayed) reaches `handle_cqe`.
    Forge {
        bid: u8,
        res: u8,
        more: bool,
        replay: bool,
    },
}

impl Action {
    fn decode(t: u8, a: u8, b: u8) -> Action {
        match t % 8 {
            0 => Action::Publish,
            1 => Action::GiveBack(a),
            2 | 3 => Action::Consume {
                k: a % 5,
                bundle: b & 1 != 0,
                fail: b % 7 == 6,
                res: b,
            },
            4 => Action::Complete(a),
            5 => Action::Handle(a),
            6 => Action::Forge {
                bid: a,
                res: b,
                more: b % 5 == 0,
                replay: a & 1 != 0,
            },
            _ => Action::FailWithoutConsuming,
        }
    }
}

/// A completion the kernel posted (or will): flags, result, and the
/// buffers it consumed (none if it did not consume).
#[derive(Debug, Clone)]
struct Req {
    flags: u32,
    res: i32,
    bids: Vec<u16>,
}

fn buffer_flags(bid: u16) -> u32 {
    CqeFlags::BUFFER.bits() | (u32::from(bid) << IORING_CQE_BUFFER_SHIFT)
}

struct Model {
    core: BufRingState,
    entries: u32,
    verify: bool,
    failures_keep: bool,
    /// What the application wrote into each slot.
    slots: Vec<u16>,
    /// The kernel's head and the tail it saw, as positions.
    head: u64,
    tail: u64,
    tail16: u16,
    /// Added, not yet published.
    unpublished: Vec<u16>,
    inflight: Vec<Req>,
    posted: VecDeque<Req>,
    /// TakenBufs by the application: what the core said, the ids as the model
    /// knows them.
    held: Vec<(TakenBufs, Vec<u16>)>,
    /// Consumed by a failed request whose completion handed nothing out
    /// (6.12 semantics): out of reach until the ring is dropped.
    leaked: Vec<u16>,
    history: Vec<Req>,
}

impl Model {
    fn new(entries: u32, start: u16, verify: bool, failures_keep: bool) -> Model {
        let mut core = BufRingState::with_tail(entries, LEN, start).unwrap();
        core.verify_head(verify);
        core.failures_keep_buffer(failures_keep);
        let mut m = Model {
            core,
            entries,
            verify,
            failures_keep,
            slots: vec![u16::MAX; entries as usize],
            head: u64::from(start),
            tail: u64::from(start),
            tail16: start,
            unpublished: Vec::new(),
            inflight: Vec::new(),
            posted: VecDeque::new(),
            held: Vec::new(),
            leaked: Vec::new(),
            history: Vec::new(),
        };
        for bid in 0..entries as u16 {
            m.add(bid).unwrap();
        }
        m.publish();
        m
    }

    fn mask(&self) -> u64 {
        u64::from(self.entries - 1)
    }

    fn add(&mut self, bid: u16) -> Result<(), String> {
        let slot = self.core.add(bid).map_err(|e| format!("add({bid}): {e}"))?;
        // The slot must be one whose entry the kernel consumed.
        let pos = self.tail + self.unpublished.len() as u64;
        if u64::from(slot) != pos & self.mask() {
            return Err(format!("add({bid}) gave slot {slot} for position {pos}"));
        }
        if pos >= self.head + u64::from(self.entries) {
            return Err(format!(
                "add({bid}) overwrites an entry the kernel has not read"
            ));
        }
        self.slots[slot as usize] = bid;
        self.unpublished.push(bid);
        Ok(())
    }

    fn publish(&mut self) {
        while let Some(t) = self.core.poll_publish() {
            self.tail += u64::from(t.wrapping_sub(self.tail16));
            self.tail16 = t;
            self.unpublished.clear();
        }
    }

    /// The bids the kernel can still pick.
    fn window(&self) -> Vec<u16> {
        (self.head..self.tail)
            .map(|p| self.slots[(p & self.mask()) as usize])
            .collect()
    }

    /// Buffers the kernel is using or has reported and not yet been taken.
    fn kernel_side(&self) -> Vec<u16> {
        self.inflight
            .iter()
            .chain(self.posted.iter())
            .flat_map(|r| r.bids.iter().copied())
            .collect()
    }

    /// What the driver does: on `NotConsumed`, show the kernel's head and
    /// try again.
    fn handle(&mut self, flags: u32, res: i32) -> Result<Option<TakenBufs>, BufRingError> {
        match self.core.handle_cqe(flags, res) {
            Err(BufRingError::NotConsumed(_)) if self.verify => {
                self.core.handle_head(self.head as u16)?;
                self.core.handle_cqe(flags, res)
            }
            other => other,
        }
    }

    fn chain(&self, t: &TakenBufs) -> Vec<u16> {
        let mut bids = vec![t.bid()];
        for _ in 1..t.count() {
            bids.push(self.core.next_bid(*bids.last().unwrap()));
        }
        bids
    }

    fn apply(&mut self, a: Action) -> Result<(), String> {
        match a {
            Action::Publish => self.publish(),
            Action::GiveBack(n) => {
                if !self.held.is_empty() {
                    let (t, bids) = self.held.remove(usize::from(n) % self.held.len());
                    let chain = self.chain(&t);
                    if chain != bids {
                        return Err(format!("chain {chain:?} != taken {bids:?}"));
                    }
                    for bid in bids {
                        self.add(bid)?;
                    }
                }
            }
            Action::Consume {
                k,
                bundle,
                fail,
                res,
            } => {
                let avail = self.tail - self.head;
                if avail == 0 {
                    return Ok(());
                }
                let n = if bundle {
                    1 + u64::from(k) % avail.min(4)
                } else {
                    1
                };
                let bids: Vec<u16> = (0..n)
                    .map(|i| self.slots[((self.head + i) & self.mask()) as usize])
                    .collect();
                self.head += n;
                let res = if fail && n == 1 {
                    -104
                } else {
                    // More than n - 1 full buffers, at most n.
                    let lo = (n as u32 - 1) * LEN + u32::from(n > 1);
                    (lo + u32::from(res) % (n as u32 * LEN - lo + 1)) as i32
                };
                self.inflight.push(Req {
                    flags: buffer_flags(bids[0]),
                    res,
                    bids,
                });
            }
            Action::FailWithoutConsuming => {
                if self.failures_keep && self.tail > self.head {
                    let bid = self.slots[(self.head & self.mask()) as usize];
                    self.posted.push_back(Req {
                        flags: buffer_flags(bid),
                        res: -104,
                        bids: Vec::new(),
                    });
                }
            }
            Action::Complete(n) => {
                if !self.inflight.is_empty() {
                    let r = self.inflight.remove(usize::from(n) % self.inflight.len());
                    self.posted.push_back(r);
                }
            }
            Action::Handle(n) => {
                if !self.posted.is_empty() {
                    let i = usize::from(n) % self.posted.len();
                    let r = self.posted.remove(i).unwrap();
                    self.history.push(r.clone());
                    let got = self
                        .handle(r.flags, r.res)
                        .map_err(|e| format!("{r:?}: {e}"))?;
                    match got {
                        Some(t) => {
                            if r.bids.is_empty() || (r.res < 0 && self.failures_keep) {
                                return Err(format!("{r:?} handed out {t:?}"));
                            }
                            let chain = self.chain(&t);
                            if chain != r.bids || t.len() != r.res.max(0) as u32 {
                                return Err(format!("{r:?} gave {t:?} {chain:?}"));
                            }
                            self.held.push((t, r.bids));
                        }
                        None => {
                            if !(r.res < 0 && self.failures_keep) {
                                return Err(format!("{r:?} handed nothing out"));
                            }
                            // Consumed by the failed request: out of reach.
                            self.leaked.extend(r.bids);
                        }
                    }
                }
            }
            Action::Forge {
                bid,
                res,
                more,
                replay,
            } => {
                let (flags, res, bids) = if replay && !self.history.is_empty() {
                    let r = &self.history[usize::from(bid) % self.history.len()];
                    let bids: Vec<u16> = if r.bids.is_empty() {
                        vec![(r.flags >> IORING_CQE_BUFFER_SHIFT) as u16]
                    } else {
                        r.bids.clone()
                    };
                    (r.flags, r.res, bids)
                } else {
                    let bid = u16::from(bid) % (self.entries as u16 + 2);
                    let mut flags = buffer_flags(bid);
                    if more {
                        flags |= CqeFlags::BUF_MORE.bits();
                    }
                    (flags, i32::from(res) - 16, vec![bid])
                };
                // Out of anyone's reach: a forged completion naming a
                // buffer a request is using, or one that was consumed and
                // is not lent any more, breaks `take`'s contract and no
                // check can see it (see `BufRingState`'s doc).
                let first = (flags >> IORING_CQE_BUFFER_SHIFT) as u16;
                let kernel = self.kernel_side();
                let window = self.window();
                let unreachable = bids.iter().chain(Some(&first)).any(|b| {
                    kernel.contains(b)
                        || self.leaked.contains(b)
                        || (!self.verify && window.contains(b))
                });
                if unreachable {
                    return Ok(());
                }
                if self.verify {
                    // The driver's head is fresh before it forges nothing.
                    self.core
                        .handle_head(self.head as u16)
                        .map_err(|e| e.to_string())?;
                }
                let before = self.core.clone();
                if let Ok(Some(t)) = self.handle(flags, res) {
                    return Err(format!("forged {flags:#x}/{res} handed out {t:?}"));
                }
                if self.core != before {
                    return Err(format!("forged {flags:#x}/{res} changed the ring"));
                }
            }
        }
        self.check()
    }

    /// No buffer lent twice, none lost.
    fn check(&self) -> Result<(), String> {
        self.core.check_invariants().map_err(str::to_string)?;
        let held: Vec<u16> = self
            .held
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        let window = self.window();
        let kernel = self.kernel_side();
        let mut seen = vec![0u32; self.entries as usize];
        for &b in held
            .iter()
            .chain(&window)
            .chain(&self.unpublished)
            .chain(&kernel)
            .chain(&self.leaked)
        {
            seen[usize::from(b)] += 1;
        }
        // A failed completion that did not consume names a buffer still in
        // the window: it is counted there, its `bids` is empty.
        if let Some(b) = seen.iter().position(|&n| n != 1) {
            return Err(format!(
                "buffer {b} is in {} places: held {held:?} window {window:?} unpublished {:?} \
                 kernel {kernel:?} leaked {:?}",
                seen[b], self.unpublished, self.leaked
            ));
        }
        if self.core.in_ring() != self.entries - held.len() as u32 {
            return Err(format!(
                "core lends {} buffers, {} held of {}",
                self.core.in_ring(),
                held.len(),
                self.entries
            ));
        }
        Ok(())
    }

    /// Every request completes and is handled, every buffer given back.
    fn finish(&mut self) -> Result<(), String> {
        while !self.inflight.is_empty() {
            self.apply(Action::Complete(0))?;
        }
        while !self.posted.is_empty() {
            self.apply(Action::Handle(0))?;
        }
        while !self.held.is_empty() {
            self.apply(Action::GiveBack(0))?;
        }
        self.publish();
        self.check()?;
        let lent = self.core.in_ring() as usize;
        if lent != self.entries as usize {
            return Err(format!("{lent} lent at the end of {}", self.entries));
        }
        Ok(())
    }
}

fn actions() -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(t, a, b)| Action::decode(t, a, b)),
        0..if cfg!(miri) { 40 } else { 300 },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(2048),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_lent_twice_never_lost(
        size in 0u32..4,
        start in prop_oneof![Just(0u16), (u16::MAX - 40)..=u16::MAX],
        verify in any::<bool>(),
        failures_keep in any::<bool>(),
        actions in actions(),
    ) {
        let entries = 1 << size;
        let mut m = Model::new(entries, start, verify, failures_keep);
        for (n, a) in actions.iter().enumerate() {
            if let Err(e) = m.apply(*a) {
                prop_assert!(false, "entries {entries} verify {verify} keep {failures_keep}: \
                                     action {n} {a:?}: {e}");
            }
        }
        if let Err(e) = m.finish() {
            prop_assert!(false, "finish: {e}");
        }
    }
}
