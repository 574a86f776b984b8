//! Real io_uring rings.
//!
//! **Status: in progress.** Available now: [`Builder`] (ring setup with every
//! setup flag of Linux 6.18, fast defaults chosen from what the running kernel
//! supports, errors that name a refused flag), [`Params`], [`Probe`] and
//! [`KernelVersion`]. To come: `Ring` with its mmap'd queues (every index
//! decision delegated to `ring-core`), `Submitter`, registration, `SharedRing`
//! (many threads, one ring) and `Proactor` (a safe, owned-buffer,
//! future-based API).
//!
//! ```
//! use ring_driver::Probe;
//!
//! let probe = Probe::current()?;
//! assert!(probe.supports(ring_sys::IORING_OP_NOP));
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

pub use bufring::{BufGuard, BufRing};
pub use error::{SetupError, Unsupported};
pub use kernel::{Kernel, Linux, WaitArgs};
pub use proactor::{Link, Multi, Op, Proactor, ProactorConfig, ProactorStats, block_on};
pub use probe::{KernelVersion, Probe, ProbeReport};
pub use register::{CancelTarget, Registrar, Restriction};
pub use ring::{CompletionQueue, Cqe, Full, Ring, SubmissionQueue, Submitter};
pub use setup::{Builder, Params, SETUP_FLAGS};
#[cfg(not(loom))]
pub use shared::{PushError, SharedRing};
#[cfg(feature = "sim")]
pub use sim::Sim;
