//! Slots a thread keeps for its next requests ([`give_back`]): freed
//! slots are not handed back one by one (a compare-and-swap each) but in
//! chains of up to `KEEP`.

use super::*;

/// Slots a thread keeps at most ([`give_back`]) before it hands them over.
const KEEP: usize = 32;

thread_local! {
    /// Slots whose ops, polled on this thread, took their completions and
    /// gave them back ([`give_back`]), and the cells they belong to.
    pub(super) static KEPT: RefCell<Kept> = const {
        RefCell::new(Kept {
            cells: None,
            slots: Vec::new(),
        })
    };
}

/// See [`KEPT`].
pub(super) struct Kept {
    pub(super) cells: Option<Arc<Cells>>,
    pub(super) slots: Vec<u32>,
}

impl Kept {
    /// Hands the kept slots over, to keep slots of `cells` from now on.
    #[cold]
    fn switch(&mut self, cells: &Arc<Cells>) {
        self.hand_over();
        if !self
            .cells
            .as_ref()
            .is_some_and(|own| Arc::ptr_eq(own, cells))
        {
            self.cells = Some(cells.clone());
        }
    }

    /// Hands every kept slot to the shared stack of returned slots.
    fn hand_over(&mut self) {
        if let Some(cells) = &self.cells {
            cells.give_back_all(&self.slots);
        }
        self.slots.clear();
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        // The thread exits: its slots go back to their table.
        self.hand_over();
    }
}

/// Gives slot `index` of `cells` back (its op took the published
/// completion), without the lock. The thread keeps it, with no atomic
/// read-modify-write, for its next allocation from the same table (an op
/// that completes is usually followed by a new one on the same thread),
/// up to [`KEEP`] slots: past that, or when an op of another table gives
/// one back here, or when the thread exits, the kept slots go onto the
/// table's shared stack, one compare-and-swap for all
/// ([`Cells::give_back_all`]), where any allocator takes them.
#[inline(always)]
pub(crate) fn give_back(cells: &Arc<Cells>, index: u32) {
    let kept = KEPT.try_with(|kept| {
        let Ok(mut kept) = kept.try_borrow_mut() else {
            return false;
        };
        if !kept
            .cells
            .as_ref()
            .is_some_and(|own| Arc::ptr_eq(own, cells))
            || kept.slots.len() >= KEEP
        {
            kept.switch(cells);
        }
        kept.slots.push(index);
        true
    });
    if kept != Ok(true) {
        // (The thread's keeping is gone: it is exiting.)
        cells.give_back(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(cells: &Cells) -> Vec<u32> {
        let mut taken = Vec::new();
        cells.take_returned(|i| taken.push(i));
        taken.sort_unstable();
        taken
    }

    #[test]
    fn slots_a_thread_kept_go_back_when_it_exits_or_keeps_too_many() {
        let cells = Arc::new(Cells::new());
        for i in 0..100 {
            cells.reset(i, 0);
        }
        // Kept by a thread that exits: handed over at its exit.
        let on_thread = cells.clone();
        std::thread::spawn(move || {
            for i in 0..3 {
                give_back(&on_thread, i);
            }
            assert_eq!(taken(&on_thread), [0; 0], "kept, not handed over yet");
        })
        .join()
        .unwrap();
        assert_eq!(taken(&cells), [0, 1, 2]);
        // On this thread: past KEEP, the kept ones are handed over at once.
        for i in 10..10 + KEEP as u32 + 1 {
            give_back(&cells, i);
        }
        assert_eq!(taken(&cells), (10..10 + KEEP as u32).collect::<Vec<_>>());
        // A slot of another table: this one's kept slot is handed over.
        let other = Arc::new(Cells::new());
        other.reset(0, 0);
        give_back(&other, 0);
        assert_eq!(taken(&cells), [10 + KEEP as u32]);
        // The allocator of the kept table takes them without the stack.
        let mut st = State::default();
        for _ in 0..2 {
            st.new_slot();
        }
        st.slots[0].state = SlotState::Done(0, 0);
        st.slots[1].state = SlotState::Done(0, 0);
        other.reset(1, 0);
        give_back(&other, 1);
        let first = st.take_kept(&other);
        assert!(matches!(first, Some(0 | 1)), "{first:?}");
        assert!(taken(&other).is_empty(), "nothing went through the stack");
    }
}
