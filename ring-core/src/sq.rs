//! The submission queue, single-threaded.

use core::ops::Range;

use crate::error::moved_backwards;
use crate::{CoreError, Geometry, SqFull};

/// Slots reserved in the SQ by [`SqState::reserve`]: ring indices
/// `start .. start + len` (wrapping). The caller writes one SQE per index at
/// [`Geometry::sqe_offset`] and then commits the reservation.
#[must_use = "a reservation must be committed or cancelled, or the SQ stalls"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reservation {
    start: u32,
    len: u32,
    mask: u32,
}

impl Reservation {
    pub(crate) const fn new(start: u32, len: u32, mask: u32) -> Self {
        Reservation { start, len, mask }
    }

    /// The first ring index.
    #[inline]
    pub const fn start(&self) -> u32 {
        self.start
    }

    /// The number of slots.
    #[inline]
    pub const fn len(&self) -> u32 {
        self.len
    }

    /// Whether it has no slot.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last ring index (wrapping).
    #[inline]
    pub const fn end(&self) -> u32 {
        self.start.wrapping_add(self.len)
    }

    /// The ring indices, in order (wrapping).
    pub fn indices(&self) -> impl Iterator<Item = u32> + use<> {
        let start = self.start;
        (0..self.len).map(move |i| start.wrapping_add(i))
    }

    /// The slots (`index & mask`), in order.
    pub fn slots(&self) -> impl Iterator<Item = u32> + use<> {
        let mask = self.mask;
        self.indices().map(move |i| i & mask)
    }

    /// The offsets `0..len`, for callers that keep their own array.
    pub const fn offsets(&self) -> Range<u32> {
        0..self.len
    }
}

/// The single-threaded push path, bound to its queue: taken with
/// [`SqState::pusher`], it hands out free slots one at a time
/// ([`next_index`](Self::next_index); the caller writes an SQE into each at
/// once) and [`publish`](Self::publish) commits every slot it gave and says
/// which tail to store. It keeps its indices in registers (a push touches
/// no field of the queue), and holding the queue borrowed it needs no check
/// when it commits: nothing else can move the queue's indices meanwhile,
/// and it gives only free slots. Dropped without `publish` (or
/// [`handle_head`](Self::handle_head)), it pushed nothing.
#[must_use = "the slots a pusher gave are pushed only by publish"]
#[derive(Debug)]
pub struct SqPusher<'q> {
    sq: &'q mut SqState,
    next: u32,
    end: u32,
}

impl SqPusher<'_> {
    /// The ring index of the next free slot, or `None` when the free space
    /// seen when the pusher was taken (or last handled a head) is used up.
    #[inline]
    pub fn next_index(&mut self) -> Option<u32> {
        if self.next == self.end {
            return None;
        }
        let index = self.next;
        self.next = index.wrapping_add(1);
        Some(index)
    }

    /// Slots left.
    #[inline]
    pub const fn space(&self) -> u32 {
        self.end.wrapping_sub(self.next)
    }

    /// The queue, with the slots given so far not yet committed.
    #[inline]
    pub fn queue(&self) -> &SqState {
        self.sq
    }

    /// Commits the slots given so far (their SQEs are written), then
    /// handles the kernel's `sq.head` as [`SqState::handle_head`] does and
    /// takes the free space it shows. A refused head changes nothing but
    /// the commit.
    #[inline]
    pub fn handle_head(&mut self, head: u32) -> Result<(), CoreError> {
        self.commit_given();
        let handled = self.sq.handle_head(head);
        self.end = self.sq.head.wrapping_add(self.sq.entries);
        handled
    }

    /// The kernel's `sq.dropped` counter was observed
    /// ([`SqState::handle_dropped`]).
    pub fn handle_dropped(&mut self, dropped: u32) {
        self.sq.handle_dropped(dropped);
    }

    /// Commits every slot given (their SQEs are written), then
    /// [`poll_publish`](SqState::poll_publish): the new tail to store to the
    /// kernel's `sq.tail`, if committed entries wait to be published. Call
    /// again after more pushes; without any, `None`.
    #[must_use]
    #[inline]
    pub fn publish(&mut self) -> Option<u32> {
        self.commit_given();
        self.sq.poll_publish()
    }

    /// Commits every slot given (their SQEs are written) and publishes
    /// everything committed, returning the tail to store to the kernel's
    /// `sq.tail`: [`publish`](Self::publish) without its `None`, for a
    /// caller that stores the tail whether or not it moved (storing the
    /// tail the kernel already has changes nothing for it, and spares a
    /// compare and a branch on the path that pushed).
    #[must_use]
    #[inline]
    pub fn publish_tail(&mut self) -> u32 {
        self.commit_given();
        self.sq.published = self.next;
        self.sq.debug_check();
        self.next
    }

    #[inline]
    fn commit_given(&mut self) {
        // By construction: taken with no reservation open and the queue
        // borrowed since, the pusher gave slots from `reserved` on, within
        // the free space (its end moves only with a handled head).
        self.sq.reserved = self.next;
        self.sq.committed = self.next;
        self.sq.debug_check();
    }
}

/// The entries pending for one `io_uring_enter` on a ring without SQPOLL,
/// bound to their queue: taken with [`SqState::submission`] after the last
/// publish, it holds [`to_submit`](Self::to_submit) and the tail they end
/// at, and [`handle_submitted`](Self::handle_submitted) takes the call's
/// result as [`SqState::handle_submitted`] does. Holding the queue borrowed
/// across the call, it needs to look at none of the queue's indices
/// afterwards: nothing else can move them meanwhile, so the count and the
/// tail it took before the call still describe the queue (a caller keeps
/// them in registers across the system call, where the queue's fields
/// would be read again from memory).
#[must_use = "a submission records nothing until its result is handled"]
#[derive(Debug)]
pub struct SqSubmit<'q> {
    sq: &'q mut SqState,
    tail: u32,
    pending: u32,
}

impl SqSubmit<'_> {
    /// Entries published and not yet consumed: the `to_submit` of the call
    /// ([`SqState::pending`]).
    #[inline]
    pub const fn to_submit(&self) -> u32 {
        self.pending
    }

    /// The call returned `submitted`: [`SqState::handle_submitted`] (if it
    /// is every entry pending, the kernel's head is the published tail,
    /// recorded without a load, `true`; else nothing changes, `false`:
    /// load the head and [`handle_head`](SqState::handle_head) it).
    #[inline]
    pub fn handle_submitted(self, submitted: u32) -> bool {
        if submitted != self.pending {
            return false;
        }
        // By construction: `tail` and `pending` were the queue's published
        // tail and `tail - head` when taken, and the queue was borrowed
        // since; so this is `SqState::handle_submitted`'s accepted case.
        self.sq.head = self.tail;
        self.sq.debug_check();
        true
    }
}

/// The application's side of the submission queue, as a sans-io state
/// machine: it decides which slot the next SQE goes to and which tail to
/// publish; the caller writes SQEs and does the atomic loads and stores.
///
/// # Indices
///
/// Four wrapping `u32` indices, always in this order around the ring:
/// `head <= published <= committed <= reserved`, with
/// `reserved - head <= entries` (see [`check_invariants`](Self::check_invariants)):
/// - `head`: how far the kernel has consumed (`sq.head`, kernel-written);
/// - `published`: the tail last returned by [`poll_publish`](Self::poll_publish),
///   i.e. what the kernel can see (`sq.tail`);
/// - `committed`: entries filled and committed, not yet published;
/// - `reserved`: slots handed out by [`reserve`](Self::reserve).
///
/// # Call order
///
/// 1. [`reserve(n)`](Self::reserve): all `n` slots or none
///    ([`SqFull`] says how many are free);
/// 2. the caller writes the SQEs into the reserved slots;
/// 3. [`commit(reservation)`](Self::commit), in reservation order
///    (or [`cancel`](Self::cancel) the latest reservation);
/// 4. [`poll_publish()`](Self::poll_publish) until `None`: store the returned
///    value to the kernel's `sq.tail` with release ordering (pairs with the
///    kernel's `smp_load_acquire(&rings->sq.tail)`: SQE contents before the
///    tail);
/// 5. enter the kernel if [`decide_enter`](crate::decide_enter) says so, with
///    `to_submit = `[`pending()`](Self::pending);
/// 6. [`handle_head(sq.head)`](Self::handle_head) with the head loaded with
///    acquire ordering (pairs with the kernel's `smp_store_release` of
///    `sq.head` in `io_commit_sqring`: the kernel has finished reading every
///    SQE below it, so those slots may be rewritten).
///
/// The SQ index array, when present, is filled once with the identity (see
/// [`Geometry::sq_array_entry`]), as liburing does; ring index `i` then
/// always goes through array slot `i & mask` to SQE `i & mask`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqState {
    entries: u32,
    mask: u32,
    head: u32,
    published: u32,
    committed: u32,
    reserved: u32,
    dropped: u32,
}

impl SqState {
    /// An empty SQ of this geometry, every index at 0 as after
    /// `io_uring_setup`.
    pub fn new(geometry: &Geometry) -> Self {
        Self::with_start(geometry, 0)
    }

    /// An empty SQ whose indices all start at `start` (tests use values near
    /// `u32::MAX` to cross the wrap).
    pub fn with_start(geometry: &Geometry, start: u32) -> Self {
        SqState {
            entries: geometry.sq_entries(),
            mask: geometry.sq_mask(),
            head: start,
            published: start,
            committed: start,
            reserved: start,
            dropped: 0,
        }
    }

    /// Ring size.
    #[inline]
    pub const fn entries(&self) -> u32 {
        self.entries
    }

    /// The kernel's head, as last handled.
    pub const fn head(&self) -> u32 {
        self.head
    }

    /// The tail last published (what the kernel sees as `sq.tail`).
    pub const fn tail(&self) -> u32 {
        self.published
    }

    /// Free slots: `entries - (reserved - head)`.
    #[inline]
    pub const fn space(&self) -> u32 {
        self.entries - self.reserved.wrapping_sub(self.head)
    }

    /// Entries published but not yet consumed by the kernel: the `to_submit`
    /// of `io_uring_enter` (liburing's `sq_ready`).
    #[inline]
    pub const fn pending(&self) -> u32 {
        self.published.wrapping_sub(self.head)
    }

    /// Entries committed but not yet published.
    pub const fn unpublished(&self) -> u32 {
        self.committed.wrapping_sub(self.published)
    }

    /// Slots reserved but not yet committed.
    pub const fn uncommitted(&self) -> u32 {
        self.reserved.wrapping_sub(self.committed)
    }

    /// The kernel's `sq.dropped` counter, as last handled: entries it
    /// skipped because their SQ-array index was invalid.
    pub const fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Reserve `n` consecutive slots, all or nothing. When fewer than `n`
    /// are free, nothing changes and [`SqFull`] hands the request back.
    #[inline]
    pub fn reserve(&mut self, n: u32) -> Result<Reservation, SqFull> {
        let space = self.space();
        if n > space {
            return Err(SqFull {
                requested: n,
                space,
            });
        }
        let r = Reservation {
            start: self.reserved,
            len: n,
            mask: self.mask,
        };
        self.reserved = self.reserved.wrapping_add(n);
        self.debug_check();
        Ok(r)
    }

    /// Reserve `n` consecutive slots and mark them committed at once, all
    /// or nothing: the single-threaded push, for a caller that writes the
    /// SQEs into the slots before its next
    /// [`poll_publish`](Self::poll_publish) (nothing else can publish in
    /// between). While an earlier [`reserve`](Self::reserve) is uncommitted
    /// nothing can be committed past it, so this reports no space
    /// ([`SqFull`] with `space: 0`) until that one is committed or
    /// cancelled. (An empty reservation needs no commit: this passes over
    /// it, after which committing it is refused as out of order.)
    #[inline]
    pub fn reserve_committed(&mut self, n: u32) -> Result<Reservation, SqFull> {
        let space = if self.reserved == self.committed {
            self.space()
        } else {
            0
        };
        if n > space {
            return Err(SqFull {
                requested: n,
                space,
            });
        }
        let r = Reservation {
            start: self.reserved,
            len: n,
            mask: self.mask,
        };
        // committed == reserved here unless n == 0 (then nothing moves).
        self.reserved = self.reserved.wrapping_add(n);
        self.committed = self.committed.wrapping_add(n);
        self.debug_check();
        Ok(r)
    }

    /// A [`SqPusher`] over the free slots, holding the queue until it is
    /// dropped, or `None` while a reservation is uncommitted (nothing can be
    /// committed past it).
    #[inline]
    pub fn pusher(&mut self) -> Option<SqPusher<'_>> {
        if self.reserved != self.committed {
            return None;
        }
        Some(SqPusher {
            next: self.reserved,
            end: self.head.wrapping_add(self.entries),
            sq: self,
        })
    }

    /// Mark a reservation's SQEs as written. Reservations are committed in
    /// the order they were made; anything else is an error and changes
    /// nothing.
    #[inline]
    pub fn commit(&mut self, r: Reservation) -> Result<(), CoreError> {
        if r.start != self.committed || r.len > self.reserved.wrapping_sub(self.committed) {
            return Err(CoreError::ReservationOutOfOrder {
                expected: self.committed,
                got: r.start,
            });
        }
        self.committed = r.end();
        self.debug_check();
        Ok(())
    }

    /// Give back the most recent uncommitted reservation (its slots are
    /// reused by the next [`reserve`](Self::reserve)).
    pub fn cancel(&mut self, r: Reservation) -> Result<(), CoreError> {
        let within = self.reserved.wrapping_sub(self.committed);
        if r.end() != self.reserved || r.len > within {
            return Err(CoreError::ReservationOutOfOrder {
                expected: self.reserved,
                got: r.end(),
            });
        }
        self.reserved = r.start;
        self.debug_check();
        Ok(())
    }

    /// The new tail to store to the kernel's `sq.tail`, if committed entries
    /// wait to be published. Call until `None` (here one call publishes
    /// everything committed: a second one without a commit in between
    /// returns `None`).
    #[must_use]
    #[inline]
    pub fn poll_publish(&mut self) -> Option<u32> {
        if self.committed == self.published {
            return None;
        }
        self.published = self.committed;
        self.debug_check();
        Some(self.published)
    }

    /// The kernel's `sq.head` was observed. A head that moves backwards or
    /// past the published tail is an error and changes nothing (one wrapping
    /// compare on the accepted path).
    #[inline]
    pub fn handle_head(&mut self, head: u32) -> Result<(), CoreError> {
        if head.wrapping_sub(self.head) > self.pending() {
            return Err(self.bad_head(head));
        }
        self.head = head;
        self.debug_check();
        Ok(())
    }

    /// `io_uring_enter` on a ring without SQPOLL returned `submitted` (it
    /// consumed that many entries). If that is every entry pending, the
    /// kernel's head is the published tail, recorded here without a load of
    /// `sq.head` (`true`); otherwise nothing changes (`false`): load the
    /// head and [`handle_head`](Self::handle_head) it.
    ///
    /// Why the count proves the head: without SQPOLL the kernel consumes
    /// entries only inside the call, in order from its head, stops at the
    /// first it drops (an invalid SQ-array index, counted in `sq.dropped`,
    /// not in the result) and returns how many it consumed. Its head is
    /// never behind the one last handled here and never past the published
    /// tail, so `pending()` entries consumed leave it exactly at the tail,
    /// with none dropped. (Under SQPOLL the result says how many the thread
    /// was asked to take, not what it took: never call this there.)
    #[inline]
    pub fn handle_submitted(&mut self, submitted: u32) -> bool {
        if submitted != self.pending() {
            return false;
        }
        self.head = self.published;
        self.debug_check();
        true
    }

    /// The entries pending, held for one `io_uring_enter` that submits
    /// them (see [`SqSubmit`]; call after [`poll_publish`](Self::poll_publish)).
    #[inline]
    pub fn submission(&mut self) -> SqSubmit<'_> {
        SqSubmit {
            tail: self.published,
            pending: self.pending(),
            sq: self,
        }
    }

    /// Why `head` was refused by [`handle_head`](Self::handle_head).
    #[cold]
    #[inline(never)]
    fn bad_head(&self, head: u32) -> CoreError {
        if moved_backwards(self.head, head) {
            CoreError::HeadBackwards {
                known: self.head,
                observed: head,
            }
        } else {
            CoreError::HeadPastTail {
                head,
                tail: self.published,
            }
        }
    }

    /// The kernel's `sq.dropped` counter was observed.
    pub fn handle_dropped(&mut self, dropped: u32) {
        self.dropped = dropped;
    }

    /// Check `head <= published <= committed <= reserved` (as wrapping
    /// distances from `head`) and `reserved - head <= entries`.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        if !self.entries.is_power_of_two() || self.mask != self.entries - 1 {
            return Err("SQ: mask is not entries - 1");
        }
        let p = self.published.wrapping_sub(self.head);
        let c = self.committed.wrapping_sub(self.head);
        let r = self.reserved.wrapping_sub(self.head);
        if r > self.entries {
            return Err("SQ: more than entries reserved beyond the head");
        }
        if !(p <= c && c <= r) {
            return Err("SQ: indices out of order (head <= published <= committed <= reserved)");
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
    use ring_io_sys::{Features, SetupFlags};

    fn sq(start: u32) -> SqState {
        let g = Geometry::new(4, 8, SetupFlags::empty(), Features::empty()).unwrap();
        SqState::with_start(&g, start)
    }

    #[test]
    fn reserve_commit_publish_consume() {
        let mut q = sq(0);
        let r = q.reserve(3).unwrap();
        assert_eq!((r.start(), r.len()), (0, 3));
        assert_eq!(q.space(), 1);
        assert_eq!(q.poll_publish(), None);
        q.commit(r).unwrap();
        assert_eq!(q.unpublished(), 3);
        assert_eq!(q.poll_publish(), Some(3));
        assert_eq!(q.poll_publish(), None);
        assert_eq!(q.pending(), 3);
        q.handle_head(2).unwrap();
        assert_eq!((q.pending(), q.space()), (1, 3));
    }

    #[test]
    fn all_or_nothing() {
        let mut q = sq(0);
        let _a = q.reserve(3).unwrap();
        assert_eq!(
            q.reserve(2),
            Err(SqFull {
                requested: 2,
                space: 1
            })
        );
        assert_eq!(q.space(), 1);
        assert!(q.reserve(5).is_err());
    }

    #[test]
    fn wraps_around_u32() {
        let mut q = sq(u32::MAX - 1);
        let r = q.reserve(4).unwrap();
        let idx: alloc::vec::Vec<u32> = r.indices().collect();
        assert_eq!(idx, [u32::MAX - 1, u32::MAX, 0, 1]);
        let slots: alloc::vec::Vec<u32> = r.slots().collect();
        assert_eq!(slots, [2, 3, 0, 1]);
        q.commit(r).unwrap();
        assert_eq!(q.poll_publish(), Some(2));
        q.handle_head(1).unwrap();
        assert_eq!(q.space(), 3);
    }

    #[test]
    fn bad_heads_are_errors() {
        let mut q = sq(10);
        let r = q.reserve(2).unwrap();
        q.commit(r).unwrap();
        let _ = q.poll_publish();
        assert_eq!(
            q.handle_head(13),
            Err(CoreError::HeadPastTail { head: 13, tail: 12 })
        );
        q.handle_head(11).unwrap();
        assert_eq!(
            q.handle_head(10),
            Err(CoreError::HeadBackwards {
                known: 11,
                observed: 10
            })
        );
        assert_eq!(q.head(), 11);
    }

    #[test]
    fn reserve_committed_needs_no_commit() {
        let mut q = sq(u32::MAX);
        let r = q.reserve_committed(3).unwrap();
        assert_eq!((r.start(), r.len()), (u32::MAX, 3));
        assert_eq!((q.unpublished(), q.uncommitted(), q.space()), (3, 0, 1));
        assert_eq!(q.poll_publish(), Some(2));
        assert_eq!(
            q.reserve_committed(2),
            Err(SqFull {
                requested: 2,
                space: 1
            })
        );
        let open = q.reserve(1).unwrap();
        assert_eq!(
            q.reserve_committed(1),
            Err(SqFull {
                requested: 1,
                space: 0
            })
        );
        q.commit(open).unwrap();
        q.handle_head(2).unwrap();
        assert_eq!(q.reserve_committed(3).map(|r| r.start()), Ok(3));
    }

    #[test]
    fn pusher_pushes_then_publishes() {
        let mut q = sq(u32::MAX - 1);
        let first = q.reserve_committed(1).unwrap();
        let mut p = q.pusher().unwrap();
        assert_eq!(p.space(), 3);
        assert_eq!(p.next_index(), Some(u32::MAX));
        assert_eq!(p.next_index(), Some(0));
        assert_eq!(p.queue().space(), 3, "nothing moves before publish");
        assert_eq!(p.next_index(), Some(1));
        assert_eq!(p.next_index(), None);
        assert_eq!(p.space(), 0);
        assert_eq!(p.publish(), Some(2), "the slot reserved before, and three");
        assert_eq!(p.publish(), None, "publishing again adds nothing");
        assert_eq!(p.queue().space(), 0);
        // The kernel consumes two; the pusher takes the room it freed.
        assert_eq!(p.handle_head(0), Ok(()));
        assert_eq!(p.space(), 2);
        assert_eq!(p.next_index(), Some(2));
        // A head past the tail is refused, after committing what was given.
        assert_eq!(
            p.handle_head(7),
            Err(CoreError::HeadPastTail { head: 7, tail: 2 })
        );
        assert_eq!((p.space(), p.queue().unpublished()), (1, 1));
        assert_eq!(p.publish(), Some(3));
        assert_eq!(first.start(), u32::MAX - 1);
        // Dropped unpublished: what it gave is not pushed.
        let mut p = q.pusher().unwrap();
        assert_eq!(p.next_index(), Some(3));
        drop(p);
        assert_eq!((q.space(), q.unpublished()), (1, 0));
        let open = q.reserve(1).unwrap();
        assert!(q.pusher().is_none(), "not past an uncommitted reservation");
        q.commit(open).unwrap();
        assert_eq!(q.pusher().map(|p| p.space()), Some(0));
    }

    #[test]
    fn publish_tail_publishes_as_publish_does() {
        let mut q = sq(u32::MAX - 1);
        let mut twin = q.clone();
        let mut p = q.pusher().unwrap();
        assert_eq!(
            p.publish_tail(),
            u32::MAX - 1,
            "nothing given: the tail as it is"
        );
        assert_eq!(p.next_index(), Some(u32::MAX - 1));
        assert_eq!(p.next_index(), Some(u32::MAX));
        assert_eq!(p.next_index(), Some(0));
        assert_eq!(p.publish_tail(), 1);
        let mut t = twin.pusher().unwrap();
        assert_eq!(t.publish(), None);
        let _ = (t.next_index(), t.next_index(), t.next_index());
        assert_eq!(t.publish(), Some(1));
        assert_eq!(q, twin, "publish_tail leaves the queue as publish does");
        assert_eq!((q.tail(), q.pending(), q.unpublished()), (1, 3, 0));
        let mut p = q.pusher().unwrap();
        assert_eq!(p.handle_head(1), Ok(()));
        assert_eq!(p.publish_tail(), 1);
        assert_eq!((q.pending(), q.space()), (0, 4));
    }

    #[test]
    fn a_count_of_everything_pending_proves_the_head() {
        let mut q = sq(u32::MAX);
        let r = q.reserve_committed(3).unwrap();
        assert_eq!(q.poll_publish(), Some(r.end()));
        assert!(!q.handle_submitted(2), "two of three: the head is unknown");
        assert!(!q.handle_submitted(4), "more than pending: not a count");
        assert_eq!(q.head(), u32::MAX, "refused counts change nothing");
        assert!(q.handle_submitted(3));
        assert_eq!((q.head(), q.pending(), q.space()), (2, 0, 4));
        assert!(q.handle_submitted(0), "nothing pending, nothing consumed");
        assert_eq!(q.head(), 2);
    }

    #[test]
    fn a_submission_proves_the_head_as_handle_submitted_does() {
        for submitted in 0..5 {
            let mut q = sq(u32::MAX - 1);
            let r = q.reserve_committed(3).unwrap();
            assert_eq!(q.poll_publish(), Some(r.end()));
            let mut twin = q.clone();
            let s = q.submission();
            assert_eq!(s.to_submit(), 3);
            let proved = s.handle_submitted(submitted);
            assert_eq!(proved, twin.handle_submitted(submitted), "{submitted}");
            assert_eq!(q, twin, "{submitted}");
            assert_eq!(q.head(), if submitted == 3 { 1 } else { u32::MAX - 1 });
        }
    }

    #[test]
    fn commit_order_and_cancel() {
        let mut q = sq(0);
        let a = q.reserve(1).unwrap();
        let b = q.reserve(2).unwrap();
        assert!(matches!(
            q.commit(b),
            Err(CoreError::ReservationOutOfOrder {
                expected: 0,
                got: 1
            })
        ));
        assert!(q.cancel(a).is_err());
        q.cancel(b).unwrap();
        assert_eq!(q.space(), 3);
        q.commit(a).unwrap();
        assert!(q.commit(a).is_err());
        let c = q.reserve(3).unwrap();
        assert_eq!(c.start(), 1);
        assert_eq!(q.uncommitted(), 3);
    }
}
