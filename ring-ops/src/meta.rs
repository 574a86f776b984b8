//! Per-opcode metadata: [`OpInfo`], the table [`ALL`], and [`Unsupported`].
//!
//! The opcode values, C names and first kernels come from
//! [`ring_io_sys::IORING_OPS`], the single source of those facts; this module
//! adds the builder's name and whether the opcode can be multishot.

use core::fmt;

use ring_io_sys::IORING_OPS;

/// A Linux kernel version, `major.minor[.patch]`: the first kernel of an
/// op ([`OpInfo::since`]) or the running kernel (the driver reads it from
/// `uname(2)`).
///
/// ```
/// use ring_io_ops::KernelVersion;
/// let v = KernelVersion::parse("6.1.0-35-amd64").unwrap();
/// assert_eq!(v, KernelVersion::new(6, 1, 0));
/// assert!(v.at_least(5, 19) && !v.at_least(6, 2));
/// assert_eq!(KernelVersion::parse("5.10.237").unwrap().to_string(), "5.10.237");
/// assert_eq!(v.to_string(), "6.1");
/// assert_eq!(KernelVersion::parse("linux"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// Major version (`6` in 6.1.90).
    pub major: u16,
    /// Minor version (`1` in 6.1.90).
    pub minor: u16,
    /// Patch level (`90` in 6.1.90), 0 if absent.
    pub patch: u16,
}

impl KernelVersion {
    /// A version from its parts.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses the leading `major.minor[.patch]` of a release string such as
    /// `"6.1.0-35-amd64"` or `"5.10.237"`; `None` without a major and a
    /// minor.
    pub fn parse(release: &str) -> Option<Self> {
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse::<u16>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Self::new(major, minor, patch))
    }

    /// True if this version is at least `major.minor`.
    pub const fn at_least(self, major: u16, minor: u16) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }
}

impl fmt::Display for KernelVersion {
    /// `major.minor`, then `.patch` unless it is 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if self.patch != 0 {
            write!(f, ".{}", self.patch)?;
        }
        Ok(())
    }
}

/// What is known about one opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpInfo {
    /// The `IORING_OP_*` value.
    pub code: u8,
    /// The C name, e.g. `"IORING_OP_RECV_ZC"`.
    pub name: &'static str,
    /// The name of the ring-ops builder, e.g. `"RecvZc"`.
    pub builder: &'static str,
    /// The first kernel with the opcode.
    pub since: KernelVersion,
    /// Whether the opcode can post many completions for one entry
    /// (`IORING_CQE_F_MORE`), in some mode.
    pub multishot: bool,
}

impl OpInfo {
    /// `Ok` if a kernel of version `running` has the opcode, else the
    /// [`Unsupported`] error naming the op and the kernel it needs.
    ///
    /// A version check is a first answer only: distribution kernels backport
    /// and sysctls disable; the driver's `Probe` is the authority.
    pub const fn check(self, running: KernelVersion) -> Result<(), Unsupported> {
        if running.at_least(self.since.major, self.since.minor) {
            Ok(())
        } else {
            Err(Unsupported {
                what: self.builder,
                needs: Some((self.since.major, self.since.minor)),
                kernel: Some(running),
            })
        }
    }
}

/// Something the running kernel does not support: an opcode, a setup flag, a
/// registration. Names the thing, the kernel that introduced it and the
/// running kernel.
///
/// ```
/// use ring_io_ops::{KernelVersion, RecvZc};
/// let err = RecvZc::INFO.check(KernelVersion::new(6, 1, 0)).unwrap_err();
/// assert_eq!(err.to_string(), "RecvZc needs Linux 6.15; this kernel is 6.1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported {
    /// What is unsupported: an op by its builder's name (`"RecvZc"`), a
    /// flag or registration by its C name (`"IORING_SETUP_DEFER_TASKRUN"`).
    pub what: &'static str,
    /// The first kernel that has it, `(major, minor)`, if known.
    pub needs: Option<(u16, u16)>,
    /// The running kernel, if known.
    pub kernel: Option<KernelVersion>,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.needs {
            Some((major, minor)) => write!(f, "{} needs Linux {major}.{minor}", self.what)?,
            None => write!(f, "{} is not supported", self.what)?,
        }
        match self.kernel {
            Some(k) => write!(f, "; this kernel is {k}"),
            None => Ok(()),
        }
    }
}

impl core::error::Error for Unsupported {}

#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl From<Unsupported> for std::io::Error {
    /// An [`ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported) error
    /// carrying the [`Unsupported`].
    fn from(e: Unsupported) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::Unsupported, e)
    }
}

/// Looks `code` up in [`IORING_OPS`] (so name and version cannot drift from
/// ring-sys) and adds what ring-ops knows.
const fn info(code: u8, builder: &'static str, multishot: bool) -> OpInfo {
    let (value, name, (major, minor)) = IORING_OPS[code as usize];
    assert!(value == code, "IORING_OPS is indexed by opcode");
    OpInfo {
        code,
        name,
        builder,
        since: KernelVersion::new(major as u16, minor as u16, 0),
        multishot,
    }
}

/// The number of opcodes ring-ops knows: Linux 6.18's `IORING_OP_LAST`.
pub const OP_COUNT: usize = 63;

/// Every opcode of Linux 6.18, indexed by opcode: `ALL[op as usize].code == op`.
///
/// `builder` names the main builder of the opcode; some opcodes have more
/// than one (`TimeoutRemove` / `TimeoutUpdate`, `PollRemove` / `PollUpdate`,
/// `MsgRingData` / `MsgRingSendFd`, `UringCmd16` / `UringCmd80` /
/// `SocketCmd`), listed in the crate documentation.
pub const ALL: [OpInfo; OP_COUNT] = {
    use ring_io_sys::*;
    [
        info(IORING_OP_NOP, "Nop", false),
        info(IORING_OP_READV, "Readv", false),
        info(IORING_OP_WRITEV, "Writev", false),
        info(IORING_OP_FSYNC, "Fsync", false),
        info(IORING_OP_READ_FIXED, "ReadFixed", false),
        info(IORING_OP_WRITE_FIXED, "WriteFixed", false),
        info(IORING_OP_POLL_ADD, "PollAdd", true),
        info(IORING_OP_POLL_REMOVE, "PollRemove", false),
        info(IORING_OP_SYNC_FILE_RANGE, "SyncFileRange", false),
        info(IORING_OP_SENDMSG, "SendMsg", false),
        info(IORING_OP_RECVMSG, "RecvMsg", true),
        info(IORING_OP_TIMEOUT, "Timeout", true),
        info(IORING_OP_TIMEOUT_REMOVE, "TimeoutRemove", false),
        info(IORING_OP_ACCEPT, "Accept", true),
        info(IORING_OP_ASYNC_CANCEL, "AsyncCancel", false),
        info(IORING_OP_LINK_TIMEOUT, "LinkTimeout", false),
        info(IORING_OP_CONNECT, "Connect", false),
        info(IORING_OP_FALLOCATE, "Fallocate", false),
        info(IORING_OP_OPENAT, "OpenAt", false),
        info(IORING_OP_CLOSE, "Close", false),
        info(IORING_OP_FILES_UPDATE, "FilesUpdate", false),
        info(IORING_OP_STATX, "Statx", false),
        info(IORING_OP_READ, "Read", false),
        info(IORING_OP_WRITE, "Write", false),
        info(IORING_OP_FADVISE, "Fadvise", false),
        info(IORING_OP_MADVISE, "Madvise", false),
        info(IORING_OP_SEND, "Send", false),
        info(IORING_OP_RECV, "Recv", true),
        info(IORING_OP_OPENAT2, "OpenAt2", false),
        info(IORING_OP_EPOLL_CTL, "EpollCtl", false),
        info(IORING_OP_SPLICE, "Splice", false),
        info(IORING_OP_PROVIDE_BUFFERS, "ProvideBuffers", false),
        info(IORING_OP_REMOVE_BUFFERS, "RemoveBuffers", false),
        info(IORING_OP_TEE, "Tee", false),
        info(IORING_OP_SHUTDOWN, "Shutdown", false),
        info(IORING_OP_RENAMEAT, "RenameAt", false),
        info(IORING_OP_UNLINKAT, "UnlinkAt", false),
        info(IORING_OP_MKDIRAT, "MkDirAt", false),
        info(IORING_OP_SYMLINKAT, "SymlinkAt", false),
        info(IORING_OP_LINKAT, "LinkAt", false),
        info(IORING_OP_MSG_RING, "MsgRingData", false),
        info(IORING_OP_FSETXATTR, "FSetXattr", false),
        info(IORING_OP_SETXATTR, "SetXattr", false),
        info(IORING_OP_FGETXATTR, "FGetXattr", false),
        info(IORING_OP_GETXATTR, "GetXattr", false),
        info(IORING_OP_SOCKET, "Socket", false),
        info(IORING_OP_URING_CMD, "UringCmd16", true),
        info(IORING_OP_SEND_ZC, "SendZc", false),
        info(IORING_OP_SENDMSG_ZC, "SendMsgZc", false),
        info(IORING_OP_READ_MULTISHOT, "ReadMulti", true),
        info(IORING_OP_WAITID, "WaitId", false),
        info(IORING_OP_FUTEX_WAIT, "FutexWait", false),
        info(IORING_OP_FUTEX_WAKE, "FutexWake", false),
        info(IORING_OP_FUTEX_WAITV, "FutexWaitV", false),
        info(IORING_OP_FIXED_FD_INSTALL, "FixedFdInstall", false),
        info(IORING_OP_FTRUNCATE, "Ftruncate", false),
        info(IORING_OP_BIND, "Bind", false),
        info(IORING_OP_LISTEN, "Listen", false),
        info(IORING_OP_RECV_ZC, "RecvZc", true),
        info(IORING_OP_EPOLL_WAIT, "EpollWait", false),
        info(IORING_OP_READV_FIXED, "ReadvFixed", false),
        info(IORING_OP_WRITEV_FIXED, "WritevFixed", false),
        info(IORING_OP_PIPE, "Pipe", false),
    ]
};

/// The metadata of opcode `code`, or `None` for an opcode newer than Linux
/// 6.18 (or invalid).
pub const fn info_of(code: u8) -> Option<OpInfo> {
    if (code as usize) < OP_COUNT {
        Some(ALL[code as usize])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_indexed_by_opcode_and_matches_ring_sys() {
        assert_eq!(ALL.len(), usize::from(ring_io_sys::IORING_OP_LAST));
        assert_eq!(ALL.len(), IORING_OPS.len());
        for (i, (op, sys)) in ALL.iter().zip(IORING_OPS).enumerate() {
            assert_eq!(usize::from(op.code), i);
            assert_eq!(op.name, sys.1);
            assert_eq!(
                (op.since.major, op.since.minor),
                (sys.2.0.into(), sys.2.1.into())
            );
        }
        assert_eq!(info_of(63), None);
        assert_eq!(info_of(22).map(|i| i.builder), Some("Read"));
    }

    #[test]
    fn check_compares_versions() {
        let recv_zc = ALL[usize::from(ring_io_sys::IORING_OP_RECV_ZC)];
        assert!(recv_zc.check(KernelVersion::new(6, 15, 0)).is_ok());
        assert!(recv_zc.check(KernelVersion::new(7, 0, 0)).is_ok());
        assert!(recv_zc.check(KernelVersion::new(6, 14, 0)).is_err());
        assert!(recv_zc.check(KernelVersion::new(5, 19, 0)).is_err());
        let nop = ALL[0];
        assert!(nop.check(KernelVersion::new(5, 1, 0)).is_ok());
        assert!(nop.check(KernelVersion::new(4, 20, 0)).is_err());
    }
}
