//! [`Metadata`] and [`FileType`]: what `statx(2)` says of a file, typed.

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

/// The fields the Proactor asks `statx(2)` for: `STATX_BASIC_STATS` (type,
/// mode, links, owner, times but the birth, inode, size, blocks) and
/// `STATX_BTIME` (the birth).
pub(crate) const MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// What `statx(2)` says of a file: from [`File::metadata`] or
/// [`Proactor::statx`].
///
/// The kernel fills the fields the filesystem has: a time it does not
/// keep is an `Unsupported` error (the birth time, often), a type it does
/// not report is [`FileType::Unknown`].
///
/// [`File::metadata`]: crate::fs::File::metadata
/// [`Proactor::statx`]: crate::Proactor::statx
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, StatxFlags, fs::FileType};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let m = p.statx("/proc/self/exe", StatxFlags::SYMLINK_NOFOLLOW).wait()?;
/// assert_eq!(m.file_type(), FileType::Symlink);
/// let m = p.statx("/proc/self/exe", StatxFlags::empty()).wait()?;
/// assert!(m.is_file() && !m.is_dir() && !m.is_symlink());
/// assert!(m.len() > 0 && m.blocks() > 0 && m.blksize() > 0);
/// assert!(m.nlink() >= 1 && m.ino() > 0 && m.dev() > 0);
/// assert_eq!(m.rdev(), 0, "a regular file is no device");
/// assert_ne!(m.permissions().mode() & 0o111, 0, "executable");
/// assert_eq!(m.mode() & 0o7777, m.permissions().mode() & 0o7777);
/// assert_eq!((m.uid(), m.gid()), {
///     let std = std::fs::metadata("/proc/self/exe")?;
///     use std::os::unix::fs::MetadataExt;
///     (std.uid(), std.gid())
/// });
/// assert!(m.modified()? <= std::time::SystemTime::now());
/// let _ = (m.accessed()?, m.status_changed()?);
/// let _maybe = m.created(); // Unsupported where the filesystem keeps no birth time
/// # use std::os::unix::fs::PermissionsExt;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Metadata {
    mask: u32,
    mode: u16,
    nlink: u32,
    uid: u32,
    gid: u32,
    ino: u64,
    size: u64,
    blocks: u64,
    blksize: u32,
    dev: (u32, u32),
    rdev: (u32, u32),
    atime: (i64, u32),
    btime: (i64, u32),
    ctime: (i64, u32),
    mtime: (i64, u32),
}

impl Metadata {
    pub(crate) fn from_statx(st: &libc::statx) -> Metadata {
        let time = |t: &libc::statx_timestamp| (t.tv_sec, t.tv_nsec);
        Metadata {
            mask: st.stx_mask,
            mode: st.stx_mode,
            nlink: st.stx_nlink,
            uid: st.stx_uid,
            gid: st.stx_gid,
            ino: st.stx_ino,
            size: st.stx_size,
            blocks: st.stx_blocks,
            blksize: st.stx_blksize,
            dev: (st.stx_dev_major, st.stx_dev_minor),
            rdev: (st.stx_rdev_major, st.stx_rdev_minor),
            atime: time(&st.stx_atime),
            btime: time(&st.stx_btime),
            ctime: time(&st.stx_ctime),
            mtime: time(&st.stx_mtime),
        }
    }

    /// The size in bytes (`stx_size`).
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the size is 0 (an empty file, or one whose size says
    /// nothing: a procfs file).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, StatxFlags};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// assert!(p.statx("/proc/self/status", StatxFlags::empty()).wait()?.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The file's type.
    pub fn file_type(&self) -> FileType {
        if self.mask & libc::STATX_TYPE == 0 {
            return FileType::Unknown;
        }
        FileType::from_mode(u32::from(self.mode))
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == FileType::File
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Dir
    }

    /// Whether it is a symbolic link (described as itself, with
    /// [`StatxFlags::SYMLINK_NOFOLLOW`](crate::StatxFlags::SYMLINK_NOFOLLOW)).
    pub fn is_symlink(&self) -> bool {
        self.file_type() == FileType::Symlink
    }

    /// The permissions, as std's type (whose mode, as std's, is the whole
    /// `st_mode`).
    pub fn permissions(&self) -> Permissions {
        Permissions::from_mode(u32::from(self.mode))
    }

    /// The whole `st_mode`: the type bits and the permission bits (as
    /// `std::os::unix::fs::MetadataExt::mode`).
    pub fn mode(&self) -> u32 {
        u32::from(self.mode)
    }

    /// The number of hard links.
    pub fn nlink(&self) -> u32 {
        self.nlink
    }

    /// The owner's user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The owner's group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The device the file is on (as `st_dev`): with [`ino`](Self::ino),
    /// what names the file.
    pub fn dev(&self) -> u64 {
        makedev(self.dev)
    }

    /// The device a device file stands for (as `st_rdev`); 0 otherwise.
    pub fn rdev(&self) -> u64 {
        makedev(self.rdev)
    }

    /// The size of a block for efficient I/O.
    pub fn blksize(&self) -> u32 {
        self.blksize
    }

    /// The 512-byte blocks allocated.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The last change of the contents.
    pub fn modified(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_MTIME, self.mtime, "modification")
    }

    /// The last access.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_ATIME, self.atime, "access")
    }

    /// The creation (birth); `Unsupported` where the filesystem keeps none.
    pub fn created(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_BTIME, self.btime, "creation")
    }

    /// The last change of the metadata (`st_ctime`).
    pub fn status_changed(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_CTIME, self.ctime, "status change")
    }

    fn time(&self, bit: u32, (secs, nanos): (i64, u32), what: &str) -> io::Result<SystemTime> {
        if self.mask & bit == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the filesystem reports no {what} time"),
            ));
        }
        let nanos = Duration::from_nanos(u64::from(nanos.min(999_999_999)));
        let at = if secs >= 0 {
            SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(secs.unsigned_abs()))
                .and_then(|t| t.checked_add(nanos))
        } else {
            SystemTime::UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs.unsigned_abs()))
                .and_then(|t| t.checked_add(nanos))
        };
        at.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {what} time out of SystemTime's range"),
            )
        })
    }
}

/// `st_dev` from its major and minor numbers, as glibc's `makedev`.
fn makedev((major, minor): (u32, u32)) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("file_type", &self.file_type())
            .field("len", &self.size)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("ino", &self.ino)
            .field("modified", &self.modified().ok())
            .finish_non_exhaustive()
    }
}

/// A file's type, from its `st_mode`.
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, StatxFlags, fs::FileType};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let ty = |path| p.statx(path, StatxFlags::SYMLINK_NOFOLLOW).wait().map(|m| m.file_type());
/// assert_eq!(ty("/")?, FileType::Dir);
/// assert_eq!(ty("/dev/null")?, FileType::CharDevice);
/// assert_eq!(ty("/proc/self/exe")?, FileType::Symlink);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// A FIFO (named pipe), or a pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A type the kernel did not report, or one not listed here.
    Unknown,
}

impl FileType {
    fn from_mode(mode: u32) -> FileType {
        match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::File,
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makedev_matches_libc() {
        for (major, minor) in [(0, 0), (8, 1), (259, 3), (0xfff, 0xff), (0x12345, 0x6789a)] {
            assert_eq!(makedev((major, minor)), libc::makedev(major, minor));
        }
    }

    #[test]
    fn times_before_the_epoch_and_missing_ones() {
        // SAFETY: `statx` is plain integers, for which zero is valid.
        let mut st: libc::statx = unsafe { std::mem::zeroed() };
        st.stx_mask = libc::STATX_MTIME;
        st.stx_mtime.tv_sec = -2;
        st.stx_mtime.tv_nsec = 500_000_000;
        let m = Metadata::from_statx(&st);
        let expect = SystemTime::UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(m.modified().unwrap(), expect);
        assert_eq!(m.created().unwrap_err().kind(), io::ErrorKind::Unsupported);
        assert_eq!(m.file_type(), FileType::Unknown, "no STATX_TYPE");
    }
}
