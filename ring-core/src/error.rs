//! Error values. None of them is ever a panic: a value the kernel showed
//! that breaks the protocol comes back as a [`CoreError`], and a request that
//! does not fit is handed back.

use core::fmt;

/// A value observed from the kernel (or handed in by the caller) that breaks
/// the ring protocol. The state machine is left unchanged when one is
/// returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoreError {
    /// The SQ head moved backwards: the kernel only ever advances it.
    HeadBackwards {
        /// The head known before.
        known: u32,
        /// The head observed now.
        observed: u32,
    },
    /// A head (SQ head from the kernel, or a CQ head handed in) is past the
    /// tail it may at most reach.
    HeadPastTail {
        /// The head observed.
        head: u32,
        /// The tail it may not pass.
        tail: u32,
    },
    /// The CQ tail moved backwards: the kernel only ever advances it.
    TailBackwards {
        /// The tail known before.
        known: u32,
        /// The tail observed now.
        observed: u32,
    },
    /// The CQ tail is more than `entries` ahead of the head the kernel was
    /// shown: the kernel would have overwritten unreleased entries.
    TailPastCapacity {
        /// The head last released to the kernel.
        head: u32,
        /// The tail observed.
        tail: u32,
        /// The ring size.
        entries: u32,
    },
    /// A reservation was committed or cancelled out of order, twice, or
    /// did not come from this queue.
    ReservationOutOfOrder {
        /// Where the next commit (or the cancelled reservation's end) had to
        /// start.
        expected: u32,
        /// Where the reservation starts.
        got: u32,
    },
    /// In an `IORING_SETUP_CQE_MIXED` ring, a CQE flagged `IORING_CQE_F_32`
    /// has only its first half before the tail.
    TruncatedCqe {
        /// The index of the CQE.
        index: u32,
    },
    /// A completion arrived for which no CQ credit was taken.
    CreditUnderflow,
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CoreError::HeadBackwards { known, observed } => {
                write!(f, "ring head moved backwards from {known} to {observed}")
            }
            CoreError::HeadPastTail { head, tail } => {
                write!(f, "ring head {head} is past the tail {tail}")
            }
            CoreError::TailBackwards { known, observed } => {
                write!(f, "ring tail moved backwards from {known} to {observed}")
            }
            CoreError::TailPastCapacity {
                head,
                tail,
                entries,
            } => write!(
                f,
                "CQ tail {tail} is more than {entries} entries ahead of the head {head}"
            ),
            CoreError::ReservationOutOfOrder { expected, got } => write!(
                f,
                "reservation starting at {got} used out of order (expected {expected})"
            ),
            CoreError::TruncatedCqe { index } => {
                write!(f, "32-byte CQE at {index} is cut by the tail")
            }
            CoreError::CreditUnderflow => f.write_str("completion without CQ credit"),
        }
    }
}

impl core::error::Error for CoreError {}

/// The SQ has no room for the whole request: nothing was reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqFull {
    /// The number of slots asked for.
    pub requested: u32,
    /// The number of free slots at the time.
    pub space: u32,
}

impl fmt::Display for SqFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "submission queue full: {} slots requested, {} free",
            self.requested, self.space
        )
    }
}

impl core::error::Error for SqFull {}

/// Why a concurrent claim failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimError {
    /// Not enough room: nothing was claimed.
    Full(SqFull),
    /// The kernel-visible indices break the protocol.
    Kernel(CoreError),
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::Full(e) => e.fmt(f),
            ClaimError::Kernel(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ClaimError {}

/// The CQ credit budget is exhausted: the request is handed back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreditRefused<T>(pub T);

impl<T> CreditRefused<T> {
    /// The refused request.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Display for CreditRefused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CQ credit exhausted: request refused")
    }
}

impl<T: fmt::Debug> core::error::Error for CreditRefused<T> {}

/// Setup parameters that do not describe a ring the kernel can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeometryError {
    /// An entry count is zero or not a power of two.
    NotPowerOfTwo {
        /// `"sq_entries"` or `"cq_entries"`.
        which: &'static str,
        /// The value given.
        entries: u32,
    },
    /// An entry count exceeds the kernel's maximum
    /// (`IORING_MAX_ENTRIES` = 32768 for the SQ, `IORING_MAX_CQ_ENTRIES` =
    /// 65536 for the CQ).
    TooLarge {
        /// `"sq_entries"` or `"cq_entries"`.
        which: &'static str,
        /// The value given.
        entries: u32,
        /// The maximum.
        max: u32,
    },
    /// `cq_entries < sq_entries`: the kernel refuses this (`EINVAL`).
    CqSmallerThanSq {
        /// SQ size.
        sq_entries: u32,
        /// CQ size.
        cq_entries: u32,
    },
    /// Two setup flags the kernel refuses together.
    IncompatibleFlags(&'static str),
    /// A CQ credit budget larger than the CQ.
    BudgetTooLarge {
        /// The budget asked for.
        budget: u32,
        /// CQ entries.
        cq_entries: u32,
    },
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GeometryError::NotPowerOfTwo { which, entries: 0 } => {
                write!(f, "{which} = 0: there must be at least one entry")
            }
            GeometryError::NotPowerOfTwo { which, entries } => {
                write!(f, "{which} = {entries} is not a power of two")
            }
            GeometryError::TooLarge {
                which,
                entries,
                max,
            } => write!(
                f,
                "{which} = {entries} exceeds the kernel's maximum of {max}"
            ),
            GeometryError::CqSmallerThanSq {
                sq_entries,
                cq_entries,
            } => write!(
                f,
                "cq_entries = {cq_entries} is smaller than sq_entries = {sq_entries}"
            ),
            GeometryError::IncompatibleFlags(what) => write!(f, "incompatible setup flags: {what}"),
            GeometryError::BudgetTooLarge { budget, cq_entries } => {
                write!(f, "credit budget {budget} exceeds the CQ size {cq_entries}")
            }
        }
    }
}

impl core::error::Error for GeometryError {}

/// Which way a wrapping index moved relative to a known one: used to tell a
/// value that went backwards from one that went too far.
pub(crate) fn moved_backwards(known: u32, observed: u32) -> bool {
    observed.wrapping_sub(known) > u32::MAX / 2
}
