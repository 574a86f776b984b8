//! `Builder`: ring setup with every flag of Linux 6.18, fast defaults picked
//! from what the running kernel supports, and errors that name the flag.

use std::fmt;
use std::os::fd::{BorrowedFd, RawFd};

use ring_io_core::{Geometry, GeometryError};
use ring_io_sys::{Errno, Features, SetupFlags, io_uring_params};

use crate::error::{SetupError, Unsupported};
use crate::sys::{self, Mmap};
use ring_io_ops::KernelVersion;

/// The first kernel of each setup flag of Linux 6.18, `(flag, C name, (major, minor))`.
pub const SETUP_FLAGS: &[(SetupFlags, &str, (u16, u16))] = &[
    (SetupFlags::IOPOLL, "IORING_SETUP_IOPOLL", (5, 1)),
    (SetupFlags::SQPOLL, "IORING_SETUP_SQPOLL", (5, 1)),
    (SetupFlags::SQ_AFF, "IORING_SETUP_SQ_AFF", (5, 1)),
    (SetupFlags::CQSIZE, "IORING_SETUP_CQSIZE", (5, 5)),
    (SetupFlags::CLAMP, "IORING_SETUP_CLAMP", (5, 6)),
    (SetupFlags::ATTACH_WQ, "IORING_SETUP_ATTACH_WQ", (5, 6)),
    (SetupFlags::R_DISABLED, "IORING_SETUP_R_DISABLED", (5, 10)),
    (SetupFlags::SUBMIT_ALL, "IORING_SETUP_SUBMIT_ALL", (5, 18)),
    (
        SetupFlags::COOP_TASKRUN,
        "IORING_SETUP_COOP_TASKRUN",
        (5, 19),
    ),
    (
        SetupFlags::TASKRUN_FLAG,
        "IORING_SETUP_TASKRUN_FLAG",
        (5, 19),
    ),
    (SetupFlags::SQE128, "IORING_SETUP_SQE128", (5, 19)),
    (SetupFlags::CQE32, "IORING_SETUP_CQE32", (5, 19)),
    (
        SetupFlags::SINGLE_ISSUER,
        "IORING_SETUP_SINGLE_ISSUER",
        (6, 0),
    ),
    (
        SetupFlags::DEFER_TASKRUN,
        "IORING_SETUP_DEFER_TASKRUN",
        (6, 1),
    ),
    (SetupFlags::NO_MMAP, "IORING_SETUP_NO_MMAP", (6, 5)),
    (
        SetupFlags::REGISTERED_FD_ONLY,
        "IORING_SETUP_REGISTERED_FD_ONLY",
        (6, 5),
    ),
    (SetupFlags::NO_SQARRAY, "IORING_SETUP_NO_SQARRAY", (6, 6)),
    (
        SetupFlags::HYBRID_IOPOLL,
        "IORING_SETUP_HYBRID_IOPOLL",
        (6, 13),
    ),
    (SetupFlags::CQE_MIXED, "IORING_SETUP_CQE_MIXED", (6, 18)),
];

/// The C name and first kernel of a single setup flag.
pub(crate) fn flag_info(flag: SetupFlags) -> (&'static str, (u16, u16)) {
    SETUP_FLAGS
        .iter()
        .find(|f| f.0 == flag)
        .map(|f| (f.1, f.2))
        .unwrap_or(("an unknown IORING_SETUP flag", (0, 0)))
}

/// Flags another flag cannot be set without (kernel rule in the comment).
fn companions(flag: SetupFlags) -> SetupFlags {
    match flag {
        // io_uring_setup: SQ_AFF is only valid with SQPOLL.
        SetupFlags::SQ_AFF => SetupFlags::SQPOLL,
        // TASKRUN_FLAG requires COOP_TASKRUN or DEFER_TASKRUN.
        SetupFlags::TASKRUN_FLAG => SetupFlags::COOP_TASKRUN,
        // DEFER_TASKRUN requires SINGLE_ISSUER.
        SetupFlags::DEFER_TASKRUN => SetupFlags::SINGLE_ISSUER,
        // HYBRID_IOPOLL requires IOPOLL.
        SetupFlags::HYBRID_IOPOLL => SetupFlags::IOPOLL,
        _ => SetupFlags::empty(),
    }
}

/// The typed view of `io_uring_params` after setup: sizes, flags in effect
/// and the kernel's features.
#[derive(Clone, Copy)]
pub struct Params {
    raw: io_uring_params,
}

impl Params {
    /// Wraps raw params (as filled in by `io_uring_setup`).
    pub fn from_raw(raw: io_uring_params) -> Self {
        Self { raw }
    }

    /// The raw struct.
    pub fn raw(&self) -> &io_uring_params {
        &self.raw
    }

    /// Number of SQ entries (a power of two).
    pub fn sq_entries(&self) -> u32 {
        self.raw.sq_entries
    }

    /// Number of CQ entries (a power of two).
    pub fn cq_entries(&self) -> u32 {
        self.raw.cq_entries
    }

    /// The setup flags the ring was created with.
    pub fn flags(&self) -> SetupFlags {
        SetupFlags::from_bits_retain(self.raw.flags)
    }

    /// The kernel's features (`IORING_FEAT_*`), unknown bits kept.
    pub fn features(&self) -> Features {
        Features::from_bits_retain(self.raw.features)
    }

    /// True if every feature in `f` is present.
    pub fn has(&self, f: Features) -> bool {
        self.features().contains(f)
    }

    /// SQPOLL idle time in milliseconds (when `SQPOLL`).
    pub fn sq_thread_idle(&self) -> u32 {
        self.raw.sq_thread_idle
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field("sq_entries", &self.sq_entries())
            .field("cq_entries", &self.cq_entries())
            .field("flags", &self.flags())
            .field("features", &self.features())
            .finish()
    }
}

/// What a [`Builder`] decided and the kernel accepted: the ring fd, its
/// params and its mappings, before any ring logic is attached.
#[derive(Debug)]
pub(crate) struct RawRing {
    /// What names the ring to the kernel: its fd, or (with
    /// `IORING_SETUP_REGISTERED_FD_ONLY`) only an index in one thread's
    /// table. Closed (and unregistered, on the registering thread) on drop,
    /// before the mappings go: the kernel holds its own references to the
    /// ring memory, so the order does not matter to it.
    pub(crate) ring: sys::RingFd,
    pub(crate) params: Params,
    /// The SQ ring (and, with a single mmap or NO_MMAP, the CQ ring).
    pub(crate) sq_ring: Mmap,
    /// The CQ ring when the kernel needs a second mapping (before 5.4).
    pub(crate) cq_ring: Option<Mmap>,
    pub(crate) sqes: Mmap,
    /// Defaults that were applied (not asked for by the caller).
    pub(crate) defaults: SetupFlags,
    /// A number no other ring of the process has (a
    /// [`ThreadRegistration`](crate::ThreadRegistration) names its ring by
    /// it: a mapping's address may be reused once the ring is gone).
    pub(crate) id: u64,
}

/// Ring ids ([`RawRing::id`]), never reused.
static NEXT_RING_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl RawRing {
    /// The mapping that holds the CQ ring.
    pub(crate) fn cq_map(&self) -> &Mmap {
        self.cq_ring.as_ref().unwrap_or(&self.sq_ring)
    }

    /// Checks every ring offset against the mappings.
    fn check_offsets(&self) -> std::io::Result<()> {
        use std::sync::atomic::AtomicU32;
        let p = self.params.raw();
        let flags = self.params.flags();
        let sq = &self.sq_ring;
        for off in [
            p.sq_off.head,
            p.sq_off.tail,
            p.sq_off.ring_mask,
            p.sq_off.ring_entries,
            p.sq_off.flags,
            p.sq_off.dropped,
        ] {
            sq.check::<AtomicU32>(off, 1)?;
        }
        if !flags.contains(SetupFlags::NO_SQARRAY) {
            sq.check::<u32>(p.sq_off.array, p.sq_entries as usize)?;
        }
        let cq = self.cq_map();
        for off in [
            p.cq_off.head,
            p.cq_off.tail,
            p.cq_off.ring_mask,
            p.cq_off.ring_entries,
            p.cq_off.overflow,
        ] {
            cq.check::<AtomicU32>(off, 1)?;
        }
        if p.cq_off.flags != 0 {
            cq.check::<AtomicU32>(p.cq_off.flags, 1)?;
        }
        let cqe = if flags.contains(SetupFlags::CQE32) {
            2
        } else {
            1
        };
        cq.check::<ring_io_sys::io_uring_cqe>(p.cq_off.cqes, p.cq_entries as usize * cqe)?;
        let sqe = if flags.contains(SetupFlags::SQE128) {
            2
        } else {
            1
        };
        self.sqes
            .check::<ring_io_sys::io_uring_sqe>(0, p.sq_entries as usize * sqe)?;
        // The ring's own view of its size must agree with the params.
        if sq
            .atomic_u32(p.sq_off.ring_entries)
            .load(std::sync::atomic::Ordering::Relaxed)
            != p.sq_entries
            || cq
                .atomic_u32(p.cq_off.ring_entries)
                .load(std::sync::atomic::Ordering::Relaxed)
                != p.cq_entries
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "ring entry counts disagree with the params",
            ));
        }
        Ok(())
    }
}

/// Sets up an io_uring instance.
///
/// `Builder::new(entries)` picks fast defaults for the running kernel: each
/// is applied only if the kernel supports it, and dropped (newest first) if
/// the kernel refuses it, so a default never makes setup fail:
///
/// | default | kernel | why |
/// |---|---|---|
/// | `IORING_SETUP_SUBMIT_ALL` | 5.18 | a bad entry does not stall the ones after it: every pushed entry is consumed and gets a CQE |
/// | `IORING_SETUP_COOP_TASKRUN` + `TASKRUN_FLAG` | 5.19 | no inter-processor interrupt per completion; the kernel flags when an enter is needed (not with SQPOLL, whose thread runs task work itself) |
/// | `IORING_SETUP_NO_SQARRAY` | 6.6 | one less indirection (and cache line) per submission |
/// | single mmap (`IORING_FEAT_SINGLE_MMAP`) | 5.4 | one mapping for both rings |
///
/// Registering the ring fd (`IORING_REGISTER_RING_FDS`, 5.18) is done by the
/// ring after setup. Flags the caller asks for are never dropped: if the
/// kernel lacks one, [`Builder::build`] fails with
/// [`SetupError::Unsupported`] naming it. [`Builder::no_defaults`] gives a
/// plain ring, like liburing's `io_uring_queue_init`.
#[derive(Debug, Clone)]
pub struct Builder {
    entries: u32,
    params: io_uring_params,
    defaults: bool,
    /// Defaults not to add ([`Builder::exclude_defaults`]).
    excluded: SetupFlags,
    register_ring_fd: bool,
    lent: Option<LentMemory>,
}

/// Memory the caller lent for a `NO_MMAP` ring: `(address, length)` of each
/// region (addresses as integers, so the builder stays `Send`), and whether
/// a ring has it already: it is lent once, to one ring, however often the
/// builder is cloned or built.
#[derive(Debug, Clone)]
struct LentMemory {
    rings: (usize, usize),
    sqes: (usize, usize),
    given: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LentMemory {
    /// Refuses regions the kernel would misuse: not page-aligned, wrapping
    /// around the address space, or overlapping (the kernel would read SQEs
    /// from memory it writes CQEs into).
    fn check(&self) -> Result<(), SetupError> {
        let end = |(addr, len): (usize, usize)| addr.checked_add(len);
        let (Some(rings_end), Some(sqes_end)) = (end(self.rings), end(self.sqes)) else {
            return Err(SetupError::Invalid(
                "a region lent for NO_MMAP wraps around the address space",
            ));
        };
        if self.rings.0 % 4096 != 0 || self.sqes.0 % 4096 != 0 {
            return Err(SetupError::Invalid(
                "the memory lent for NO_MMAP must be page-aligned",
            ));
        }
        if self.rings.0 < sqes_end && self.sqes.0 < rings_end {
            return Err(SetupError::Invalid(
                "the two regions lent for NO_MMAP overlap",
            ));
        }
        Ok(())
    }
}

macro_rules! flag_setters {
    ($( $(#[doc = $doc:literal])* $fn:ident => $flag:ident; )*) => {
        $(
            $(#[doc = $doc])*
            pub fn $fn(mut self) -> Self {
                self.params.flags |= SetupFlags::$flag.bits();
                self
            }
        )*
    };
}

impl Builder {
    /// A builder for a ring of `entries` submission slots (rounded up to a
    /// power of two by the kernel), with fast defaults.
    pub fn new(entries: u32) -> Self {
        Self {
            entries,
            params: io_uring_params::default(),
            defaults: true,
            excluded: SetupFlags::empty(),
            register_ring_fd: true,
            lent: None,
        }
    }

    /// Do not apply the fast defaults: the ring gets exactly the flags asked for.
    pub fn no_defaults(mut self) -> Self {
        self.defaults = false;
        self.register_ring_fd = false;
        self
    }

    flag_setters! {
        /// `IORING_SETUP_IOPOLL`: busy-poll for completions of O_DIRECT I/O on
        /// devices that support polling; other files fail with `EOPNOTSUPP`. 5.1.
        iopoll => IOPOLL;
        /// `IORING_SETUP_CLAMP`: clamp entry counts to the kernel's maximum
        /// instead of failing. 5.6.
        clamp => CLAMP;
        /// `IORING_SETUP_R_DISABLED`: start disabled; register restrictions,
        /// then enable. 5.10.
        r_disabled => R_DISABLED;
        /// `IORING_SETUP_SUBMIT_ALL` (also a default). 5.18.
        submit_all => SUBMIT_ALL;
        /// `IORING_SETUP_COOP_TASKRUN` (also a default). 5.19.
        coop_taskrun => COOP_TASKRUN;
        /// `IORING_SETUP_TASKRUN_FLAG`: the kernel sets `IORING_SQ_TASKRUN`
        /// when task work waits. 5.19.
        taskrun_flag => TASKRUN_FLAG;
        /// `IORING_SETUP_SQE128`: 128-byte SQEs (80-byte `URING_CMD` payloads). 5.19.
        sqe128 => SQE128;
        /// `IORING_SETUP_CQE32`: 32-byte CQEs. 5.19.
        cqe32 => CQE32;
        /// `IORING_SETUP_SINGLE_ISSUER`: only one task submits. 6.0.
        single_issuer => SINGLE_ISSUER;
        /// `IORING_SETUP_NO_SQARRAY` (also a default). 6.6.
        no_sqarray => NO_SQARRAY;
        /// `IORING_SETUP_CQE_MIXED`: 16- and 32-byte CQEs in one ring. 6.18.
        cqe_mixed => CQE_MIXED;
    }

    /// `IORING_SETUP_DEFER_TASKRUN` (with the `SINGLE_ISSUER` it requires):
    /// completions are processed only when the issuer waits. 6.1.
    pub fn defer_taskrun(mut self) -> Self {
        self.params.flags |= (SetupFlags::DEFER_TASKRUN | SetupFlags::SINGLE_ISSUER).bits();
        self
    }

    /// `IORING_SETUP_HYBRID_IOPOLL` (with the `IOPOLL` it requires): sleep
    /// before polling. 6.13.
    pub fn hybrid_iopoll(mut self) -> Self {
        self.params.flags |= (SetupFlags::HYBRID_IOPOLL | SetupFlags::IOPOLL).bits();
        self
    }

    /// `IORING_SETUP_SQPOLL`: a kernel thread polls the SQ, sleeping after
    /// `idle_ms` milliseconds without work. 5.1 (unprivileged since 5.11).
    pub fn sqpoll(mut self, idle_ms: u32) -> Self {
        self.params.flags |= SetupFlags::SQPOLL.bits();
        self.params.sq_thread_idle = idle_ms;
        self
    }

    /// `IORING_SETUP_SQ_AFF`: pin the SQPOLL thread to `cpu` (implies SQPOLL). 5.1.
    pub fn sqpoll_cpu(mut self, cpu: u32) -> Self {
        self.params.flags |= (SetupFlags::SQPOLL | SetupFlags::SQ_AFF).bits();
        self.params.sq_thread_cpu = cpu;
        self
    }

    /// `IORING_SETUP_CQSIZE`: a CQ of `entries` (at least the SQ's). 5.5.
    pub fn cq_entries(mut self, entries: u32) -> Self {
        self.params.flags |= SetupFlags::CQSIZE.bits();
        self.params.cq_entries = entries;
        self
    }

    /// `IORING_SETUP_ATTACH_WQ`: share the async worker pool of the ring `fd`. 5.6.
    pub fn attach_wq(mut self, fd: RawFd) -> Self {
        self.params.flags |= SetupFlags::ATTACH_WQ.bits();
        self.params.wq_fd = fd as u32;
        self
    }

    /// `IORING_SETUP_NO_MMAP`: the rings live in memory this library
    /// allocates (anonymous, page-aligned) and passes to the kernel, instead
    /// of memory the kernel allocates and the process maps. 6.5. On kernels
    /// before 6.13 the kernel needs each region to be one page or one huge
    /// page, which limits this to small rings there.
    pub fn no_mmap(mut self) -> Self {
        self.params.flags |= SetupFlags::NO_MMAP.bits();
        self
    }

    /// `IORING_SETUP_NO_MMAP` with memory the caller provides: `rings` for
    /// the SQ/CQ rings and `sqes` for the entries, each page-aligned and at
    /// least [`no_mmap_sizes`](Self::no_mmap_sizes) long (a huge page
    /// lets kernels before 6.13 accept more than one page per region).
    /// Setup fails with [`SetupError::Invalid`] if a region is too small,
    /// not page-aligned, overlaps the other, or was already given to a ring
    /// built from this builder or a clone of it (the memory goes to one ring
    /// only).
    ///
    /// # Safety
    ///
    /// Both regions must be valid for reads and writes for their whole
    /// length and be private anonymous memory of this process
    /// (`MAP_PRIVATE | MAP_ANONYMOUS`, huge pages allowed), not shared with a
    /// file or another mapping. From this call on they belong to the ring
    /// for good: the caller must never again read, write, free, or
    /// otherwise reuse them in place, not even after the ring has been
    /// dropped. The kernel pins their pages and tears a ring down after the
    /// drop returns (later still if the ring was dropped on a thread other
    /// than the one whose registered-ring table holds it): requests still in
    /// flight are cancelled then and their completions written into these
    /// pages. The one thing allowed after the drop is unmapping them
    /// (`munmap`): the kernel holds its own references to the pages, so its
    /// late writes go to pages no mapping shows. The ring never unmaps or
    /// frees them itself.
    #[allow(
        unsafe_code,
        reason = "declares the caller's contract; the body does nothing unsafe"
    )]
    pub unsafe fn no_mmap_memory(
        mut self,
        rings: (std::ptr::NonNull<u8>, usize),
        sqes: (std::ptr::NonNull<u8>, usize),
    ) -> Self {
        self.params.flags |= SetupFlags::NO_MMAP.bits();
        self.lent = Some(LentMemory {
            rings: (rings.0.as_ptr() as usize, rings.1),
            sqes: (sqes.0.as_ptr() as usize, sqes.1),
            given: Default::default(),
        });
        self
    }

    /// The sizes of the two regions a `NO_MMAP` ring of this builder needs:
    /// `(rings, sqes)` in bytes, page-rounded; or why the kernel would
    /// refuse the entry counts.
    pub fn no_mmap_sizes(&self) -> Result<(usize, usize), SetupError> {
        let flags = self.flags() | self.default_flags(crate::kernel_version());
        no_mmap_sizes(&self.geometry(flags)?)
    }

    /// `IORING_SETUP_REGISTERED_FD_ONLY` (with the `NO_MMAP` it requires): the
    /// ring has no fd, only an index in the registered-ring table of the
    /// thread that builds it (16 slots per thread), so no other code can
    /// name it through an fd. 6.5.
    ///
    /// Such a ring can be used on that thread only: on any other,
    /// [`Ring::fd`](crate::Ring::fd) is `None`, enters fail with `EBADF`
    /// and registrations with an error saying why, without reaching the
    /// kernel (where the same index may name another thread's ring).
    /// Dropped on its thread, it is unregistered and freed. Dropped on
    /// another thread it cannot be unregistered: the kernel frees it (and
    /// cancels what it still has in flight) only when the thread that built
    /// it exits, and that thread has one slot less until then.
    pub fn registered_fd_only(mut self) -> Self {
        self.params.flags |= (SetupFlags::REGISTERED_FD_ONLY | SetupFlags::NO_MMAP).bits();
        self
    }

    /// The flags asked for so far (defaults not included).
    pub fn flags(&self) -> SetupFlags {
        SetupFlags::from_bits_retain(self.params.flags)
    }

    /// The defaults this builder would add on a kernel of `version`.
    fn default_flags(&self, version: Option<KernelVersion>) -> SetupFlags {
        if !self.defaults {
            return SetupFlags::empty();
        }
        let asked = self.flags();
        let mut d = SetupFlags::SUBMIT_ALL | SetupFlags::NO_SQARRAY;
        if !asked.intersects(SetupFlags::SQPOLL | SetupFlags::DEFER_TASKRUN) {
            d |= SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG;
        }
        if asked.contains(SetupFlags::DEFER_TASKRUN) {
            // TASKRUN_FLAG is valid with DEFER_TASKRUN and tells us when to
            // enter to run deferred work.
            d |= SetupFlags::TASKRUN_FLAG;
        }
        // Only what this kernel has; unknown version: let the retry loop decide.
        d.iter()
            .filter(|f| {
                version.is_none_or(|v| {
                    let (_, (major, minor)) = flag_info(*f);
                    v.at_least(major, minor)
                })
            })
            .collect::<SetupFlags>()
            - asked
            - self.excluded
    }

    /// Checks combinations the kernel would reject with a bare `EINVAL`,
    /// and the entry counts by the kernel's own rules
    /// ([`Geometry::for_setup`], the one place they are written).
    fn validate(&self) -> Result<(), SetupError> {
        let f = self.flags();
        if f.contains(SetupFlags::SQPOLL) && f.contains(SetupFlags::DEFER_TASKRUN) {
            return Err(SetupError::Invalid(
                "DEFER_TASKRUN cannot be combined with SQPOLL",
            ));
        }
        // The kernel accepts COOP_TASKRUN with SQPOLL and ignores it: say nothing.
        self.geometry(f).map(drop)
    }

    /// The ring the kernel would make of this builder with `flags`: sizes
    /// rounded, clamped and checked exactly as `io_uring_setup` does.
    fn geometry(&self, flags: SetupFlags) -> Result<Geometry, SetupError> {
        let cq = flags
            .contains(SetupFlags::CQSIZE)
            .then_some(self.params.cq_entries);
        Geometry::for_setup(self.entries, cq, flags, Features::empty()).map_err(|e| match e {
            GeometryError::IncompatibleFlags(why) => SetupError::Invalid(why),
            e => SetupError::Size(e),
        })
    }

    /// Sets up the ring, maps it, and applies what the ring does after
    /// setup.
    pub fn build(&self) -> Result<crate::Ring, SetupError> {
        let raw = self.build_raw()?;
        let linux = crate::kernel::Linux::new(raw).map_err(SetupError::Io)?;
        Ok(crate::Ring::from_linux(linux, self.register_ring_fd))
    }

    /// Whether to register the ring fd (`IORING_REGISTER_RING_FDS`, 5.18) in
    /// the table of the thread that builds the ring, so its enters skip the
    /// fd lookup (default: yes, where supported). The index is per thread:
    /// other threads use the plain fd. A ring dropped on its thread is
    /// unregistered and closed; one dropped on another thread is closed but
    /// its entry stays in the registering thread's table, which keeps the
    /// ring (and any request still in flight on it) alive until that thread
    /// exits. Turn this off for a ring that is dropped on another thread.
    pub fn register_ring_fd(mut self, yes: bool) -> Self {
        self.register_ring_fd = yes;
        self
    }

    /// Keeps the fast defaults but `flags`: a default among them is not
    /// added (a flag asked for explicitly still is). For a ring several
    /// threads drive, say, where `COOP_TASKRUN` would leave a request's
    /// task work on a thread that stopped entering the ring.
    ///
    /// ```
    /// use ring_io_driver::Builder;
    /// use ring_io_sys::SetupFlags;
    ///
    /// let ring = Builder::new(8)
    ///     .exclude_defaults(SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG)
    ///     .build()?;
    /// assert!(!ring.params().flags().contains(SetupFlags::COOP_TASKRUN));
    /// # Ok::<(), ring_io_driver::SetupError>(())
    /// ```
    pub fn exclude_defaults(mut self, flags: SetupFlags) -> Self {
        self.excluded |= flags;
        self
    }

    /// Whether the fast defaults are on (not [`no_defaults`](Self::no_defaults)).
    #[cfg(not(loom))]
    pub(crate) fn uses_defaults(&self) -> bool {
        self.defaults
    }

    /// Sets up the ring and maps it.
    pub(crate) fn build_raw(&self) -> Result<RawRing, SetupError> {
        self.validate()?;
        let Some(lent) = &self.lent else {
            return self.setup_with_defaults();
        };
        lent.check()?;
        if lent.given.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Err(SetupError::Invalid(
                "the memory lent with no_mmap_memory belongs to a ring already: it is lent to one ring only",
            ));
        }
        let raw = self.setup_with_defaults();
        // Refused before the kernel accepted it (an `Io` error comes after
        // a setup that succeeded, whose teardown may still write it): the
        // memory was never the ring's and may be lent again.
        if let Err(SetupError::Setup(_) | SetupError::Unsupported(_) | SetupError::Invalid(_)) =
            &raw
        {
            lent.given
                .store(false, std::sync::atomic::Ordering::Release);
        }
        raw
    }

    /// `io_uring_setup` with the defaults, dropping the newest on `EINVAL`.
    fn setup_with_defaults(&self) -> Result<RawRing, SetupError> {
        let version = crate::kernel_version();
        let mut defaults = self.default_flags(version);
        loop {
            match self.try_setup(defaults) {
                Ok(mut raw) => {
                    raw.defaults = defaults;
                    return Ok(raw);
                }
                Err(SetupError::Setup(Errno::EINVAL)) if !defaults.is_empty() => {
                    // Drop the newest default and try again.
                    let newest = defaults
                        .iter()
                        .max_by_key(|f| flag_info(*f).1)
                        .expect("defaults is not empty");
                    defaults.remove(newest);
                }
                Err(SetupError::Setup(Errno::EINVAL)) => {
                    return Err(self.explain_einval(version));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_setup(&self, defaults: SetupFlags) -> Result<RawRing, SetupError> {
        let mut p = self.params;
        p.flags |= defaults.bits();
        let flags = SetupFlags::from_bits_retain(p.flags);
        let memory = if flags.contains(SetupFlags::NO_MMAP) {
            let (rings, sqes) = match &self.lent {
                Some(lent) => {
                    let (rings_len, sqes_len) = no_mmap_sizes(&self.geometry(flags)?)?;
                    if lent.rings.1 < rings_len || lent.sqes.1 < sqes_len {
                        return Err(SetupError::Invalid(
                            "the memory lent for NO_MMAP is smaller than Builder::no_mmap_sizes says",
                        ));
                    }
                    let region = |(addr, len): (usize, usize)| {
                        let ptr = std::ptr::NonNull::new(addr as *mut u8)
                            .ok_or(SetupError::Invalid("lent memory at address 0"))?;
                        #[allow(unsafe_code, reason = "upholds no_mmap_memory's contract")]
                        // SAFETY: `no_mmap_memory`'s caller gave the region
                        // to this ring for good (checked above: to this one
                        // ring only, regions apart).
                        Ok::<_, SetupError>(unsafe { Mmap::lent(ptr, len) })
                    };
                    (region(lent.rings)?, region(lent.sqes)?)
                }
                None => {
                    let (rings, sqes) = no_mmap_sizes(&self.geometry(flags)?)?;
                    (
                        Mmap::anonymous(rings).map_err(SetupError::Io)?,
                        Mmap::anonymous(sqes).map_err(SetupError::Io)?,
                    )
                }
            };
            p.cq_off.user_addr = rings.base() as u64;
            p.sq_off.user_addr = sqes.base() as u64;
            Some((rings, sqes))
        } else {
            None
        };
        // On any error below, `ring` is dropped: closed, or unregistered.
        let ring = sys::setup(self.entries, &mut p).map_err(SetupError::Setup)?;
        let params = Params::from_raw(p);
        let (sq_ring, cq_ring, sqes) = match (memory, ring.fd()) {
            (Some((rings, sqes)), _) => (rings, None, sqes),
            (None, Some(fd)) => map_rings(fd, &params).map_err(SetupError::Io)?,
            // The kernel refuses REGISTERED_FD_ONLY without NO_MMAP.
            (None, None) => {
                return Err(SetupError::Invalid(
                    "a ring without an fd (REGISTERED_FD_ONLY) cannot be mapped: it needs NO_MMAP",
                ));
            }
        };
        let raw = RawRing {
            ring,
            params,
            sq_ring,
            cq_ring,
            sqes,
            defaults: SetupFlags::empty(),
            id: NEXT_RING_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        // Every offset the kernel reported must lie inside what was mapped,
        // so the queue views can use them without further checks. (`raw`
        // closes the ring if this fails.)
        raw.check_offsets().map_err(SetupError::Io)?;
        Ok(raw)
    }

    /// After `EINVAL` with no defaults left: find the flag the kernel lacks,
    /// or report a combination it refuses.
    fn explain_einval(&self, version: Option<KernelVersion>) -> SetupError {
        let asked = self.flags();
        let supported = query_setup_flags();
        // Highest bit first: a flag's companions (SQ_AFF's SQPOLL, DEFER_TASKRUN's
        // SINGLE_ISSUER, REGISTERED_FD_ONLY's NO_MMAP, ...) all have lower bits,
        // so the flag the caller's option is named after is reported.
        let mut flags: Vec<SetupFlags> = asked.iter().collect();
        flags.reverse();
        for flag in flags {
            let (name, since) = flag_info(flag);
            let lacks = match supported {
                // IORING_REGISTER_QUERY (6.18) lists the supported flags.
                Some(mask) => !mask.contains(flag),
                // Otherwise try the flag alone on a tiny ring, where it can be
                // tried alone; else judge by the version.
                None => match flag {
                    SetupFlags::ATTACH_WQ
                    | SetupFlags::NO_MMAP
                    | SetupFlags::REGISTERED_FD_ONLY => {
                        version.is_some_and(|v| !v.at_least(since.0, since.1))
                    }
                    _ => {
                        let mut p = io_uring_params {
                            flags: (flag | companions(flag)).bits(),
                            ..Default::default()
                        };
                        // A ring made here is dropped (closed) at once.
                        match sys::setup(1, &mut p) {
                            Ok(_ring) => false,
                            Err(e) => e == Errno::EINVAL,
                        }
                    }
                },
            };
            if lacks {
                return SetupError::Unsupported(Unsupported {
                    what: name,
                    needs: Some(since),
                    kernel: version,
                });
            }
        }
        SetupError::Setup(Errno::EINVAL)
    }
}

/// The kernel's supported setup flags from `IORING_REGISTER_QUERY` (6.18+).
fn query_setup_flags() -> Option<SetupFlags> {
    sys::query_opcodes().map(|q| SetupFlags::from_bits_retain(q.ring_setup_flags as u32))
}

/// Sizes of the two regions an `IORING_SETUP_NO_MMAP` ring of `geometry`
/// needs: the rings (header, CQEs, SQ array) and the SQEs, page-rounded, with
/// a page for the kernel's header (which is well under one). Checked
/// arithmetic: entry counts come from [`Geometry::for_setup`] and are small,
/// but no value here can overflow.
fn no_mmap_sizes(geometry: &Geometry) -> Result<(usize, usize), SetupError> {
    const PAGE: usize = 4096;
    let sq = geometry.sq_entries() as usize;
    let cq = geometry.cq_entries() as usize;
    let array = if geometry.has_sq_array() { sq * 4 } else { 0 };
    let round = |n: Option<usize>| n.and_then(|n| n.checked_next_multiple_of(PAGE));
    let rings = round(
        cq.checked_mul(geometry.cqe_size())
            .and_then(|c| c.checked_add(PAGE))
            .and_then(|c| c.checked_add(array)),
    );
    let sqes = round(sq.checked_mul(geometry.sqe_size()));
    match (rings, sqes) {
        (Some(rings), Some(sqes)) => Ok((rings, sqes)),
        _ => Err(SetupError::Invalid(
            "the NO_MMAP regions of this ring do not fit in memory",
        )),
    }
}

/// Maps the SQ ring, CQ ring (once, with `IORING_FEAT_SINGLE_MMAP`) and SQEs.
fn map_rings(fd: BorrowedFd<'_>, params: &Params) -> std::io::Result<(Mmap, Option<Mmap>, Mmap)> {
    let p = params.raw();
    let flags = params.flags();
    let cqe = if flags.contains(SetupFlags::CQE32) {
        32
    } else {
        16
    };
    let sqe = if flags.contains(SetupFlags::SQE128) {
        128
    } else {
        64
    };
    let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
    let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * cqe;
    let (sq_ring, cq_ring) = if params.has(Features::SINGLE_MMAP) {
        (
            Mmap::map_ring(fd, ring_io_sys::IORING_OFF_SQ_RING, sq_len.max(cq_len))?,
            None,
        )
    } else {
        (
            Mmap::map_ring(fd, ring_io_sys::IORING_OFF_SQ_RING, sq_len)?,
            Some(Mmap::map_ring(fd, ring_io_sys::IORING_OFF_CQ_RING, cq_len)?),
        )
    };
    let sqes = Mmap::map_ring(
        fd,
        ring_io_sys::IORING_OFF_SQES,
        p.sq_entries as usize * sqe,
    )?;
    Ok((sq_ring, cq_ring, sqes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_of_the_header_has_a_name_and_kernel() {
        let named: SetupFlags = SETUP_FLAGS.iter().map(|f| f.0).collect();
        assert_eq!(named, SetupFlags::all());
        for &(flag, name, _) in SETUP_FLAGS {
            let short = SetupFlags::all()
                .iter_names()
                .find(|(_, f)| *f == flag)
                .unwrap()
                .0;
            assert_eq!(name, format!("IORING_SETUP_{short}"));
        }
    }

    #[test]
    fn defaults_follow_the_kernel_version_and_the_asked_flags() {
        let b = Builder::new(8);
        assert_eq!(
            b.default_flags(Some(KernelVersion::new(5, 10, 0))),
            SetupFlags::empty()
        );
        assert_eq!(
            b.default_flags(Some(KernelVersion::new(6, 1, 0))),
            SetupFlags::SUBMIT_ALL | SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG
        );
        assert!(
            b.default_flags(Some(KernelVersion::new(6, 6, 0)))
                .contains(SetupFlags::NO_SQARRAY)
        );
        let sqpoll = Builder::new(8).sqpoll(10);
        assert!(
            !sqpoll
                .default_flags(None)
                .contains(SetupFlags::COOP_TASKRUN)
        );
        assert!(Builder::new(8).no_defaults().default_flags(None).is_empty());
    }

    #[test]
    fn contradictions_are_refused_before_the_kernel_is_asked() {
        let err = Builder::new(8)
            .sqpoll(1)
            .defer_taskrun()
            .build_raw()
            .unwrap_err();
        assert!(matches!(err, SetupError::Invalid(_)), "{err}");
        let err = Builder::new(64).cq_entries(8).build_raw().unwrap_err();
        assert!(err.to_string().contains("smaller than"), "{err}");
        assert!(matches!(
            Builder::new(0).build_raw(),
            Err(SetupError::Size(_))
        ));
    }

    #[test]
    fn sizes_follow_the_kernel_and_never_overflow() {
        // Refused by the kernel's rules, with the maximum and the way out
        // named (these overflowed: a panic in debug, a wrong error in release).
        let err = Builder::new(u32::MAX)
            .cq_entries(u32::MAX)
            .validate()
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SetupError::Size(_)), "{text}");
        assert!(text.contains("32768") && text.contains("clamp()"), "{text}");
        assert!(matches!(
            Builder::new(0x8000_0001).no_mmap_sizes(),
            Err(SetupError::Size(_))
        ));
        assert!(Builder::new(u32::MAX).no_mmap_sizes().is_err());
        // With CLAMP the kernel clamps, and so do the sizes.
        let clamped = Builder::new(u32::MAX).cq_entries(u32::MAX).clamp();
        assert!(clamped.validate().is_ok());
        let (rings, sqes) = clamped.no_defaults().no_mmap_sizes().unwrap();
        assert_eq!(sqes, 32768 * 64);
        assert!(rings >= 65536 * 16 + 32768 * 4);
        // The kernel rounds both counts up before comparing them.
        for (sq, cq) in [(100, 100), (5, 6), (3, 3)] {
            let b = Builder::new(sq).cq_entries(cq);
            assert!(b.validate().is_ok(), "{sq}/{cq}");
            assert!(b.no_mmap_sizes().is_ok(), "{sq}/{cq}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]

        #[test]
        fn the_builder_judges_sizes_as_geometry_does_and_never_panics(
            entries in proptest::prelude::any::<u32>(),
            cq in proptest::option::of(proptest::prelude::any::<u32>()),
            clamp in proptest::prelude::any::<bool>(),
            small in proptest::prelude::any::<bool>(),
        ) {
            // Half the cases near the limits, where rounding matters.
            let (entries, cq) = if small {
                (entries % 70_000, cq.map(|c| c % 140_000))
            } else {
                (entries, cq)
            };
            let mut b = Builder::new(entries).no_defaults();
            let mut flags = SetupFlags::empty();
            if let Some(cq) = cq {
                b = b.cq_entries(cq);
            }
            if clamp {
                b = b.clamp();
                flags |= SetupFlags::CLAMP;
            }
            let model = Geometry::for_setup(entries, cq, flags, Features::empty());
            proptest::prop_assert_eq!(b.validate().is_ok(), model.is_ok());
            let sizes = b.no_mmap_sizes();
            proptest::prop_assert_eq!(sizes.is_ok(), model.is_ok());
            if let (Ok((rings, sqes)), Ok(g)) = (sizes, model) {
                proptest::prop_assert!(rings >= g.cq_entries() as usize * 16 + 4096);
                proptest::prop_assert_eq!(sqes, (g.sq_entries() as usize * 64).next_multiple_of(4096));
            }
        }
    }
}
