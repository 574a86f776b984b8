//! A safe, owned-buffer, future-based API over io_uring: the [`Proactor`].
//!
//! Each operation takes its buffers and files by value and returns an
//! [`Op`], a `Future` that runs on any executor (it needs nothing but the
//! std `Waker`), with a blocking [`Op::wait`] and a minimal [`block_on`].
//! Dropping an op at any point is safe: what the kernel may still touch
//! stays with the Proactor until the kernel is done. How it works, what a
//! drop can lose, and its limits are documented on [`Proactor`].
//!
//! Layered on `ring-io-driver`'s public API; `ring-io` re-exports it.
//!
//! ```
//! use std::sync::Arc;
//! use ring_io_proactor::{Proactor, ProactorConfig, block_on};
//!
//! let proactor = Proactor::new(ProactorConfig::new(32))?;
//! let file = Arc::new(std::fs::File::open("/proc/self/status")?);
//! let (n, buf) = block_on(proactor.read(&file, vec![0u8; 4096], 0));
//! assert!(buf[..n?].starts_with(b"Name:"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The [`fs`] and [`net`] modules have the handles most programs use
//! instead of fds: [`fs::File`], [`net::TcpListener`], [`net::TcpStream`],
//! [`net::UdpSocket`], [`net::UnixListener`], [`net::UnixStream`], each
//! holding a clone of its Proactor (a cheap handle: the last clone shuts
//! it down).
//!
//! ```
//! use ring_io_proactor::{Proactor, ProactorConfig, block_on, fs::File};
//!
//! let proactor = Proactor::new(ProactorConfig::new(32))?;
//! let file = File::open(&proactor, "/proc/self/status").wait()?;
//! let (n, buf) = block_on(file.read_at(vec![0u8; 4096], 0));
//! assert!(buf[..n?].starts_with(b"Name:"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Buffers are any [`IoBuf`] (to write from) or [`IoBufMut`] (to read
//! into): `Vec<u8>`, `Box<[u8]>`, `String`, `&'static str`, a
//! [`slice`](IoBuf::slice) of a buffer, ...; a read fills the buffer from
//! its start ([`buf`] has the rules).
//!
//! # Features
//!
//! - `bytes`: `bytes::Bytes` is an [`IoBuf`], `bytes::BytesMut` an
//!   [`IoBufMut`].
// It pushes entries whose pointers target buffers it keeps alive until
// their CQEs, and hands the kernel's results back as lengths and fds. Each
// unsafe block says why.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Under `--cfg loom` only `tests/wake_loom.rs` is built (ring-io-driver
// has no rings then).
#![cfg(not(loom))]

mod args;
pub mod buf;
mod cancel;
mod config;
mod drive;
mod driver;
mod fd;
mod finish;
mod fixed;
mod flags;
pub mod fs;
mod handle;
mod link;
mod local;
mod multi;
pub mod net;
mod op;
mod ops;
mod proactor;
mod state;
mod tags;
#[cfg(test)]
mod tests;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
mod wake;

pub use buf::{BufResult, IoBuf, IoBufMut, Slice};
pub use cancel::{Elapsed, Timeout};
pub use config::{DEFAULT_MAX_IN_FLIGHT, ProactorConfig, ProactorStats};
pub use drive::{Unparker, block_on};
pub use fd::{IntoOpFd, OpFd};
pub use fixed::FixedBuf;
pub use flags::{CURRENT_POSITION, Domain, MsgFlags, PollEvents, Protocol, SocketType, StatxFlags};
pub use handle::Transfer;
pub use link::{Link, Linkable};
pub use local::{LocalMulti, LocalOp, LocalProactor, LocalUnparker};
pub use multi::Multi;
pub use op::Op;
pub use proactor::Proactor;
