//! Real io_uring rings.
//!
//! **Status: skeleton.** This crate will hold the bridge to the kernel:
//! `Builder` and `Ring` (setup with every flag, mmap'd queues), `Submitter`,
//! registration, `Probe`, `SharedRing` (many threads, one ring) and `Proactor`
//! (a safe, owned-buffer, future-based API). Every ring decision is delegated to
//! `ring-core`; every entry is built by `ring-ops`.
#![deny(unsafe_code)]
