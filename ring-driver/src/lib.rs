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
//! - The safe, owned-buffer, future-based API is a crate of its own,
//!   `ring-io-proactor`, layered on this crate's public API.
//! - [`Kernel`]: the trait between the driver and the kernel, with
//!   [`Linux`] and [`Sim`] (ring-core's simulated kernel, for tests without a
//!   kernel that inject `EINTR`, `EBUSY`, short submits and overflow).
//!
//! # What it does not
//!
//! No ring arithmetic of its own (ring-core), no SQE encoding (ring-ops).
//! `unsafe` is confined to the mmap and syscall modules and to the calls
//! that keep the [`Kernel`] contracts; `push` is `unsafe` because an
//! entry's buffers must outlive the operation, which only the caller (or
//! the `Proactor` of `ring-io-proactor`) can promise.
//!
//! # Soundness
//!
//! The promise: safe Rust code anywhere in the process, using any public
//! API of the ring crates (this raw layer included), cannot make the
//! kernel read or write memory that the caller does not own for the whole
//! operation, nor make ring hand out a buffer, fd or `&[u8]` the kernel may
//! still change. Out of scope, as for all Rust: `/proc/self/mem`, ptrace,
//! other processes.
//!
//! What is `unsafe` in this crate, and why:
//! - [`SubmissionQueue::push`] (`push_batch`, `push128`) and
//!   [`SharedRing::push`]: an entry's pointers and fds are used by the
//!   kernel until its completion; only the caller knows they live so long.
//! - [`Registrar::register_buffers`] (`_tags`, `_update`) and
//!   [`Registrar::clone_buffers_from`]: the kernel uses registered buffers
//!   until they are unregistered from every ring that has them.
//! - [`Builder::no_mmap_memory`] (the rings live in the caller's memory,
//!   which the kernel's asynchronous teardown may still write after the
//!   drop) and [`BufRing::new`] (the kernel writes into the buffers it
//!   picks).
//! - [`Registrar::buf_ring`]: [`BufRing::new`] for the registrar's ring,
//!   which may have no fd (`IORING_SETUP_REGISTERED_FD_ONLY`): besides
//!   `new`'s contract (no request selecting from the group in flight when
//!   the value is dropped, since the drop frees the buffers), such a ring
//!   is named by its index in the thread's table of registered rings, which
//!   names another ring once this one is closed, so the value must be
//!   dropped before the ring (or its drop would unregister the group of
//!   whatever ring took the index).
//! - [`BufRing::take`]: the completion must be one the kernel posted for a
//!   request on the buffer group. The buffer ring checks what it can (a
//!   buffer it never lent, one already taken, one the kernel has not
//!   consumed where the kernel says so) and refuses those, but a forged
//!   completion naming a buffer a request is still filling cannot be told
//!   from a real one.
//! - The [`Kernel`] trait (`unsafe` to implement) and its methods that
//!   write an SQE, publish it, enter, or read a CQE slot the kernel may be
//!   writing, and [`Ring::kernel_mut`]: each is a way to hand the kernel a
//!   pointer, or to desynchronise a ring from its kernel. A simulated
//!   ring's kernel is safe to change ([`Ring::sim_mut`]): [`Sim`] acts on no
//!   memory.
//!
//! Completions are input. A CQE the ring's own requests did not post can
//! only come from an `IORING_OP_MSG_RING` request of some ring in the
//! process that names this ring by fd (or from
//! `IORING_REGISTER_SEND_MSG_RING`, Linux 6.13), carrying any `user_data`,
//! `res` and flags. Under the threat model above (safe code only) that
//! cannot happen: putting any entry in a ring is `unsafe` ([`push`]
//! and its kin here, and in every other io_uring crate, such as
//! `io-uring`), no safe API of these crates sends a `MSG_RING` (the
//! Proactor offers no such op), and `io_uring_register` is reached safely
//! only through [`Registrar`]'s typed calls, which do not include
//! `SEND_MSG_RING`. A forged completion is therefore the work of `unsafe`
//! code that broke its contract (a `MSG_RING` to the wrong fd, say), and
//! what the safe layers do about it is defense in depth against such bugs,
//! not part of the promise: they still trust no CQE beyond what its op can
//! return.
//!
//! Forging takes `unsafe`, on a plain ring as on a shared one (both
//! fail to compile with E0133, a call to an `unsafe fn`):
//!
//! ```compile_fail,E0133
//! use ring_io_driver::Ring;
//! use ring_io_ops::{Fd, MsgRingData};
//! use std::os::fd::AsRawFd;
//! let (mut forger, victim) = (Ring::new(4)?, Ring::new(4)?);
//! let target = Fd(victim.fd().expect("a ring with an fd").as_raw_fd());
//! // A completion with any `user_data`, `res` and flags for `victim`'s CQ:
//! forger.sq().push(MsgRingData::new(target, i32::MAX, 0).build());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ```compile_fail,E0133
//! use ring_io_driver::{Ring, SharedRing};
//! use ring_io_ops::{Fd, MsgRingData};
//! use std::os::fd::AsRawFd;
//! let (forger, victim) = (SharedRing::new(4)?, Ring::new(4)?);
//! let target = Fd(victim.fd().expect("a ring with an fd").as_raw_fd());
//! forger.push(MsgRingData::new(target, i32::MAX, 0).build());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The `Proactor` (`ring-io-proactor`) tags each request with a
//! random 32-bit tag checked on every CQE, checks each result against what
//! was asked (a length never past the buffer, an fd only from ops that
//! create one) and counts what it did not expect; [`SharedRing`] refuses
//! entries whose completions its credit cannot count (`CQE_SKIP_SUCCESS`,
//! a `MSG_RING` to itself, the fixed-file table it uses), never lets its
//! credit underflow whatever CQEs arrive, and its last drop waits until the
//! kernel has freed the ring, so no request outlives it.
//!
//! The limits of that defense, for code that does use `unsafe`: a forger
//! who guesses a Proactor tag (one in 2^32 per in-flight request and
//! forged CQE) completes that request early, and a forged CQE can make
//! [`SharedRing::in_flight`] read low (its drop does not rely on it). The
//! tags are not secret from the process either: `/proc/self/fdinfo/<ring
//! fd>`, which safe code can read, lists (on current kernels) the SQEs and
//! CQEs sitting in the rings with their `user_data`, and a multishot request (a Proactor's
//! `accept_multi` or `recv_multi` stream) keeps its `user_data` while it
//! stays armed, so a CQE of a live stream shows it. (Reading it alone
//! changes nothing; forging with it still needs `unsafe`.) A ring set up
//! with `IORING_SETUP_REGISTERED_FD_ONLY` ([`Builder::registered_fd_only`],
//! Linux 6.5) has no fd at all, so neither fdinfo nor `MSG_RING` can reach
//! it: the Proactor's thread-local `LocalProactor` uses it where the kernel
//! has it (`has_no_fd()` says so); the shared `Proactor`, which any thread
//! may enter, cannot.
//!
//! [`push`]: SubmissionQueue::push
//!
//! Everything else is safe, and what the kernel shows is input: a ring
//! index no kernel could have written (a head that went back, a tail past
//! the ring) makes the call fail with `io::ErrorKind::InvalidData`, never
//! a panic, a read past what was posted, or a loop; a wait that can make no
//! progress ends (see [`Submitter`]).
//!
//! # Example
//!
//! ```
//! use ring_io_driver::Ring;
//! use ring_io_ops::Nop;
//!
//! let mut ring = Ring::new(8)?;
//! // SAFETY: a NOP carries no pointers.
//! unsafe { ring.sq().push(Nop::new().build().user_data(7)) }?;
//! ring.submitter().submit_and_wait(1)?;
//! assert_eq!(ring.cq().next().map(|c| c.user_data()), Some(7));
//! assert!(ring.probe()?.supports(ring_io_sys::IORING_OP_NOP));
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bufring;
mod error;
mod kernel;
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
pub use probe::{Probe, ProbeReport, kernel_version};
pub use register::{CancelTarget, Registrar, Restriction};
pub use ring::{
    CompletionQueue, Cqe, Full, Push128Error, Ring, SubmissionQueue, Submitter, TIMEOUT_USER_DATA,
};
pub use ring_io_ops::KernelVersion;
pub use setup::{Builder, Params, SETUP_FLAGS};
#[cfg(not(loom))]
pub use shared::{PushError, SharedRing};
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub use sim::Sim;
pub use sys::ThreadRegistration;
