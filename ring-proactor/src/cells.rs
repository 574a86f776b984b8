//! [`Cells`]: where a completed op finds its result without the
//! Proactor's lock, and gives its slot back the same way.
//!
//! Each slot of the slot table has a [`Cell`] here, at an address that
//! never changes: the cells live in chunks of growing size (64, 128, 256,
//! ... cells), each allocated once (the first with the table, each other
//! under the Proactor's lock when a slot in it is first made) and freed
//! only with the table, so an op that holds the Proactor can read its cell at
//! any time.
//!
//! - The driver, under the lock, publishes a completion: the result and
//!   flags, then the slot's tag with [`DONE`], with Release.
//! - The op reads its cell with Acquire; if it sees its own tag done, the
//!   result is there, and it hands the slot back with [`Cells::give_back`]:
//!   a push onto a stack of returned slots (a compare-and-swap), no lock.
//!   (The Proactor first keeps such slots on the op's thread, whose next
//!   op usually takes one at once; the ones it hands over go as a chain,
//!   [`Cells::give_back_all`], one compare-and-swap for all.)
//! - The allocator, under the lock, takes every returned slot at once
//!   ([`Cells::take_returned`]) when it has no free one. Only one thread
//!   takes at a time (the lock holder) and it takes the whole stack, so a
//!   slot pushed, taken and pushed again between a pusher's read of the
//!   head and its compare-and-swap only puts that slot at the head, which
//!   it is (no ABA hazard).
//!
//! `tests/cells_loom.rs` checks the orderings under loom.

#[cfg(loom)]
use loom::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// The low bit of a cell's `done` word: the completion of the tag in its
/// high word is published.
pub(crate) const DONE: u64 = 1;

/// The end of the returned-slots stack.
const EMPTY: u32 = u32::MAX;

/// Cells in the first chunk; chunk `k` holds `FIRST << k` (few under
/// loom, whose every atomic is a tracked object).
const FIRST: usize = if cfg!(loom) { 2 } else { 64 };

/// Chunks: enough for every slot index below 2^31 (the cancellation bit).
const CHUNKS: usize = 26;

/// One slot's completion, and its link in the returned-slots stack.
#[derive(Default)]
pub(crate) struct Cell {
    /// `tag << 32`, with [`DONE`] once the completion is published.
    done: AtomicU64,
    res: AtomicI32,
    flags: AtomicU32,
    /// The next returned slot below this one in the stack.
    next: AtomicU32,
}

/// The `done` word of a published completion of `tag`.
pub(crate) fn done_word(tag: u32) -> u64 {
    (u64::from(tag) << 32) | DONE
}

/// The cells of every slot, and the stack of slots ops gave back.
pub(crate) struct Cells {
    /// Chunk 0, made with the cells: the cells of the first `FIRST` slots
    /// (the free list hands the lowest indexes out again and again),
    /// found with no lookup of their chunk.
    first: Box<[Cell]>,
    /// Chunk `k` (`k > 0`): `FIRST << k` cells, or null until a slot in
    /// it is made.
    chunks: [AtomicPtr<Cell>; CHUNKS],
    /// The top of the returned-slots stack, or [`EMPTY`].
    returned: AtomicU32,
}

/// The chunk of slot `index` and its place in it.
#[inline]
fn locate(index: u32) -> (usize, usize) {
    let n = index as usize / FIRST + 1;
    let k = (usize::BITS - 1 - n.leading_zeros()) as usize;
    (k, index as usize - FIRST * ((1 << k) - 1))
}

impl Cells {
    pub(crate) fn new() -> Self {
        Cells {
            first: (0..FIRST).map(|_| Cell::default()).collect(),
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            returned: AtomicU32::new(EMPTY),
        }
    }

    /// Makes the cell of slot `index` (its chunk, if new), and marks it
    /// not done for `tag`. Call under the Proactor's lock (one caller at a
    /// time), before the slot's op can look at it.
    #[inline]
    pub(crate) fn reset(&self, index: u32, tag: u32) {
        if let Some(cell) = self.first.get(index as usize) {
            // Relaxed: as below.
            cell.done.store(u64::from(tag) << 32, Ordering::Relaxed);
            return;
        }
        let (k, _) = locate(index);
        if k > 0 && self.chunks[k].load(Ordering::Acquire).is_null() {
            let chunk: Box<[Cell]> = (0..FIRST << k).map(|_| Cell::default()).collect();
            // Release: the zeroed cells before the pointer.
            self.chunks[k].store(Box::into_raw(chunk).cast::<Cell>(), Ordering::Release);
        }
        let cell = self.get(index).expect("made above");
        // Relaxed: only this slot's op reads it, after the lock that
        // ordered this store before its submission returned.
        cell.done.store(u64::from(tag) << 32, Ordering::Relaxed);
    }

    /// The cell of slot `index`, if its chunk was made.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&Cell> {
        if let Some(cell) = self.first.get(index as usize) {
            return Some(cell);
        }
        let (k, at) = locate(index);
        let chunk = self.chunks.get(k)?.load(Ordering::Acquire);
        if chunk.is_null() {
            return None;
        }
        // SAFETY: a non-null chunk pointer came from `Box::into_raw` of a
        // slice of `FIRST << k` cells (Acquire: initialized), `at` is
        // below that, and chunks are freed only in `drop`, which needs
        // `&mut self`: the cell outlives `&self`.
        Some(unsafe { &*chunk.add(at) })
    }

    /// Publishes the completion of slot `index` for `tag` (the driver,
    /// under the lock).
    #[inline]
    pub(crate) fn publish(&self, index: u32, tag: u32, res: i32, flags: u32) {
        if let Some(cell) = self.get(index) {
            cell.res.store(res, Ordering::Relaxed);
            cell.flags.store(flags, Ordering::Relaxed);
            // Release: the result before the done word the op reads.
            cell.done.store(done_word(tag), Ordering::Release);
        }
    }

    /// The completion of slot `index` for `tag`, `(res, flags)`, if
    /// published.
    #[inline]
    pub(crate) fn completion(&self, index: u32, tag: u32) -> Option<(i32, u32)> {
        let cell = self.get(index)?;
        // Acquire: the result stored before the done word.
        (cell.done.load(Ordering::Acquire) == done_word(tag)).then(|| {
            (
                cell.res.load(Ordering::Relaxed),
                cell.flags.load(Ordering::Relaxed),
            )
        })
    }

    /// Hands slot `index` back (its op took the published result), without
    /// the lock: the allocator frees it when it next needs a slot.
    #[inline]
    pub(crate) fn give_back(&self, index: u32) {
        self.give_back_all(&[index]);
    }

    /// Hands the slots `indexes` back at once, with one compare-and-swap:
    /// linked in their order, then pushed as a chain.
    pub(crate) fn give_back_all(&self, indexes: &[u32]) {
        let (Some(&first), Some(&last)) = (indexes.first(), indexes.last()) else {
            return;
        };
        for pair in indexes.windows(2) {
            if let Some(cell) = self.get(pair[0]) {
                // Relaxed: published by the compare-and-swap below.
                cell.next.store(pair[1], Ordering::Relaxed);
            }
        }
        let Some(tail) = self.get(last) else { return };
        let mut top = self.returned.load(Ordering::Relaxed);
        loop {
            tail.next.store(top, Ordering::Relaxed);
            // Release: the links (and the ops' reads of their results)
            // before the taker sees the slots.
            match self.returned.compare_exchange_weak(
                top,
                first,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => top = now,
            }
        }
    }

    /// Every slot handed back since the last call, taken at once (under
    /// the lock: one taker at a time), each passed to `each`.
    #[inline]
    pub(crate) fn take_returned(&self, mut each: impl FnMut(u32)) {
        // Acquire: every pusher's link, through the release sequence of
        // their compare-and-swaps.
        let mut index = self.returned.swap(EMPTY, Ordering::Acquire);
        while index != EMPTY {
            // Read before `each` may reuse the slot.
            let next = self
                .get(index)
                .map_or(EMPTY, |c| c.next.load(Ordering::Relaxed));
            each(index);
            index = next;
        }
    }
}

impl Drop for Cells {
    fn drop(&mut self) {
        // (Chunk 0 is `first`, dropped with it.)
        for (k, chunk) in self.chunks.iter().enumerate().skip(1) {
            // (`&mut self`: nothing else uses the cells any more.)
            let ptr = chunk.load(Ordering::Acquire);
            if !ptr.is_null() {
                let slice = std::ptr::slice_from_raw_parts_mut(ptr, FIRST << k);
                // SAFETY: made by `Box::into_raw` of a slice of this
                // length in `reset`, freed once, here.
                drop(unsafe { Box::from_raw(slice) });
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_index_has_its_own_place() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        let (k, at) = locate((1 << 31) - 1);
        assert!(k < CHUNKS && at < FIRST << k);
        // Consecutive indexes are consecutive places (or the next chunk's
        // first).
        let mut last = locate(0);
        // (Fewer under Miri, which is slow.)
        for i in 1..if cfg!(miri) { 2_000 } else { 100_000u32 } {
            let now = locate(i);
            assert!(now == (last.0, last.1 + 1) || now == (last.0 + 1, 0), "{i}");
            assert!(now.1 < FIRST << now.0);
            last = now;
        }
    }

    #[test]
    fn a_published_result_is_seen_for_its_tag_only() {
        let cells = Cells::new();
        // The first chunk is made with the table, the next when needed.
        assert!(cells.get(5).is_some());
        assert!(cells.get(FIRST as u32).is_none());
        cells.reset(5, 7);
        assert_eq!(cells.completion(5, 7), None);
        cells.publish(5, 7, -4, 2);
        assert_eq!(cells.completion(5, 7), Some((-4, 2)));
        assert_eq!(cells.completion(5, 8), None, "another tag");
        cells.reset(5, 8);
        assert_eq!(cells.completion(5, 7), None, "reset for the next request");
        // A far index makes its own chunk.
        cells.reset(100_000, 1);
        cells.publish(100_000, 1, 9, 0);
        assert_eq!(cells.completion(100_000, 1), Some((9, 0)));
    }

    #[test]
    fn slots_given_back_are_taken_once_each() {
        const SLOTS: u32 = if cfg!(miri) { 100 } else { 1000 };
        let cells = std::sync::Arc::new(Cells::new());
        for i in 0..SLOTS {
            cells.reset(i, 0);
        }
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cells = cells.clone();
                std::thread::spawn(move || {
                    for i in (t..SLOTS).step_by(4) {
                        cells.give_back(i);
                    }
                })
            })
            .collect();
        let mut taken = Vec::new();
        for t in threads {
            cells.take_returned(|i| taken.push(i));
            t.join().unwrap();
        }
        cells.take_returned(|i| taken.push(i));
        taken.sort_unstable();
        assert_eq!(taken, (0..SLOTS).collect::<Vec<_>>());
        cells.take_returned(|i| panic!("{i} taken twice"));
    }
}
