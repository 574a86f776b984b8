//! Socket ops: accept, connect, send and receive (with addresses), shutdown,
//! socket, poll, and the multishot accept and receive streams.

#[cfg(doc)]
use crate::{ProactorConfig, ProactorStats};
use std::io::{self};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use ring_io_ops::{Entry, Fd};

use ring_io_driver::Cqe;

use crate::args::*;
use crate::multi::*;
use crate::op::*;
use crate::proactor::*;
use crate::{IntoOpFd, OpFd};

impl Proactor {
    /// An op that writes or sends `buf`, whose entry `make` builds from the
    /// fd, the bytes' start and their length.
    pub(crate) fn send_bytes(
        &self,
        fd: OpFd,
        buf: Vec<u8>,
        make: impl FnOnce(Fd, *const u8, u32) -> Entry,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let entry = make(Fd(fd.raw()), buf.as_ptr(), len);
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            (res.and_then(|n| at_most(n, len as usize)), buf)
        })
    }

    /// Accepts a connection on the listening socket `fd` (`SOCK_CLOEXEC`).
    pub fn accept(&self, fd: impl IntoOpFd) -> Op<io::Result<OwnedFd>> {
        let fd = fd.into_op_fd();
        let entry = ring_io_ops::Accept::new(Fd(fd.raw()))
            .flags(libc::SOCK_CLOEXEC)
            .build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| {
            // SAFETY: a successful accept returns a new fd that nothing owns.
            res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        })
    }

    /// Connects the socket `fd` to `addr`, like `connect(2)`.
    pub fn connect(&self, fd: impl IntoOpFd, addr: SocketAddr) -> Op<io::Result<()>> {
        let fd = fd.into_op_fd();
        let (storage, len) = sockaddr(addr);
        let entry =
            ring_io_ops::Connect::new(Fd(fd.raw()), (&raw const *storage).cast(), len).build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            drop(storage);
            res.map(drop)
        })
    }

    /// Sends `buf` on the socket `fd` with `MSG_*` `flags`, like `send(2)`.
    pub fn send(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        flags: i32,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        self.send_bytes(fd.into_op_fd(), buf, |fd, at, len| {
            ring_io_ops::Send::new(fd, at, len).flags(flags).build()
        })
    }

    /// Receives into the spare capacity of `buf` from the socket `fd` with
    /// `MSG_*` `flags`, like `recv(2)`; the length grows by what arrived
    /// (0 at end of stream).
    pub fn recv(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        flags: i32,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        self.fill_spare(fd.into_op_fd(), buf, |fd, at, len| {
            ring_io_ops::Recv::new(fd, at, len).flags(flags).build()
        })
    }

    /// Shuts down part of the full-duplex connection on the socket `fd`,
    /// like `shutdown(2)` (`IORING_OP_SHUTDOWN`, Linux 5.11).
    pub fn shutdown(&self, fd: impl IntoOpFd, how: std::net::Shutdown) -> Op<io::Result<()>> {
        let fd = fd.into_op_fd();
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        let entry = ring_io_ops::Shutdown::new(Fd(fd.raw()), how).build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res.map(drop))
    }

    /// A new socket, like `socket(2)` with `SOCK_CLOEXEC` added
    /// (`IORING_OP_SOCKET`, Linux 5.19).
    pub fn socket(&self, domain: i32, socket_type: i32, protocol: i32) -> Op<io::Result<OwnedFd>> {
        let entry =
            ring_io_ops::Socket::new(domain, socket_type | libc::SOCK_CLOEXEC, protocol).build();
        self.op(entry, |res: io::Result<u32>, _| {
            // SAFETY: a successful socket returns a new fd that nothing owns.
            res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        })
    }

    /// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`, ...);
    /// returns the ready events.
    pub fn poll(&self, fd: impl IntoOpFd, events: u32) -> Op<io::Result<u32>> {
        let fd = fd.into_op_fd();
        let entry = ring_io_ops::PollAdd::new(Fd(fd.raw()), events).build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res)
    }

    /// Sends `buf` to `addr` on the datagram socket `fd`, like `sendmsg(2)`
    /// with one iovec and a destination.
    pub fn send_to(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        addr: SocketAddr,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        let fd = fd.into_op_fd();
        let (storage, len) = sockaddr(addr);
        let mut msg = Msg::new(buf.as_ptr().cast_mut(), buf.len(), storage, len);
        let entry = ring_io_ops::SendMsg::new(Fd(fd.raw()), (&raw mut msg.hdr).cast()).build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            drop(msg);
            let len = buf.len();
            (res.and_then(|n| at_most(n, len)), buf)
        })
    }

    /// Receives one message into the spare capacity of `buf` from the
    /// socket `fd`, like `recvmsg(2)`: the length and the sender (`None`
    /// if not an IP address).
    #[allow(
        clippy::type_complexity,
        reason = "the result and the buffer, as every op"
    )]
    pub fn recv_from(
        &self,
        fd: impl IntoOpFd,
        mut buf: Vec<u8>,
    ) -> Op<(io::Result<(usize, Option<SocketAddr>)>, Vec<u8>)> {
        let fd = fd.into_op_fd();
        let spare = buf.spare_capacity_mut();
        // SAFETY: all-zero is a valid sockaddr_storage.
        let storage = Box::new(unsafe { std::mem::zeroed() });
        let mut msg = Msg::new(
            spare.as_mut_ptr().cast(),
            spare.len(),
            storage,
            size_of::<libc::sockaddr_storage>() as u32,
        );
        let entry = ring_io_ops::RecvMsg::new(Fd(fd.raw()), (&raw mut msg.hdr).cast()).build();
        let len = msg.iov.iov_len;
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, len)).map(|n| {
                // SAFETY: the kernel wrote `n` bytes, checked to be at most
                // the spare capacity it was given, into it.
                unsafe { buf.set_len(buf.len() + n) };
                (n, from_sockaddr(&msg.addr, msg.hdr.msg_namelen))
            });
            drop(msg);
            (res, buf)
        })
    }

    /// Accepts connections on the listening socket `fd` with one multishot
    /// request (`IORING_ACCEPT_MULTISHOT`, Linux 5.19): a [`Multi`] of new
    /// sockets (`SOCK_CLOEXEC`).
    ///
    /// The kernel posts one CQE per connection, and nothing bounds how
    /// many arrive between two reaps: a burst can find the CQ full. No
    /// connection is lost: the kernel keeps the CQEs in its overflow
    /// backlog (`IORING_FEAT_NODROP`), which the driver flushes, or ends the
    /// request with a last, successful CQE (newer kernels), which the
    /// stream delivers before it re-arms the request (counted in
    /// [`ProactorStats::stream_restarts`]).
    pub fn accept_multi(&self, fd: impl IntoOpFd) -> Multi<OwnedFd> {
        let fd = fd.into_op_fd();
        if let Some(e) = self.needs(5, 19, "multishot accept (IORING_ACCEPT_MULTISHOT)") {
            return Multi::failed(self, e);
        }
        let entry = ring_io_ops::Accept::new(Fd(fd.raw()))
            .flags(libc::SOCK_CLOEXEC)
            .multishot()
            .build();
        let mut multi = Multi::new(self, entry, 1, move |res: io::Result<u32>, _| {
            // The listener stays open while the request lives.
            let _ = &fd;
            // SAFETY: a successful accept returns a new fd nothing owns.
            Some(res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
        });
        multi.restart_after_success = true;
        multi
    }

    /// Receives from the socket `fd` with one multishot request
    /// (`IORING_RECV_MULTISHOT`, Linux 6.0) into a buffer ring the stream
    /// owns: `buffers` buffers (a power of two) of `buf_len` bytes. A
    /// [`Multi`] of received chunks, copied out so the buffer goes back to
    /// the kernel at once; it ends at end of stream.
    ///
    /// Each of its CQEs but the last consumes a buffer, which comes back
    /// only after the CQE has been taken. When the kernel runs out of
    /// buffers (`ENOBUFS`, the consumer being slow) the stream re-arms the
    /// request once its queued chunks are taken.
    pub fn recv_multi(&self, fd: impl IntoOpFd, buffers: u16, buf_len: u32) -> Multi<Vec<u8>> {
        let fd = fd.into_op_fd();
        if let Some(e) = self.needs(6, 0, "multishot recv (IORING_RECV_MULTISHOT)") {
            return Multi::failed(self, e);
        }
        let bgid = {
            let mut st = self.shared.lock();
            st.next_bgid = st.next_bgid.wrapping_add(1);
            0x8000 | (st.next_bgid & 0x7fff)
        };
        // SAFETY: the BufRing moves into the stream's resources, which stay
        // alive (in the stream, or orphaned in the slab) until the last CQE
        // of the only request that selects from group `bgid`.
        let bufs = match unsafe {
            ring_io_driver::BufRing::new(&self.shared.ring_fd, bgid, u32::from(buffers), buf_len)
        } {
            Ok(b) => b,
            Err(e) => return Multi::failed(self, e),
        };
        let entry = ring_io_ops::Recv::select(Fd(fd.raw()), bgid, 0)
            .multishot()
            .build();
        let mut bufs = bufs;
        let mut multi = Multi::new(self, entry, 1, move |res: io::Result<u32>, flags| {
            // The socket stays open while the request lives.
            let _ = &fd;
            // A failed receive may name a buffer too (consumed before
            // 6.12): take it so it goes back to the ring.
            let raw = match &res {
                Ok(n) => i32::try_from(*n).unwrap_or(i32::MAX),
                Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
            };
            let cqe = Cqe::from(ring_io_sys::io_uring_cqe {
                res: raw,
                flags,
                ..Default::default()
            });
            // SAFETY: `res` and `flags` are those of a completion the kernel
            // posted for this multishot recv (the Proactor matched it by its
            // user_data), the only request that selects from group `bgid`,
            // and each of its completions reaches this closure once.
            let taken = unsafe { bufs.take(&cqe) };
            if let Err(e) = res {
                drop(taken);
                return Some(Err(e));
            }
            match taken {
                Ok(Some(data)) => Some(Ok(data.to_vec())),
                // End of stream: no buffer, no data.
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        });
        multi.restart_on = Some(libc::ENOBUFS);
        multi
    }
}
