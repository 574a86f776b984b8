//! The completion queue, single-threaded.

use ring_io_sys::{IORING_CQE_F_32, IORING_CQE_F_SKIP};

use crate::error::moved_backwards;
use crate::{CoreError, Geometry};

/// A run of CQEs handed out by [`CqState::reap_batch`]: ring indices
/// `start .. start + len` (wrapping); read each at [`Geometry::cqe_offset`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CqBatch {
    // Start and end (not length), so taking an index moves one word.
    start: u32,
    end: u32,
}

impl CqBatch {
    pub(crate) const fn new(start: u32, len: u32) -> Self {
        CqBatch {
            start,
            end: start.wrapping_add(len),
        }
    }

    /// The first ring index.
    #[inline]
    pub const fn start(&self) -> u32 {
        self.start
    }

    /// The number of CQEs.
    #[inline]
    pub const fn len(&self) -> u32 {
        self.end.wrapping_sub(self.start)
    }

    /// Whether it is empty (never, as returned by `reap_batch`).
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The ring indices, in order (wrapping).
    #[inline]
    pub fn indices(&self) -> impl Iterator<Item = u32> + use<> {
        let start = self.start;
        (0..self.len()).map(move |i| start.wrapping_add(i))
    }

    /// Takes the first index off the batch (`None` once it is empty).
    #[inline]
    pub fn pop_front(&mut self) -> Option<u32> {
        if self.start == self.end {
            return None;
        }
        let index = self.start;
        self.start = index.wrapping_add(1);
        Some(index)
    }
}

/// The single-threaded reap path, bound to its queue: taken with
/// [`CqState::reader`], it holds the CQEs ready as the tail was last
/// handled, hands their indices out ([`pop_front`](Self::pop_front); the
/// caller copies each CQE out), and [`release`](Self::release) consumes
/// those read and says which head to store. Holding the queue borrowed, it
/// needs no check when it releases: nothing else can move the queue's
/// indices meanwhile, and it gives only ready CQEs. Dropped without
/// `release`, it consumed nothing.
#[must_use = "the CQEs a reader gave are consumed only by release"]
#[derive(Debug)]
pub struct CqReader<'q> {
    cq: &'q mut CqState,
    batch: CqBatch,
}

impl CqReader<'_> {
    /// The index of the next CQE (`None` once all ready are read).
    #[inline]
    pub fn pop_front(&mut self) -> Option<u32> {
        self.batch.pop_front()
    }

    /// The CQEs ready and not read yet.
    #[inline]
    pub const fn rest(&self) -> &CqBatch {
        &self.batch
    }

    /// The queue, with the CQEs read so far not yet consumed.
    #[inline]
    pub fn queue(&self) -> &CqState {
        self.cq
    }

    /// Consumes the CQEs read (each copied out) and returns the head to
    /// store to the kernel's `cq.head` if it moved
    /// ([`CqState::poll_release_head`]).
    #[must_use]
    #[inline]
    pub fn release(&mut self) -> Option<u32> {
        // By construction: the batch was the queue's ready CQEs when taken
        // and the queue was borrowed since; its start is within them.
        self.cq.head = self.batch.start;
        self.cq.poll_release_head()
    }

    /// Consumes the CQEs read (each copied out) and returns the head to
    /// store to the kernel's `cq.head`: [`release`](Self::release) without
    /// its `None`, for a caller that stores the head whether or not it
    /// moved (storing the head the kernel already has changes nothing for
    /// it, and spares a compare and a branch on the path that reaped).
    #[must_use]
    #[inline]
    pub fn release_head(&mut self) -> u32 {
        // As in `release`.
        self.cq.head = self.batch.start;
        self.cq.released = self.batch.start;
        self.cq.debug_check();
        self.batch.start
    }

    /// Handles the kernel's `cq.tail` as [`CqState::handle_tail`] does
    /// (call [`release`](Self::release) first: the CQEs read are consumed
    /// here if not) and takes every CQE ready after it.
    #[inline]
    pub fn handle_tail(&mut self, tail: u32) -> Result<(), CoreError> {
        self.cq.head = self.batch.start;
        self.cq.debug_check();
        let handled = self.cq.handle_tail(tail);
        self.batch = self.cq.peek_batch(u32::MAX);
        handled
    }
}

/// What [`CqState::reap_mixed`] consumed in an
/// `IORING_SETUP_CQE_MIXED` ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MixedCqe {
    /// A 16-byte CQE at this index (one slot).
    Small(u32),
    /// A 32-byte CQE (`IORING_CQE_F_32`) at this index (two slots).
    Big(u32),
    /// A padding entry (`IORING_CQE_F_SKIP`, Linux 6.18) the kernel posts
    /// before a wrap; not a completion, consumed and to be ignored.
    Skip(u32),
}

/// The application's side of the completion queue, as a sans-io state
/// machine: which CQE to read next, which head to hand back to the kernel.
///
/// # Indices
///
/// Three wrapping `u32` indices, `released <= head <= tail`,
/// `tail - released <= entries` (see [`check_invariants`](Self::check_invariants)):
/// - `released`: the head last returned by
///   [`poll_release_head`](Self::poll_release_head), what the kernel sees in
///   `cq.head`: slots below it may be overwritten;
/// - `head`: the next CQE to reap; `released..head` are reaped but still
///   owned by the caller (it may still be reading them);
/// - `tail`: the kernel's `cq.tail`, as last handled.
///
/// # Call order
///
/// 1. [`handle_tail(cq.tail)`](Self::handle_tail), loaded with acquire
///    ordering (pairs with the kernel's `smp_store_release(&rings->cq.tail)`
///    in `io_commit_cqring`: every CQE below the tail is written);
/// 2. [`peek`](Self::peek) (nothing consumed; the `io-uring` crate cannot,
///    its issue #262), [`reap`](Self::reap), [`reap_batch`](Self::reap_batch)
///    or, in a `CQE_MIXED` ring, [`reap_mixed`](Self::reap_mixed) with the
///    CQE's flags; read each CQE at [`Geometry::cqe_offset`];
/// 3. once the reaped CQEs are copied out,
///    [`poll_release_head()`](Self::poll_release_head) until `None`: store
///    the value to `cq.head` with release ordering (the kernel reads it with
///    `READ_ONCE` and a control dependency before overwriting a slot:
///    the CQE reads happen before the slot is reused).
///
/// The overflow counter (`cq.overflow`, completions the kernel dropped) is
/// recorded with [`handle_overflow`](Self::handle_overflow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqState {
    entries: u32,
    mask: u32,
    mixed: bool,
    released: u32,
    head: u32,
    tail: u32,
    overflow: u32,
}

impl CqState {
    /// An empty CQ of this geometry, indices at 0 as after `io_uring_setup`.
    pub fn new(geometry: &Geometry) -> Self {
        Self::with_start(geometry, 0)
    }

    /// An empty CQ whose indices all start at `start`.
    pub fn with_start(geometry: &Geometry, start: u32) -> Self {
        CqState {
            entries: geometry.cq_entries(),
            mask: geometry.cq_mask(),
            mixed: geometry.cqe_mixed(),
            released: start,
            head: start,
            tail: start,
            overflow: 0,
        }
    }

    /// Ring size in slots.
    pub const fn entries(&self) -> u32 {
        self.entries
    }

    /// The next index to reap.
    pub const fn head(&self) -> u32 {
        self.head
    }

    /// The head the kernel was last given.
    pub const fn released(&self) -> u32 {
        self.released
    }

    /// The kernel's tail, as last handled.
    pub const fn tail(&self) -> u32 {
        self.tail
    }

    /// Slots ready to reap: `tail - head` (liburing's `io_uring_cq_ready`).
    #[inline]
    pub const fn ready(&self) -> u32 {
        self.tail.wrapping_sub(self.head)
    }

    /// Slots that would be ready were the kernel's tail `tail`, without
    /// handling it: for deciding whether to wait again, never for reading
    /// (a tail out of range is not refused here; at worst the answer is
    /// wrong, and [`handle_tail`](Self::handle_tail) refuses it before any
    /// CQE is read).
    #[inline]
    pub const fn ready_at(&self, tail: u32) -> u32 {
        tail.wrapping_sub(self.head)
    }

    /// How many CQEs a wait for `want` completions can ask of this CQ: at
    /// most its size. A full CQ ends any wait: the kernel posts nothing
    /// more until the application releases slots (it clamps
    /// `min_complete` the same way in `io_cqring_wait` and returns at once),
    /// so waiting for more than the CQ holds would enter again and again.
    #[inline]
    pub const fn wait_target(&self, want: u32) -> u32 {
        if want < self.entries {
            want
        } else {
            self.entries
        }
    }

    /// Slots reaped but not yet released to the kernel.
    pub const fn unreleased(&self) -> u32 {
        self.head.wrapping_sub(self.released)
    }

    /// Free slots as the kernel sees them: `entries - (tail - released)`.
    pub const fn space(&self) -> u32 {
        self.entries - self.tail.wrapping_sub(self.released)
    }

    /// The kernel's `cq.overflow` counter, as last handled: completions it
    /// could not post (dropped without `IORING_FEAT_NODROP`, or when the
    /// backlog could not be allocated).
    pub const fn overflow(&self) -> u32 {
        self.overflow
    }

    /// The kernel's `cq.tail` was observed. A tail that moves backwards, or
    /// more than `entries` past the released head, is an error and changes
    /// nothing.
    ///
    /// One wrapping compare on the accepted path: the tail may advance by at
    /// most the free slots ([`space`](Self::space)); a tail that went back
    /// wraps to a larger advance than that.
    #[inline]
    pub fn handle_tail(&mut self, tail: u32) -> Result<(), CoreError> {
        if tail.wrapping_sub(self.tail) > self.space() {
            return Err(self.bad_tail(tail));
        }
        self.tail = tail;
        self.debug_check();
        Ok(())
    }

    /// Why `tail` was refused by [`handle_tail`](Self::handle_tail).
    #[cold]
    #[inline(never)]
    fn bad_tail(&self, tail: u32) -> CoreError {
        let seen = tail.wrapping_sub(self.released);
        if seen > self.entries && !moved_backwards(self.tail, tail) {
            CoreError::TailPastCapacity {
                head: self.released,
                tail,
                entries: self.entries,
            }
        } else {
            CoreError::TailBackwards {
                known: self.tail,
                observed: tail,
            }
        }
    }

    /// The kernel's `cq.overflow` counter was observed.
    pub fn handle_overflow(&mut self, overflow: u32) {
        self.overflow = overflow;
    }

    /// The index of the next CQE, without consuming it.
    #[must_use]
    #[inline]
    pub fn peek(&self) -> Option<u32> {
        (self.head != self.tail).then_some(self.head)
    }

    /// Consume the next CQE (one slot) and return its index. In a
    /// `CQE_MIXED` ring use [`reap_mixed`](Self::reap_mixed) instead.
    #[must_use]
    #[inline]
    pub fn reap(&mut self) -> Option<u32> {
        let idx = self.peek()?;
        self.head = self.head.wrapping_add(1);
        self.debug_check();
        Some(idx)
    }

    /// Consume up to `max` CQEs at once (fixed-size rings).
    #[must_use]
    #[inline]
    pub fn reap_batch(&mut self, max: u32) -> Option<CqBatch> {
        let len = self.ready().min(max);
        if len == 0 {
            return None;
        }
        let batch = CqBatch::new(self.head, len);
        self.head = self.head.wrapping_add(len);
        self.debug_check();
        Some(batch)
    }

    /// A [`CqReader`] over the CQEs ready now, holding the queue until it
    /// is dropped.
    #[inline]
    pub fn reader(&mut self) -> CqReader<'_> {
        CqReader {
            batch: self.peek_batch(u32::MAX),
            cq: self,
        }
    }

    /// The CQEs ready now, up to `max`, without consuming them (fixed-size
    /// rings): read some or all of them, then [`advance`](Self::advance) by
    /// how many were read (liburing's `io_uring_for_each_cqe` and
    /// `io_uring_cq_advance`). Empty when none is ready.
    #[inline]
    pub fn peek_batch(&self, max: u32) -> CqBatch {
        CqBatch::new(self.head, self.ready().min(max))
    }

    /// Consume `n` CQEs at the head, read through [`peek`](Self::peek) or
    /// [`peek_batch`](Self::peek_batch). More than are ready is an error
    /// and changes nothing.
    #[inline]
    pub fn advance(&mut self, n: u32) -> Result<(), CoreError> {
        if n > self.ready() {
            return Err(CoreError::HeadPastTail {
                head: self.head.wrapping_add(n),
                tail: self.tail,
            });
        }
        self.head = self.head.wrapping_add(n);
        self.debug_check();
        Ok(())
    }

    /// In an `IORING_SETUP_CQE_MIXED` ring: consume the CQE at
    /// [`peek`](Self::peek), whose `flags` the caller read, taking two slots
    /// if it has `IORING_CQE_F_32` (liburing's `io_uring_cqe_nr`). `Ok(None)`
    /// when nothing is ready; a big CQE cut by the tail is an error and
    /// consumes nothing. In other rings every CQE is one slot.
    pub fn reap_mixed(&mut self, flags: u32) -> Result<Option<MixedCqe>, CoreError> {
        let Some(idx) = self.peek() else {
            return Ok(None);
        };
        let cqe = if !self.mixed {
            MixedCqe::Small(idx)
        } else if flags & IORING_CQE_F_SKIP != 0 {
            MixedCqe::Skip(idx)
        } else if flags & IORING_CQE_F_32 != 0 {
            if self.ready() < 2 {
                return Err(CoreError::TruncatedCqe { index: idx });
            }
            MixedCqe::Big(idx)
        } else {
            MixedCqe::Small(idx)
        };
        let slots = if matches!(cqe, MixedCqe::Big(_)) {
            2
        } else {
            1
        };
        self.head = self.head.wrapping_add(slots);
        self.debug_check();
        Ok(Some(cqe))
    }

    /// The new head to store to the kernel's `cq.head`, if reaped CQEs wait
    /// to be released. Call only once they are copied out; call until `None`
    /// (here one call releases everything reaped: a second one without a
    /// reap in between returns `None`).
    #[must_use]
    #[inline]
    pub fn poll_release_head(&mut self) -> Option<u32> {
        if self.released == self.head {
            return None;
        }
        self.released = self.head;
        self.debug_check();
        Some(self.released)
    }

    /// Check `released <= head <= tail` (as wrapping distances from
    /// `released`) and `tail - released <= entries`.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        if !self.entries.is_power_of_two() || self.mask != self.entries - 1 {
            return Err("CQ: mask is not entries - 1");
        }
        let h = self.head.wrapping_sub(self.released);
        let t = self.tail.wrapping_sub(self.released);
        if t > self.entries {
            return Err("CQ: tail more than entries past the released head");
        }
        if h > t {
            return Err("CQ: head past tail");
        }
        Ok(())
    }

    fn debug_check(&self) {
        debug_assert_eq!(self.check_invariants(), Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring_io_sys::{Features, IORING_CQE_F_MORE, SetupFlags};

    fn cq(start: u32, flags: SetupFlags) -> CqState {
        let g = Geometry::new(4, 4, flags, Features::empty()).unwrap();
        CqState::with_start(&g, start)
    }

    #[test]
    fn reap_peek_release() {
        let mut q = cq(0, SetupFlags::empty());
        assert_eq!(q.peek(), None);
        assert_eq!(q.ready_at(3), 3, "nothing handled yet");
        assert_eq!(q.ready(), 0);
        q.handle_tail(3).unwrap();
        assert_eq!(q.peek(), Some(0));
        assert_eq!(q.peek(), Some(0));
        assert_eq!(q.reap(), Some(0));
        assert_eq!(q.reap_batch(8).map(|b| (b.start(), b.len())), Some((1, 2)));
        assert_eq!(q.reap(), None);
        assert_eq!(q.reap_batch(8), None);
        assert_eq!((q.unreleased(), q.space()), (3, 1));
        assert_eq!(q.poll_release_head(), Some(3));
        assert_eq!(q.poll_release_head(), None);
        assert_eq!(q.space(), 4);
    }

    #[test]
    fn a_wait_never_asks_for_more_than_the_cq_holds() {
        let mut q = cq(0, SetupFlags::empty());
        assert_eq!(q.wait_target(0), 0);
        assert_eq!(q.wait_target(3), 3);
        assert_eq!(q.wait_target(4), 4);
        assert_eq!(q.wait_target(5), 4);
        assert_eq!(q.wait_target(u32::MAX), 4);
        // A full CQ meets any target, even past a wrap of the indices.
        let mut wrapped = cq(u32::MAX - 1, SetupFlags::empty());
        wrapped.handle_tail(2).unwrap();
        assert!(wrapped.ready() >= wrapped.wait_target(100));
        q.handle_tail(4).unwrap();
        assert!(q.ready() >= q.wait_target(u32::MAX));
    }

    #[test]
    fn peek_batch_then_advance() {
        let mut q = cq(u32::MAX - 1, SetupFlags::empty());
        assert!(q.peek_batch(8).is_empty());
        q.handle_tail(1).unwrap();
        let mut b = q.peek_batch(8);
        assert_eq!((b.start(), b.len()), (u32::MAX - 1, 3));
        assert_eq!(q.peek_batch(2).len(), 2);
        assert_eq!(b.pop_front(), Some(u32::MAX - 1));
        assert_eq!(b.pop_front(), Some(u32::MAX));
        assert_eq!(b.pop_front(), Some(0));
        assert_eq!(b.pop_front(), None);
        assert_eq!(q.ready(), 3, "peeking consumes nothing");
        q.advance(2).unwrap();
        assert_eq!((q.head(), q.ready()), (0, 1));
        assert_eq!(
            q.advance(2),
            Err(CoreError::HeadPastTail { head: 2, tail: 1 })
        );
        assert_eq!(q.head(), 0);
        assert_eq!(q.poll_release_head(), Some(0));
    }

    #[test]
    fn a_reader_releases_what_it_read() {
        let mut q = cq(u32::MAX - 1, SetupFlags::empty());
        q.handle_tail(1).unwrap();
        let mut r = q.reader();
        assert_eq!(r.rest().len(), 3);
        assert_eq!(r.pop_front(), Some(u32::MAX - 1));
        assert_eq!(r.pop_front(), Some(u32::MAX));
        assert_eq!(r.queue().ready(), 3, "nothing consumed before release");
        assert_eq!(r.release(), Some(0));
        assert_eq!(r.release(), None, "releasing again hands nothing back");
        assert_eq!(r.queue().ready(), 1);
        // A new tail: what was read is consumed, the rest and the new
        // CQEs are ready; a refused tail leaves the reader as it was.
        assert_eq!(r.pop_front(), Some(0));
        r.handle_tail(3).unwrap();
        assert_eq!((r.rest().start(), r.rest().len()), (1, 2));
        assert!(r.handle_tail(8).is_err());
        assert_eq!(r.rest().len(), 2);
        assert_eq!(r.pop_front(), Some(1));
        // Dropped without release: the CQE read stays unconsumed.
        drop(r);
        assert_eq!((q.head(), q.released(), q.ready()), (1, 0, 2));
        let mut r = q.reader();
        assert_eq!(r.pop_front(), Some(1));
        assert_eq!(r.release(), Some(2));
        assert_eq!(q.space(), 3);
        // release_head: the same, and the head even when it did not move.
        let mut r = q.reader();
        assert_eq!(r.release_head(), 2, "nothing read: the head as it is");
        assert_eq!(r.pop_front(), Some(2));
        assert_eq!(r.release_head(), 3);
        assert_eq!((q.head(), q.released(), q.ready(), q.space()), (3, 3, 0, 4));
    }

    #[test]
    fn bad_tails_are_errors() {
        let mut q = cq(u32::MAX, SetupFlags::empty());
        q.handle_tail(1).unwrap();
        assert_eq!(q.ready(), 2);
        assert_eq!(
            q.handle_tail(0),
            Err(CoreError::TailBackwards {
                known: 1,
                observed: 0
            })
        );
        assert_eq!(
            q.handle_tail(4),
            Err(CoreError::TailPastCapacity {
                head: u32::MAX,
                tail: 4,
                entries: 4
            })
        );
        assert_eq!(
            q.handle_tail(u32::MAX - 3),
            Err(CoreError::TailBackwards {
                known: 1,
                observed: u32::MAX - 3
            })
        );
        assert_eq!(q.tail(), 1);
        q.handle_tail(3).unwrap();
        q.handle_overflow(7);
        assert_eq!(q.overflow(), 7);
    }

    #[test]
    fn mixed_sizes() {
        let mut q = cq(0, SetupFlags::CQE_MIXED);
        q.handle_tail(4).unwrap();
        assert_eq!(q.reap_mixed(0), Ok(Some(MixedCqe::Small(0))));
        assert_eq!(q.reap_mixed(IORING_CQE_F_32), Ok(Some(MixedCqe::Big(1))));
        assert_eq!(q.reap_mixed(IORING_CQE_F_SKIP), Ok(Some(MixedCqe::Skip(3))));
        assert_eq!(q.reap_mixed(0), Ok(None));
        let _ = q.poll_release_head();
        q.handle_tail(5).unwrap();
        assert_eq!(
            q.reap_mixed(IORING_CQE_F_32 | IORING_CQE_F_MORE),
            Err(CoreError::TruncatedCqe { index: 4 })
        );
        assert_eq!(q.head(), 4);
        let mut plain = cq(0, SetupFlags::empty());
        plain.handle_tail(1).unwrap();
        assert_eq!(
            plain.reap_mixed(IORING_CQE_F_32),
            Ok(Some(MixedCqe::Small(0)))
        );
    }
}
