//! The built entries ([`Entry`], [`Entry128`]), the [`OpCode`] trait, and the
//! argument types shared by many builders: [`Target`] ([`Fd`], [`Fixed`]),
//! [`DirectSlot`] and [`Clock`].

use ring_io_sys::{
    IORING_FILE_INDEX_ALLOC, IORING_TIMEOUT_BOOTTIME, IORING_TIMEOUT_REALTIME, IOSQE_ASYNC,
    IOSQE_BUFFER_SELECT, IOSQE_CQE_SKIP_SUCCESS, IOSQE_FIXED_FILE, IOSQE_IO_DRAIN,
    IOSQE_IO_HARDLINK, IOSQE_IO_LINK, SqeFlags, io_uring_sqe, io_uring_sqe128,
};

use crate::meta::OpInfo;

mod sealed {
    /// Seals [`Target`](super::Target): only [`Fd`](super::Fd) and
    /// [`Fixed`](super::Fixed) implement it.
    pub trait Sealed {}
    impl Sealed for super::Fd {}
    impl Sealed for super::Fixed {}
}

/// A plain file descriptor, as returned by `open(2)` or `socket(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fd(pub i32);

/// A registered ("fixed") file: an index into the table set up with
/// `IORING_REGISTER_FILES`. Encoded as `sqe->fd = index` plus
/// `IOSQE_FIXED_FILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fixed(pub u32);

/// The file an op works on: a plain [`Fd`] or a registered [`Fixed`] file.
///
/// Sealed: the two implementations are all there is. Taking the choice as a
/// type (rather than a flag next to an integer) means the `IOSQE_FIXED_FILE`
/// bit can never disagree with the meaning of the number.
pub trait Target: sealed::Sealed + Copy {
    /// The value for `sqe->fd`.
    fn raw(self) -> i32;
    /// Whether the value is a fixed-file index (`IOSQE_FIXED_FILE`).
    fn is_fixed(self) -> bool;
}

impl Target for Fd {
    #[inline]
    fn raw(self) -> i32 {
        self.0
    }
    #[inline]
    fn is_fixed(self) -> bool {
        false
    }
}

impl Target for Fixed {
    #[inline]
    fn raw(self) -> i32 {
        // The kernel reads `sqe->fd` as an index when IOSQE_FIXED_FILE is
        // set: the bit pattern is what matters.
        self.0 as i32
    }
    #[inline]
    fn is_fixed(self) -> bool {
        true
    }
}

/// A [`Target`] with its type erased, as builders store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct File {
    pub(crate) raw: i32,
    pub(crate) fixed: bool,
}

impl File {
    #[inline]
    pub(crate) fn of(target: impl Target) -> Self {
        Self {
            raw: target.raw(),
            fixed: target.is_fixed(),
        }
    }

    /// `sqe->fd`, plus `IOSQE_FIXED_FILE` for a fixed file.
    #[inline]
    pub(crate) const fn set(self, sqe: &mut io_uring_sqe) {
        sqe.fd = self.raw;
        if self.fixed {
            sqe.flags |= IOSQE_FIXED_FILE;
        }
    }
}

/// Where an op that creates a file descriptor (accept, openat, socket, pipe,
/// MSG_RING fd passing, ...) installs it: instead of the process fd table, a
/// *direct descriptor* in the ring's fixed-file table.
///
/// Encoded in `sqe->file_index` as `slot + 1` (0 means "a normal fd"), or
/// [`IORING_FILE_INDEX_ALLOC`] to let the kernel pick a free slot and return
/// it in `cqe->res` (Linux 5.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirectSlot(u32);

impl DirectSlot {
    /// Let the kernel allocate a free slot (`IORING_FILE_INDEX_ALLOC`); the
    /// completion's `res` is the slot chosen. Since Linux 5.19.
    pub const ALLOC: Self = Self(IORING_FILE_INDEX_ALLOC);

    /// The slot `index` of the fixed-file table, or `None` if `index` is too
    /// large to encode (`index + 1` must stay below `IORING_FILE_INDEX_ALLOC`,
    /// so the largest slot is `u32::MAX - 2`). Since Linux 5.15.
    pub const fn at(index: u32) -> Option<Self> {
        if index <= IORING_FILE_INDEX_ALLOC - 2 {
            Some(Self(index + 1))
        } else {
            None
        }
    }

    /// The value written to `sqe->file_index`.
    pub const fn kernel_value(self) -> u32 {
        self.0
    }
}

/// The clock a timeout is measured on (`IORING_TIMEOUT_BOOTTIME`,
/// `IORING_TIMEOUT_REALTIME`; default monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Clock {
    /// `CLOCK_MONOTONIC`, the default.
    #[default]
    Monotonic,
    /// `CLOCK_BOOTTIME`: counts time suspended. Since Linux 5.15.
    Boottime,
    /// `CLOCK_REALTIME`: wall-clock time. Since Linux 5.15.
    Realtime,
}

impl Clock {
    /// The `IORING_TIMEOUT_*` clock bits.
    pub const fn timeout_flags(self) -> u32 {
        match self {
            Clock::Monotonic => 0,
            Clock::Boottime => IORING_TIMEOUT_BOOTTIME,
            Clock::Realtime => IORING_TIMEOUT_REALTIME,
        }
    }
}

/// A built 64-byte submission entry: an op plus the fields every entry has
/// (`flags`, `user_data`, `personality`).
///
/// Made by an op's `build()`. The setters here never clear a flag the op set
/// itself (`IOSQE_FIXED_FILE` for a [`Fixed`] target, `IOSQE_BUFFER_SELECT`
/// for a buffer group).
///
/// ```
/// use ring_io_ops::{Fd, Read};
/// let buf = [0u8; 16];
/// let entry = Read::new(Fd(0), buf.as_ptr().cast_mut(), 16).offset(4).build().user_data(7).link();
/// assert_eq!(entry.as_sqe().opcode, Read::CODE);
/// assert_eq!(entry.as_sqe().user_data, 7);
/// ```
#[derive(Clone, Copy)]
#[repr(transparent)]
#[must_use = "an entry does nothing until it is pushed to a ring"]
pub struct Entry(pub(crate) io_uring_sqe);

/// A built 128-byte submission entry, for rings set up with
/// `IORING_SETUP_SQE128` (Linux 5.19). [`UringCmd80`](crate::UringCmd80)
/// builds one; any [`Entry`] converts into one (its second half zero).
#[derive(Clone, Copy)]
#[repr(transparent)]
#[must_use = "an entry does nothing until it is pushed to a ring"]
pub struct Entry128(pub(crate) io_uring_sqe128);

macro_rules! common_setters {
    ($($p:tt)+) => {
        /// Sets `user_data`, returned unchanged in the completion.
        #[inline]
        pub const fn user_data(mut self, user_data: u64) -> Self {
            self.$($p)+.user_data = user_data;
            self
        }

        /// Adds SQE flags (`IOSQE_*`). Bits already set by the op are kept.
        /// `IOSQE_FIXED_FILE` and `IOSQE_BUFFER_SELECT` are set by the op
        /// from its arguments ([`Fixed`], a buffer group); setting them here
        /// is allowed but rarely meaningful.
        #[inline]
        pub const fn flags(mut self, flags: SqeFlags) -> Self {
            self.$($p)+.flags |= flags.bits();
            self
        }

        /// `IOSQE_IO_LINK`: the next entry starts only after this one
        /// succeeds. Since Linux 5.3.
        #[inline]
        pub const fn link(mut self) -> Self {
            self.$($p)+.flags |= IOSQE_IO_LINK;
            self
        }

        /// `IOSQE_IO_HARDLINK`: the next entry starts after this one
        /// completes, whatever its result. Since Linux 5.5.
        #[inline]
        pub const fn hardlink(mut self) -> Self {
            self.$($p)+.flags |= IOSQE_IO_HARDLINK;
            self
        }

        /// `IOSQE_IO_DRAIN`: start only after every earlier entry has
        /// completed. Since Linux 5.2.
        #[inline]
        pub const fn drain(mut self) -> Self {
            self.$($p)+.flags |= IOSQE_IO_DRAIN;
            self
        }

        /// `IOSQE_ASYNC`: go straight to the async worker pool. Since Linux 5.6.
        #[inline]
        pub const fn force_async(mut self) -> Self {
            self.$($p)+.flags |= IOSQE_ASYNC;
            self
        }

        /// `IOSQE_CQE_SKIP_SUCCESS`: post no completion if the request
        /// succeeds. Since Linux 5.17.
        #[inline]
        pub const fn skip_success(mut self) -> Self {
            self.$($p)+.flags |= IOSQE_CQE_SKIP_SUCCESS;
            self
        }

        /// Runs the request with the credentials registered under
        /// `personality` (`IORING_REGISTER_PERSONALITY`). Since Linux 5.6.
        #[inline]
        pub const fn personality(mut self, personality: u16) -> Self {
            self.$($p)+.personality = personality;
            self
        }

        /// The opcode of the built entry.
        #[inline]
        pub const fn opcode(&self) -> u8 {
            self.$($p)+.opcode
        }

        /// The SQE flags of the built entry.
        #[inline]
        pub const fn sqe_flags(&self) -> SqeFlags {
            SqeFlags::from_bits_retain(self.$($p)+.flags)
        }

        /// The metadata of the entry's opcode (`None` for an opcode newer
        /// than Linux 6.18).
        #[inline]
        pub const fn info(&self) -> Option<OpInfo> {
            crate::meta::info_of(self.$($p)+.opcode)
        }

        /// The `user_data` of the built entry.
        #[inline]
        pub const fn get_user_data(&self) -> u64 {
            self.$($p)+.user_data
        }
    };
}

impl Entry {
    common_setters!(0);

    /// The kernel struct, to copy into a submission-queue slot.
    #[inline]
    pub const fn as_sqe(&self) -> &io_uring_sqe {
        &self.0
    }

    /// The kernel struct, by value.
    #[inline]
    pub const fn into_sqe(self) -> io_uring_sqe {
        self.0
    }

    /// Copies the entry into a submission-queue slot (every byte).
    #[inline]
    pub const fn write_to(&self, slot: &mut io_uring_sqe) {
        *slot = self.0;
    }

    /// `IOSQE_BUFFER_SELECT` bit, for code that inspects entries.
    #[inline]
    pub const fn selects_buffer(&self) -> bool {
        self.0.flags & IOSQE_BUFFER_SELECT != 0
    }
}

impl Entry128 {
    common_setters!(0.sqe);

    /// The kernel struct, to copy into a 128-byte submission-queue slot.
    #[inline]
    pub const fn as_sqe128(&self) -> &io_uring_sqe128 {
        &self.0
    }

    /// The kernel struct, by value.
    #[inline]
    pub const fn into_sqe128(self) -> io_uring_sqe128 {
        self.0
    }

    /// Copies the entry into a 128-byte submission-queue slot (every byte).
    #[inline]
    pub const fn write_to(&self, slot: &mut io_uring_sqe128) {
        *slot = self.0;
    }
}

impl From<Entry> for Entry128 {
    /// A 64-byte entry in a 128-byte slot: the second half is zero.
    #[inline]
    fn from(entry: Entry) -> Self {
        Entry128(io_uring_sqe128 {
            sqe: entry.0,
            cmd_ext: [0; 64],
        })
    }
}

impl From<Entry> for io_uring_sqe {
    #[inline]
    fn from(entry: Entry) -> Self {
        entry.0
    }
}

impl From<Entry128> for io_uring_sqe128 {
    #[inline]
    fn from(entry: Entry128) -> Self {
        entry.0
    }
}

impl core::fmt::Debug for Entry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl core::fmt::Debug for Entry128 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

/// What every 64-byte op builder has: its opcode, its metadata, and the two
/// ways to encode it.
///
/// Every builder also has the same items as inherent methods and constants,
/// so the trait is needed only for code generic over ops.
pub trait OpCode: Copy {
    /// The `IORING_OP_*` value.
    const CODE: u8;
    /// Name, first kernel and multishot capability of the opcode.
    const INFO: OpInfo;

    /// Encodes the op into a submission-queue slot in place: every one of
    /// the 64 bytes is written (stale contents never leak through).
    /// `flags`, `user_data` and `personality` can then be set on the slot.
    /// The fastest way to push (see the crate doc's measurement).
    fn encode(&self, slot: &mut io_uring_sqe);

    /// Encodes the op by value into an [`Entry`].
    fn build(self) -> Entry;
}
