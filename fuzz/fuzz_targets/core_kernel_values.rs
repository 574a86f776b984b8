//! Feeds arbitrary kernel-shown values (SQ head, CQ tail) and application
//! commands into ring-core's SQ and CQ state machines: nothing may panic, a
//! refused value must leave the state unchanged, and `check_invariants()`
//! must hold after every step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ring_io_core::{CqState, Geometry, SqState};
use ring_io_sys::{Features, SetupFlags};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    let entries = 1u32 << (head[0] % 6);
    let geo = Geometry::new(entries, entries * 2, SetupFlags::empty(), Features::empty())
        .expect("valid geometry");
    let start = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let mut sq = SqState::with_start(&geo, start);
    let mut cq = CqState::with_start(&geo, start);
    let mut open = std::collections::VecDeque::new();
    for chunk in rest.chunks_exact(5) {
        let v = u32::from_le_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]);
        match chunk[0] % 8 {
            0 => {
                if let Ok(r) = sq.reserve(v % (entries + 2)) {
                    open.push_back(r);
                }
            }
            1 => {
                if let Some(r) = open.pop_front() {
                    sq.commit(r).expect("in-order commit");
                }
            }
            2 => {
                let _ = sq.poll_publish();
            }
            3 => {
                // A kernel head: arbitrary, or near the current one.
                let shown = if chunk[1] & 1 == 0 { v } else { sq.head().wrapping_add(v % 8) };
                let before = sq.clone();
                if sq.handle_head(shown).is_err() {
                    assert_eq!(sq, before, "refused head changed the state");
                }
            }
            4 => {
                let shown = if chunk[1] & 1 == 0 { v } else { cq.tail().wrapping_add(v % 8) };
                let before = cq.clone();
                if cq.handle_tail(shown).is_err() {
                    assert_eq!(cq, before, "refused tail changed the state");
                }
            }
            5 => {
                let _ = cq.reap_batch(v % 8);
            }
            6 => {
                let _ = cq.peek();
                let _ = cq.reap_mixed(v);
            }
            _ => {
                let _ = cq.poll_release_head();
            }
        }
        sq.check_invariants().expect("SQ invariants");
        cq.check_invariants().expect("CQ invariants");
    }
});
