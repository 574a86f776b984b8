//! The io_uring ring protocol as a pure, sans-io state machine.
//!
//! `ring-io-core` makes every decision about a ring as plain code over plain
//! values, so that all of it can be tested with proptest, under Miri, with
//! loom and by fuzzing, without a kernel. The driver (`ring-io-driver`) does the
//! atomic loads and stores on the mapped rings and the system calls; this
//! crate tells it what to do.
//!
//! # What it does
//!
//! - [`Geometry`]: entry counts, masks, SQE (64/128) and CQE (16/32) strides,
//!   with or without the SQ index array, validated from `io_uring_params`.
//! - [`SqState`] and [`CqState`]: head, tail, mask and
//!   wrap-around arithmetic. What the kernel showed goes in through
//!   `handle_*` (and is validated: a head that moves backwards or past the
//!   tail is a [`CoreError`], never a panic); commands (`reserve`, `commit`,
//!   `reap`) say what the application wants; `poll_*` hand out what to store
//!   back.
//! - [`decide_enter`]: whether to call `io_uring_enter(2)`, with which
//!   `to_submit`, `min_complete` and flags, as liburing decides, and when a
//!   full fence must precede reading the SQ flags ([`FlagsRead`]).
//! - [`BufRingState`]: the application's side of a provided-buffer ring (which
//!   slot a returned buffer goes to, which tail to publish, which buffers a
//!   completion may hand out: only those the kernel consumed, each once,
//!   every buffer of a bundle).
//! - [`CqCredit`] / [`AtomicCqCredit`]: back-pressure keeping completions in
//!   flight within the CQ, so it cannot overflow.
//! - [`SharedSq`] / [`SharedCq`]: the concurrent claim -> fill -> commit in
//!   order protocol for many threads on one ring, and [`SubmitGate`]: one
//!   submitter at a time, taking every thread's published entries (flat
//!   combining); over the [`sync`] facade (checked with loom under
//!   `--cfg loom`).
//! - `SimKernel` (feature `sim`): a deterministic in-memory kernel for tests,
//!   for the driver's fault injection, and for users' own tests.
//!
//! # What it does not
//!
//! No system call, no mmap, no raw pointer, no clock, no `unsafe`
//! (`#![forbid(unsafe_code)]`), `no_std` with `alloc`. It does not build
//! SQEs (that is `ring-io-ops`) nor touch a real ring (`ring-io-driver`).
//!
//! # Example
//!
//! A whole cycle on `SimKernel` (feature `sim`): reserve and fill two SQEs, publish them,
//! enter as decided, let the kernel's time pass, reap the completions.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ring_io_core::{
//!     decide_enter, CqState, EnterInput, Geometry, SimConfig, SimKernel,
//!     SqState,
//! };
//! use ring_io_sys::{io_uring_sqe, Features, SetupFlags};
//!
//! let geo = Geometry::new(4, 8, SetupFlags::empty(), Features::NODROP)?;
//! let config = SimConfig { lag: 2, ..SimConfig::new(&geo) };
//! let mut kernel = SimKernel::new(geo, config)?;
//! let mut sq = SqState::new(&geo);
//! let mut cq = CqState::new(&geo);
//!
//! // Submit two NOPs (opcode 0).
//! let slots = sq.reserve(2)?;
//! for (n, index) in slots.indices().enumerate() {
//!     let sqe = kernel.sqe_mut(index);
//!     *sqe = io_uring_sqe::default();
//!     sqe.user_data = 100 + n as u64;
//! }
//! sq.commit(slots)?;
//! while let Some(tail) = sq.poll_publish() {
//!     kernel.set_sq_tail(tail); // the driver: a release store to sq.tail
//! }
//!
//! // Enter the kernel as decided.
//! let input = EnterInput {
//!     to_submit: sq.pending(),
//!     cq_ready: cq.ready(),
//!     setup: geo.setup_flags(),
//!     sq_flags: kernel.sq_flags(),
//!     features: geo.features(),
//!     ..EnterInput::default()
//! };
//! let enter = decide_enter(&input).expect("entries to submit need an enter");
//! assert_eq!(kernel.enter(enter.to_submit, enter.min_complete, enter.flags)?, 2);
//! sq.handle_head(kernel.sq_head())?;
//! assert_eq!(sq.pending(), 0);
//!
//! // Time passes in the kernel until nothing more happens.
//! while kernel.step() {}
//!
//! // Reap.
//! cq.handle_tail(kernel.cq_tail())?;
//! let mut done = Vec::new();
//! while let Some(index) = cq.reap() {
//!     done.push(kernel.cqe(index).user_data);
//! }
//! while let Some(head) = cq.poll_release_head() {
//!     kernel.set_cq_head(head); // the driver: a release store to cq.head
//! }
//! assert_eq!(done, [100, 101]);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(loom), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod bufring;
mod cq;
mod credit;
mod enter;
mod error;
mod geometry;
#[cfg(loom)]
pub mod loom_model;
mod shared;
#[cfg(feature = "sim")]
mod sim;
mod sq;
pub mod sync;

pub use bufring::{BufRingError, BufRingState, TakenBufs};
pub use cq::{CqBatch, CqReader, CqState, MixedCqe};
pub use credit::{AtomicCqCredit, CqCredit, cqe_returns_credit};
pub use enter::{Enter, EnterInput, FlagsRead, decide_enter, decide_submit, timeout_needs_sqe};
pub use error::{ClaimError, CoreError, CreditRefused, GeometryError, SqFull};
pub use geometry::Geometry;
pub use shared::{SharedCq, SharedSq, SubmitGate};
#[cfg(feature = "sim")]
pub use sim::{Fault, SimCompletion, SimConfig, SimKernel};
pub use sq::{Reservation, SqPusher, SqState, SqSubmit};
