//! The io_uring ring protocol as a pure, sans-io state machine.
//!
//! **Status: skeleton.** This crate will hold, with no syscalls, no mmap and no
//! `unsafe`:
//!
//! - ring geometry computed from `io_uring_params` (entries, masks, SQE and CQE
//!   strides, with or without the SQ index array);
//! - the submission-queue and completion-queue state machines (head, tail,
//!   mask and wrap-around arithmetic, validated against what the kernel shows);
//! - the decision of when to call `io_uring_enter` and with which flags;
//! - CQ credit, the back-pressure that makes CQ overflow impossible;
//! - the concurrent claim → fill → commit protocol used by many threads on one
//!   ring, loom-checked;
//! - `SimKernel`, a deterministic in-memory kernel (feature `sim`).
#![no_std]
#![forbid(unsafe_code)]
