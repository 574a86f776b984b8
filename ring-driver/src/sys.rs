//! The driver's unsafe floor: memory mappings and the raw syscalls, behind
//! safe interfaces whose preconditions are checked here.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

/// A shared, read-write memory mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
    /// False for memory the caller lent (never unmapped here).
    owned: bool,
}

// SAFETY: a mapping is plain memory; who may touch which bytes when is
// decided by the ring protocol (ring-core) and enforced by the types above.
unsafe impl Send for Mmap {}
// SAFETY: as above; shared access goes through atomics or through slots the
// protocol gave to exactly one owner.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes of the io_uring fd `fd` at the kernel's magic `offset`.
    pub(crate) fn map_ring(fd: RawFd, offset: u64, len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh shared mapping of a file the kernel sized; no
        // existing memory is affected. The result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset as libc::off_t,
            )
        };
        Self::from_raw(ptr, len)
    }

    /// Maps `len` bytes of zeroed anonymous memory (for `IORING_SETUP_NO_MMAP`
    /// rings and provided-buffer rings), page aligned.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::from_raw(ptr, len)
    }

    fn from_raw(ptr: *mut c_void, len: usize) -> io::Result<Mmap> {
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mmap {
            ptr,
            len,
            owned: true,
        })
    }

    /// Memory the caller provides and keeps valid (never unmapped here).
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes, used for
    /// nothing else, until this value (and every ring built on it) is dropped.
    pub(crate) unsafe fn lent(ptr: NonNull<u8>, len: usize) -> Mmap {
        Mmap {
            ptr,
            len,
            owned: false,
        }
    }

    /// Start of the mapping.
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Checks that `count` values of `T` fit at byte `offset`, aligned.
    pub(crate) fn check<T>(&self, offset: u32, count: usize) -> io::Result<()> {
        let offset = offset as usize;
        let end = count
            .checked_mul(size_of::<T>())
            .and_then(|bytes| bytes.checked_add(offset));
        let aligned = (self.base() as usize + offset) % align_of::<T>() == 0;
        match end {
            Some(end) if end <= self.len && aligned => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the kernel's ring offset {offset} (x{count} of {} bytes) does not fit a {}-byte mapping",
                    size_of::<T>(),
                    self.len
                ),
            )),
        }
    }

    /// The `u32` at byte `offset` as an atomic.
    ///
    /// Panics if it does not fit; callers validate offsets once with
    /// [`Mmap::check`] when the ring is set up.
    pub(crate) fn atomic_u32(&self, offset: u32) -> &AtomicU32 {
        self.check::<AtomicU32>(offset, 1)
            .expect("ring offset validated at setup");
        // SAFETY: in bounds and aligned (checked above); the mapping lives as
        // long as `self`; the kernel accesses these words atomically too.
        unsafe { &*self.base().add(offset as usize).cast::<AtomicU32>() }
    }

    /// A raw pointer to `T` at byte `offset`, after a bounds check.
    pub(crate) fn ptr<T>(&self, offset: u32, count: usize) -> io::Result<NonNull<T>> {
        self.check::<T>(offset, count)?;
        // SAFETY: in bounds (checked above), so the add stays inside the mapping.
        let p = unsafe { self.base().add(offset as usize) }.cast::<T>();
        Ok(NonNull::new(p).expect("inside a non-null mapping"))
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: unmapping exactly what `mmap` returned; nothing
            // borrowed from `self` outlives it.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// `io_uring_setup(2)`, with the params checked by type.
pub(crate) fn setup(
    entries: u32,
    params: &mut ring_sys::io_uring_params,
) -> Result<RawFd, ring_sys::Errno> {
    // SAFETY: `params` is a valid, exclusive io_uring_params. For NO_MMAP the
    // caller (the builder) put live, owned mappings in `user_addr`.
    unsafe { ring_sys::io_uring_setup(entries, params) }
}

/// `io_uring_register(2)` with an argument slice.
///
/// # Safety
///
/// `arg` must be what `opcode` expects, and anything it points to must stay
/// valid as long as the kernel may use it (for buffers: until unregistered).
pub(crate) unsafe fn register<T>(
    fd: RawFd,
    opcode: u32,
    arg: *const T,
    nr_args: u32,
) -> Result<u32, ring_sys::Errno> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { ring_sys::io_uring_register(fd, opcode, arg.cast::<c_void>(), nr_args) }
}

/// What `IORING_REGISTER_PROBE` fills in: the header and room for every opcode.
#[repr(C)]
pub(crate) struct ProbeBuf {
    pub(crate) head: ring_sys::io_uring_probe,
    pub(crate) ops: [ring_sys::io_uring_probe_op; 256],
}

/// `IORING_REGISTER_PROBE` on the ring `fd`.
pub(crate) fn probe(fd: RawFd) -> Result<ProbeBuf, ring_sys::Errno> {
    let mut buf = ProbeBuf {
        head: ring_sys::io_uring_probe::default(),
        ops: [ring_sys::io_uring_probe_op::default(); 256],
    };
    // SAFETY: `buf` has room for the 256 entries `nr_args` announces and
    // outlives the call; the kernel writes only inside it.
    unsafe { register(fd, ring_sys::IORING_REGISTER_PROBE, &raw mut buf, 256) }?;
    Ok(buf)
}

/// `IORING_REGISTER_QUERY` for `IO_URING_QUERY_OPCODES` (Linux 6.18+), or
/// `None` on kernels without it.
pub(crate) fn query_opcodes() -> Option<ring_sys::io_uring_query_opcode> {
    let mut out = ring_sys::io_uring_query_opcode::default();
    let mut hdr = ring_sys::io_uring_query_hdr {
        query_data: (&raw mut out) as u64,
        query_op: ring_sys::IO_URING_QUERY_OPCODES,
        size: size_of::<ring_sys::io_uring_query_opcode>() as u32,
        ..Default::default()
    };
    // SAFETY: `hdr` points at `out`; both outlive the call. No ring is used.
    let res = unsafe { register(-1, ring_sys::IORING_REGISTER_QUERY, &raw mut hdr, 0) };
    (res.is_ok() && hdr.result == 0).then_some(out)
}

/// `IORING_REGISTER_RING_FDS` of the ring's own fd in the calling thread's
/// table; returns the index.
pub(crate) fn register_ring_fd(fd: RawFd) -> Result<u32, ring_sys::Errno> {
    let mut up = ring_sys::io_uring_rsrc_update {
        offset: u32::MAX,
        data: fd as u64,
        ..Default::default()
    };
    // SAFETY: one update, valid and writable for the call.
    let n = unsafe { register(fd, ring_sys::IORING_REGISTER_RING_FDS, &raw mut up, 1) }?;
    if n == 1 {
        Ok(up.offset)
    } else {
        Err(ring_sys::Errno::EINVAL)
    }
}

/// `IORING_UNREGISTER_RING_FDS` of `index` from the calling thread's table.
pub(crate) fn unregister_ring_fd(fd: RawFd, index: u32) {
    let up = ring_sys::io_uring_rsrc_update {
        offset: index,
        ..Default::default()
    };
    // SAFETY: one update, valid for the call. A failure leaves the entry,
    // which the kernel drops when the thread exits.
    let _ = unsafe { register(fd, ring_sys::IORING_UNREGISTER_RING_FDS, &raw const up, 1) };
}

/// Raises the soft `RLIMIT_NOFILE` by `by`, up to the hard limit.
pub(crate) fn raise_nofile_limit(by: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid and writable.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    lim.rlim_cur = lim.rlim_cur.saturating_add(by).min(lim.rlim_max);
    // SAFETY: `lim` is valid; a failure leaves the limit as it was.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

/// Duplicates `fd` (close-on-exec).
pub(crate) fn dup(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd the caller holds; the result is checked.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(new)
    }
}

/// Closes an fd this crate owns.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: callers pass an fd they own and never use again.
    unsafe { libc::close(fd) };
}

/// `uname(2)`'s release string.
pub(crate) fn kernel_release() -> String {
    // SAFETY: all-zero is a valid `utsname`.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is valid and writable.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::from("unknown");
    }
    // SAFETY: uname NUL-terminates `release` within the array.
    unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
