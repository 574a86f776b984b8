//! File ops: reads and writes (plain, fixed-buffer, vectored), fsync, open,
//! close, statx, splice.

#[cfg(doc)]
use crate::ProactorConfig;
use std::ffi::CString;
use std::io::{self};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ring_io_ops::{Entry, Fd};
use ring_io_sys::FsyncFlags;

use crate::args::*;
use crate::op::*;
use crate::proactor::*;
use crate::{FixedBuf, IntoOpFd, OpFd};

impl Proactor {
    /// Reads into the spare capacity of `buf` at `offset` (`u64::MAX`: the
    /// file position), like `pread(2)`; the length grows by what was read.
    pub fn read(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        offset: u64,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        self.fill_spare(fd.into_op_fd(), buf, |fd, at, len| {
            ring_io_ops::Read::new(fd, at, len).offset(offset).build()
        })
    }

    /// An op that fills the spare capacity of `buf`, whose entry `make`
    /// builds from the fd, the spare capacity's start and its length; the
    /// vector's length grows by what the kernel wrote.
    pub(crate) fn fill_spare(
        &self,
        fd: OpFd,
        mut buf: Vec<u8>,
        make: impl FnOnce(Fd, *mut u8, u32) -> Entry,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        let spare = buf.spare_capacity_mut();
        let len = u32::try_from(spare.len()).unwrap_or(u32::MAX);
        let entry = make(Fd(fd.raw()), spare.as_mut_ptr().cast(), len);
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, len as usize)).inspect(|&n| {
                // SAFETY: the kernel wrote `n` bytes, checked to be at most
                // the `len` it was given, into the spare capacity, which
                // starts at `buf.len()`.
                unsafe { buf.set_len(buf.len() + n) };
            });
            (res, buf)
        })
    }

    /// A free fixed buffer (empty), or `None` if all are taken or none were
    /// registered ([`ProactorConfig::fixed_buffers`]). It goes back to the
    /// pool when dropped.
    pub fn fixed_buffer(&self) -> Option<FixedBuf> {
        self.shared.fixed.as_ref()?.take()
    }

    /// [`read`](Self::read) into a fixed buffer (`IORING_OP_READ_FIXED`):
    /// fills the space after its first `len()` bytes.
    pub fn read_fixed(
        &self,
        fd: impl IntoOpFd,
        mut buf: FixedBuf,
        offset: u64,
    ) -> Op<(io::Result<usize>, FixedBuf)> {
        let fd = fd.into_op_fd();
        let len = u32::try_from(buf.capacity() - buf.len()).unwrap_or(u32::MAX);
        // SAFETY: `len()` is at most the capacity: still inside the buffer.
        let at = unsafe { buf.start().add(buf.len()) };
        let entry = ring_io_ops::ReadFixed::new(Fd(fd.raw()), at, len, buf.index())
            .offset(offset)
            .build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, len as usize)).inspect(|&n| {
                // SAFETY: the kernel wrote `n` bytes, checked to be at most
                // the `len` it was given, after `len()`.
                unsafe { buf.grow(n) };
            });
            (res, buf)
        })
    }

    /// [`write`](Self::write) from a fixed buffer (`IORING_OP_WRITE_FIXED`):
    /// writes its first `len()` bytes.
    pub fn write_fixed(
        &self,
        fd: impl IntoOpFd,
        buf: FixedBuf,
        offset: u64,
    ) -> Op<(io::Result<usize>, FixedBuf)> {
        let fd = fd.into_op_fd();
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let entry = ring_io_ops::WriteFixed::new(Fd(fd.raw()), buf.start(), len, buf.index())
            .offset(offset)
            .build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            (res.and_then(|n| at_most(n, len as usize)), buf)
        })
    }

    /// Writes `buf` at `offset` (`u64::MAX`: the file position), like
    /// `pwrite(2)`.
    pub fn write(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        offset: u64,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        self.send_bytes(fd.into_op_fd(), buf, |fd, at, len| {
            ring_io_ops::Write::new(fd, at, len).offset(offset).build()
        })
    }

    /// Reads into the spare capacity of each buffer in turn, like
    /// `preadv(2)`; each length grows by what landed in it.
    pub fn readv(
        &self,
        fd: impl IntoOpFd,
        mut bufs: Vec<Vec<u8>>,
        offset: u64,
    ) -> Op<(io::Result<usize>, Vec<Vec<u8>>)> {
        let fd = fd.into_op_fd();
        let iovecs: Iovecs = bufs
            .iter_mut()
            .map(|b| {
                let spare = b.spare_capacity_mut();
                libc::iovec {
                    iov_base: spare.as_mut_ptr().cast(),
                    iov_len: spare.len(),
                }
            })
            .collect();
        let Some((count, total)) = iovecs.count_and_total() else {
            return self.failed_op(too_many_buffers(), move |res: io::Result<u32>, _| {
                drop(fd);
                (res.map(|n| n as usize), bufs)
            });
        };
        let entry = ring_io_ops::Readv::new(Fd(fd.raw()), iovecs.0.as_ptr().cast(), count)
            .offset(offset)
            .build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, total)).inspect(|&n| {
                let mut left = n;
                for (b, iov) in bufs.iter_mut().zip(&iovecs.0) {
                    let k = left.min(iov.iov_len);
                    // SAFETY: the kernel filled the iovecs in order, `k`
                    // bytes of this one (at most its length), which is this
                    // vector's spare capacity.
                    unsafe { b.set_len(b.len() + k) };
                    left -= k;
                }
            });
            drop(iovecs);
            (res, bufs)
        })
    }

    /// Writes the buffers in turn, like `pwritev(2)`.
    pub fn writev(
        &self,
        fd: impl IntoOpFd,
        bufs: Vec<Vec<u8>>,
        offset: u64,
    ) -> Op<(io::Result<usize>, Vec<Vec<u8>>)> {
        let fd = fd.into_op_fd();
        let iovecs: Iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr().cast_mut().cast(),
                iov_len: b.len(),
            })
            .collect();
        let Some((count, total)) = iovecs.count_and_total() else {
            return self.failed_op(too_many_buffers(), move |res: io::Result<u32>, _| {
                drop(fd);
                (res.map(|n| n as usize), bufs)
            });
        };
        let entry = ring_io_ops::Writev::new(Fd(fd.raw()), iovecs.0.as_ptr().cast(), count)
            .offset(offset)
            .build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            drop(iovecs);
            (res.and_then(|n| at_most(n, total)), bufs)
        })
    }

    /// `fsync(2)`, or `fdatasync(2)` with `datasync`.
    pub fn fsync(&self, fd: impl IntoOpFd, datasync: bool) -> Op<io::Result<()>> {
        let fd = fd.into_op_fd();
        let flags = if datasync {
            FsyncFlags::DATASYNC
        } else {
            FsyncFlags::empty()
        };
        let entry = ring_io_ops::Fsync::new(Fd(fd.raw())).flags(flags).build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res.map(drop))
    }

    /// Opens `path` (relative to the current directory) with `O_*` `flags`
    /// (`O_CLOEXEC` is added) and `mode`, like `openat(2)`.
    pub fn open(&self, path: impl AsRef<Path>, flags: i32, mode: u32) -> Op<io::Result<OwnedFd>> {
        let path = match CString::new(path.as_ref().as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(e) => return self.failed(io::Error::new(io::ErrorKind::InvalidInput, e)),
        };
        let entry = ring_io_ops::OpenAt::new(Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(flags | libc::O_CLOEXEC)
            .mode(mode)
            .build();
        self.op(entry, move |res: io::Result<u32>, _| {
            drop(path);
            // SAFETY: a successful open returns a new fd that nothing owns.
            res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        })
    }

    /// Closes `fd`, like `close(2)`. The op owns `fd` until the kernel has
    /// closed it: dropped before it was submitted, it closes `fd` itself.
    pub fn close(&self, fd: OwnedFd) -> Op<io::Result<()>> {
        let entry = ring_io_ops::Close::new(Fd(fd.as_raw_fd())).build();
        self.op(entry, move |res: io::Result<u32>, _| match res {
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

    /// `statx(2)` of `path` (relative to the current directory) with `AT_*`
    /// `flags` and `STATX_*` `mask`.
    pub fn statx(
        &self,
        path: impl AsRef<Path>,
        flags: i32,
        mask: u32,
    ) -> Op<io::Result<Box<libc::statx>>> {
        let path = match CString::new(path.as_ref().as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(e) => return self.failed(io::Error::new(io::ErrorKind::InvalidInput, e)),
        };
        // SAFETY: `statx` is plain integers, for which zero is valid.
        let mut buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
        let entry =
            ring_io_ops::Statx::new(Fd(libc::AT_FDCWD), path.as_ptr(), (&raw mut *buf).cast())
                .flags(flags)
                .mask(mask)
                .build();
        self.op(entry, move |res: io::Result<u32>, _| {
            drop(path);
            res.map(|_| buf)
        })
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
        let fd_in = fd_in.into_op_fd();
        let fd_out = fd_out.into_op_fd();
        // -1 is "the file position": an offset past i64::MAX must not
        // become it.
        let off = |o: Option<u64>| o.map_or(Some(-1), |o| i64::try_from(o).ok());
        let (Some(at_in), Some(at_out)) = (off(off_in), off(off_out)) else {
            return self.failed_op(
                io::Error::new(io::ErrorKind::InvalidInput, "a splice offset past i64::MAX"),
                move |res: io::Result<u32>, _| {
                    drop((fd_in, fd_out));
                    res.map(|n| n as usize)
                },
            );
        };
        let entry =
            ring_io_ops::Splice::new(Fd(fd_in.raw()), at_in, Fd(fd_out.raw()), at_out, len).build();
        self.op_with(entry, (fd_in, fd_out), move |res: io::Result<u32>, _| {
            res.and_then(|n| at_most(n, len as usize))
        })
    }
}
