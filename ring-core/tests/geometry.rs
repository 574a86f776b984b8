//! `Geometry::for_setup` against a model of the kernel's rules, over the
//! whole `u32` range of both entry counts.
//!
//! The model is `io_uring_fill_params` (and the `CQE_MIXED` check of
//! `rings_size`) of Linux 6.18, transcribed in 64-bit arithmetic so that it
//! cannot overflow where the library must not either.

use proptest::prelude::*;
use ring_io_core::Geometry;
use ring_io_sys::{Features, SetupFlags};

const IORING_MAX_ENTRIES: u64 = 32768;
const IORING_MAX_CQ_ENTRIES: u64 = 2 * IORING_MAX_ENTRIES;

/// The kernel's `roundup_pow_of_two` on an `unsigned long`.
fn roundup_pow_of_two(n: u64) -> u64 {
    let mut p = 1;
    while p < n {
        p <<= 1;
    }
    p
}

/// What `io_uring_setup(entries, p)` makes, or `None` where it fails.
fn kernel(entries: u32, cq_entries: Option<u32>, flags: SetupFlags) -> Option<(u32, u32)> {
    let clamp = flags.contains(SetupFlags::CLAMP);
    let mut entries = u64::from(entries);
    if entries == 0 {
        return None;
    }
    if entries > IORING_MAX_ENTRIES {
        if !clamp {
            return None;
        }
        entries = IORING_MAX_ENTRIES;
    }
    let sq = roundup_pow_of_two(entries);
    let cq = if flags.contains(SetupFlags::CQSIZE) || cq_entries.is_some() {
        let mut cq = u64::from(cq_entries.unwrap_or(0));
        if cq == 0 {
            return None;
        }
        if cq > IORING_MAX_CQ_ENTRIES {
            if !clamp {
                return None;
            }
            cq = IORING_MAX_CQ_ENTRIES;
        }
        let cq = roundup_pow_of_two(cq);
        if cq < sq {
            return None;
        }
        cq
    } else {
        2 * sq
    };
    if flags.contains(SetupFlags::CQE_MIXED) && cq < 2 {
        return None;
    }
    Some((u32::try_from(sq).unwrap(), u32::try_from(cq).unwrap()))
}

/// Any `u32`, with the boundaries drawn often.
fn count() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        0u32..=70_000,
        (0u32..32).prop_flat_map(|b| {
            let p = 1u32 << b;
            prop::sample::select(vec![p - 1, p, p.saturating_add(1)])
        }),
        Just(u32::MAX),
        Just(u32::MAX - 1),
    ]
}

fn flags() -> impl Strategy<Value = SetupFlags> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(clamp, cqsize, mixed)| {
        let mut f = SetupFlags::empty();
        f.set(SetupFlags::CLAMP, clamp);
        f.set(SetupFlags::CQSIZE, cqsize);
        f.set(SetupFlags::CQE_MIXED, mixed);
        f
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 20_000 },
        // No regression files: Miri's isolation forbids the file system;
        // the cases proptest once found are fixed in `the_reported_pairs`.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn for_setup_decides_as_the_kernel_does(
        entries in count(),
        cq in prop::option::of(count()),
        flags in flags(),
    ) {
        let ours = Geometry::for_setup(entries, cq, flags, Features::empty())
            .map(|g| (g.sq_entries(), g.cq_entries()));
        prop_assert_eq!(ours.ok(), kernel(entries, cq, flags), "{} {:?} {:?}", entries, cq, flags);
    }
}

#[test]
fn the_reported_pairs() {
    let f = Features::empty();
    for (sq, cq) in [(100, 100), (5, 6), (3, 3)] {
        let ours = Geometry::for_setup(sq, Some(cq), SetupFlags::empty(), f)
            .map(|g| (g.sq_entries(), g.cq_entries()));
        assert_eq!(ours.ok(), kernel(sq, Some(cq), SetupFlags::empty()));
        assert!(ours.is_ok(), "{sq}/{cq} is a ring the kernel makes");
    }
    let err = Geometry::for_setup(u32::MAX, Some(u32::MAX), SetupFlags::empty(), f).unwrap_err();
    assert!(err.to_string().contains("32768"), "{err}");
    assert!(Geometry::for_setup(0x8000_0001, None, SetupFlags::empty(), f).is_err());
    // Found by the proptest: CQSIZE without a CQ count is refused (the
    // kernel reads a CQ size of 0).
    let ours = Geometry::for_setup(1, None, SetupFlags::CQSIZE, f).map(|g| g.sq_entries());
    assert_eq!(ours.ok(), None);
    assert_eq!(kernel(1, None, SetupFlags::CQSIZE), None);
}
