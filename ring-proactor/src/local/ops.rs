//! The ops of a [`LocalProactor`]: the [`Proactor`]'s, on this thread
//! (each is written once, in `crate::ops`, for both).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::buf::{BufResult, IoBuf, IoBufMut};
#[cfg(doc)]
use crate::{Proactor, ProactorConfig};
use ring_io_ops::Fd;

use crate::fs::{Metadata, OpenOptions};
use crate::ops::Backend;
use crate::{
    Domain, FixedBuf, IntoOpFd, LocalMulti, LocalOp, LocalProactor, MsgFlags, PollEvents, Protocol,
    SocketType, StatxFlags,
};

impl LocalProactor {
    /// [`Proactor::read`], on this thread.
    pub fn read<B: IoBufMut>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        offset: u64,
    ) -> LocalOp<BufResult<usize, B>> {
        crate::ops::fs::read(self, fd, buf, offset)
    }

    /// [`Proactor::write`], on this thread.
    pub fn write<B: IoBuf>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        offset: u64,
    ) -> LocalOp<BufResult<usize, B>> {
        crate::ops::fs::write(self, fd, buf, offset)
    }

    /// [`Proactor::fixed_buffer`], on this thread: a free fixed buffer
    /// (empty), or `None` if all are taken or none were registered
    /// ([`ProactorConfig::fixed_buffers`]). It goes back to the pool when
    /// dropped.
    ///
    /// ```
    /// use ring_io_proactor::{CURRENT_POSITION, LocalProactor, ProactorConfig};
    /// use std::{os::unix::net::UnixStream, sync::Arc};
    ///
    /// let p = LocalProactor::new(ProactorConfig::new(8).fixed_buffers(2, 4096))?;
    /// let (a, b) = UnixStream::pair()?;
    /// let (a, b) = (Arc::new(a), Arc::new(b));
    /// let mut out = p.fixed_buffer().expect("two are free");
    /// out.extend_from_slice(b"registered");
    /// let (n, out) = p.write_fixed(&a, out, CURRENT_POSITION).wait();
    /// assert_eq!(n?, 10);
    /// drop(out); // back to the pool
    /// let (n, into) = p.read_fixed(&b, p.fixed_buffer().unwrap(), CURRENT_POSITION).wait();
    /// assert_eq!(&into[..n?], b"registered");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fixed_buffer(&self) -> Option<FixedBuf> {
        self.inner.fixed.as_ref()?.take()
    }

    /// [`Proactor::read_fixed`], on this thread.
    pub fn read_fixed(
        &self,
        fd: impl IntoOpFd,
        buf: FixedBuf,
        offset: u64,
    ) -> LocalOp<BufResult<usize, FixedBuf>> {
        crate::ops::fs::read_fixed(self, fd, buf, offset)
    }

    /// [`Proactor::write_fixed`], on this thread.
    pub fn write_fixed(
        &self,
        fd: impl IntoOpFd,
        buf: FixedBuf,
        offset: u64,
    ) -> LocalOp<BufResult<usize, FixedBuf>> {
        crate::ops::fs::write_fixed(self, fd, buf, offset)
    }

    /// [`Proactor::readv`], on this thread.
    pub fn readv<B: IoBufMut>(
        &self,
        fd: impl IntoOpFd,
        bufs: Vec<B>,
        offset: u64,
    ) -> LocalOp<BufResult<usize, Vec<B>>> {
        crate::ops::fs::readv(self, fd, bufs, offset)
    }

    /// [`Proactor::writev`], on this thread.
    pub fn writev<B: IoBuf>(
        &self,
        fd: impl IntoOpFd,
        bufs: Vec<B>,
        offset: u64,
    ) -> LocalOp<BufResult<usize, Vec<B>>> {
        crate::ops::fs::writev(self, fd, bufs, offset)
    }

    /// [`Proactor::fsync`], on this thread.
    pub fn fsync(&self, fd: impl IntoOpFd, datasync: bool) -> LocalOp<io::Result<()>> {
        crate::ops::fs::fsync(self, fd, datasync)
    }

    /// [`Proactor::open`], on this thread.
    pub fn open(
        &self,
        path: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> LocalOp<io::Result<OwnedFd>> {
        crate::ops::fs::open(self, path, options)
    }

    /// [`Proactor::close`], on this thread.
    pub fn close(&self, fd: OwnedFd) -> LocalOp<io::Result<()>> {
        crate::ops::fs::close(self, fd)
    }

    /// [`Proactor::statx`], on this thread.
    pub fn statx(
        &self,
        path: impl AsRef<Path>,
        flags: StatxFlags,
    ) -> LocalOp<io::Result<Metadata>> {
        crate::ops::fs::statx(self, path, flags)
    }

    /// [`Proactor::splice`], on this thread.
    pub fn splice(
        &self,
        fd_in: impl IntoOpFd,
        off_in: Option<u64>,
        fd_out: impl IntoOpFd,
        off_out: Option<u64>,
        len: u32,
    ) -> LocalOp<io::Result<usize>> {
        crate::ops::fs::splice(self, fd_in, off_in, fd_out, off_out, len)
    }

    /// [`Proactor::accept`], on this thread.
    pub fn accept(&self, fd: impl IntoOpFd) -> LocalOp<io::Result<OwnedFd>> {
        crate::ops::net::accept(self, fd)
    }

    /// [`Proactor::connect`], on this thread.
    pub fn connect(&self, fd: impl IntoOpFd, addr: SocketAddr) -> LocalOp<io::Result<()>> {
        crate::ops::net::connect(self, fd, addr)
    }

    /// [`Proactor::send`], on this thread.
    pub fn send<B: IoBuf>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        flags: MsgFlags,
    ) -> LocalOp<BufResult<usize, B>> {
        crate::ops::net::send(self, fd, buf, flags)
    }

    /// [`Proactor::recv`], on this thread.
    pub fn recv<B: IoBufMut>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        flags: MsgFlags,
    ) -> LocalOp<BufResult<usize, B>> {
        crate::ops::net::recv(self, fd, buf, flags)
    }

    /// [`Proactor::shutdown`], on this thread.
    pub fn shutdown(&self, fd: impl IntoOpFd, how: std::net::Shutdown) -> LocalOp<io::Result<()>> {
        crate::ops::net::shutdown(self, fd, how)
    }

    /// [`Proactor::socket`], on this thread.
    pub fn socket(
        &self,
        domain: Domain,
        socket_type: SocketType,
        protocol: Option<Protocol>,
    ) -> LocalOp<io::Result<OwnedFd>> {
        crate::ops::net::socket(self, domain, socket_type, protocol)
    }

    /// [`Proactor::poll`], on this thread.
    pub fn poll(&self, fd: impl IntoOpFd, events: PollEvents) -> LocalOp<io::Result<PollEvents>> {
        crate::ops::net::poll(self, fd, events)
    }

    /// [`Proactor::send_to`], on this thread.
    pub fn send_to<B: IoBuf>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        addr: SocketAddr,
    ) -> LocalOp<BufResult<usize, B>> {
        crate::ops::net::send_to(self, fd, buf, addr)
    }

    /// [`Proactor::recv_from`], on this thread.
    pub fn recv_from<B: IoBufMut>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
    ) -> LocalOp<BufResult<(usize, Option<SocketAddr>), B>> {
        crate::ops::net::recv_from(self, fd, buf)
    }

    /// [`Proactor::accept_multi`], on this thread: a [`LocalMulti`] of new
    /// sockets (Linux 5.19).
    pub fn accept_multi(&self, fd: impl IntoOpFd) -> LocalMulti<OwnedFd> {
        let fd = fd.into_op_fd();
        if let Some(e) = self.needs(5, 19, "multishot accept (IORING_ACCEPT_MULTISHOT)") {
            return LocalMulti::failed(self, e);
        }
        let entry = ring_io_ops::Accept::new(Fd(fd.raw()))
            .flags(libc::SOCK_CLOEXEC)
            .multishot()
            .build();
        LocalMulti::new(self, entry, move |res: io::Result<u32>, _| {
            // The listener stays open while the request lives.
            let _ = &fd;
            // SAFETY: a successful accept returns a new fd nothing owns.
            Some(res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
        })
        .restart_from(0)
    }

    /// [`Proactor::recv_multi`], on this thread: one multishot recv (Linux
    /// 6.0) into a buffer ring the stream owns, `buffers` buffers (a power
    /// of two) of `buf_len` bytes; a [`LocalMulti`] of the chunks received,
    /// copied out so each buffer goes back to the kernel at once. It ends at
    /// end of stream; when the buffers run out (`ENOBUFS`, the consumer
    /// being slow) the request is re-armed once the chunks queued are
    /// taken, losing nothing.
    ///
    /// ```
    /// use ring_io_proactor::{LocalProactor, ProactorConfig};
    /// use std::{io::Write, os::unix::net::UnixStream, sync::Arc};
    ///
    /// let p = LocalProactor::new(ProactorConfig::new(8))?;
    /// let (mut a, b) = UnixStream::pair()?;
    /// let mut chunks = p.recv_multi(Arc::new(b), 4, 64);
    /// a.write_all(b"hello")?;
    /// match chunks.wait_next() {
    ///     Some(Ok(chunk)) => assert_eq!(chunk, b"hello"),
    ///     // Before 6.0 (or 5.19 for buffer rings): the op and kernel named.
    ///     Some(Err(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_multi(&self, fd: impl IntoOpFd, buffers: u16, buf_len: u32) -> LocalMulti<Vec<u8>> {
        let fd = fd.into_op_fd();
        if let Some(e) = self.needs(6, 0, "multishot recv (IORING_RECV_MULTISHOT)") {
            return LocalMulti::failed(self, e);
        }
        let mut st = self.inner.st.borrow_mut();
        let mut next = st.next_bgid;
        let made = crate::ops::net::register_group(
            || {
                next = next.wrapping_add(1);
                next
            },
            |bgid| {
                // The stream's resources (which the BufRing joins) hold the
                // LocalProactor; its drop releases orphans (or leaks them
                // with the ring) before it drops the ring.
                // SAFETY: the BufRing lives until the last CQE of the only
                // request selecting from `bgid`, and is dropped on this
                // thread before the ring (see above).
                unsafe {
                    st.ring
                        .registrar()
                        .buf_ring(bgid, u32::from(buffers), buf_len)
                }
            },
        );
        st.next_bgid = next;
        drop(st);
        let (bgid, bufs) = match made {
            Ok(made) => made,
            Err(e) => return LocalMulti::failed(self, e),
        };
        let entry = ring_io_ops::Recv::select(Fd(fd.raw()), bgid, 0)
            .multishot()
            .build();
        LocalMulti::new(self, entry, crate::ops::net::recv_chunks(fd, bufs))
            .restart_on(libc::ENOBUFS)
            .restart_from(1)
    }
}
