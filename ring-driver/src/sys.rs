//! The driver's unsafe floor: memory mappings and the raw syscalls, behind
//! safe interfaces whose preconditions are checked here.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::c_void;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ring_io_sys::{EnterFlags, Errno, SetupFlags};

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
    pub(crate) fn map_ring(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh shared mapping of a file the kernel sized; no
        // existing memory is affected. The result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        Self::from_raw(ptr, len)
    }

    /// Maps `len` bytes of zeroed anonymous memory (for `IORING_SETUP_NO_MMAP`
    /// rings and provided-buffer rings), page aligned, its pages made at
    /// once. Dropping it unmaps it (never frees it for reuse in place): the
    /// kernel may write a ring's memory after the ring is dropped, into
    /// pages it holds references to, which no mapping shows once this one
    /// is gone.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mmap> {
        Self::anonymous_with(len, libc::MAP_POPULATE)
    }

    /// [`anonymous`](Mmap::anonymous) without making its pages: each is
    /// made when first written (by the kernel too: its copies to user
    /// memory fault pages in). For provided buffers, which may be many and
    /// large, and of which a receive touches only what it fills: memory is
    /// committed as data arrives, not for the whole group at once.
    pub(crate) fn anonymous_lazy(len: usize) -> io::Result<Mmap> {
        Self::anonymous_with(len, 0)
    }

    fn anonymous_with(len: usize, flags: libc::c_int) -> io::Result<Mmap> {
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
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

    /// Memory the caller provides (never unmapped here).
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes, private
    /// anonymous memory, and given to the one ring built on it for good: as
    /// [`Builder::no_mmap_memory`](crate::Builder::no_mmap_memory) says, never
    /// reused in place, even after the ring is dropped (the kernel may still
    /// write it then).
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

/// `io_uring_setup(2)`, with the params checked by type. What the kernel
/// returns is typed by the flags asked for: with
/// `IORING_SETUP_REGISTERED_FD_ONLY` an index in the calling thread's
/// registered-ring table, otherwise a file descriptor, owned from here on.
pub(crate) fn setup(
    entries: u32,
    params: &mut ring_io_sys::io_uring_params,
) -> Result<RingFd, Errno> {
    // Decided from the flags passed in (the kernel decides from those too).
    let index_only =
        SetupFlags::from_bits_retain(params.flags).contains(SetupFlags::REGISTERED_FD_ONLY);
    // SAFETY: `params` is a valid, exclusive io_uring_params. For NO_MMAP the
    // caller (the builder) put live mappings it gives to the ring in
    // `user_addr`.
    let n = unsafe { ring_io_sys::io_uring_setup(entries, params) }?;
    if index_only {
        let index = u32::try_from(n).map_err(|_| Errno::EINVAL)?;
        Ok(RingFd::IndexOnly(Registered::here(index)))
    } else {
        // SAFETY: a new fd the kernel just installed for this ring; nothing
        // else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(n) };
        Ok(RingFd::Owned {
            fd,
            registered: None,
        })
    }
}

thread_local!(static TAG: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

/// An id of the calling thread for the registered-ring table, which is per
/// thread (`current->io_uring->registered_rings`): never reused within the
/// process (unlike a tid), and renewed in the child of a `fork`, whose table
/// starts empty.
#[inline]
pub(crate) fn thread_tag() -> u64 {
    TAG.with(|tag| {
        if tag.get() == 0 {
            tag.set(NEXT_TAG.fetch_add(1, Ordering::Relaxed));
        }
        tag.get()
    })
}

/// Makes `fork` give the child's thread a new tag: the child's task has no
/// registered rings, so an index the parent registered names nothing there,
/// or a ring the child registers later.
fn renew_tag_on_fork() {
    extern "C" fn child() {
        // The forking thread is the child's only thread. A write to a
        // const-initialised thread local without destructor: no allocation,
        // no lock, fine between fork and exec. The next `thread_tag` takes a
        // number above every tag the parent handed out.
        let _ = TAG.try_with(|tag| tag.set(0));
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only writes a thread local; it
        // stays valid for the life of the process (a plain function).
        unsafe { libc::pthread_atfork(None, None, Some(child)) };
    });
}

/// A ring's index in one thread's registered-ring table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registered {
    thread: u64,
    /// The index (low 8 bits; the kernel's are below 16) and a lease (the
    /// rest), in one word (a `Registered` stays two words). Lease 0: the
    /// ring's own
    /// registration (at setup, or by the builder), which the ring
    /// unregisters when it drops. Otherwise a [`ThreadRegistration`]'s:
    /// the index names this ring only while the calling thread's
    /// [`LEASES`] entry for it holds this lease (the registration is
    /// alive), and the ring never unregisters it.
    word: u64,
}

thread_local! {
    /// For each slot of this thread's registered-ring table, the lease of
    /// the live [`ThreadRegistration`] that holds it (0: none).
    static LEASES: [Cell<u64>; MAX_REGISTERED] = const { [const { Cell::new(0) }; MAX_REGISTERED] };
}

/// Slots in a thread's registered-ring table (the kernel's
/// `IO_RINGFD_REG_MAX`).
const MAX_REGISTERED: usize = 16;

/// Numbers of [`ThreadRegistration`] leases, never reused (0 is none).
static NEXT_LEASE: AtomicU64 = AtomicU64::new(1);

impl Registered {
    /// `index`, registered by the calling thread.
    fn here(index: u32) -> Registered {
        Registered::leased(index, 0)
    }

    /// `index`, registered by the calling thread for `lease`.
    fn leased(index: u32, lease: u64) -> Registered {
        renew_tag_on_fork();
        Registered {
            thread: thread_tag(),
            word: (lease << 8) | u64::from(index & 0xff),
        }
    }

    /// The index in the thread's table.
    #[inline]
    fn index(&self) -> u32 {
        (self.word & 0xff) as u32
    }

    /// The lease (0: the ring's own registration).
    #[inline]
    fn lease(&self) -> u64 {
        self.word >> 8
    }

    /// True on the thread whose table holds the index, while it holds it
    /// for this ring (a lease whose registration was dropped names nothing).
    #[inline]
    pub(crate) fn is_here(&self) -> bool {
        self.thread == thread_tag() && (self.lease() == 0 || self.lease_live())
    }

    /// The lease's registration is alive (on the calling thread, whose
    /// table it is in: checked by the caller).
    #[inline(always)]
    fn lease_live(&self) -> bool {
        LEASES
            .try_with(|l| {
                l.get(self.index() as usize)
                    .is_some_and(|c| c.get() == self.lease())
            })
            .unwrap_or(false)
    }

    /// `io_uring_register` on the ring at this index
    /// (`IORING_REGISTER_USE_REGISTERED_RING`); refused with [`NOT_HERE`],
    /// without calling the kernel, on another thread (where the index may
    /// name another ring).
    ///
    /// # Safety
    ///
    /// As [`ring_io_sys::io_uring_register`] for `opcode` and `arg`; and
    /// the ring registered at the index is still alive (after it is
    /// dropped, the index may be another ring's).
    pub(crate) unsafe fn register<T>(
        &self,
        opcode: u32,
        arg: *const T,
        nr_args: u32,
    ) -> Result<u32, Errno> {
        if !self.is_here() {
            return Err(NOT_HERE);
        }
        let opcode = opcode | ring_io_sys::IORING_REGISTER_USE_REGISTERED_RING;
        // SAFETY: the index is this thread's name of the ring (the caller's
        // contract: still alive); the argument is the caller's contract.
        unsafe {
            ring_io_sys::io_uring_register(
                self.index() as i32,
                opcode,
                arg.cast::<c_void>(),
                nr_args,
            )
        }
    }
}

/// What names a ring to the kernel. The type says what the number is, so no
/// path can pass a registered index where a file descriptor is meant: every
/// syscall on a ring goes through [`RingFd::enter`] or
/// [`RingFd::register`], which pick the number and the flag that says what
/// it is (`IORING_ENTER_REGISTERED_RING`,
/// `IORING_REGISTER_USE_REGISTERED_RING`).
#[derive(Debug)]
pub(crate) enum RingFd {
    /// A ring fd this value owns (closed on drop), and its index in the
    /// table of the thread that registered it, if one did.
    Owned {
        fd: OwnedFd,
        registered: Option<Registered>,
    },
    /// `IORING_SETUP_REGISTERED_FD_ONLY`: no fd at all, only an index in the
    /// table of the thread that set the ring up, meaningless on any other
    /// thread (where the same number may name another thread's ring).
    IndexOnly(Registered),
}

/// The ring named for one call: a file descriptor or an index of the calling
/// thread's table.
#[derive(Clone, Copy)]
enum Name {
    Fd(RawFd),
    Index(u32),
}

impl Name {
    fn number(self) -> i32 {
        match self {
            Name::Fd(fd) => fd,
            // Indices are below 16 (IO_RINGFD_REG_MAX); the kernel takes an
            // unsigned int either way.
            Name::Index(i) => i as i32,
        }
    }
}

/// The error of a call on a ring that has no name on the calling thread
/// (`IORING_SETUP_REGISTERED_FD_ONLY`, used from another thread): refused
/// here, never sent to the kernel.
pub(crate) const NOT_HERE: Errno = Errno::EBADF;

impl RingFd {
    /// The ring's file descriptor; `None` for a ring that has none
    /// (`IORING_SETUP_REGISTERED_FD_ONLY`).
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            RingFd::Owned { fd, .. } => Some(fd.as_fd()),
            RingFd::IndexOnly(_) => None,
        }
    }

    /// The index of a ring that has no fd (`IORING_SETUP_REGISTERED_FD_ONLY`).
    pub(crate) fn index_only(&self) -> Option<Registered> {
        match self {
            RingFd::IndexOnly(r) => Some(*r),
            RingFd::Owned { .. } => None,
        }
    }

    /// True if the calling thread's table holds the ring (enters skip the
    /// fd lookup).
    #[inline]
    pub(crate) fn registered_here(&self) -> bool {
        match self {
            RingFd::Owned { registered, .. } => registered.is_some_and(|r| r.is_here()),
            RingFd::IndexOnly(r) => r.is_here(),
        }
    }

    /// True if the ring can be named on the calling thread at all (false
    /// only for a `REGISTERED_FD_ONLY` ring on another thread).
    #[inline]
    pub(crate) fn usable_here(&self) -> bool {
        match self {
            RingFd::Owned { .. } => true,
            RingFd::IndexOnly(r) => r.is_here(),
        }
    }

    /// The name for `io_uring_enter`: the index where this thread
    /// registered the ring, else the fd.
    #[inline]
    fn for_enter(&self) -> Result<Name, Errno> {
        match self {
            RingFd::Owned {
                registered: Some(r),
                ..
            } if r.is_here() => Ok(Name::Index(r.index())),
            RingFd::Owned { fd, .. } => Ok(Name::Fd(fd.as_raw_fd())),
            RingFd::IndexOnly(r) if r.is_here() => Ok(Name::Index(r.index())),
            RingFd::IndexOnly(_) => Err(NOT_HERE),
        }
    }

    /// The name for `io_uring_register`: the fd where there is one (every
    /// kernel takes it), else the index on its own thread.
    fn for_register(&self) -> Result<Name, Errno> {
        match self {
            RingFd::Owned { fd, .. } => Ok(Name::Fd(fd.as_raw_fd())),
            RingFd::IndexOnly(r) if r.is_here() => Ok(Name::Index(r.index())),
            RingFd::IndexOnly(_) => Err(NOT_HERE),
        }
    }

    /// `io_uring_enter(2)` on this ring, with `IORING_ENTER_REGISTERED_RING`
    /// set exactly when the number passed is an index (whatever `flags`
    /// says about it). Fails with [`NOT_HERE`] without entering if the ring
    /// has no name on this thread.
    ///
    /// # Safety
    ///
    /// As for [`ring_io_sys::io_uring_enter2`], less the part about `fd`
    /// (the ring names itself); every SQE published meets the contract of
    /// [`SubmissionQueue::push`](crate::SubmissionQueue::push).
    #[inline]
    pub(crate) unsafe fn enter(
        &self,
        to_submit: u32,
        min_complete: u32,
        flags: EnterFlags,
        arg: *const c_void,
        argsz: usize,
    ) -> Result<u32, Errno> {
        if let RingFd::Owned {
            fd,
            registered: None,
        } = self
        {
            // The plain ring's path, one test: the fd, no flag (a call of
            // its own, so the fd is loaded from its place).
            // SAFETY: the number is this ring's fd, named as a fd; the rest
            // is the caller's contract.
            return unsafe {
                ring_io_sys::io_uring_enter2(
                    fd.as_raw_fd(),
                    to_submit,
                    min_complete,
                    (flags - EnterFlags::REGISTERED_RING).bits(),
                    arg,
                    argsz,
                )
            };
        }
        let name = self.for_enter()?;
        let mut flags = flags;
        flags.set(EnterFlags::REGISTERED_RING, matches!(name, Name::Index(_)));
        // SAFETY: the number is this ring's, named as the flag says; the
        // rest is the caller's contract.
        unsafe {
            ring_io_sys::io_uring_enter2(
                name.number(),
                to_submit,
                min_complete,
                flags.bits(),
                arg,
                argsz,
            )
        }
    }

    /// `io_uring_register(2)` on this ring, with
    /// `IORING_REGISTER_USE_REGISTERED_RING` set exactly when the number
    /// passed is an index. Fails with [`NOT_HERE`] without calling the
    /// kernel if the ring has no name on this thread.
    ///
    /// # Safety
    ///
    /// As for [`register`], less the part about `fd` (the ring names
    /// itself): `arg` is what `opcode` expects, and what it points to stays
    /// valid for as long as the kernel may use it.
    pub(crate) unsafe fn register<T>(
        &self,
        opcode: u32,
        arg: *const T,
        nr_args: u32,
    ) -> Result<u32, Errno> {
        let name = self.for_register()?;
        let opcode = match name {
            Name::Index(_) => opcode | ring_io_sys::IORING_REGISTER_USE_REGISTERED_RING,
            Name::Fd(_) => opcode,
        };
        // SAFETY: the number is this ring's, named as the opcode flag says;
        // the argument is the caller's contract.
        unsafe {
            ring_io_sys::io_uring_register(name.number(), opcode, arg.cast::<c_void>(), nr_args)
        }
    }

    /// How `IORING_REGISTER_CLONE_BUFFERS` names this ring as the source:
    /// `(src_fd, IORING_REGISTER_SRC_REGISTERED or 0)`.
    pub(crate) fn clone_source(&self) -> Result<(u32, u32), Errno> {
        match self.for_register()? {
            Name::Fd(fd) => Ok((fd as u32, 0)),
            Name::Index(i) => Ok((i, ring_io_sys::IORING_REGISTER_SRC_REGISTERED)),
        }
    }

    /// Registers the ring's fd in the calling thread's table
    /// (`IORING_REGISTER_RING_FDS`, 5.18), best effort: without it the fd
    /// is used. Nothing to do for a ring that has no fd or is registered.
    pub(crate) fn register_here(&mut self) {
        if let RingFd::Owned {
            fd,
            registered: registered @ None,
        } = self
        {
            if let Ok(index) = register_in_table(fd.as_raw_fd()) {
                *registered = Some(Registered::here(index));
            }
        }
    }
}

impl Drop for RingFd {
    /// Removes the ring from the registering thread's table if this is that
    /// thread, then closes the fd (if any). On another thread the table
    /// entry cannot be removed: it keeps the ring alive until the
    /// registering thread unregisters it or exits (the kernel then frees the
    /// ring). Nothing of it is touched meanwhile: the index is never used
    /// again. A [`ThreadRegistration`]'s index is its own to unregister.
    fn drop(&mut self) {
        let index = match self {
            RingFd::Owned {
                registered: Some(r),
                ..
            }
            | RingFd::IndexOnly(r)
                if r.lease() == 0 && r.is_here() =>
            {
                r.index()
            }
            _ => return,
        };
        let up = ring_io_sys::io_uring_rsrc_update {
            offset: index,
            ..Default::default()
        };
        // SAFETY: one update, valid for the call, on this ring's own name.
        // A failure leaves the entry, which the kernel drops when the thread
        // exits. (The OwnedFd, if any, closes itself after this.)
        let _ = unsafe { self.register(ring_io_sys::IORING_UNREGISTER_RING_FDS, &raw const up, 1) };
    }
}

impl RingFd {
    /// Registers the ring's fd in the calling thread's table for a
    /// [`ThreadRegistration`] of ring `ring` (its id).
    pub(crate) fn register_lease(&self, ring: u64) -> std::io::Result<ThreadRegistration> {
        let RingFd::Owned { fd, .. } = self else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a ring without an fd (REGISTERED_FD_ONLY) is registered on its thread already",
            ));
        };
        let index = register_in_table(fd.as_raw_fd())?;
        let lease = NEXT_LEASE.fetch_add(1, Ordering::Relaxed);
        // The fd to unregister by: naming the ring by its index
        // (IORING_REGISTER_USE_REGISTERED_RING) needs 6.3, and the ring's
        // own fd may be closed first.
        let fd = match fd.try_clone() {
            Ok(fd) => fd,
            Err(e) => {
                unregister_index(fd.as_raw_fd(), index);
                return Err(e);
            }
        };
        let reg = ThreadRegistration {
            at: Registered::leased(index, lease),
            ring,
            fd,
            _this_thread: PhantomData,
        };
        // (Dropped, `reg` unregisters the index whatever happens below.)
        // (`index` is below 16: the kernel's table has 16 slots.)
        let slot = index < 0x100
            && LEASES
                .try_with(|l| l.get(index as usize).map(|c| c.set(lease)).is_some())
                .unwrap_or(false);
        if !slot {
            return Err(std::io::Error::other(
                "the kernel gave a registered-ring index out of the table's range",
            ));
        }
        Ok(reg)
    }

    /// Enters through `at` (a [`ThreadRegistration`]'s lease) from now on,
    /// on its thread while it lives. False, changing nothing, for a ring
    /// that has no fd or has its own registration.
    pub(crate) fn use_lease(&mut self, at: Registered) -> bool {
        match self {
            RingFd::Owned { registered, .. } if registered.is_none_or(|r| r.lease() != 0) => {
                *registered = Some(at);
                true
            }
            _ => false,
        }
    }
}

/// A ring's fd registered in the calling thread's table of rings
/// (`IORING_REGISTER_RING_FDS`, Linux 5.18), so that the ring's enters on
/// this thread skip the kernel's fd lookup (and, in a process with more
/// than one thread, a reference count on the ring's file per call); made
/// by [`Ring::register_thread`](crate::Ring::register_thread) and put to
/// use by [`Ring::use_thread_registration`](crate::Ring::use_thread_registration).
///
/// The index means this ring only in this thread's table, so the value is
/// neither `Send` nor `Sync`. It holds a duplicate of the ring's fd (to
/// unregister by: naming the ring by its index needs Linux 6.3). Dropped,
/// it removes the ring from the table (the ring then enters by its fd
/// again); a ring that goes first leaves its file alive in the kernel
/// until then. A ring that uses it checks on
/// each enter that the registration is alive and that the calling thread
/// is its own; on any other thread, or after the drop, it enters by fd.
///
/// ```compile_fail,E0277
/// fn send<T: Send>(_: T) {}
/// let ring = ring_io_driver::Ring::new(8).unwrap();
/// send(ring.register_thread().unwrap());
/// ```
#[derive(Debug)]
pub struct ThreadRegistration {
    at: Registered,
    /// The id of the ring registered ([`RawRing::id`](crate::setup)).
    ring: u64,
    /// A duplicate of the ring's fd, to unregister by.
    fd: OwnedFd,
    _this_thread: PhantomData<*const ()>,
}

/// Registers the ring `fd` (its own fd) in the calling thread's table of
/// rings (`IORING_REGISTER_RING_FDS`, 5.18) at any free slot: its index.
fn register_in_table(fd: RawFd) -> std::io::Result<u32> {
    let mut up = ring_io_sys::io_uring_rsrc_update {
        offset: u32::MAX,
        data: fd as u64,
        ..Default::default()
    };
    // SAFETY: one update, valid and writable for the call, on the ring's
    // own fd.
    let n = unsafe { register(fd, ring_io_sys::IORING_REGISTER_RING_FDS, &raw mut up, 1) }?;
    if n != 1 {
        return Err(std::io::Error::other(
            "IORING_REGISTER_RING_FDS registered nothing",
        ));
    }
    Ok(up.offset)
}

/// Removes `index` from the calling thread's table of rings, by `ring`, an
/// io_uring fd (any: the table is the thread's, not the ring's). A failure
/// leaves the entry, which the kernel drops when the thread exits.
fn unregister_index(ring: RawFd, index: u32) {
    let up = ring_io_sys::io_uring_rsrc_update {
        offset: index,
        ..Default::default()
    };
    // SAFETY: one update, valid for the call, on an io_uring fd.
    let _ = unsafe {
        register(
            ring,
            ring_io_sys::IORING_UNREGISTER_RING_FDS,
            &raw const up,
            1,
        )
    };
}

impl ThreadRegistration {
    /// The index in the calling thread's table.
    pub fn index(&self) -> u32 {
        self.at.index()
    }

    pub(crate) fn lease_for(&self, ring: u64) -> Option<Registered> {
        (self.ring == ring).then_some(self.at)
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // The child of a `fork` has a copy of this value but an empty
        // table (its thread has a new tag): nothing of it to remove there.
        if self.at.thread != thread_tag() {
            return;
        }
        let _ = LEASES.try_with(|l| {
            if let Some(c) = l.get(self.at.index() as usize) {
                c.set(0);
            }
        });
        unregister_index(self.fd.as_raw_fd(), self.at.index());
    }
}

/// `io_uring_register(2)` on a ring file descriptor.
///
/// # Safety
///
/// `fd` must be an io_uring file descriptor (never a registered index: use
/// [`RingFd::register`] for a ring this crate set up). `arg` must be what
/// `opcode` expects, and anything it points to must stay valid as long as
/// the kernel may use it (for buffers: until unregistered).
pub(crate) unsafe fn register<T>(
    fd: RawFd,
    opcode: u32,
    arg: *const T,
    nr_args: u32,
) -> Result<u32, ring_io_sys::Errno> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { ring_io_sys::io_uring_register(fd, opcode, arg.cast::<c_void>(), nr_args) }
}

/// What `IORING_REGISTER_PROBE` fills in: the header and room for every opcode.
#[repr(C)]
pub(crate) struct ProbeBuf {
    pub(crate) head: ring_io_sys::io_uring_probe,
    pub(crate) ops: [ring_io_sys::io_uring_probe_op; 256],
}

/// `IORING_REGISTER_PROBE` on `ring`.
pub(crate) fn probe(ring: &RingFd) -> Result<ProbeBuf, ring_io_sys::Errno> {
    let mut buf = ProbeBuf {
        head: ring_io_sys::io_uring_probe::default(),
        ops: [ring_io_sys::io_uring_probe_op::default(); 256],
    };
    // SAFETY: `buf` has room for the 256 entries `nr_args` announces and
    // outlives the call; the kernel writes only inside it.
    unsafe { ring.register(ring_io_sys::IORING_REGISTER_PROBE, &raw mut buf, 256) }?;
    Ok(buf)
}

/// `IORING_REGISTER_QUERY` for `IO_URING_QUERY_OPCODES` (Linux 6.18+), or
/// `None` on kernels without it.
pub(crate) fn query_opcodes() -> Option<ring_io_sys::io_uring_query_opcode> {
    let mut out = ring_io_sys::io_uring_query_opcode::default();
    let mut hdr = ring_io_sys::io_uring_query_hdr {
        query_data: (&raw mut out) as u64,
        query_op: ring_io_sys::IO_URING_QUERY_OPCODES,
        size: size_of::<ring_io_sys::io_uring_query_opcode>() as u32,
        ..Default::default()
    };
    // SAFETY: `hdr` points at `out`; both outlive the call. No ring is
    // named: -1 is the kernel's "no ring" for this opcode.
    let res = unsafe { register(-1, ring_io_sys::IORING_REGISTER_QUERY, &raw mut hdr, 0) };
    (res.is_ok() && hdr.result == 0).then_some(out)
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
