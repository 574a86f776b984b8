//! The Linux io_uring kernel ABI, written by hand.
//!
//! `ring-io-sys` is the floor of the `ring` workspace: every struct, union and
//! constant of Linux 6.18's `include/uapi/linux/io_uring.h` (and of its
//! companion `linux/io_uring/query.h`), plus three thin `unsafe fn` wrappers of
//! the io_uring system calls. Nothing else: no logic, no allocation, `no_std`.
//!
//! # What you will find
//!
//! - The kernel's names, unchanged: [`io_uring_sqe`], [`io_uring_params`],
//!   [`IORING_OP_READV`], [`IORING_SETUP_SQPOLL`], ... Each item's doc names
//!   its C counterpart and the first kernel that has it.
//! - The anonymous unions of `io_uring_sqe`, named after their alternatives:
//!   [`io_uring_sqe::off_addr2`] is `union { off; addr2; { cmd_op; __pad1 } }`.
//! - A [`bitflags`] type for every flag family ([`SetupFlags`], [`EnterFlags`],
//!   [`SqeFlags`], [`CqeFlags`], [`TimeoutFlags`], ...). The raw constants stay
//!   available for code that wants the kernel's spelling.
//! - Fields the kernel writes are plain integers, never Rust enums, so an
//!   unknown value from a newer kernel is never undefined behaviour.
//! - Layout proven twice: every size, alignment and field offset is asserted
//!   at compile time with the numbers of the C header, and a test cross-checks
//!   them against the independent bindgen output of `linux-raw-sys`.
//!
//! # What you will not find
//!
//! Ring arithmetic (that is `ring-io-core`), op builders (`ring-io-ops`), mmap or
//! any safe wrapper around a real ring (`ring-io-driver`).
//!
//! # Example
//!
//! Set up a real ring and read what the kernel reports:
//!
//! ```
//! use ring_io_sys::{io_uring_params, io_uring_setup, Features};
//!
//! let mut params = io_uring_params::default();
//! // SAFETY: `params` is a valid, exclusively borrowed io_uring_params.
//! match unsafe { io_uring_setup(8, &mut params) } {
//!     Ok(fd) => {
//!         let features = Features::from_bits_retain(params.features);
//!         assert!(params.sq_entries >= 8);
//!         println!("ring fd {fd}, features {features:?}");
//!         // SAFETY: `fd` was returned by io_uring_setup and is closed once.
//!         unsafe { libc::close(fd) };
//!     }
//!     // io_uring may be disabled (sysctl kernel.io_uring_disabled) or absent.
//!     Err(err) => println!("no io_uring here: {err}"),
//! }
//! ```
//!
//! # Features
//!
//! - `std` (off by default; `ring-io-driver` turns it on): `From<Errno> for
//!   std::io::Error`, keeping the code, so `?` turns an [`Errno`] into an
//!   `io::Error`.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![allow(non_camel_case_types)]

#[cfg(feature = "std")]
extern crate std;

mod cqe;
mod flags;
mod layout;
mod opcode;
mod query;
mod register;
mod setup;
mod sqe;
mod syscall;
mod zcrx;

pub use cqe::*;
pub use flags::*;
pub use opcode::*;
pub use query::*;
pub use register::*;
pub use setup::*;
pub use sqe::*;
pub use syscall::*;
pub use zcrx::*;

/// `struct __kernel_timespec` from `linux/time_types.h`: the 64-bit timespec
/// io_uring reads for timeouts (`IORING_OP_TIMEOUT`, `io_uring_getevents_arg`,
/// `io_uring_sync_cancel_reg`). Since Linux 5.1.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct __kernel_timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i64,
}
