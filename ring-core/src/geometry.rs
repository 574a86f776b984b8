//! Ring geometry: sizes, masks and strides, from `io_uring_params`.

use ring_io_sys::{Features, SetupFlags, io_uring_params};

use crate::GeometryError;

/// The shape of a ring: entry counts, masks, SQE and CQE sizes, and whether
/// the SQ index array exists.
///
/// Built from what `io_uring_setup(2)` copied back ([`Geometry::from_params`])
/// or, for tests and the simulator, from chosen sizes ([`Geometry::new`]).
/// Every constructor validates like the kernel: entry counts are non-zero
/// powers of two no larger than `IORING_MAX_ENTRIES` (SQ, 32768) and
/// `IORING_MAX_CQ_ENTRIES` (CQ, 65536), the CQ is at least as large as the
/// SQ, `IORING_SETUP_CQE32` excludes `IORING_SETUP_CQE_MIXED`, and a
/// `CQE_MIXED` CQ has at least 2 entries. [`Geometry::for_setup`] is the one
/// place that turns a setup request into sizes, as the kernel does.
///
/// Indices are wrapping `u32`; the slot of index `i` is `i & mask`. Strides:
/// - SQE: 64 bytes, or 128 with `IORING_SETUP_SQE128`; slot `s` starts at
///   byte `(s << sqe_shift) * 64`, as liburing's `io_uring_sqe_shift`.
/// - CQE: 16 bytes, or 32 with `IORING_SETUP_CQE32`; slot `s` starts at
///   16-byte unit `s << cqe_shift`. With `IORING_SETUP_CQE_MIXED` (Linux
///   6.18) slots are 16 bytes and a CQE flagged `IORING_CQE_F_32` takes two
///   of them (see [`CqState::reap_mixed`](crate::CqState::reap_mixed)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    sq_entries: u32,
    cq_entries: u32,
    setup: SetupFlags,
    features: Features,
    // Derived once from the above, because the push and reap paths use
    // them per entry: `entries - 1`, and log2 of the entry sizes in bytes.
    sq_mask: u32,
    cq_mask: u32,
    sqe_bytes_shift: u32,
    cqe_bytes_shift: u32,
}

impl Geometry {
    /// `IORING_MAX_ENTRIES`: the largest SQ the kernel makes.
    pub const MAX_SQ_ENTRIES: u32 = 32768;
    /// `IORING_MAX_CQ_ENTRIES`: the largest CQ the kernel makes.
    pub const MAX_CQ_ENTRIES: u32 = 2 * Self::MAX_SQ_ENTRIES;

    /// The geometry of a ring from the `io_uring_params` that
    /// `io_uring_setup(2)` filled in (`sq_entries`, `cq_entries`, `flags`,
    /// `features`).
    pub fn from_params(params: &io_uring_params) -> Result<Self, GeometryError> {
        Self::new(
            params.sq_entries,
            params.cq_entries,
            SetupFlags::from_bits_retain(params.flags),
            Features::from_bits_retain(params.features),
        )
    }

    /// A geometry of exactly these sizes and flags, validated.
    pub fn new(
        sq_entries: u32,
        cq_entries: u32,
        setup: SetupFlags,
        features: Features,
    ) -> Result<Self, GeometryError> {
        check_entries("sq_entries", sq_entries, Self::MAX_SQ_ENTRIES)?;
        check_entries("cq_entries", cq_entries, Self::MAX_CQ_ENTRIES)?;
        if cq_entries < sq_entries {
            return Err(GeometryError::CqSmallerThanSq {
                sq_entries,
                cq_entries,
            });
        }
        if setup.contains(SetupFlags::CQE32 | SetupFlags::CQE_MIXED) {
            return Err(GeometryError::IncompatibleFlags(
                "IORING_SETUP_CQE32 with IORING_SETUP_CQE_MIXED",
            ));
        }
        if setup.contains(SetupFlags::CQE_MIXED) && cq_entries < 2 {
            // rings_size: a 32-byte CQE takes two slots (EOVERFLOW).
            return Err(GeometryError::IncompatibleFlags(
                "IORING_SETUP_CQE_MIXED with a 1-entry CQ (a 32-byte CQE takes two slots)",
            ));
        }
        if setup.contains(SetupFlags::DEFER_TASKRUN) && !setup.contains(SetupFlags::SINGLE_ISSUER) {
            return Err(GeometryError::IncompatibleFlags(
                "IORING_SETUP_DEFER_TASKRUN without IORING_SETUP_SINGLE_ISSUER",
            ));
        }
        if setup.contains(SetupFlags::DEFER_TASKRUN) && setup.contains(SetupFlags::SQPOLL) {
            return Err(GeometryError::IncompatibleFlags(
                "IORING_SETUP_DEFER_TASKRUN with IORING_SETUP_SQPOLL",
            ));
        }
        Ok(Geometry {
            sq_entries,
            cq_entries,
            setup,
            features,
            sq_mask: sq_entries - 1,
            cq_mask: cq_entries - 1,
            sqe_bytes_shift: 6 + setup.contains(SetupFlags::SQE128) as u32,
            cqe_bytes_shift: 4 + setup.contains(SetupFlags::CQE32) as u32,
        })
    }

    /// The ring `io_uring_setup(2)` makes from a request, decided exactly as
    /// the kernel decides (`io_uring_fill_params` and `rings_size` of Linux
    /// 5.10 to 6.18), so a request this accepts is one the kernel accepts and
    /// one this refuses the kernel refuses:
    ///
    /// 1. `entries` = 0 is refused; above `IORING_MAX_ENTRIES` (32768) it is
    ///    refused, or with `IORING_SETUP_CLAMP` clamped to 32768; the SQ is
    ///    then rounded up to a power of two.
    /// 2. With `cq_entries` (`IORING_SETUP_CQSIZE`; `setup` containing
    ///    `CQSIZE` without a `cq_entries` is a request for 0): 0 is refused;
    ///    above `IORING_MAX_CQ_ENTRIES` (65536) it is refused or clamped, then
    ///    rounded up to a power of two, and refused if smaller than the
    ///    (rounded) SQ. Both are rounded before they are compared: 100 SQ
    ///    and 100 CQ entries make a 128/128 ring. Without it the CQ is twice
    ///    the SQ.
    /// 3. `IORING_SETUP_CQE_MIXED` needs at least 2 CQ entries (one 32-byte
    ///    CQE takes two slots; the kernel fails with `EOVERFLOW`).
    ///
    /// Every step is checked arithmetic on values no larger than 65536: no
    /// request, however large, overflows. The setup flags are also checked
    /// as [`Geometry::new`] does.
    pub fn for_setup(
        entries: u32,
        cq_entries: Option<u32>,
        setup: SetupFlags,
        features: Features,
    ) -> Result<Self, GeometryError> {
        let clamp = setup.contains(SetupFlags::CLAMP);
        // The kernel's order: the SQ count is checked, clamped and rounded
        // first, then the CQ count, then they are compared.
        let fit = |which, n: u32, max: u32| -> Result<u32, GeometryError> {
            if n == 0 {
                return Err(GeometryError::NotPowerOfTwo { which, entries: n });
            }
            let n = if n > max {
                if !clamp {
                    return Err(GeometryError::TooLarge {
                        which,
                        entries: n,
                        max,
                    });
                }
                max
            } else {
                n
            };
            // n <= max <= 65536 here, so rounding up cannot overflow.
            n.checked_next_power_of_two()
                .ok_or(GeometryError::TooLarge {
                    which,
                    entries: n,
                    max,
                })
        };
        let sq = fit("sq_entries", entries, Self::MAX_SQ_ENTRIES)?;
        let mut setup = setup;
        if cq_entries.is_some() {
            setup |= SetupFlags::CQSIZE;
        }
        let cq = if setup.contains(SetupFlags::CQSIZE) {
            fit("cq_entries", cq_entries.unwrap_or(0), Self::MAX_CQ_ENTRIES)?
        } else {
            // sq <= 32768: twice is at most 65536.
            sq.checked_mul(2).ok_or(GeometryError::TooLarge {
                which: "sq_entries",
                entries: sq,
                max: Self::MAX_SQ_ENTRIES,
            })?
        };
        Self::new(sq, cq, setup, features)
    }

    /// SQ entries (`sq_entries`).
    #[inline]
    pub const fn sq_entries(&self) -> u32 {
        self.sq_entries
    }

    /// SQ mask, `sq_entries - 1` (what the kernel stores at `sq_off.ring_mask`).
    #[inline]
    pub const fn sq_mask(&self) -> u32 {
        self.sq_mask
    }

    /// CQ entries (`cq_entries`), in slots.
    #[inline]
    pub const fn cq_entries(&self) -> u32 {
        self.cq_entries
    }

    /// CQ mask, `cq_entries - 1` (what the kernel stores at `cq_off.ring_mask`).
    #[inline]
    pub const fn cq_mask(&self) -> u32 {
        self.cq_mask
    }

    /// The setup flags.
    #[inline]
    pub const fn setup_flags(&self) -> SetupFlags {
        self.setup
    }

    /// The features the kernel reported.
    #[inline]
    pub const fn features(&self) -> Features {
        self.features
    }

    /// SQE size in bytes: 64, or 128 with `IORING_SETUP_SQE128`.
    #[inline]
    pub const fn sqe_size(&self) -> usize {
        64 << self.sqe_shift()
    }

    /// 0, or 1 with `IORING_SETUP_SQE128` (liburing's `io_uring_sqe_shift`).
    #[inline]
    pub const fn sqe_shift(&self) -> u32 {
        self.sqe_bytes_shift - 6
    }

    /// CQE slot size in bytes: 16, or 32 with `IORING_SETUP_CQE32`.
    #[inline]
    pub const fn cqe_size(&self) -> usize {
        16 << self.cqe_shift()
    }

    /// 0, or 1 with `IORING_SETUP_CQE32` (liburing's `io_uring_cqe_shift`).
    #[inline]
    pub const fn cqe_shift(&self) -> u32 {
        self.cqe_bytes_shift - 4
    }

    /// Whether the ring has the SQ index array (not `IORING_SETUP_NO_SQARRAY`).
    #[inline]
    pub const fn has_sq_array(&self) -> bool {
        !self.setup.contains(SetupFlags::NO_SQARRAY)
    }

    /// Whether CQEs may be 16 or 32 bytes (`IORING_SETUP_CQE_MIXED`).
    #[inline]
    pub const fn cqe_mixed(&self) -> bool {
        self.setup.contains(SetupFlags::CQE_MIXED)
    }

    /// Whether a kernel thread polls the SQ (`IORING_SETUP_SQPOLL`).
    #[inline]
    pub const fn sqpoll(&self) -> bool {
        self.setup.contains(SetupFlags::SQPOLL)
    }

    /// Index, in units of 64-byte SQEs, of the SQE of ring index `index`.
    pub const fn sqe_index(&self, index: u32) -> usize {
        ((index & self.sq_mask()) as usize) << self.sqe_shift()
    }

    /// Byte offset in the SQE array of the SQE of ring index `index`.
    #[inline]
    pub const fn sqe_offset(&self, index: u32) -> usize {
        ((index & self.sq_mask) as usize) << self.sqe_bytes_shift
    }

    /// Index, in units of 16-byte CQEs, of the CQE of ring index `index`.
    pub const fn cqe_index(&self, index: u32) -> usize {
        ((index & self.cq_mask()) as usize) << self.cqe_shift()
    }

    /// Byte offset in the CQE array of the CQE of ring index `index`.
    #[inline]
    pub const fn cqe_offset(&self, index: u32) -> usize {
        ((index & self.cq_mask) as usize) << self.cqe_bytes_shift
    }

    /// The value to store in SQ array slot `slot` at setup: liburing fills the
    /// array with the identity once, so SQE `i` is always submitted through
    /// array slot `i`. `None` without the array or out of range.
    pub const fn sq_array_entry(&self, slot: u32) -> Option<u32> {
        if self.has_sq_array() && slot < self.sq_entries {
            Some(slot)
        } else {
            None
        }
    }

    /// Check ring sizes and masks read back from the mmap'd ring against this
    /// geometry (the driver calls this after mapping, so a kernel that
    /// disagrees with its own params is caught before any index is used).
    pub fn check_mapped(
        &self,
        sq_entries: u32,
        sq_mask: u32,
        cq_entries: u32,
        cq_mask: u32,
    ) -> Result<(), GeometryError> {
        if sq_entries != self.sq_entries || sq_mask != self.sq_mask() {
            return Err(GeometryError::IncompatibleFlags(
                "mapped SQ size or mask disagrees with io_uring_params",
            ));
        }
        if cq_entries != self.cq_entries || cq_mask != self.cq_mask() {
            return Err(GeometryError::IncompatibleFlags(
                "mapped CQ size or mask disagrees with io_uring_params",
            ));
        }
        Ok(())
    }
}

fn check_entries(which: &'static str, entries: u32, max: u32) -> Result<(), GeometryError> {
    if !entries.is_power_of_two() {
        return Err(GeometryError::NotPowerOfTwo { which, entries });
    }
    if entries > max {
        return Err(GeometryError::TooLarge {
            which,
            entries,
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_params_plain() {
        let p = io_uring_params {
            sq_entries: 8,
            cq_entries: 16,
            features: ring_io_sys::IORING_FEAT_NODROP,
            ..Default::default()
        };
        let g = Geometry::from_params(&p).unwrap();
        assert_eq!((g.sq_mask(), g.cq_mask()), (7, 15));
        assert_eq!((g.sqe_size(), g.cqe_size()), (64, 16));
        assert!(g.has_sq_array());
        assert!(g.features().contains(Features::NODROP));
        assert_eq!(g.sqe_offset(9), 64);
        assert_eq!(g.cqe_offset(17), 16);
        assert_eq!(g.sq_array_entry(3), Some(3));
        assert_eq!(g.sq_array_entry(8), None);
    }

    #[test]
    fn big_entries_and_no_sqarray() {
        let flags = SetupFlags::SQE128 | SetupFlags::CQE32 | SetupFlags::NO_SQARRAY;
        let g = Geometry::new(4, 8, flags, Features::empty()).unwrap();
        assert_eq!((g.sqe_size(), g.cqe_size()), (128, 32));
        assert_eq!(g.sqe_offset(5), 128);
        assert_eq!(g.sqe_index(3), 6);
        assert_eq!(g.cqe_offset(9), 32);
        assert!(!g.has_sq_array());
        assert_eq!(g.sq_array_entry(0), None);
    }

    #[test]
    fn validation() {
        let f = Features::empty();
        let s = SetupFlags::empty();
        assert!(matches!(
            Geometry::new(3, 8, s, f),
            Err(GeometryError::NotPowerOfTwo {
                which: "sq_entries",
                entries: 3
            })
        ));
        assert!(matches!(
            Geometry::new(0, 8, s, f),
            Err(GeometryError::NotPowerOfTwo { .. })
        ));
        assert!(matches!(
            Geometry::new(8, 4, s, f),
            Err(GeometryError::CqSmallerThanSq { .. })
        ));
        assert!(matches!(
            Geometry::new(65536, 65536, s, f),
            Err(GeometryError::TooLarge {
                which: "sq_entries",
                ..
            })
        ));
        assert!(matches!(
            Geometry::new(4, 8, SetupFlags::CQE32 | SetupFlags::CQE_MIXED, f),
            Err(GeometryError::IncompatibleFlags(_))
        ));
        assert!(matches!(
            Geometry::new(4, 8, SetupFlags::DEFER_TASKRUN, f),
            Err(GeometryError::IncompatibleFlags(_))
        ));
        let p = io_uring_params {
            sq_entries: 6,
            cq_entries: 12,
            ..Default::default()
        };
        assert!(Geometry::from_params(&p).is_err());
    }

    #[test]
    fn for_setup_rounds_like_the_kernel() {
        let f = Features::empty();
        let g = Geometry::for_setup(5, None, SetupFlags::empty(), f).unwrap();
        assert_eq!((g.sq_entries(), g.cq_entries()), (8, 16));
        let g = Geometry::for_setup(5, Some(100), SetupFlags::empty(), f).unwrap();
        assert_eq!((g.sq_entries(), g.cq_entries()), (8, 128));
        assert!(g.setup_flags().contains(SetupFlags::CQSIZE));
        assert!(Geometry::for_setup(40000, None, SetupFlags::empty(), f).is_err());
        let g = Geometry::for_setup(40000, None, SetupFlags::CLAMP, f).unwrap();
        assert_eq!((g.sq_entries(), g.cq_entries()), (32768, 65536));
        // Both counts are rounded before they are compared (the kernel
        // accepts these; the driver used to refuse them).
        for (sq, cq, want) in [(100, 100, (128, 128)), (5, 6, (8, 8)), (3, 3, (4, 4))] {
            let g = Geometry::for_setup(sq, Some(cq), SetupFlags::empty(), f).unwrap();
            assert_eq!((g.sq_entries(), g.cq_entries()), want, "{sq}/{cq}");
        }
        assert!(matches!(
            Geometry::for_setup(100, Some(64), SetupFlags::empty(), f),
            Err(GeometryError::CqSmallerThanSq { .. })
        ));
        // Huge requests are refused (or clamped), never overflowed.
        assert!(matches!(
            Geometry::for_setup(u32::MAX, Some(u32::MAX), SetupFlags::empty(), f),
            Err(GeometryError::TooLarge { max: 32768, .. })
        ));
        let g = Geometry::for_setup(u32::MAX, Some(u32::MAX), SetupFlags::CLAMP, f).unwrap();
        assert_eq!((g.sq_entries(), g.cq_entries()), (32768, 65536));
        assert!(Geometry::for_setup(0x8000_0001, None, SetupFlags::empty(), f).is_err());
        // CQSIZE asked without a count is a request for 0 CQ entries.
        assert!(Geometry::for_setup(4, None, SetupFlags::CQSIZE, f).is_err());
        assert!(Geometry::for_setup(1, Some(1), SetupFlags::CQE_MIXED, f).is_err());
        assert!(Geometry::for_setup(1, None, SetupFlags::CQE_MIXED, f).is_ok());
        let g = Geometry::new(8, 16, SetupFlags::empty(), f).unwrap();
        assert!(g.check_mapped(8, 7, 16, 15).is_ok());
        assert!(g.check_mapped(8, 3, 16, 15).is_err());
        assert!(g.check_mapped(8, 7, 32, 31).is_err());
    }
}
