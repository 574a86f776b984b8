//! Typed builders for every io_uring opcode.
//!
//! **Status: skeleton.** This crate will hold one builder per `IORING_OP_*` of
//! Linux 6.18, each encoding into a [`ring_sys::io_uring_sqe`], with per-op
//! metadata (opcode, name, minimum kernel, multishot capability). Building an
//! entry is safe; pushing it to a ring (in `ring-driver`) is what is `unsafe`.
#![no_std]
#![forbid(unsafe_code)]
