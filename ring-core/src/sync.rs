//! The atomics the concurrent protocols are written against: `core`'s
//! normally, `loom`'s when built with `RUSTFLAGS="--cfg loom"`, so the loom
//! models check the very code the driver runs.
//!
//! The driver hands [`SharedSq`](crate::SharedSq) and
//! [`SharedCq`](crate::SharedCq) the kernel's ring indices as `&AtomicU32`
//! of this module (in a normal build, `core::sync::atomic::AtomicU32`).

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
