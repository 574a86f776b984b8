//! Registration: everything `io_uring_register(2)` does, typed.
//!
//! [`Registrar`] is borrowed from a ring and works from any thread (a ring
//! set up with `IORING_SETUP_REGISTERED_FD_ONLY`: from its own only). Calls
//! that hand the kernel memory it keeps using (buffers) are `unsafe`; the
//! rest are safe: the kernel takes its own references to files and eventfds.
//!
//! This is one of the driver's syscall modules, so it may use `unsafe`: each
//! block passes `io_uring_register` an argument of the type and count its
//! opcode expects, valid for the call.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use ring_io_sys::{
    AsyncCancelFlags, Errno, Features, io_uring_clone_buffers, io_uring_napi, io_uring_restriction,
    io_uring_sync_cancel_reg, restriction_op_flags,
};

use crate::error::{Unsupported, os};
use crate::probe::Probe;
use crate::sys;

/// What a ring may be restricted to (`IORING_REGISTER_RESTRICTIONS`, on a
/// ring set up with `IORING_SETUP_R_DISABLED`, before enabling it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    /// Allow this `io_uring_register` opcode.
    RegisterOp(u8),
    /// Allow this SQE opcode.
    SqeOp(u8),
    /// Allow these SQE flags (`IOSQE_*`).
    SqeFlagsAllowed(u8),
    /// Require these SQE flags on every SQE.
    SqeFlagsRequired(u8),
}

impl Restriction {
    fn raw(self) -> io_uring_restriction {
        let (opcode, value) = match self {
            Restriction::RegisterOp(op) => (ring_io_sys::IORING_RESTRICTION_REGISTER_OP, op),
            Restriction::SqeOp(op) => (ring_io_sys::IORING_RESTRICTION_SQE_OP, op),
            Restriction::SqeFlagsAllowed(f) => {
                (ring_io_sys::IORING_RESTRICTION_SQE_FLAGS_ALLOWED, f)
            }
            Restriction::SqeFlagsRequired(f) => {
                (ring_io_sys::IORING_RESTRICTION_SQE_FLAGS_REQUIRED, f)
            }
        };
        io_uring_restriction {
            opcode,
            op_flags: restriction_op_flags { register_op: value },
            ..Default::default()
        }
    }
}

/// How a synchronous cancel matches requests (`IORING_REGISTER_SYNC_CANCEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelTarget {
    /// Requests with this `user_data`.
    UserData(u64),
    /// Requests on this file descriptor.
    Fd(RawFd),
    /// Requests on this fixed (registered) file.
    FixedFd(u32),
    /// Every request.
    Any,
}

/// Registration on a ring, from any thread.
///
/// ```
/// use std::os::fd::AsFd;
/// use ring_io_driver::Ring;
///
/// let ring = Ring::new(8)?;
/// let reg = ring.registrar();
/// let probe = reg.probe()?;
/// assert!(probe.supports(ring_io_sys::IORING_OP_NOP));
/// reg.register_files_sparse(16)?;
/// let stdin = std::io::stdin();
/// reg.register_files_update(0, &[Some(stdin.as_fd())])?; // into slot 0
/// reg.unregister_files()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A ring set up with `IORING_SETUP_REGISTERED_FD_ONLY` has no fd, only an
/// index in the table of the thread that set it up: its registrar works on
/// that thread only, and refuses (without calling the kernel, where the same
/// index may name another thread's ring) on any other.
#[derive(Debug, Clone, Copy)]
pub struct Registrar<'r> {
    ring: &'r sys::RingFd,
    features: Features,
}

impl<'r> Registrar<'r> {
    pub(crate) fn new(ring: &'r sys::RingFd, features: Features) -> Self {
        Self { ring, features }
    }

    /// The error of a call the kernel refused with `e`, or, if it was
    /// refused here because the ring has no name on this thread, why.
    fn os(&self, e: Errno) -> io::Error {
        if e == sys::NOT_HERE && !self.ring.usable_here() {
            return not_here();
        }
        os(e)
    }

    fn unsupported(&self, what: &'static str, needs: (u16, u16)) -> io::Error {
        Unsupported {
            what,
            needs: Some(needs),
            kernel: crate::kernel_version(),
        }
        .into()
    }

    /// Maps `EINVAL` (an unknown register opcode) to [`Unsupported`] when the
    /// kernel is older than the opcode.
    fn explain(&self, e: Errno, what: &'static str, needs: (u16, u16)) -> io::Error {
        let old = crate::kernel_version().is_some_and(|v| !v.at_least(needs.0, needs.1));
        if e == Errno::EINVAL && old {
            self.unsupported(what, needs)
        } else {
            self.os(e)
        }
    }

    /// The opcodes the kernel supports (`IORING_REGISTER_PROBE`, 5.6).
    pub fn probe(&self) -> io::Result<Probe> {
        Probe::new(self.ring).map_err(|e| self.explain(e, "IORING_REGISTER_PROBE", (5, 6)))
    }

    /// A [`BufRing`](crate::BufRing) registered with this ring as group
    /// `bgid` (`entries` buffers of `buf_len` bytes), as
    /// [`BufRing::new`](crate::BufRing::new) makes one, for a ring with or
    /// without an fd: a ring set up with `IORING_SETUP_REGISTERED_FD_ONLY`
    /// (6.5) is named through its index in this thread's table, where the
    /// ring was set up (on another thread the call is refused).
    ///
    /// ```
    /// use ring_io_driver::Builder;
    ///
    /// // A ring without an fd, where the kernel has them.
    /// let Ok(ring) = Builder::new(8).registered_fd_only().build() else {
    ///     return Ok(()); // before 6.5
    /// };
    /// // SAFETY: no request selects from group 3 while `bufs` lives.
    /// match unsafe { ring.registrar().buf_ring(3, 4, 64) } {
    ///     Ok(bufs) => assert_eq!((bufs.bgid(), bufs.buf_len()), (3, 64)),
    ///     Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {} // before 5.19
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// As [`BufRing::new`](crate::BufRing::new): when the returned value is
    /// dropped, no request that selects a buffer from group `bgid` is in
    /// flight on this ring. And, for a ring without an fd, the value is
    /// dropped before the ring (whose index may then name another ring of
    /// this thread, whose group `bgid` the drop would unregister); dropped
    /// on another thread, it cannot unregister the group and leaks its
    /// memory rather than free it under the kernel.
    pub unsafe fn buf_ring(
        &self,
        bgid: u16,
        entries: u32,
        buf_len: u32,
    ) -> io::Result<crate::BufRing> {
        // SAFETY: forwarded to the caller's contract.
        unsafe { crate::BufRing::on_ring(self.ring, bgid, entries, buf_len) }
    }

    /// Registers fixed buffers (`IORING_REGISTER_BUFFERS`, 5.1).
    ///
    /// # Safety
    ///
    /// The kernel pins the buffers' pages and reads and writes them for
    /// every fixed-buffer request, for as long as any ring holds them. So
    /// the memory of every buffer must not be freed, reused in place (handed
    /// back to an allocator), or accessed in ways that race with that I/O
    /// until all of these hold: it has been unregistered from this ring
    /// ([`unregister_buffers`](Self::unregister_buffers), a replacing
    /// update) and from every ring it was cloned into
    /// ([`clone_buffers_from`](Self::clone_buffers_from)), and every request
    /// that used it has completed. Dropping a ring is not enough: the kernel
    /// tears a ring down after the drop returns, and requests in flight then
    /// keep using the buffers until they are cancelled; after such a drop
    /// the memory may only be unmapped (the kernel keeps its own page
    /// references), never reused in place.
    pub unsafe fn register_buffers(&self, bufs: &[libc::iovec]) -> io::Result<()> {
        // SAFETY: the caller keeps the buffers alive while registered.
        unsafe {
            self.ring.register(
                ring_io_sys::IORING_REGISTER_BUFFERS,
                bufs.as_ptr(),
                len(bufs.len())?,
            )
        }
        .map(drop)
        .map_err(|e| self.os(e))
    }

    /// Registers fixed buffers with tags (`IORING_REGISTER_BUFFERS2`, 5.13):
    /// when a tagged buffer is later replaced or unregistered, a CQE with
    /// `user_data` = its tag is posted once the kernel no longer uses it.
    ///
    /// # Safety
    ///
    /// As for [`register_buffers`](Self::register_buffers).
    pub unsafe fn register_buffers_tags(
        &self,
        bufs: &[libc::iovec],
        tags: &[u64],
    ) -> io::Result<()> {
        if bufs.len() != tags.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "one tag per buffer",
            ));
        }
        let reg = ring_io_sys::io_uring_rsrc_register {
            nr: len(bufs.len())?,
            data: bufs.as_ptr() as u64,
            tags: tags.as_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: `reg` describes slices valid for the call; the caller keeps
        // the buffer memory alive while registered.
        unsafe {
            self.ring.register(
                ring_io_sys::IORING_REGISTER_BUFFERS2,
                &reg,
                size_of_val(&reg) as u32,
            )
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_REGISTER_BUFFERS2", (5, 13)))
    }

    /// Registers `nr` empty buffer slots (`IORING_RSRC_REGISTER_SPARSE`, 5.19),
    /// to be filled with [`register_buffers_update`](Self::register_buffers_update).
    pub fn register_buffers_sparse(&self, nr: u32) -> io::Result<()> {
        let reg = ring_io_sys::io_uring_rsrc_register {
            nr,
            flags: ring_io_sys::IORING_RSRC_REGISTER_SPARSE,
            ..Default::default()
        };
        // SAFETY: a sparse registration carries no pointers.
        unsafe {
            self.ring.register(
                ring_io_sys::IORING_REGISTER_BUFFERS2,
                &reg,
                size_of_val(&reg) as u32,
            )
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_RSRC_REGISTER_SPARSE", (5, 19)))
    }

    /// Replaces registered buffers from slot `offset` on
    /// (`IORING_REGISTER_BUFFERS_UPDATE`, 5.13); `tags` may be empty.
    ///
    /// # Safety
    ///
    /// As for [`register_buffers`](Self::register_buffers).
    pub unsafe fn register_buffers_update(
        &self,
        offset: u32,
        bufs: &[libc::iovec],
        tags: &[u64],
    ) -> io::Result<()> {
        if !tags.is_empty() && tags.len() != bufs.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "one tag per buffer, or none",
            ));
        }
        let up = ring_io_sys::io_uring_rsrc_update2 {
            offset,
            data: bufs.as_ptr() as u64,
            tags: if tags.is_empty() {
                0
            } else {
                tags.as_ptr() as u64
            },
            nr: len(bufs.len())?,
            ..Default::default()
        };
        // SAFETY: `up` describes slices valid for the call; the caller keeps
        // the buffers alive while registered.
        unsafe {
            self.ring.register(
                ring_io_sys::IORING_REGISTER_BUFFERS_UPDATE,
                &up,
                size_of_val(&up) as u32,
            )
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_REGISTER_BUFFERS_UPDATE", (5, 13)))
    }

    /// Unregisters all fixed buffers (`IORING_UNREGISTER_BUFFERS`).
    pub fn unregister_buffers(&self) -> io::Result<()> {
        self.no_arg(ring_io_sys::IORING_UNREGISTER_BUFFERS)
    }

    /// Clones the registered buffers of the ring of `src` into this one
    /// (`IORING_REGISTER_CLONE_BUFFERS`, 6.12); `replace` drops buffers this
    /// ring already has (`IORING_REGISTER_DST_REPLACE`, 6.13). A source
    /// ring without an fd (`REGISTERED_FD_ONLY`) is named by its index, on
    /// its own thread only.
    ///
    /// Not from safe code:
    ///
    /// ```compile_fail,E0133
    /// let (src, dst) = (ring_io_driver::Ring::new(4)?, ring_io_driver::Ring::new(4)?);
    /// dst.registrar().clone_buffers_from(&src.registrar(), false)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// This ring takes its own references to the source's buffers: they
    /// stay in use here after the source unregisters them or is dropped. The
    /// contract of [`register_buffers`](Self::register_buffers) under which
    /// they were registered must therefore hold for this ring too: their
    /// memory is not freed or reused in place until they are unregistered
    /// from this ring as well and no request of this ring uses them.
    pub unsafe fn clone_buffers_from(&self, src: &Registrar<'_>, replace: bool) -> io::Result<()> {
        // Kernels before 6.13 ignore the flag and fail with EBUSY: say why.
        if replace && crate::kernel_version().is_some_and(|v| !v.at_least(6, 13)) {
            return Err(self.unsupported("IORING_REGISTER_DST_REPLACE", (6, 13)));
        }
        let (src_fd, src_flag) = src.ring.clone_source().map_err(|e| src.os(e))?;
        let arg = io_uring_clone_buffers {
            src_fd,
            flags: src_flag
                | if replace {
                    ring_io_sys::IORING_REGISTER_DST_REPLACE
                } else {
                    0
                },
            ..Default::default()
        };
        // SAFETY: `arg` is valid for the call and carries no pointers; the
        // caller extends the buffers' contract to this ring.
        unsafe {
            self.ring
                .register(ring_io_sys::IORING_REGISTER_CLONE_BUFFERS, &arg, 1)
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_REGISTER_CLONE_BUFFERS", (6, 12)))
    }

    /// Registers fixed files (`IORING_REGISTER_FILES`, 5.1): slot `i` gets
    /// the file `fds[i]` names (the kernel takes its own reference, so the
    /// fd may be closed afterwards), `None` leaves it empty. Raises
    /// `RLIMIT_NOFILE` once and retries on `EMFILE`, as liburing does.
    ///
    /// The fds are borrowed, not raw numbers: a number the caller does not
    /// own could name another part of the program's file (I/O safety),
    /// which the ring would then read and write.
    pub fn register_files(&self, fds: &[Option<BorrowedFd<'_>>]) -> io::Result<()> {
        let fds = raw_fds(fds);
        let nr = len(fds.len())?;
        self.retry_emfile(nr, || {
            // SAFETY: `fds` is valid for the call; the kernel takes its own
            // references to the files.
            unsafe {
                self.ring
                    .register(ring_io_sys::IORING_REGISTER_FILES, fds.as_ptr(), nr)
            }
        })
    }

    /// Registers `nr` empty file slots (`IORING_RSRC_REGISTER_SPARSE`, 5.19).
    pub fn register_files_sparse(&self, nr: u32) -> io::Result<()> {
        let reg = ring_io_sys::io_uring_rsrc_register {
            nr,
            flags: ring_io_sys::IORING_RSRC_REGISTER_SPARSE,
            ..Default::default()
        };
        self.retry_emfile(nr, || {
            // SAFETY: a sparse registration carries no pointers.
            unsafe {
                self.ring.register(
                    ring_io_sys::IORING_REGISTER_FILES2,
                    &reg,
                    size_of_val(&reg) as u32,
                )
            }
        })
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => {
                self.explain(Errno::EINVAL, "IORING_RSRC_REGISTER_SPARSE", (5, 19))
            }
            _ => e,
        })
    }

    /// Replaces fixed files from slot `offset` on (`IORING_REGISTER_FILES_UPDATE`,
    /// 5.5): slot `offset + i` gets the file `fds[i]` names, or is emptied
    /// by `None`. (To leave slots as they are, update the ranges around
    /// them in separate calls.) Returns how many slots were updated.
    pub fn register_files_update(
        &self,
        offset: u32,
        fds: &[Option<BorrowedFd<'_>>],
    ) -> io::Result<u32> {
        let fds = raw_fds(fds);
        let up = ring_io_sys::io_uring_files_update {
            offset,
            fds: fds.as_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: `up` points at `fds`, valid for the call.
        unsafe {
            self.ring.register(
                ring_io_sys::IORING_REGISTER_FILES_UPDATE,
                &up,
                len(fds.len())?,
            )
        }
        .map_err(|e| self.os(e))
    }

    /// Unregisters all fixed files.
    pub fn unregister_files(&self) -> io::Result<()> {
        self.no_arg(ring_io_sys::IORING_UNREGISTER_FILES)
    }

    /// Restricts automatic fixed-file allocation (`IORING_FILE_INDEX_ALLOC`)
    /// to slots `[offset, offset + len)` (`IORING_REGISTER_FILE_ALLOC_RANGE`, 6.0).
    pub fn register_file_alloc_range(&self, offset: u32, len: u32) -> io::Result<()> {
        let range = ring_io_sys::io_uring_file_index_range {
            off: offset,
            len,
            resv: 0,
        };
        // SAFETY: `range` is valid for the call.
        unsafe {
            self.ring
                .register(ring_io_sys::IORING_REGISTER_FILE_ALLOC_RANGE, &range, 0)
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_REGISTER_FILE_ALLOC_RANGE", (6, 0)))
    }

    /// Signals `eventfd` on every completion (`IORING_REGISTER_EVENTFD`, 5.2),
    /// or with `async_only` only on completions that did not complete inline
    /// (`IORING_REGISTER_EVENTFD_ASYNC`, 5.6). The kernel takes its own
    /// reference to the eventfd, which may be closed afterwards.
    pub fn register_eventfd(&self, eventfd: impl AsFd, async_only: bool) -> io::Result<()> {
        let eventfd: RawFd = eventfd.as_fd().as_raw_fd();
        let op = if async_only {
            ring_io_sys::IORING_REGISTER_EVENTFD_ASYNC
        } else {
            ring_io_sys::IORING_REGISTER_EVENTFD
        };
        // SAFETY: one fd, valid for the call; the kernel takes a reference.
        unsafe { self.ring.register(op, &eventfd, 1) }
            .map(drop)
            .map_err(|e| self.os(e))
    }

    /// Removes the eventfd.
    pub fn unregister_eventfd(&self) -> io::Result<()> {
        self.no_arg(ring_io_sys::IORING_UNREGISTER_EVENTFD)
    }

    /// Registers the calling thread's credentials; SQEs whose `personality`
    /// is the returned id run with them (`IORING_REGISTER_PERSONALITY`, 5.6).
    pub fn register_personality(&self) -> io::Result<u16> {
        // SAFETY: no argument.
        unsafe {
            self.ring.register::<()>(
                ring_io_sys::IORING_REGISTER_PERSONALITY,
                std::ptr::null(),
                0,
            )
        }
        .map(|id| id as u16)
        .map_err(|e| self.os(e))
    }

    /// Unregisters a personality id.
    pub fn unregister_personality(&self, id: u16) -> io::Result<()> {
        // SAFETY: no pointer; the id travels in `nr_args`.
        unsafe {
            self.ring.register::<()>(
                ring_io_sys::IORING_UNREGISTER_PERSONALITY,
                std::ptr::null(),
                u32::from(id),
            )
        }
        .map(drop)
        .map_err(|e| self.os(e))
    }

    /// Restricts a ring set up with `IORING_SETUP_R_DISABLED`
    /// (`IORING_REGISTER_RESTRICTIONS`, 5.10). Call before
    /// [`enable_rings`](Self::enable_rings).
    pub fn register_restrictions(&self, restrictions: &[Restriction]) -> io::Result<()> {
        let raw: Vec<io_uring_restriction> = restrictions.iter().map(|r| r.raw()).collect();
        // SAFETY: `raw` is valid for the call.
        unsafe {
            self.ring.register(
                ring_io_sys::IORING_REGISTER_RESTRICTIONS,
                raw.as_ptr(),
                len(raw.len())?,
            )
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_REGISTER_RESTRICTIONS", (5, 10)))
    }

    /// Enables a ring set up with `IORING_SETUP_R_DISABLED`
    /// (`IORING_REGISTER_ENABLE_RINGS`, 5.10).
    pub fn enable_rings(&self) -> io::Result<()> {
        // SAFETY: no argument.
        unsafe {
            self.ring.register::<()>(
                ring_io_sys::IORING_REGISTER_ENABLE_RINGS,
                std::ptr::null(),
                0,
            )
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_REGISTER_ENABLE_RINGS", (5, 10)))
    }

    /// Sets the CPU affinity of the ring's async workers
    /// (`IORING_REGISTER_IOWQ_AFF`, 5.14): `cpus` is a bit mask, bit `n` of
    /// word `n / 64` for CPU `n`.
    pub fn register_iowq_affinity(&self, cpus: &[u64]) -> io::Result<()> {
        // SAFETY: `cpus` is valid for the call; nr_args is its size in bytes.
        unsafe {
            self.ring.register(
                ring_io_sys::IORING_REGISTER_IOWQ_AFF,
                cpus.as_ptr(),
                len(size_of_val(cpus))?,
            )
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_REGISTER_IOWQ_AFF", (5, 14)))
    }

    /// Clears the async workers' CPU affinity.
    pub fn unregister_iowq_affinity(&self) -> io::Result<()> {
        self.no_arg(ring_io_sys::IORING_UNREGISTER_IOWQ_AFF)
    }

    /// Sets the maximum number of `[bounded, unbounded]` async workers (0
    /// leaves a value unchanged) and returns the previous limits
    /// (`IORING_REGISTER_IOWQ_MAX_WORKERS`, 5.15).
    pub fn register_iowq_max_workers(&self, max: [u32; 2]) -> io::Result<[u32; 2]> {
        let mut values = max;
        // SAFETY: two u32s, valid and writable for the call.
        unsafe {
            self.ring.register(
                ring_io_sys::IORING_REGISTER_IOWQ_MAX_WORKERS,
                &raw mut values,
                2,
            )
        }
        .map_err(|e| self.explain(e, "IORING_REGISTER_IOWQ_MAX_WORKERS", (5, 15)))?;
        Ok(values)
    }

    /// Cancels matching requests and waits for them (up to `timeout`, or
    /// forever with `None`) (`IORING_REGISTER_SYNC_CANCEL`, 6.0). With `all`,
    /// every match is cancelled, not just the first, and the count is
    /// returned (0 if none matched); without it, a request that matches
    /// nothing fails with `ENOENT`.
    pub fn cancel_sync(
        &self,
        target: CancelTarget,
        all: bool,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<u32> {
        let mut reg = io_uring_sync_cancel_reg {
            timeout: match timeout {
                // Saturated at 2^32 s: a cast would make Duration::MAX
                // negative (EINVAL), and i64::MAX seconds overflows the
                // kernel's clock when it adds the time now (ktime_add_ns in
                // io_sync_cancel): a deadline in the past.
                Some(t) => crate::kernel::timespec(t),
                None => ring_io_sys::__kernel_timespec {
                    tv_sec: -1,
                    tv_nsec: -1,
                },
            },
            ..Default::default()
        };
        let mut flags = if all {
            AsyncCancelFlags::ALL
        } else {
            AsyncCancelFlags::empty()
        };
        match target {
            CancelTarget::UserData(ud) => reg.addr = ud,
            CancelTarget::Fd(fd) => {
                reg.fd = fd;
                flags |= AsyncCancelFlags::FD;
            }
            CancelTarget::FixedFd(slot) => {
                reg.fd = i32::try_from(slot).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a fixed file slot above i32::MAX does not exist",
                    )
                })?;
                flags |= AsyncCancelFlags::FD | AsyncCancelFlags::FD_FIXED;
            }
            CancelTarget::Any => flags |= AsyncCancelFlags::ANY,
        }
        reg.flags = flags.bits();
        // SAFETY: `reg` is valid for the call.
        unsafe {
            self.ring
                .register(ring_io_sys::IORING_REGISTER_SYNC_CANCEL, &reg, 1)
        }
        .map_err(|e| self.explain(e, "IORING_REGISTER_SYNC_CANCEL", (6, 0)))
    }

    /// Enables NAPI busy polling for the ring's sockets
    /// (`IORING_REGISTER_NAPI`, 6.9): poll for `busy_poll_us` microseconds,
    /// preferring busy polling over interrupts if `prefer`.
    pub fn register_napi(&self, busy_poll_us: u32, prefer: bool) -> io::Result<()> {
        let mut napi = io_uring_napi {
            busy_poll_to: busy_poll_us,
            prefer_busy_poll: u8::from(prefer),
            ..Default::default()
        };
        // SAFETY: `napi` is valid and writable for the call.
        unsafe {
            self.ring
                .register(ring_io_sys::IORING_REGISTER_NAPI, &raw mut napi, 1)
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_REGISTER_NAPI", (6, 9)))
    }

    /// Disables NAPI busy polling.
    pub fn unregister_napi(&self) -> io::Result<()> {
        let mut napi = io_uring_napi::default();
        // SAFETY: `napi` is valid and writable for the call.
        unsafe {
            self.ring
                .register(ring_io_sys::IORING_UNREGISTER_NAPI, &raw mut napi, 1)
        }
        .map(drop)
        .map_err(|e| self.explain(e, "IORING_UNREGISTER_NAPI", (6, 9)))
    }

    /// True if the ring can register its fd (5.18) and use it for
    /// `io_uring_register` as well (`IORING_FEAT_REG_REG_RING`, 6.3).
    pub fn can_register_ring_fd(&self) -> bool {
        self.features.contains(Features::REG_REG_RING)
    }

    /// A register opcode that takes no argument.
    fn no_arg(&self, opcode: u32) -> io::Result<()> {
        // SAFETY: the opcodes passed here take no argument (null, 0).
        unsafe { self.ring.register::<()>(opcode, std::ptr::null(), 0) }
            .map(drop)
            .map_err(|e| self.os(e))
    }

    fn retry_emfile(
        &self,
        nr: u32,
        mut call: impl FnMut() -> Result<u32, Errno>,
    ) -> io::Result<()> {
        match call() {
            Ok(_) => Ok(()),
            Err(Errno::EMFILE) => {
                raise_nofile_limit(nr);
                call().map(drop).map_err(|e| self.os(e))
            }
            Err(e) => Err(self.os(e)),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` by `nr` (up to the hard limit), as
/// liburing does before retrying a file registration that hit `EMFILE`.
fn raise_nofile_limit(nr: u32) {
    sys::raise_nofile_limit(u64::from(nr));
}

/// Why a call on a `REGISTERED_FD_ONLY` ring from another thread is refused.
pub(crate) fn not_here() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "this ring was set up with IORING_SETUP_REGISTERED_FD_ONLY: it has no fd, only an index \
         in the registered-ring table of the thread that set it up, so it can be used on that \
         thread only",
    )
}

fn len(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many entries for one registration",
        )
    })
}

/// The fd numbers of a file table for the kernel: `-1` for an empty slot.
fn raw_fds(fds: &[Option<BorrowedFd<'_>>]) -> Vec<RawFd> {
    fds.iter()
        .map(|fd| fd.map_or(-1, |fd| fd.as_raw_fd()))
        .collect()
}
