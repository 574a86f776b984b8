//! Linux io_uring for Rust, in one crate.
//!
//! `ring-io` re-exports the layers it is built from, each as a module, and
//! the types most programs need at its top level, so that
//! `use ring_io::*;` is all a program imports:
//!
//! | module | crate | what it has |
//! |---|---|---|
//! | [`sys`] | `ring-io-sys` | the kernel ABI of Linux 6.18 under its C names: every struct, constant and flag of `io_uring.h`, raw syscalls |
//! | [`protocol`] | `ring-io-core` | the ring protocol as a sans-io state machine ([`protocol::SqState`], [`protocol::CqState`], CQ credit, the many-thread claim/commit protocol) and `SimKernel`, an in-memory kernel |
//! | [`ops`] | `ring-io-ops` | one builder per `IORING_OP_*` (also at the top level) and per-op metadata |
//! | [`driver`] | `ring-io-driver` | real rings: [`Builder`], [`Ring`], [`SharedRing`], [`BufRing`], [`Probe`] |
//! | [`proactor`] | `ring-io-proactor` | the [`Proactor`]: safe owned-buffer futures for any executor, driven by whoever waits, and the single-thread [`LocalProactor`]; their handles in [`fs`] and [`net`] (generic over the [`Runtime`]) |
//!
//! The sans-io layer is `protocol`, not `core`: a glob import of a module
//! named `core` would shadow the `core` crate in the importing module.
//!
//! # A file read on a raw ring
//!
//! Pushing an entry is `unsafe`: its buffer and fd must outlive the
//! operation, which only the caller can promise.
//!
//! ```
//! use std::os::fd::AsRawFd;
//! use ring_io::*;
//!
//! let file = std::fs::File::open("/proc/self/status")?;
//! let mut buf = vec![0u8; 4096];
//! let mut ring = Ring::new(8)?;
//! let read = Read::new(Fd(file.as_raw_fd()), buf.as_mut_ptr(), 4096);
//! // SAFETY: `buf` and `file` outlive the completion reaped below.
//! unsafe { ring.sq().push(read.build().user_data(7)) }.expect("an empty SQ has room");
//! ring.submitter().submit_and_wait(1)?;
//! let cqe = ring.cq().next().expect("one completion");
//! assert_eq!(cqe.user_data(), 7);
//! let n = cqe.result()? as usize;
//! assert!(String::from_utf8_lossy(&buf[..n]).starts_with("Name:"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # A file read on the Proactor
//!
//! The [`Proactor`] owns the buffers while the kernel uses them: no
//! `unsafe`, and dropping an op in flight cancels it without freeing its
//! buffer early. Its ops are futures ([`Op`]) for any executor, or
//! `.wait()`, or [`block_on`].
//!
//! ```
//! use std::sync::Arc;
//! use ring_io::*;
//!
//! let proactor = Proactor::new(ProactorConfig::new(32))?;
//! // Ops keep their files open until the kernel is done: share them by `Arc`.
//! let file = Arc::new(std::fs::File::open("/proc/self/status")?);
//! // A read fills the buffer from its start: `n` bytes of it are the file's.
//! let (n, buf) = block_on(proactor.read(&file, vec![0u8; 4096], 0));
//! assert!(buf[..n?].starts_with(b"Name:"));
//! // The same, as a future awaited by any executor, into bytes 2..7 of
//! // the same buffer (any `IoBufMut`, or a slice of one).
//! let read = proactor.read(&file, buf.slice(2..7), 0);
//! let (n, slice) = block_on(async { read.await });
//! assert_eq!((n?, &slice[..]), (5, &b"Name:"[..]));
//! assert!(slice.into_inner().starts_with(b"NaName:"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Features
//!
//! - `sim` (default): [`Sim`], the simulated kernel behind the
//!   [`Kernel`] trait, to test code that drives rings without a kernel.
//! - `bytes`: `bytes::Bytes` is an [`IoBuf`] and `bytes::BytesMut` an
//!   [`IoBufMut`]: buffers of the Proactor's ops.
//! - `tokio`: `proactor::tokio::spawn_driver`, a task of a tokio runtime
//!   that drives the Proactor (instead of its fallback thread).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use ring_io_core as protocol;
pub use ring_io_driver as driver;
pub use ring_io_ops as ops;
pub use ring_io_proactor as proactor;
pub use ring_io_sys as sys;

// Real rings.
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub use ring_io_driver::Sim;
pub use ring_io_driver::{
    BufGuard, BufRing, Builder, CancelTarget, Chunks, CompletionQueue, Cqe, Full, Kernel,
    KernelVersion, Linux, Params, Probe, ProbeReport, Push128Error, PushError, Registrar,
    Restriction, Ring, SETUP_FLAGS, SetupError, SharedRing, SubmissionQueue, Submitter,
    TIMEOUT_USER_DATA, Unsupported, WaitArgs, WrongRing, kernel_version,
};

// The Proactor.
// (`proactor::Timeout`, the future of `Op::timeout`, stays in its module:
// `Timeout` here is the op builder.)
// Its handles stay in their modules (`ring_io::fs::File`,
// `ring_io::net::TcpStream`, ...), as in std.
pub use ring_io_proactor::{
    BufResult, CURRENT_POSITION, Domain, Elapsed, FixedBuf, IntoOpFd, IoBuf, IoBufMut, Link,
    Linkable, LocalMulti, LocalOp, LocalProactor, LocalTask, LocalTimeout, LocalUnparker, MsgFlags,
    Multi, Op, OpFd, PollEvents, Proactor, ProactorConfig, ProactorStats, Protocol, Runtime, Slice,
    SocketType, StatxFlags, block_on, buf, fs, net,
};

// Entries and their builders, one per opcode.
pub use ring_io_ops::{
    Accept, AsyncCancel, Bind, Clock, Close, Connect, DirectSlot, Entry, Entry128, EpollCtl,
    EpollWait, FGetXattr, FSetXattr, Fadvise, Fallocate, Fd, FilesUpdate, Fixed, FixedFdInstall,
    Fsync, Ftruncate, FutexWait, FutexWaitV, FutexWake, GetXattr, LinkAt, LinkTimeout, Listen,
    Madvise, MkDirAt, MsgRingData, MsgRingSendFd, Nop, OpCode, OpInfo, OpenAt, OpenAt2, Pipe,
    PollAdd, PollRemove, PollUpdate, ProvideBuffers, Read, ReadFixed, ReadMulti, Readv, ReadvFixed,
    Recv, RecvMsg, RecvZc, RemoveBuffers, RenameAt, Send, SendMsg, SendMsgZc, SendZc, SetXattr,
    Shutdown, Socket, SocketCmd, Splice, Statx, SymlinkAt, SyncFileRange, Target, Tee, Timeout,
    TimeoutRemove, TimeoutUpdate, UnlinkAt, UringCmd16, UringCmd80, WaitId, Write, WriteFixed,
    Writev, WritevFixed,
};

// The kernel's values that programs read or set most.
pub use ring_io_sys::{CqeFlags, EnterFlags, Errno, Features, SetupFlags, SqeFlags};

/// The workspace README's examples, run as doc tests (the README is not part
/// of the published crate: the item exists only under `cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
