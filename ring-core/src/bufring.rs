//! The application's side of a provided-buffer ring
//! (`IORING_REGISTER_PBUF_RING`, Linux 5.19): which slot a returned buffer
//! goes to, which tail to publish, and which buffers a completion may hand
//! to the application.

use alloc::vec;
use alloc::vec::Vec;

use ring_io_sys::{CqeFlags, IORING_CQE_BUFFER_SHIFT};

use crate::error::GeometryError;

/// A buffer-ring command or completion that was refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufRingError {
    /// The buffer id is not below the ring's size.
    BadId(u16),
    /// The buffer is already in the ring (given back twice).
    AlreadyInRing(u16),
    /// A completion named a buffer the ring has not lent to the kernel:
    /// never given to it, or already taken from an earlier completion.
    NotLent(u16),
    /// A completion named a buffer that was added but not yet published:
    /// the kernel cannot have seen it.
    NotPublished(u16),
    /// A completion named a buffer (or a bundle reaching a buffer) that the
    /// kernel's head, as last shown with
    /// [`handle_head`](BufRingState::handle_head), has not passed: the kernel may
    /// still pick it and write into it.
    NotConsumed(u16),
    /// A completion's result spans `buffers` buffers from buffer `bid` on,
    /// but the ring did not lend that many consecutive buffers from there.
    BadBundle {
        /// The buffer the completion named.
        bid: u16,
        /// How many buffers its result spans.
        buffers: u32,
    },
    /// A completion carries `IORING_CQE_F_BUF_MORE` (an incrementally
    /// consumed buffer, `IOU_PBUF_RING_INC`, Linux 6.12), which this ring
    /// does not use.
    Incremental(u16),
    /// The kernel showed a head outside the range it can be in (before the
    /// head already seen, or past the published tail).
    BadHead(u16),
    /// No slot is free to add a buffer in: the kernel has not consumed the
    /// entry this slot holds (the head seen is too old).
    NoFreeSlot(u16),
}

impl core::fmt::Display for BufRingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BufRingError::BadId(bid) => write!(f, "buffer id {bid} is out of the ring's range"),
            BufRingError::AlreadyInRing(bid) => write!(f, "buffer {bid} is already in the ring"),
            BufRingError::NotLent(bid) => write!(
                f,
                "a completion named buffer {bid}, which the ring has not lent to the kernel \
                 (never given, or already taken)"
            ),
            BufRingError::NotPublished(bid) => write!(
                f,
                "a completion named buffer {bid}, which is not published to the kernel yet"
            ),
            BufRingError::NotConsumed(bid) => write!(
                f,
                "a completion named buffer {bid}, which the kernel has not consumed \
                 (its head has not passed it)"
            ),
            BufRingError::BadBundle { bid, buffers } => write!(
                f,
                "a completion spans {buffers} buffers from buffer {bid}, more than the ring \
                 lent in a row from there"
            ),
            BufRingError::Incremental(bid) => write!(
                f,
                "a completion for buffer {bid} carries IORING_CQE_F_BUF_MORE (incremental \
                 consumption), which this ring does not use"
            ),
            BufRingError::BadHead(head) => write!(
                f,
                "the kernel showed buffer ring head {head}, outside the consumed..=published range"
            ),
            BufRingError::NoFreeSlot(bid) => write!(
                f,
                "no free slot to add buffer {bid}: the kernel has not consumed the entry there"
            ),
        }
    }
}

impl core::error::Error for BufRingError {}

/// What a completion handed to the application: `count` buffers that the
/// kernel consumed in a row from the ring, the first being [`bid`](Self::bid),
/// holding [`len`](Self::len) bytes (every buffer full but the last).
///
/// Read the ids with [`BufRingState::next_bid`]; give each back with
/// [`BufRingState::add`] when done with its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TakenBufs {
    bid: u16,
    count: u16,
    len: u32,
}

impl TakenBufs {
    /// The first buffer (the one the completion named).
    pub const fn bid(&self) -> u16 {
        self.bid
    }

    /// How many buffers: 1, or more for a bundle (`IORING_RECVSEND_BUNDLE`).
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// Bytes received (0 for a failed request that used a buffer).
    pub const fn len(&self) -> u32 {
        self.len
    }

    /// True if no bytes were received.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes in the `i`-th buffer (`i < count`): buffers are filled in
    /// order, each to the ring's buffer length but the last.
    pub const fn len_in(&self, i: u16, buf_len: u32) -> u32 {
        let before = i as u64 * buf_len as u64;
        let len = self.len as u64;
        if before >= len {
            0
        } else if len - before > buf_len as u64 {
            buf_len
        } else {
            (len - before) as u32
        }
    }
}

/// A buffer that is the application's (never given, or taken and not yet
/// given back).
const APP: u64 = u64::MAX;

/// A provided-buffer ring as a sans-io state machine.
///
/// The ring holds `entries` `io_uring_buf` slots; the application adds
/// buffers at its tail and publishes the tail, the kernel takes them from
/// its head *in ring order* (it advances its private head over the entries
/// it consumes, one per buffer, several for a bundle) and names the first
/// buffer it used in a CQE (`IORING_CQE_F_BUFFER`, id in the upper 16 bits
/// of `cqe.flags`). The tail is a wrapping `u16` (the kernel's
/// `io_uring_buf_ring.tail`), slot = `tail & mask`; positions are counted
/// here in `u64`, so they never wrap.
///
/// Each buffer id `0..entries` is either the application's, or *lent* at a
/// ring position (added; published; perhaps consumed by the kernel). A
/// completion may hand out only lent buffers, each once:
///
/// - its buffer must be lent and published, and with a bundle (a result
///   larger than one buffer) the buffers after it in ring order must be
///   lent too;
/// - the kernel must have consumed them: with
///   [`verify_head(true)`](Self::verify_head), the head the kernel showed
///   (`IORING_REGISTER_PBUF_STATUS`, Linux 6.8) must have passed them,
///   else [`BufRingError::NotConsumed`]: show a fresh head with
///   [`handle_head`](Self::handle_head) and try again. Without it, a
///   completion is believed: the kernel consumes in order, so it has
///   consumed everything up to the buffers named;
/// - a completion that carries `IORING_CQE_F_BUF_MORE` is refused: this
///   ring does not use incremental consumption.
///
/// Anything else is refused with the state unchanged. A buffer is added
/// only when it is the application's, into a slot whose entry the kernel
/// has consumed, so the kernel never sees a buffer twice and no entry is
/// overwritten before the kernel read it.
///
/// What no check can see: a completion built or replayed to name a buffer
/// the kernel consumed for a request still in flight. Only the kernel's
/// completions, each used once, may be given to
/// [`handle_cqe`](Self::handle_cqe).
///
/// # Call order
///
/// 1. [`add(bid)`](Self::add) for each buffer to give the kernel (at start:
///    all of them); write `{addr, len, bid}` into the returned slot;
/// 2. [`poll_publish()`](Self::poll_publish): store the value to the ring's
///    tail with release ordering (pairs with the kernel's
///    `smp_load_acquire(&br->tail)` in `io_ring_buffer_select`: the entries
///    are written before the tail that exposes them);
/// 3. for each CQE of a request that selected a buffer,
///    [`handle_cqe(flags, res)`](Self::handle_cqe) says which buffers are
///    now the application's ([`next_bid`](Self::next_bid) walks a bundle);
///    give each back with `add` when done with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufRingState {
    mask: u16,
    entries: u32,
    buf_len: u32,
    /// Next position to fill.
    tail: u64,
    /// The tail the kernel sees.
    published: u64,
    /// Every position before it is consumed by the kernel (shown by it, or
    /// believed from a completion).
    head: u64,
    verify_head: bool,
    failures_keep: bool,
    /// The buffer at each slot, for positions `tail - entries..tail`.
    slots: Vec<u16>,
    /// Per buffer: its ring position, or `APP`.
    pos: Vec<u64>,
    /// Per taken buffer: the next buffer of the same bundle; per lent
    /// buffer no longer in the slots: the buffer after it in ring order.
    next: Vec<u16>,
    lent: u32,
}

impl BufRingState {
    /// A ring of `entries` slots (a power of two, at most 32768, the
    /// kernel's limit) for buffers of `buf_len` bytes, every buffer the
    /// application's, tail 0.
    pub fn new(entries: u32, buf_len: u32) -> Result<Self, GeometryError> {
        Self::with_tail(entries, buf_len, 0)
    }

    /// A ring whose tail starts at `tail` (as if that many buffers had
    /// gone through it: tests cross the `u16` wrap with it).
    pub fn with_tail(entries: u32, buf_len: u32, tail: u16) -> Result<Self, GeometryError> {
        let which = "buffer ring entries";
        if !entries.is_power_of_two() {
            return Err(GeometryError::NotPowerOfTwo { which, entries });
        }
        if entries > 32768 {
            return Err(GeometryError::TooLarge {
                which,
                entries,
                max: 32768,
            });
        }
        let n = entries as usize;
        Ok(BufRingState {
            mask: (entries - 1) as u16,
            entries,
            buf_len,
            tail: u64::from(tail),
            published: u64::from(tail),
            head: u64::from(tail),
            verify_head: false,
            failures_keep: false,
            slots: vec![0; n],
            pos: vec![APP; n],
            next: vec![0; n],
            lent: 0,
        })
    }

    /// With `true`, a completion's buffers are handed out only once the
    /// kernel's head (shown with [`handle_head`](Self::handle_head)) has
    /// passed them; with `false` (the default, for kernels that cannot
    /// show it) a completion is believed.
    pub fn verify_head(&mut self, on: bool) {
        self.verify_head = on;
    }

    /// With `true`, a failed completion (`res < 0`) that names a buffer
    /// hands nothing out and leaves the buffer lent: since Linux 6.12 the
    /// kernel names the buffer a failed request had selected without
    /// consuming it, and the entry may since have gone to another request.
    /// (If that request had consumed it, the buffer stays with the kernel
    /// until the ring is dropped.) With `false` (before 6.12) such a
    /// buffer was consumed and is handed out with no bytes.
    pub fn failures_keep_buffer(&mut self, on: bool) {
        self.failures_keep = on;
    }

    /// Number of slots (and of buffer ids).
    pub const fn entries(&self) -> u32 {
        self.entries
    }

    /// The length of each buffer.
    pub const fn buf_len(&self) -> u32 {
        self.buf_len
    }

    /// Buffers lent to the kernel (added, and not yet handed back by a
    /// completion).
    pub const fn in_ring(&self) -> u32 {
        self.lent
    }

    /// Buffers added but not yet published.
    pub const fn unpublished(&self) -> u16 {
        (self.tail - self.published) as u16
    }

    /// The kernel's head as last shown or inferred (a wrapping `u16`).
    pub const fn head(&self) -> u16 {
        self.head as u16
    }

    /// True if buffer `bid` is lent to the kernel.
    pub fn contains(&self, bid: u16) -> bool {
        self.pos.get(usize::from(bid)).is_some_and(|&p| p != APP)
    }

    /// The buffer after `bid` in the bundle it was taken with (meaningful
    /// for the first `count - 1` buffers of a [`TakenBufs`], until they are
    /// added again).
    pub fn next_bid(&self, bid: u16) -> u16 {
        self.next.get(usize::from(bid)).copied().unwrap_or(bid)
    }

    /// Gives buffer `bid` to the kernel: returns the slot index (`0..entries`)
    /// to write its `io_uring_buf` into. A buffer already lent, an id out of
    /// range, or a full ring is refused and nothing changes.
    pub fn add(&mut self, bid: u16) -> Result<u16, BufRingError> {
        if u32::from(bid) >= self.entries {
            return Err(BufRingError::BadId(bid));
        }
        if self.contains(bid) {
            return Err(BufRingError::AlreadyInRing(bid));
        }
        // The slot last held position `tail - entries`: the kernel must
        // have consumed it. (Every position from `head` on holds a lent
        // buffer, and `bid` is not lent, so this holds unless the head is
        // wrong.)
        if self.tail - self.head >= u64::from(self.entries) {
            return Err(BufRingError::NoFreeSlot(bid));
        }
        // The entry leaving the slots may belong to a request still in
        // flight (consumed, completion not yet seen): remember which buffer
        // followed it in ring order, for a bundle that starts there.
        if let Some(old) = self
            .tail
            .checked_sub(u64::from(self.entries))
            .and_then(|p| self.at(p))
        {
            let after = self.slots[usize::from((self.tail as u16).wrapping_add(1) & self.mask)];
            self.next[usize::from(old)] = after;
        }
        let slot = (self.tail as u16) & self.mask;
        self.slots[usize::from(slot)] = bid;
        self.pos[usize::from(bid)] = self.tail;
        self.tail += 1;
        self.lent += 1;
        Ok(slot)
    }

    /// The tail to store to the ring, if buffers were added since the last
    /// publish. Call until `None`.
    #[must_use]
    pub fn poll_publish(&mut self) -> Option<u16> {
        if self.published == self.tail {
            return None;
        }
        self.published = self.tail;
        Some(self.tail as u16)
    }

    /// The kernel showed its head (`io_uring_buf_status.head`, a wrapping
    /// `u16`). A head before the one already seen or past the published
    /// tail is refused and nothing changes.
    pub fn handle_head(&mut self, head: u16) -> Result<(), BufRingError> {
        let ahead = u64::from(head.wrapping_sub(self.head as u16));
        if ahead > self.published - self.head {
            return Err(BufRingError::BadHead(head));
        }
        self.head += ahead;
        Ok(())
    }

    /// The buffer at position `p`, if `p` is still in the slots.
    fn at(&self, p: u64) -> Option<u16> {
        if p >= self.tail || self.tail - p > u64::from(self.entries) {
            return None;
        }
        let bid = self.slots[usize::from(p as u16 & self.mask)];
        (self.pos[usize::from(bid)] == p).then_some(bid)
    }

    /// The buffer at position `p`, given the buffer `prev` at `p - 1`:
    /// from the slots, or for a position no longer in them, from the link
    /// `prev` kept when it left them.
    fn after(&self, prev: u16, p: u64) -> Option<u16> {
        self.at(p).or_else(|| {
            let b = self.next[usize::from(prev)];
            (self.pos[usize::from(b)] == p).then_some(b)
        })
    }

    /// A completion's flags and result were read. Returns what it hands to
    /// the application, if it names a buffer (see the type's doc for what
    /// is checked); `Ok(None)` if it names none, or (with
    /// [`failures_keep_buffer`](Self::failures_keep_buffer)) a failed one
    /// names one. Refused completions change nothing.
    pub fn handle_cqe(&mut self, flags: u32, res: i32) -> Result<Option<TakenBufs>, BufRingError> {
        let f = CqeFlags::from_bits_retain(flags);
        if !f.contains(CqeFlags::BUFFER) {
            return Ok(None);
        }
        let bid = (flags >> IORING_CQE_BUFFER_SHIFT) as u16;
        if u32::from(bid) >= self.entries {
            return Err(BufRingError::BadId(bid));
        }
        if res < 0 && self.failures_keep && !f.contains(CqeFlags::BUF_MORE) {
            // Whatever state the buffer is in now (another request may have
            // consumed it since), this completion hands nothing out.
            return Ok(None);
        }
        let first = self.pos[usize::from(bid)];
        if first == APP {
            return Err(BufRingError::NotLent(bid));
        }
        if first >= self.published {
            return Err(BufRingError::NotPublished(bid));
        }
        if f.contains(CqeFlags::BUF_MORE) {
            return Err(BufRingError::Incremental(bid));
        }
        let len = res.max(0) as u32;
        // Buffers are filled in ring order, each to its length but the
        // last: a result of `len` bytes spans this many of them.
        let count = len.div_ceil(self.buf_len.max(1)).max(1);
        let end = first + u64::from(count);
        if count > self.entries || end > self.published {
            return Err(BufRingError::BadBundle {
                bid,
                buffers: count,
            });
        }
        if self.verify_head && end > self.head {
            return Err(BufRingError::NotConsumed(bid));
        }
        // Every buffer of a bundle must be lent at the positions after the
        // first.
        let mut b = bid;
        for p in first + 1..end {
            match self.after(b, p) {
                Some(nb) => b = nb,
                None => {
                    return Err(BufRingError::BadBundle {
                        bid,
                        buffers: count,
                    });
                }
            }
        }
        // Take them: chain each to the next, mark them the application's.
        let mut b = bid;
        for p in first..end {
            let nb = if p + 1 < end {
                self.after(b, p + 1).unwrap_or(b)
            } else {
                b
            };
            self.pos[usize::from(b)] = APP;
            self.next[usize::from(b)] = nb;
            b = nb;
        }
        self.lent -= count;
        self.head = self.head.max(end);
        Ok(Some(TakenBufs {
            bid,
            count: count as u16,
            len,
        }))
    }

    /// Checks the invariants: the count agrees with the positions, every
    /// lent buffer still in the slots is found at its slot, published and
    /// head within the tail, no more than `entries` positions from the head
    /// to the tail.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let lent = self.pos.iter().filter(|&&p| p != APP).count() as u32;
        if lent != self.lent {
            return Err("lent count disagrees with the positions");
        }
        if !(self.head <= self.published && self.published <= self.tail) {
            return Err("head <= published <= tail does not hold");
        }
        if self.tail - self.head > u64::from(self.entries) {
            return Err("more positions after the head than slots");
        }
        for (bid, &p) in self.pos.iter().enumerate() {
            if p == APP {
                continue;
            }
            if p >= self.tail {
                return Err("a lent buffer is at a position not yet filled");
            }
            if self.tail - p <= u64::from(self.entries)
                && usize::from(self.slots[usize::from(p as u16 & self.mask)]) != bid
            {
                return Err("a lent buffer is not in its slot");
            }
        }
        // Every position from the head on holds a lent buffer: nothing the
        // kernel may still read was handed out.
        for p in self.head..self.tail {
            if self.at(p).is_none() {
                return Err("a position the kernel has not consumed holds no lent buffer");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cqe_flags(bid: u16, more: bool) -> u32 {
        let mut f = CqeFlags::BUFFER.bits() | (u32::from(bid) << IORING_CQE_BUFFER_SHIFT);
        if more {
            f |= CqeFlags::BUF_MORE.bits();
        }
        f
    }

    fn ring(entries: u32, tail: u16) -> BufRingState {
        let mut r = BufRingState::with_tail(entries, 16, tail).unwrap();
        for bid in 0..entries as u16 {
            r.add(bid).unwrap();
        }
        let _ = r.poll_publish();
        r
    }

    #[test]
    fn sizes_must_be_powers_of_two_up_to_32768() {
        assert!(BufRingState::new(0, 1).is_err());
        assert!(BufRingState::new(3, 1).is_err());
        assert!(BufRingState::new(65536, 1).is_err());
        assert_eq!(BufRingState::new(32768, 1).unwrap().entries(), 32768);
    }

    #[test]
    fn buffers_cycle_through_slots_and_the_tail_wraps_u16() {
        // Start a few steps before the u16 tail wraps (fewer rounds under
        // Miri, still across the wrap).
        let start = u16::MAX - 6;
        let mut r = BufRingState::with_tail(4, 16, start).unwrap();
        for bid in 0..4 {
            assert_eq!(r.add(bid), Ok((start.wrapping_add(bid)) & 3));
        }
        assert_eq!(r.poll_publish(), Some(start.wrapping_add(4)));
        assert_eq!(r.poll_publish(), None);
        let rounds: u16 = if cfg!(miri) { 64 } else { 4096 };
        for i in 0..rounds {
            let bid = i % 4;
            let t = r.handle_cqe(cqe_flags(bid, false), 5).unwrap().unwrap();
            assert_eq!((t.bid(), t.count(), t.len()), (bid, 1, 5));
            let slot = r.add(bid).unwrap();
            assert_eq!(slot, start.wrapping_add(4).wrapping_add(i) & 3);
            assert_eq!(
                r.poll_publish(),
                Some(start.wrapping_add(5).wrapping_add(i))
            );
            r.check_invariants().unwrap();
        }
        assert_eq!(r.in_ring(), 4);
        assert!((r.tail as u16) < start, "the tail wrapped past u16::MAX");
    }

    #[test]
    fn double_adds_unknown_and_unpublished_buffers_are_refused() {
        let mut r = BufRingState::new(8, 16).unwrap();
        r.add(3).unwrap();
        assert_eq!(r.add(3), Err(BufRingError::AlreadyInRing(3)));
        assert_eq!(r.add(8), Err(BufRingError::BadId(8)));
        assert_eq!(
            r.handle_cqe(cqe_flags(5, false), 1),
            Err(BufRingError::NotLent(5))
        );
        assert_eq!(
            r.handle_cqe(cqe_flags(3, false), 1),
            Err(BufRingError::NotPublished(3))
        );
        assert_eq!(
            r.handle_cqe(cqe_flags(9, false), 1),
            Err(BufRingError::BadId(9))
        );
        assert_eq!(
            r.handle_cqe(0, 7),
            Ok(None),
            "a CQE without a buffer names none"
        );
        assert_eq!(r.in_ring(), 1);
        r.check_invariants().unwrap();
    }

    #[test]
    fn a_buffer_is_taken_once() {
        let mut r = ring(4, 0);
        assert!(r.handle_cqe(cqe_flags(0, false), 3).unwrap().is_some());
        let before = r.clone();
        assert_eq!(
            r.handle_cqe(cqe_flags(0, false), 3),
            Err(BufRingError::NotLent(0))
        );
        assert_eq!(r, before);
    }

    #[test]
    fn with_a_verified_head_only_consumed_buffers_are_taken() {
        let mut r = ring(4, u16::MAX - 1);
        r.verify_head(true);
        let before = r.clone();
        // Nothing consumed yet: a completion for the first buffer is forged.
        assert_eq!(
            r.handle_cqe(cqe_flags(0, false), 3),
            Err(BufRingError::NotConsumed(0))
        );
        assert_eq!(r, before);
        // A head before the one seen, or past the tail, is refused.
        assert_eq!(
            r.handle_head(u16::MAX - 2),
            Err(BufRingError::BadHead(u16::MAX - 2))
        );
        assert_eq!(r.handle_head(3), Err(BufRingError::BadHead(3)));
        r.handle_head(0).unwrap(); // two consumed, across the wrap
        assert_eq!(
            r.handle_cqe(cqe_flags(1, false), 3).unwrap().unwrap().bid(),
            1
        );
        assert_eq!(
            r.handle_cqe(cqe_flags(0, false), 3).unwrap().unwrap().bid(),
            0
        );
        assert_eq!(
            r.handle_cqe(cqe_flags(2, false), 3),
            Err(BufRingError::NotConsumed(2))
        );
        r.check_invariants().unwrap();
    }

    #[test]
    fn a_bundle_takes_the_buffers_after_the_first_in_ring_order() {
        let mut r = ring(4, 0);
        // Give back out of order so ring order differs from id order.
        for bid in [0, 1, 2, 3] {
            r.handle_cqe(cqe_flags(bid, false), 1).unwrap().unwrap();
        }
        for bid in [2, 0, 3, 1] {
            r.add(bid).unwrap();
        }
        let _ = r.poll_publish();
        // 40 bytes in 16-byte buffers: three of them, 16 + 16 + 8.
        let t = r.handle_cqe(cqe_flags(2, false), 40).unwrap().unwrap();
        assert_eq!((t.bid(), t.count(), t.len()), (2, 3, 40));
        let mut bids = [t.bid(); 3];
        for i in 1..3 {
            bids[i] = r.next_bid(bids[i - 1]);
        }
        assert_eq!(bids, [2, 0, 3]);
        assert_eq!(
            [t.len_in(0, 16), t.len_in(1, 16), t.len_in(2, 16)],
            [16, 16, 8]
        );
        assert_eq!(r.in_ring(), 1);
        // A bundle reaching past what was lent in a row is refused.
        let before = r.clone();
        assert_eq!(
            r.handle_cqe(cqe_flags(1, false), 17),
            Err(BufRingError::BadBundle { bid: 1, buffers: 2 })
        );
        assert_eq!(r, before);
        for b in bids {
            r.add(b).unwrap();
        }
        r.check_invariants().unwrap();
    }

    #[test]
    fn incremental_completions_are_refused_without_change() {
        let mut r = ring(2, 0);
        let before = r.clone();
        assert_eq!(
            r.handle_cqe(cqe_flags(1, true), 4),
            Err(BufRingError::Incremental(1))
        );
        assert_eq!(r, before);
    }

    #[test]
    fn failed_completions_consume_or_keep_the_buffer() {
        let mut r = ring(2, 0);
        let t = r.handle_cqe(cqe_flags(0, false), -104).unwrap().unwrap();
        assert_eq!((t.bid(), t.count(), t.len()), (0, 1, 0));
        r.failures_keep_buffer(true);
        assert_eq!(r.handle_cqe(cqe_flags(1, false), -104), Ok(None));
        assert!(r.contains(1));
    }
}
