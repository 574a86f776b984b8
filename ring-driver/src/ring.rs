//! `Ring`: one io_uring instance, set up and mapped.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use ring_sys::SetupFlags;

use crate::probe::Probe;
use crate::register::{Registrar, RingFd};
use crate::setup::{Builder, Params, RawRing};

/// An io_uring instance: the ring fd, its parameters and its mapped queues.
///
/// ```
/// use ring_driver::Ring;
///
/// let ring = Ring::new(32)?;
/// assert!(ring.params().sq_entries() >= 32);
/// println!("defaults picked on this kernel: {:?}", ring.defaults());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Ring {
    raw: RawRing,
}

impl Ring {
    /// A ring of `entries` submission slots with the fast defaults of
    /// [`Builder::new`].
    pub fn new(entries: u32) -> io::Result<Ring> {
        Ok(Builder::new(entries).build()?)
    }

    /// A builder with every setup option.
    pub fn builder(entries: u32) -> Builder {
        Builder::new(entries)
    }

    pub(crate) fn from_raw(raw: RawRing) -> Ring {
        Ring { raw }
    }

    /// The parameters the kernel filled in.
    pub fn params(&self) -> &Params {
        &self.raw.params
    }

    /// The setup flags the builder added as defaults on this kernel (a
    /// subset of [`Params::flags`]).
    pub fn defaults(&self) -> SetupFlags {
        self.raw.defaults
    }

    /// Registration on this ring.
    pub fn registrar(&self) -> Registrar<'_> {
        Registrar::new(RingFd {
            fd: self.raw.fd,
            features: self.raw.params.features(),
        })
    }

    /// The opcodes the kernel supports.
    pub fn probe(&self) -> io::Result<Probe> {
        self.registrar().probe()
    }
}

impl AsRawFd for Ring {
    /// The ring's fd (with `IORING_SETUP_REGISTERED_FD_ONLY`, its registered
    /// index, which is not a file descriptor).
    fn as_raw_fd(&self) -> RawFd {
        self.raw.fd
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("fd", &self.raw.fd)
            .field("params", &self.raw.params)
            .finish_non_exhaustive()
    }
}
