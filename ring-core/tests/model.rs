//! Proptests: random action sequences replayed against a `VecDeque` model
//! (see `harness/mod.rs`), and the validation of every value the kernel
//! shows. Indices start near `u32::MAX` so every run crosses the wrap.

mod harness;

use harness::{Action, Config, Harness};
use proptest::prelude::*;
use ring_io_core::{CoreError, CqState, Geometry, SqState};
use ring_io_sys::{Features, SetupFlags};

/// Fewer cases under Miri, where each one is ~1000x slower.
fn cases(normal: u32) -> u32 {
    if cfg!(miri) { 8 } else { normal }
}

fn actions() -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(
        (any::<u8>(), any::<u8>()).prop_map(|(t, a)| Action::decode(t, a)),
        0..if cfg!(miri) { 40 } else { 300 },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(4096),
        // No regression files: Miri's isolation forbids the file system, and
        // the fixed sequences below cover the configurations.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// SQ, CQ, credit, enter decision and SimKernel against the model.
    #[test]
    fn actions_against_model(cfg in any::<[u8; 4]>(), actions in actions()) {
        let cfg = Config::decode(cfg);
        let mut h = Harness::new(cfg).unwrap();
        for (n, a) in actions.iter().enumerate() {
            if let Err(e) = h.apply(*a) {
                prop_assert!(false, "{cfg:?}: action {n} {a:?}: {e}");
            }
        }
        if let Err(e) = h.finish() {
            prop_assert!(false, "{cfg:?}: finish: {e}");
        }
    }

    /// Any head the kernel shows is either accepted (and within
    /// published..=head window) or refused with the state unchanged.
    #[test]
    fn sq_head_validation(start in (u32::MAX - 40)..=u32::MAX, n in 0u32..=8,
                          consumed in 0u32..=8, shown in any::<u32>()) {
        let geo = Geometry::new(8, 8, SetupFlags::empty(), Features::empty()).unwrap();
        let mut sq = SqState::with_start(&geo, start);
        let r = sq.reserve(n).unwrap();
        sq.commit(r).unwrap();
        let tail = sq.poll_publish().unwrap_or(start);
        let consumed = consumed.min(n);
        sq.handle_head(start.wrapping_add(consumed)).unwrap();
        let before = sq.clone();
        match sq.handle_head(shown) {
            Ok(()) => {
                let ahead = shown.wrapping_sub(start.wrapping_add(consumed));
                prop_assert!(ahead <= n - consumed);
                prop_assert!(tail.wrapping_sub(shown) <= n);
                prop_assert_eq!(sq.head(), shown);
            }
            Err(CoreError::HeadBackwards { .. } | CoreError::HeadPastTail { .. }) => {
                prop_assert_eq!(&sq, &before);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        prop_assert_eq!(sq.check_invariants(), Ok(()));
    }

    /// Any tail the kernel shows is accepted only if it neither goes back
    /// nor passes released + entries.
    #[test]
    fn cq_tail_validation(start in (u32::MAX - 40)..=u32::MAX, first in 0u32..=8,
                          reap in 0u32..=8, shown in any::<u32>()) {
        let geo = Geometry::new(8, 8, SetupFlags::empty(), Features::empty()).unwrap();
        let mut cq = CqState::with_start(&geo, start);
        cq.handle_tail(start.wrapping_add(first)).unwrap();
        let _ = cq.reap_batch(reap);
        let _ = cq.poll_release_head();
        let before = cq.clone();
        match cq.handle_tail(shown) {
            Ok(()) => {
                let from_released = shown.wrapping_sub(before.released());
                prop_assert!(from_released <= 8);
                prop_assert!(from_released >= before.tail().wrapping_sub(before.released()));
            }
            Err(CoreError::TailBackwards { .. } | CoreError::TailPastCapacity { .. }) => {
                prop_assert_eq!(&cq, &before);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        prop_assert_eq!(cq.check_invariants(), Ok(()));
    }
}

/// A few fixed sequences that exercise every configuration bit at least
/// once, independent of proptest's random choice.
#[test]
fn every_config_bit() {
    let (len, stride) = if cfg!(miri) { (60, 29) } else { (600, 1) };
    let script: Vec<Action> = (0..len)
        .map(|i| Action::decode((i * 7 % 16) as u8, (i * 13 % 256) as u8))
        .collect();
    for b1 in (0..128u8).step_by(stride) {
        for b0 in [0u8, 3, 6] {
            let cfg = Config::decode([b0, b1, b1 % 16, b1 % 64]);
            let mut h = Harness::new(cfg).unwrap();
            for (n, a) in script.iter().enumerate() {
                h.apply(*a)
                    .unwrap_or_else(|e| panic!("{cfg:?}: action {n} {a:?}: {e}"));
            }
            h.finish()
                .unwrap_or_else(|e| panic!("{cfg:?}: finish: {e}"));
        }
    }
}

/// Replay a `core_actions` fuzz input (4 config bytes, then 2 per action).
fn replay(data: &[u8]) {
    let cfg = Config::decode([data[0], data[1], data[2], data[3]]);
    let mut h = Harness::new(cfg).unwrap();
    for (n, pair) in data[4..].chunks_exact(2).enumerate() {
        let a = Action::decode(pair[0], pair[1]);
        h.apply(a)
            .unwrap_or_else(|e| panic!("{cfg:?}: action {n} {a:?}: {e}"));
    }
    h.finish()
        .unwrap_or_else(|e| panic!("{cfg:?}: finish: {e}"));
}

fn unhex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Inputs the fuzzer found (kept so they stay fixed).
#[test]
fn fuzz_regressions() {
    // A 1-entry CQ with TASKRUN_FLAG and many multishot requests never
    // reaped: the drain at the end needs a round per backlogged CQE.
    replay(&unhex(&[
        "2808f11084878702f6690e17011087870282f6f608b9f6690e170110f6f6f2f6",
        "08b9f6690e8787020e17011087870282f6f6f2f608b9f6690e170110f6020202",
        "f6f6f2f608b9f6690e17011087870282f6f6f2f608b9f6690e170110f6020202",
        "f6f6f2f608b9f6690e17011087020202f6f608b9f6690e17011087870282f6f6",
        "f2f608b9f6690e170110f6020202f6f6f2f608b9f6690e170110878787870282",
        "f6f608b9f6690e170110f6020202f6f6f2f608b9f6690e170110878787878787",
        "0282f6f6f2f608b9f6690e170110f6020202f6f6f2f608b9f6690e1701101500",
        "87",
    ]));
}
