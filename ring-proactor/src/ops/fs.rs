//! File ops: reads and writes (plain, fixed-buffer, vectored), fsync, open,
//! close, statx, splice.

#[cfg(doc)]
use crate::{CURRENT_POSITION, ProactorConfig};
use std::ffi::CString;
use std::io::{self};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ring_io_ops::Fd;
use ring_io_sys::FsyncFlags;

use crate::args::*;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fs::{Metadata, OpenOptions};
use crate::op::*;
use crate::ops::Backend;
use crate::proactor::*;
use crate::{FixedBuf, IntoOpFd, StatxFlags};

impl Proactor {
    /// Reads into `buf` at `offset` ([`CURRENT_POSITION`]: at the file
    /// position, as a pipe or a socket needs), like
    /// `pread(2)`: fills it **from its start**, up to its
    /// [`bytes_total`](IoBuf::bytes_total) (a `Vec`'s capacity), and returns
    /// how many bytes were read (0 at end of file). The buffer's initialized
    /// length becomes `max(bytes_init, n)` (a `Vec`'s length), so use `n`
    /// for what was read. A [`slice`](IoBuf::slice) of a buffer reads into
    /// that range alone.
    ///
    /// A buffer with no room (`Vec::new()`, an empty slice), or one longer
    /// than 4 GiB - 1, fails with `InvalidInput` and comes back, untouched.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use ring_io_proactor::{IoBuf, Proactor, ProactorConfig};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let file = Arc::new(std::fs::File::open("/proc/self/status")?);
    /// let (n, buf) = p.read(&file, vec![0u8; 4096], 0).wait();
    /// assert!(buf[..n?].starts_with(b"Name:"));
    /// // Reused without clearing: filled from the start again.
    /// let (n, buf) = p.read(&file, buf, 2).wait();
    /// assert!(buf[..n?].starts_with(b"me:"));
    /// // Into bytes 4..9 of a buffer.
    /// let (n, slice) = p.read(&file, buf.slice(4..9), 0).wait();
    /// assert_eq!(n?, 5);
    /// assert_eq!(&slice.into_inner()[..9], b"me:\tName:");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read<B: IoBufMut>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        offset: u64,
    ) -> Op<BufResult<usize, B>> {
        read(self, fd, buf, offset)
    }

    /// A free fixed buffer (empty), or `None` if all are taken or none were
    /// registered ([`ProactorConfig::fixed_buffers`]). It goes back to the
    /// pool when dropped.
    pub fn fixed_buffer(&self) -> Option<FixedBuf> {
        self.shared.fixed.as_ref()?.take()
    }

    /// [`read`](Self::read) into a fixed buffer (`IORING_OP_READ_FIXED`):
    /// fills it from its start, up to its capacity; its length becomes
    /// `max(len, n)`. A buffer of another runtime's pool fails with
    /// `InvalidInput`, and comes back.
    pub fn read_fixed(
        &self,
        fd: impl IntoOpFd,
        buf: FixedBuf,
        offset: u64,
    ) -> Op<BufResult<usize, FixedBuf>> {
        read_fixed(self, fd, buf, offset)
    }

    /// [`write`](Self::write) from a fixed buffer (`IORING_OP_WRITE_FIXED`):
    /// writes its first `len()` bytes.
    pub fn write_fixed(
        &self,
        fd: impl IntoOpFd,
        buf: FixedBuf,
        offset: u64,
    ) -> Op<BufResult<usize, FixedBuf>> {
        write_fixed(self, fd, buf, offset)
    }

    /// Writes `buf` at `offset` ([`CURRENT_POSITION`]: at the file
    /// position), like
    /// `pwrite(2)`: its [`bytes_init`](IoBuf::bytes_init) bytes from the
    /// start (a `Vec`'s length, a [`slice`](IoBuf::slice)'s initialized
    /// bytes); returns how many were written (maybe fewer). Any [`IoBuf`]:
    /// `Vec<u8>`, `Box<[u8]>`, `String`, `&'static str`, ...
    ///
    /// A buffer longer than 4 GiB - 1 fails with `InvalidInput` and comes
    /// back.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use ring_io_proactor::{CURRENT_POSITION, IoBuf, Proactor, ProactorConfig};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (tx, rx) = std::os::unix::net::UnixStream::pair()?;
    /// let (tx, rx) = (Arc::new(tx), Arc::new(rx));
    /// p.write(&tx, "static ", CURRENT_POSITION).wait().0?;
    /// p.write(&tx, String::from("owned "), CURRENT_POSITION).wait().0?;
    /// p.write(&tx, b"0123456789".to_vec().slice(3..5), CURRENT_POSITION).wait().0?;
    /// let (n, buf) = p.read(&rx, vec![0u8; 64], CURRENT_POSITION).wait();
    /// assert_eq!(&buf[..n?], b"static owned 34");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write<B: IoBuf>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        offset: u64,
    ) -> Op<BufResult<usize, B>> {
        write(self, fd, buf, offset)
    }

    /// Reads into each buffer in turn, like `preadv(2)`: each is filled
    /// from its start, up to its [`bytes_total`](IoBuf::bytes_total),
    /// before the next; each marks what landed in it initialized (a `Vec`'s
    /// length becomes `max(len, k)` for its `k` bytes). Returns the total.
    ///
    /// Buffers with no room at all (none, or all empty) fail with
    /// `InvalidInput`, as do more buffers than a `u32` counts (the kernel
    /// itself takes at most 1024, failing with `EINVAL`); the buffers come
    /// back.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ring_io_proactor::{Proactor, ProactorConfig};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// let file = Arc::new(std::fs::File::open("/proc/self/status")?);
    /// let (n, bufs) = p.readv(&file, vec![vec![0u8; 2], vec![0u8; 3]], 0).wait();
    /// assert_eq!(n?, 5);
    /// assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"Na"[..], &b"me:"[..]));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn readv<B: IoBufMut>(
        &self,
        fd: impl IntoOpFd,
        bufs: Vec<B>,
        offset: u64,
    ) -> Op<BufResult<usize, Vec<B>>> {
        readv(self, fd, bufs, offset)
    }

    /// Writes the buffers in turn, like `pwritev(2)`: the
    /// [`bytes_init`](IoBuf::bytes_init) bytes of each; returns the total.
    pub fn writev<B: IoBuf>(
        &self,
        fd: impl IntoOpFd,
        bufs: Vec<B>,
        offset: u64,
    ) -> Op<BufResult<usize, Vec<B>>> {
        writev(self, fd, bufs, offset)
    }

    /// `fsync(2)`, or `fdatasync(2)` with `datasync`.
    pub fn fsync(&self, fd: impl IntoOpFd, datasync: bool) -> Op<io::Result<()>> {
        fsync(self, fd, datasync)
    }

    /// Opens `path` (relative to the current directory) as `options` say
    /// (always close-on-exec), like `openat(2)`: the new file's fd.
    /// [`OpenOptions::open`] makes a [`File`](crate::fs::File) of it.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let fd = p.open("/dev/null", OpenOptions::new().write(true)).wait()?;
    /// let (n, _) = p.write(fd, "discarded", 0).wait();
    /// assert_eq!(n?, 9);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(&self, path: impl AsRef<Path>, options: &OpenOptions) -> Op<io::Result<OwnedFd>> {
        open(self, path, options)
    }

    /// Closes `fd`, like `close(2)`. The op owns `fd` until the kernel has
    /// closed it: dropped before it was submitted, it closes `fd` itself.
    pub fn close(&self, fd: OwnedFd) -> Op<io::Result<()>> {
        close(self, fd)
    }

    /// What `statx(2)` says of `path` (relative to the current directory),
    /// resolved as `flags` say: size, type, permissions, times, ... (see
    /// [`Metadata`]; an open [`File`](crate::fs::File) has
    /// [`metadata`](crate::fs::File::metadata)).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, StatxFlags};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let m = p.statx("/", StatxFlags::empty()).wait()?;
    /// assert!(m.is_dir());
    /// let missing = p.statx("/no/such/file", StatxFlags::empty()).wait();
    /// assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn statx(&self, path: impl AsRef<Path>, flags: StatxFlags) -> Op<io::Result<Metadata>> {
        statx(self, path, flags)
    }

    /// Moves up to `len` bytes from `fd_in` to `fd_out` (one must be a
    /// pipe), like `splice(2)`; an offset of `None` uses the file position.
    pub fn splice(
        &self,
        fd_in: impl IntoOpFd,
        off_in: Option<u64>,
        fd_out: impl IntoOpFd,
        off_out: Option<u64>,
        len: u32,
    ) -> Op<io::Result<usize>> {
        splice(self, fd_in, off_in, fd_out, off_out, len)
    }
}

/// [`Proactor::read`] for either kind of Proactor.
pub(crate) fn read<P: Backend, B: IoBufMut>(
    this: &P,
    fd: impl IntoOpFd,
    buf: B,
    offset: u64,
) -> P::Op<BufResult<usize, B>> {
    this.fill(fd.into_op_fd(), buf, |fd, at, len| {
        ring_io_ops::Read::new(fd, at, len).offset(offset).build()
    })
}

/// [`Proactor::read_fixed`] for either kind of Proactor: a [`read`] whose
/// entry names the buffer's index in the ring's table.
pub(crate) fn read_fixed<P: Backend>(
    this: &P,
    fd: impl IntoOpFd,
    buf: FixedBuf,
    offset: u64,
) -> P::Op<BufResult<usize, FixedBuf>> {
    if let Err(e) = this.owns(&buf) {
        return this.failed_with(e, fd.into_op_fd(), buf);
    }
    let index = buf.index();
    this.fill(fd.into_op_fd(), buf, |fd, at, len| {
        ring_io_ops::ReadFixed::new(fd, at, len, index)
            .offset(offset)
            .build()
    })
}

/// [`Proactor::write_fixed`] for either kind of Proactor: a [`write`] whose
/// entry names the buffer's index in the ring's table.
pub(crate) fn write_fixed<P: Backend>(
    this: &P,
    fd: impl IntoOpFd,
    buf: FixedBuf,
    offset: u64,
) -> P::Op<BufResult<usize, FixedBuf>> {
    if let Err(e) = this.owns(&buf) {
        return this.failed_with(e, fd.into_op_fd(), buf);
    }
    let index = buf.index();
    this.send_bytes(fd.into_op_fd(), buf, |fd, at, len| {
        ring_io_ops::WriteFixed::new(fd, at, len, index)
            .offset(offset)
            .build()
    })
}

/// [`Proactor::write`] for either kind of Proactor.
pub(crate) fn write<P: Backend, B: IoBuf>(
    this: &P,
    fd: impl IntoOpFd,
    buf: B,
    offset: u64,
) -> P::Op<BufResult<usize, B>> {
    this.send_bytes(fd.into_op_fd(), buf, |fd, at, len| {
        ring_io_ops::Write::new(fd, at, len).offset(offset).build()
    })
}

/// [`Proactor::readv`] for either kind of Proactor.
pub(crate) fn readv<P: Backend, B: IoBufMut>(
    this: &P,
    fd: impl IntoOpFd,
    mut bufs: Vec<B>,
    offset: u64,
) -> P::Op<BufResult<usize, Vec<B>>> {
    let fd = fd.into_op_fd();
    let iovecs: Iovecs = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.stable_mut_ptr().cast(),
            iov_len: b.bytes_total(),
        })
        .collect();
    let Some((count, total)) = iovecs.count_and_total() else {
        return this.failed_with(too_many_buffers(), fd, bufs);
    };
    if total == 0 {
        let e = io::Error::new(
            io::ErrorKind::InvalidInput,
            "a readv into buffers with no room (bytes_total() is 0 for each)",
        );
        return this.failed_with(e, fd, bufs);
    }
    let entry = ring_io_ops::Readv::new(Fd(fd.raw()), iovecs.0.as_ptr().cast(), count)
        .offset(offset)
        .build();
    this.op_with(entry, fd, move |res: io::Result<u32>, _| {
        let res = res.and_then(|n| at_most(n, total)).inspect(|&n| {
            let mut left = n;
            for (b, iov) in bufs.iter_mut().zip(&iovecs.0) {
                let k = left.min(iov.iov_len);
                if k > 0 {
                    // SAFETY: the kernel filled the iovecs in order, `k`
                    // bytes of this one (at most its length, the
                    // buffer's `bytes_total`) from the buffer's start.
                    unsafe { b.set_init(k) };
                }
                left -= k;
            }
        });
        drop(iovecs);
        (res, bufs)
    })
}

/// [`Proactor::writev`] for either kind of Proactor.
pub(crate) fn writev<P: Backend, B: IoBuf>(
    this: &P,
    fd: impl IntoOpFd,
    bufs: Vec<B>,
    offset: u64,
) -> P::Op<BufResult<usize, Vec<B>>> {
    let fd = fd.into_op_fd();
    let iovecs: Iovecs = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.stable_ptr().cast_mut().cast(),
            iov_len: b.bytes_init(),
        })
        .collect();
    let Some((count, total)) = iovecs.count_and_total() else {
        return this.failed_with(too_many_buffers(), fd, bufs);
    };
    let entry = ring_io_ops::Writev::new(Fd(fd.raw()), iovecs.0.as_ptr().cast(), count)
        .offset(offset)
        .build();
    this.op_with(entry, fd, move |res: io::Result<u32>, _| {
        drop(iovecs);
        (res.and_then(|n| at_most(n, total)), bufs)
    })
}

/// [`Proactor::fsync`] for either kind of Proactor.
pub(crate) fn fsync<P: Backend>(
    this: &P,
    fd: impl IntoOpFd,
    datasync: bool,
) -> P::Op<io::Result<()>> {
    let fd = fd.into_op_fd();
    let flags = if datasync {
        FsyncFlags::DATASYNC
    } else {
        FsyncFlags::empty()
    };
    let entry = ring_io_ops::Fsync::new(Fd(fd.raw())).flags(flags).build();
    this.op_with(entry, fd, |res: io::Result<u32>, _| res.map(drop))
}

/// [`Proactor::open`] for either kind of Proactor.
pub(crate) fn open<P: Backend>(
    this: &P,
    path: impl AsRef<Path>,
    options: &OpenOptions,
) -> P::Op<io::Result<OwnedFd>> {
    let flags = match options.flags() {
        Ok(flags) => flags,
        Err(e) => return this.failed(e),
    };
    let path = match CString::new(path.as_ref().as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(e) => return this.failed(io::Error::new(io::ErrorKind::InvalidInput, e)),
    };
    let entry = ring_io_ops::OpenAt::new(Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(flags)
        .mode(options.mode_bits())
        .build();
    this.op(entry, move |res: io::Result<u32>, _| {
        drop(path);
        // SAFETY: a successful open returns a new fd that nothing owns.
        res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    })
}

/// [`Proactor::close`] for either kind of Proactor.
pub(crate) fn close<P: Backend>(this: &P, fd: OwnedFd) -> P::Op<io::Result<()>> {
    let entry = ring_io_ops::Close::new(Fd(fd.as_raw_fd())).build();
    this.op(entry, move |res: io::Result<u32>, _| match res {
        // The kernel found no such file to close (it refuses io_uring
        // fds, say): the fd is still open, and still this op's.
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
            drop(fd);
            Err(e)
        }
        // Closed by the kernel (other errors come from the file's
        // flush, after the fd was removed): forget the number.
        other => {
            let _ = fd.into_raw_fd();
            other.map(drop)
        }
    })
}

/// [`Proactor::statx`] for either kind of Proactor.
pub(crate) fn statx<P: Backend>(
    this: &P,
    path: impl AsRef<Path>,
    flags: StatxFlags,
) -> P::Op<io::Result<Metadata>> {
    let path = match CString::new(path.as_ref().as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(e) => return this.failed(io::Error::new(io::ErrorKind::InvalidInput, e)),
    };
    // SAFETY: `statx` is plain integers, for which zero is valid.
    let mut buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
    let entry = ring_io_ops::Statx::new(Fd(libc::AT_FDCWD), path.as_ptr(), (&raw mut *buf).cast())
        .flags(flags.bits())
        .mask(crate::fs::metadata::MASK)
        .build();
    this.op(entry, move |res: io::Result<u32>, _| {
        drop(path);
        res.map(|_| Metadata::from_statx(&buf))
    })
}

/// [`Proactor::splice`] for either kind of Proactor.
pub(crate) fn splice<P: Backend>(
    this: &P,
    fd_in: impl IntoOpFd,
    off_in: Option<u64>,
    fd_out: impl IntoOpFd,
    off_out: Option<u64>,
    len: u32,
) -> P::Op<io::Result<usize>> {
    let fd_in = fd_in.into_op_fd();
    let fd_out = fd_out.into_op_fd();
    // -1 is "the file position": an offset past i64::MAX must not
    // become it.
    let off = |o: Option<u64>| o.map_or(Some(-1), |o| i64::try_from(o).ok());
    let (Some(at_in), Some(at_out)) = (off(off_in), off(off_out)) else {
        return this.failed_op(
            io::Error::new(io::ErrorKind::InvalidInput, "a splice offset past i64::MAX"),
            move |res: io::Result<u32>, _| {
                drop((fd_in, fd_out));
                res.map(|n| n as usize)
            },
        );
    };
    let entry =
        ring_io_ops::Splice::new(Fd(fd_in.raw()), at_in, Fd(fd_out.raw()), at_out, len).build();
    this.op_with(entry, (fd_in, fd_out), move |res: io::Result<u32>, _| {
        res.and_then(|n| at_most(n, len as usize))
    })
}
