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
//! A program that does its I/O on one thread can take a [`LocalProactor`]
//! instead: the same ops, each a [`LocalOp`], with no lock, no atomic
//! operation and no other thread. The same handles run on it
//! (`File<LocalProactor>`, `TcpStream<LocalProactor>`, ...: each handle is
//! generic over its [`Runtime`], the Proactor by default), and stay on its
//! thread; its [`block_on`](LocalProactor::block_on) runs tasks
//! ([`LocalProactor::spawn`], one per connection, each polled only when
//! woken):
//!
//! ```
//! use ring_io_proactor::{IoBuf, LocalProactor, ProactorConfig};
//! use ring_io_proactor::net::{TcpListener, TcpStream};
//!
//! let p = LocalProactor::new(ProactorConfig::new(32))?;
//! let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let echoed = p.block_on(async {
//!     let server = async {
//!         let (conn, _) = listener.accept().await?;
//!         let (n, buf) = conn.read(vec![0u8; 64]).await;
//!         conn.write_all(buf.slice(..n?)).await.0
//!     };
//!     let client = async {
//!         let conn = TcpStream::connect(&p, addr).await?;
//!         conn.write_all("echo").await.0?;
//!         let (res, buf) = conn.read_exact(vec![0u8; 4]).await;
//!         res.map(|()| buf)
//!     };
//!     let (served, echoed) = futures_util::future::join(server, client).await;
//!     served.and(echoed)
//! })?;
//! assert_eq!(echoed, b"echo");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Buffers are any [`IoBuf`] (to write from) or [`IoBufMut`] (to read
//! into): `Vec<u8>`, `Box<[u8]>`, `String`, `&'static str`, a
//! [`slice`](IoBuf::slice) of a buffer, ...; a read fills the buffer from
//! its start ([`buf`] has the rules).
//!
//! # Soundness and forged completions
//!
//! The promise is `ring-io-driver`'s (its "Soundness" section): no safe
//! code can make the kernel use memory its caller does not own, nor make
//! the Proactor hand out a buffer, fd or `&[u8]` the kernel may still
//! change. Every op keeps what the kernel may touch until the request's
//! last CQE, whatever happens to the op.
//!
//! A CQE no request of the Proactor posted (a forged one) can only be sent
//! by an `IORING_OP_MSG_RING` request naming the ring's fd. Under that
//! threat model (safe code only) none can be forged: pushing any entry is
//! `unsafe` in every io_uring crate, and no safe API of these crates sends
//! a `MSG_RING` (the Proactor has no such op). What the Proactor does about
//! forged CQEs is defense in depth against buggy `unsafe` code (a
//! `MSG_RING` to the wrong fd): each request's `user_data` carries a random
//! 32-bit tag, checked on every CQE, and each result is checked against
//! what the op can return (see "Completions are input" on [`Proactor`]);
//! anything else is counted in [`ProactorStats::unexpected_cqes`]. The tag
//! is no secret within the process: `/proc/self/fdinfo/<ring fd>` (safe to
//! read) lists the CQEs sitting in the CQ with their `user_data`, and a
//! multishot stream ([`Proactor::accept_multi`], [`Proactor::recv_multi`])
//! keeps its `user_data` while armed, so its CQEs show it to code that
//! could then forge one with `unsafe`. A [`LocalProactor`] on Linux 6.5 or
//! later has no ring fd at all ([`LocalProactor::has_no_fd`]): neither
//! fdinfo nor `MSG_RING` reaches it.
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
mod cells;
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
mod runtime;
mod state;
mod tags;
#[cfg(test)]
mod tests;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
mod wake;

pub use buf::{BufResult, IoBuf, IoBufMut, Slice};
pub use cancel::{Elapsed, LocalTimeout, Timeout};
pub use config::{CREDIT_LAPSE, DEFAULT_MAX_IN_FLIGHT, ProactorConfig, ProactorStats};
pub use drive::{Unparker, block_on};
pub use fd::{IntoOpFd, OpFd};
pub use fixed::FixedBuf;
pub use flags::{CURRENT_POSITION, Domain, MsgFlags, PollEvents, Protocol, SocketType, StatxFlags};
pub use handle::Transfer;
pub use link::{Link, Linkable};
pub use local::{LocalMulti, LocalOp, LocalProactor, LocalTask, LocalUnparker};
pub use multi::Multi;
pub use op::Op;
pub use proactor::Proactor;
pub use runtime::Runtime;
