//! [`Sim`]: ring-core's simulated kernel behind the driver's [`Kernel`]
//! trait, so the driver's own loops (`EINTR` retried, `EBUSY` resolved by
//! reaping, short submits, overflow) are tested without a kernel, and users
//! can test their ring code the same way.
//!
//! `unsafe` here only implements the [`Kernel`] trait (whose contract the
//! simulator, acting on no memory, meets trivially) and lends the
//! simulator out of a ring.
#![allow(unsafe_code)]

use ring_io_core::{Enter, FlagsRead, Geometry, SimConfig, SimKernel};
use ring_io_sys::{Errno, SqFlags, io_uring_cqe, io_uring_cqe32, io_uring_sqe, io_uring_sqe128};

use crate::kernel::{Kernel, WaitArgs, WrongRing};
use crate::ring::Ring;

/// A simulated kernel (ring-core's [`SimKernel`]) as a [`Kernel`].
///
/// It touches no memory an SQE names, so its ring may be changed freely
/// from safe code ([`Ring::sim_mut`]): a change that breaks the protocol
/// (a head moved back, a tail past the ring) makes the ring's calls fail
/// with `io::ErrorKind::InvalidData`, nothing worse.
///
/// ```
/// use ring_io_core::{Fault, Geometry, SimConfig};
/// use ring_io_driver::{Ring, Sim};
/// use ring_io_ops::Nop;
/// use ring_io_sys::{Errno, Features, SetupFlags};
///
/// let geometry = Geometry::new(4, 8, SetupFlags::empty(), Features::NODROP)?;
/// let mut ring = Ring::with_kernel(Sim::new(geometry, SimConfig::new(&geometry))?);
/// ring.sim_mut().inner_mut().inject(Fault::Error(Errno::EINTR));
/// // SAFETY: a NOP carries no pointers.
/// unsafe { ring.sq().push(Nop::new().build().user_data(1)) }?;
/// // The injected EINTR is retried by the driver.
/// assert_eq!(ring.submitter().submit_and_wait(1)?, 1);
/// assert_eq!(ring.cq().next().map(|c| c.user_data()), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Sim {
    kernel: SimKernel,
    enters: u64,
}

impl Sim {
    /// A simulated kernel for a fresh ring of this geometry.
    pub fn new(geometry: Geometry, config: SimConfig) -> Result<Sim, ring_io_core::GeometryError> {
        Ok(Sim {
            kernel: SimKernel::new(geometry, config)?,
            enters: 0,
        })
    }

    /// Wraps an existing simulated kernel.
    pub fn from_kernel(kernel: SimKernel) -> Sim {
        Sim { kernel, enters: 0 }
    }

    /// The simulated kernel.
    pub fn inner(&self) -> &SimKernel {
        &self.kernel
    }

    /// The simulated kernel, to script completions, inject faults or step time.
    pub fn inner_mut(&mut self) -> &mut SimKernel {
        &mut self.kernel
    }

    /// How many times `io_uring_enter` was called.
    pub fn enters(&self) -> u64 {
        self.enters
    }
}

impl Ring<Sim> {
    /// A ring over a simulated kernel of this geometry.
    pub fn simulated(
        geometry: Geometry,
        config: SimConfig,
    ) -> Result<Ring<Sim>, ring_io_core::GeometryError> {
        Ok(Ring::with_kernel(Sim::new(geometry, config)?))
    }

    /// The simulated kernel, mutably: to script completions, inject
    /// faults, step time. Safe where [`Ring::kernel_mut`] is not: the
    /// simulator acts on no memory, so nothing done to it can make a
    /// kernel touch memory; what breaks the ring protocol comes back as an
    /// error from the ring's next call.
    pub fn sim_mut(&mut self) -> &mut Sim {
        // SAFETY: `Sim` acts on no memory an SQE names (the simulated
        // kernel reads only `user_data` and `flags`), so the ring's
        // bookkeeping disagreeing with it is not a memory-safety matter:
        // the ring validates what it is shown.
        unsafe { self.kernel_mut() }
    }
}

// SAFETY: the simulated kernel acts on no memory an SQE names, and every
// method is safe code over plain memory: the protocol contract holds
// trivially.
unsafe impl Kernel for Sim {
    fn geometry(&self) -> &Geometry {
        self.kernel.geometry()
    }

    fn sq_head(&self) -> u32 {
        self.kernel.sq_head()
    }

    unsafe fn set_sq_tail(&mut self, tail: u32) {
        self.kernel.set_sq_tail(tail);
    }

    fn sq_flags(&self, _read: FlagsRead) -> SqFlags {
        self.kernel.sq_flags()
    }

    fn sq_dropped(&self) -> u32 {
        self.kernel.sq_dropped()
    }

    fn cq_tail(&self) -> u32 {
        self.kernel.cq_tail()
    }

    unsafe fn set_cq_head(&mut self, head: u32) {
        self.kernel.set_cq_head(head);
    }

    fn cq_overflow(&self) -> u32 {
        self.kernel.cq_overflow()
    }

    unsafe fn write_sqe(&mut self, index: u32, sqe: &io_uring_sqe) {
        *self.kernel.sqe_mut(index) = *sqe;
    }

    unsafe fn write_sqe128(&mut self, index: u32, sqe: &io_uring_sqe128) -> Result<(), WrongRing> {
        if self.kernel.geometry().sqe_size() != 128 {
            return Err(WrongRing::NotSqe128);
        }
        // The simulator keeps the first 64 bytes; it does not run commands.
        *self.kernel.sqe_mut(index) = sqe.sqe;
        Ok(())
    }

    unsafe fn cqe(&self, index: u32) -> io_uring_cqe {
        self.kernel.cqe(index)
    }

    unsafe fn cqe32(&self, index: u32) -> Result<io_uring_cqe32, WrongRing> {
        if self.kernel.geometry().cqe_size() != 32 {
            return Err(WrongRing::NotCqe32);
        }
        Ok(self.kernel.cqe32(index))
    }

    unsafe fn enter(&mut self, enter: &Enter, _wait: &WaitArgs) -> Result<u32, Errno> {
        self.enters += 1;
        self.kernel
            .enter(enter.to_submit, enter.min_complete, enter.flags)
    }
}
