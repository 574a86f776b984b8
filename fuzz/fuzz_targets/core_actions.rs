//! Drives ring-core's state machines (SQ, CQ, CQ credit, enter decision) and
//! SimKernel with an arbitrary action sequence, checked against the same
//! VecDeque model as ring-core's proptests (ring-core/tests/harness).
//!
//! Input: 4 configuration bytes (ring sizes, setup flags, NODROP, credit,
//! lag, max submit, start index near u32::MAX), then one action per 2 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../ring-core/tests/harness/mod.rs"]
mod harness;

use harness::{Action, Config, Harness};

fuzz_target!(|data: &[u8]| {
    let Some((cfg, actions)) = data.split_first_chunk::<4>() else {
        return;
    };
    let cfg = Config::decode(*cfg);
    let mut h = Harness::new(cfg).expect("every decoded config is a valid ring");
    for (n, pair) in actions.chunks_exact(2).enumerate() {
        let a = Action::decode(pair[0], pair[1]);
        if let Err(e) = h.apply(a) {
            panic!("{cfg:?}: action {n} {a:?}: {e}");
        }
    }
    if let Err(e) = h.finish() {
        panic!("{cfg:?}: finish: {e}");
    }
});
