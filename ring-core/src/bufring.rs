//! The application's side of a provided-buffer ring
//! (`IORING_REGISTER_PBUF_RING`, Linux 5.19): which slot a returned buffer
//! goes to, which tail to publish, and which buffers the kernel holds.

use alloc::vec;
use alloc::vec::Vec;

use ring_sys::{CqeFlags, IORING_CQE_BUFFER_SHIFT};

use crate::error::GeometryError;

/// A buffer-ring command that was refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufRingError {
    /// The buffer id is not below the ring's size.
    BadId(u16),
    /// The buffer is already in the ring (given back twice).
    AlreadyInRing(u16),
    /// A completion named a buffer that is not in the ring.
    NotInRing(u16),
}

impl core::fmt::Display for BufRingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BufRingError::BadId(bid) => write!(f, "buffer id {bid} is out of the ring's range"),
            BufRingError::AlreadyInRing(bid) => write!(f, "buffer {bid} is already in the ring"),
            BufRingError::NotInRing(bid) => {
                write!(
                    f,
                    "a completion named buffer {bid}, which is not in the ring"
                )
            }
        }
    }
}

impl core::error::Error for BufRingError {}

/// A provided-buffer ring as a sans-io state machine.
///
/// The ring holds `entries` `io_uring_buf` slots; the application adds
/// buffers at its tail and publishes the tail, the kernel takes them from
/// its head and names the buffer it used in a CQE (`IORING_CQE_F_BUFFER`,
/// id in the upper 16 bits of `cqe.flags`). The tail is a wrapping `u16`
/// (the kernel's `io_uring_buf_ring.tail`), slot = `tail & mask`.
///
/// Every buffer id `0..entries` is either *in the ring* (the kernel may
/// pick it) or *out* (the kernel gave it to the application). Buffers are
/// added only when out, so the ring never holds more than `entries` and a
/// slot the kernel has not consumed is never overwritten.
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
///    [`handle_cqe(flags)`](Self::handle_cqe) says which buffer is now the
///    application's; give it back with `add` when done with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufRing {
    mask: u16,
    entries: u32,
    tail: u16,
    published: u16,
    /// Bit `bid` set: the buffer is in the ring (the kernel may use it).
    in_ring: Vec<u64>,
    held: u32,
}

impl BufRing {
    /// A ring of `entries` slots (a power of two, at most 32768, the
    /// kernel's limit), every buffer out, tail 0.
    pub fn new(entries: u32) -> Result<Self, GeometryError> {
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
        Ok(BufRing {
            mask: (entries - 1) as u16,
            entries,
            tail: 0,
            published: 0,
            in_ring: vec![0; (entries as usize).div_ceil(64)],
            held: 0,
        })
    }

    /// A ring whose tail starts at `tail` (tests cross the `u16` wrap).
    #[cfg(test)]
    fn with_tail(entries: u32, tail: u16) -> Self {
        let mut r = Self::new(entries).expect("valid size");
        r.tail = tail;
        r.published = tail;
        r
    }

    /// Number of slots (and of buffer ids).
    pub const fn entries(&self) -> u32 {
        self.entries
    }

    /// Buffers the kernel may use (added, and not yet handed back by a CQE).
    pub const fn in_ring(&self) -> u32 {
        self.held
    }

    /// Buffers added but not yet published.
    pub const fn unpublished(&self) -> u16 {
        self.tail.wrapping_sub(self.published)
    }

    /// True if buffer `bid` is in the ring.
    pub fn contains(&self, bid: u16) -> bool {
        u32::from(bid) < self.entries
            && self.in_ring[usize::from(bid) / 64] & (1 << (bid % 64)) != 0
    }

    /// Gives buffer `bid` to the kernel: returns the slot index (`0..entries`)
    /// to write its `io_uring_buf` into. A buffer already in the ring, or an
    /// id out of range, is refused and nothing changes.
    pub fn add(&mut self, bid: u16) -> Result<u16, BufRingError> {
        if u32::from(bid) >= self.entries {
            return Err(BufRingError::BadId(bid));
        }
        if self.contains(bid) {
            return Err(BufRingError::AlreadyInRing(bid));
        }
        self.in_ring[usize::from(bid) / 64] |= 1 << (bid % 64);
        self.held += 1;
        let slot = self.tail & self.mask;
        self.tail = self.tail.wrapping_add(1);
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
        Some(self.tail)
    }

    /// A completion's flags were read. Returns the buffer it hands to the
    /// application, if it names one. With `IORING_CQE_F_BUF_MORE` (an
    /// incrementally consumed buffer, `IOU_PBUF_RING_INC`) the buffer stays
    /// in the ring. Naming a buffer that is not in the ring is an error (the
    /// kernel cannot have picked it) and changes nothing.
    pub fn handle_cqe(&mut self, flags: u32) -> Result<Option<u16>, BufRingError> {
        let f = CqeFlags::from_bits_retain(flags);
        if !f.contains(CqeFlags::BUFFER) {
            return Ok(None);
        }
        let bid = (flags >> IORING_CQE_BUFFER_SHIFT) as u16;
        if !self.contains(bid) {
            return Err(BufRingError::NotInRing(bid));
        }
        if !f.contains(CqeFlags::BUF_MORE) {
            self.in_ring[usize::from(bid) / 64] &= !(1 << (bid % 64));
            self.held -= 1;
        }
        Ok(Some(bid))
    }

    /// Checks the invariants: at most `entries` buffers in the ring, the
    /// count agrees with the bitmap, nothing unpublished beyond what was added.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let counted: u32 = self.in_ring.iter().map(|w| w.count_ones()).sum();
        if counted != self.held {
            return Err("buffer count disagrees with the bitmap");
        }
        if self.held > self.entries {
            return Err("more buffers in the ring than slots");
        }
        if u32::from(self.unpublished()) > self.entries {
            return Err("more unpublished buffers than slots");
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

    #[test]
    fn sizes_must_be_powers_of_two_up_to_32768() {
        assert!(BufRing::new(0).is_err());
        assert!(BufRing::new(3).is_err());
        assert!(BufRing::new(65536).is_err());
        assert_eq!(BufRing::new(32768).unwrap().entries(), 32768);
    }

    #[test]
    fn buffers_cycle_through_slots_and_the_tail_wraps_u16() {
        // Start a few steps before the u16 tail wraps (fewer rounds under
        // Miri, still across the wrap).
        let start = u16::MAX - 6;
        let mut r = BufRing::with_tail(4, start);
        for bid in 0..4 {
            assert_eq!(r.add(bid), Ok((start.wrapping_add(bid)) & 3));
        }
        assert_eq!(r.poll_publish(), Some(start.wrapping_add(4)));
        assert_eq!(r.poll_publish(), None);
        let rounds: u16 = if cfg!(miri) { 64 } else { 4096 };
        for i in 0..rounds {
            let bid = i % 4;
            assert_eq!(r.handle_cqe(cqe_flags(bid, false)), Ok(Some(bid)));
            let slot = r.add(bid).unwrap();
            assert_eq!(slot, start.wrapping_add(4).wrapping_add(i) & 3);
            assert_eq!(
                r.poll_publish(),
                Some(start.wrapping_add(5).wrapping_add(i))
            );
            r.check_invariants().unwrap();
        }
        assert_eq!(r.in_ring(), 4);
        assert!(r.tail < start, "the tail wrapped past u16::MAX");
    }

    #[test]
    fn double_adds_and_unknown_buffers_are_refused() {
        let mut r = BufRing::new(8).unwrap();
        r.add(3).unwrap();
        assert_eq!(r.add(3), Err(BufRingError::AlreadyInRing(3)));
        assert_eq!(r.add(8), Err(BufRingError::BadId(8)));
        assert_eq!(
            r.handle_cqe(cqe_flags(5, false)),
            Err(BufRingError::NotInRing(5))
        );
        assert_eq!(
            r.handle_cqe(0),
            Ok(None),
            "a CQE without a buffer names none"
        );
        assert_eq!(r.in_ring(), 1);
        r.check_invariants().unwrap();
    }

    #[test]
    fn incrementally_consumed_buffers_stay_in_the_ring() {
        let mut r = BufRing::new(2).unwrap();
        r.add(1).unwrap();
        assert_eq!(r.handle_cqe(cqe_flags(1, true)), Ok(Some(1)));
        assert!(r.contains(1));
        assert_eq!(r.handle_cqe(cqe_flags(1, false)), Ok(Some(1)));
        assert!(!r.contains(1));
    }
}
