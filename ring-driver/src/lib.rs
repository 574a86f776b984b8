//! Real io_uring rings: the bridge between ring-core's decisions, ring-ops's
//! entries and the kernel.
//!
//! # What it does
//!
//! - [`Builder`]: setup with every setup flag of Linux 6.18, fast defaults
//!   chosen from what the running kernel supports (never failing a setup),
//!   and errors that name a refused flag and the kernel it needs
//!   ([`SetupError`], [`Unsupported`]); [`Params`] with typed features.
//! - [`Ring`]: one ring for one thread at a time: the [`SubmissionQueue`]
//!   view (`unsafe fn push`, batches, a full queue hands the entry back),
//!   the [`CompletionQueue`] view (iterate, peek, batch reap) and the
//!   [`Submitter`] (submit, wait, timeouts, minimum waits, SQPOLL wakeup and
//!   space, overflow flush; `EINTR` retried, `EBUSY`/`EAGAIN` resolved
//!   without losing a completion). Every index decision is ring-core's.
//! - [`Registrar`]: buffers, files, eventfd, personality, restrictions,
//!   io-wq, sync cancel, NAPI, cloning; [`Probe`]; [`BufRing`], provided
//!   buffer rings owned by the library.
//! - [`SharedRing`]: many threads pushing and reaping on one ring without a
//!   lock, with CQ credit so the CQ cannot overflow.
//! - [`Proactor`]: a safe, owned-buffer, future-based API on a submitter
//!   thread (work in progress; see its docs for the ops it has).
//! - [`Kernel`]: the trait between the driver and the kernel, with
//!   [`Linux`] and [`Sim`] (ring-core's simulated kernel, for tests without a
//!   kernel that inject `EINTR`, `EBUSY`, short submits and overflow).
//!
//! # What it does not
//!
//! No ring arithmetic of its own (ring-core), no SQE encoding (ring-ops).
//! `unsafe` is confined to the mmap and syscall modules; `push` is `unsafe`
//! because an entry's buffers must outlive the operation, which only the
//! caller (or the [`Proactor`]) can promise.
//!
//! # Example
//!
//! ```
//! use ring_driver::Ring;
//! use ring_ops::Nop;
//!
//! let mut ring = Ring::new(8)?;
//! // SAFETY: a NOP carries no pointers.
//! unsafe { ring.sq().push(Nop::new().build().user_data(7)) }?;
//! ring.submitter().submit_and_wait(1)?;
//! assert_eq!(ring.cq().next().map(|c| c.user_data()), Some(7));
//! assert!(ring.probe()?.supports(ring_sys::IORING_OP_NOP));
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(unsafe_code)]

mod bufring;
mod error;
mod kernel;
mod proactor;
mod probe;
mod register;
mod ring;
mod setup;
#[cfg(not(loom))]
mod shared;
#[cfg(not(loom))]
mod shared_map;
#[cfg(not(loom))]
mod shared_sync;
#[cfg(feature = "sim")]
mod sim;
mod sys;

pub use bufring::{BufGuard, BufRing, Chunks};
pub use error::{SetupError, Unsupported};
pub use kernel::{Kernel, Linux, WaitArgs, WrongRing};
pub use proactor::{
    FixedBuf, IntoOpFd, Link, Linkable, Multi, Op, OpFd, Proactor, ProactorConfig, ProactorStats,
    block_on,
};
pub use probe::{KernelVersion, Probe, ProbeReport};
pub use register::{CancelTarget, Registrar, Restriction};
pub use ring::{
    CompletionQueue, Cqe, Full, Push128Error, Ring, SubmissionQueue, Submitter, TIMEOUT_USER_DATA,
};
pub use setup::{Builder, Params, SETUP_FLAGS};
#[cfg(not(loom))]
pub use shared::{PushError, SharedRing};
#[cfg(feature = "sim")]
pub use sim::Sim;
