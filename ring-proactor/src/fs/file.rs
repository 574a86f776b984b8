//! [`File`]: an open file of a [`Proactor`] or a [`LocalProactor`], with
//! positional reads and writes.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use ring_io_ops::Fd;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fs::{Metadata, OpenOptions, metadata};
use crate::handle::Transfer;
use crate::ops::Backend;
use crate::proactor::Proactor;
use crate::{IntoOpFd, OpFd, Runtime};
#[cfg(doc)]
use crate::{LocalProactor, Op};

/// An open file whose reads and writes are ops of its runtime `R`, as
/// tokio-uring's and monoio's: each takes a buffer by value and hands it
/// back with the result ([`BufResult`]), at an explicit offset (the file
/// has no position of its own).
///
/// `R` is a [`Proactor`] (the default: `File` is `File<Proactor>`, whose
/// ops are [`Op`]s for any executor) or a [`LocalProactor`] (its ops are
/// [`LocalOp`](crate::LocalOp)s, and the file stays on its thread); see
/// [`Runtime`]. The file holds a clone of its runtime (see
/// [Clones](Proactor#clones-and-the-handles-of-fs-and-net)), and its ops
/// keep it open until the kernel is done with them. It closes when
/// dropped, or, with its error reported, with [`close`](Self::close).
/// `&File` is an [`IntoOpFd`]: the runtime's other ops
/// ([`splice`](Proactor::splice), [`readv`](Proactor::readv), ...) take it.
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, block_on, fs::OpenOptions};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let path = std::env::temp_dir().join(format!("file-doc-{}", std::process::id()));
/// block_on(async {
///     let mut options = OpenOptions::new();
///     let file = options.read(true).write(true).create(true).open(&p, &path).await?;
///     let (res, _) = file.write_all_at("hello, world", 0).await;
///     res?;
///     file.sync_all().await?;
///     let (res, buf) = file.read_exact_at(vec![0u8; 5], 7).await;
///     res?;
///     assert_eq!(buf, b"world");
///     assert_eq!(file.metadata().await?.len(), 12);
///     file.close().await
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// The same on a [`LocalProactor`], on this thread:
///
/// ```
/// use ring_io_proactor::{LocalProactor, ProactorConfig, fs::OpenOptions};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let path = std::env::temp_dir().join(format!("local-file-doc-{}", std::process::id()));
/// p.block_on(async {
///     let mut options = OpenOptions::new();
///     let file = options.read(true).write(true).create(true).open(&p, &path).await?;
///     let (res, _) = file.write_all_at("hello, world", 0).await;
///     res?;
///     file.sync_data().await?;
///     let (res, buf) = file.read_exact_at(vec![0u8; 5], 7).await;
///     res?;
///     assert_eq!(buf, b"world");
///     assert_eq!(file.metadata().await?.len(), 12);
///     file.close().await
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct File<R: Runtime = Proactor> {
    inner: Arc<std::fs::File>,
    proactor: R,
}

impl<R: Runtime> File<R> {
    /// Opens `path` for reading (as [`std::fs::File::open`]).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let file = File::open(&p, "/proc/self/status").wait()?;
    /// let (n, buf) = file.read_at(vec![0u8; 5], 0).wait();
    /// assert_eq!(&buf[..n?], b"Name:");
    /// let missing = File::open(&p, "/no/such/file").wait();
    /// assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(proactor: &impl AsRef<R>, path: impl AsRef<Path>) -> R::Op<io::Result<File<R>>> {
        let proactor = proactor.as_ref();
        OpenOptions::new().read(true).open(proactor, path)
    }

    /// Opens `path` for writing, created if it does not exist, emptied if
    /// it does (as [`std::fs::File::create`]).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("create-fn-doc-{}", std::process::id()));
    /// std::fs::write(&path, "old")?;
    /// let file = File::create(&p, &path).wait()?;
    /// assert_eq!(file.metadata().wait()?.len(), 0);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(proactor: &impl AsRef<R>, path: impl AsRef<Path>) -> R::Op<io::Result<File<R>>> {
        let proactor = proactor.as_ref();
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(proactor, path)
    }

    /// Reads into `buf` at byte `pos`, like `pread(2)`: fills it from its
    /// start, up to its [`bytes_total`](IoBuf::bytes_total) (a `Vec`'s
    /// capacity), and returns how many bytes were read (0 at the end of the
    /// file; fewer than asked near it). See [`Proactor::read`] for the
    /// buffers it takes.
    ///
    /// ```
    /// use ring_io_proactor::{IoBuf, Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let file = File::open(&p, "/proc/self/status").wait()?;
    /// // Into bytes 2..7 of a buffer.
    /// let (n, slice) = file.read_at(vec![b'.'; 8].slice(2..7), 0).wait();
    /// assert_eq!(n?, 5);
    /// assert_eq!(slice.into_inner(), b"..Name:.");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> R::Op<BufResult<usize, B>> {
        crate::ops::fs::read(&self.proactor, &self.inner, buf, pos)
    }

    /// Writes `buf`'s [`bytes_init`](IoBuf::bytes_init) bytes at byte
    /// `pos`, like `pwrite(2)`; returns how many were written (maybe fewer:
    /// [`write_all_at`](Self::write_all_at) writes them all). On a file
    /// opened to [`append`](OpenOptions::append), every write goes to its
    /// end.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let null = OpenOptions::new().write(true).open(&p, "/dev/null").wait()?;
    /// let (n, buf) = null.write_at(String::from("anything"), 0).wait();
    /// assert_eq!((n?, buf.as_str()), (8, "anything"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> R::Op<BufResult<usize, B>> {
        crate::ops::fs::write(&self.proactor, &self.inner, buf, pos)
    }

    /// Fills `buf` to its [`bytes_total`](IoBuf::bytes_total) from byte
    /// `pos` on, with as many reads as it takes: like std's
    /// `FileExt::read_exact_at`, the end of the file before it is full
    /// fails with `UnexpectedEof`. The buffer comes back in every case
    /// (on an error, with the bytes read so far marked initialized).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let zero = File::open(&p, "/dev/zero").wait()?;
    /// let (res, buf) = ring_io_proactor::block_on(zero.read_exact_at(Vec::with_capacity(1 << 20), 0));
    /// res?;
    /// assert_eq!(buf.len(), 1 << 20);
    /// let empty = File::open(&p, "/dev/null").wait()?;
    /// let (res, _) = ring_io_proactor::block_on(empty.read_exact_at(vec![0u8; 1], 0));
    /// assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> Transfer<B, R> {
        Transfer::read(&self.proactor, &self.inner, pos, buf, |p, fd, rest, at| {
            crate::ops::fs::read(p, fd, rest, at)
        })
    }

    /// Writes all of `buf`'s [`bytes_init`](IoBuf::bytes_init) bytes from
    /// byte `pos` on, with as many writes as it takes: like std's
    /// `FileExt::write_all_at`, a write of 0 bytes fails with `WriteZero`.
    /// The buffer comes back in every case.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, block_on, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("write-all-doc-{}", std::process::id()));
    /// let file = File::create(&p, &path).wait()?;
    /// let data = vec![7u8; 3 << 20];
    /// let (res, data) = block_on(file.write_all_at(data, 4096));
    /// res?;
    /// assert_eq!(std::fs::metadata(&path)?.len(), 4096 + data.len() as u64);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> Transfer<B, R> {
        Transfer::write(&self.proactor, &self.inner, pos, buf, |p, fd, rest, at| {
            crate::ops::fs::write(p, fd, rest, at)
        })
    }

    /// Flushes the file's data and metadata to the device, like
    /// `fsync(2)`.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("sync-all-doc-{}", std::process::id()));
    /// let file = File::create(&p, &path).wait()?;
    /// file.write_all_at("durable", 0).wait().0?;
    /// file.sync_all().wait()?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync_all(&self) -> R::Op<io::Result<()>> {
        crate::ops::fs::fsync(&self.proactor, &self.inner, false)
    }

    /// Flushes the file's data (and only the metadata needed to read it
    /// back, such as its size) to the device, like `fdatasync(2)`.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("sync-data-doc-{}", std::process::id()));
    /// let file = File::create(&p, &path).wait()?;
    /// file.write_all_at("data", 0).wait().0?;
    /// file.sync_data().wait()?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync_data(&self) -> R::Op<io::Result<()>> {
        crate::ops::fs::fsync(&self.proactor, &self.inner, true)
    }

    /// What `statx(2)` says of the open file: size, type, permissions,
    /// times, ... (see [`Metadata`]).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::{File, FileType}};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let null = File::open(&p, "/dev/null").wait()?;
    /// let m = null.metadata().wait()?;
    /// assert_eq!((m.file_type(), m.len()), (FileType::CharDevice, 0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metadata(&self) -> R::Op<io::Result<Metadata>> {
        let fd: OpFd = (&self.inner).into_op_fd();
        let path = CString::default();
        // SAFETY: `statx` is plain integers, for which zero is valid.
        let mut buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
        // The file itself: an empty path relative to its fd.
        let entry = ring_io_ops::Statx::new(Fd(fd.raw()), path.as_ptr(), (&raw mut *buf).cast())
            .flags(libc::AT_EMPTY_PATH)
            .mask(metadata::MASK)
            .build();
        self.proactor
            .op_with(entry, (fd, path), move |res: io::Result<u32>, _| {
                res.map(|_| Metadata::from_statx(&buf))
            })
    }

    /// Closes the file, like `close(2)`, reporting what the kernel says
    /// (a delayed write error of a network filesystem, say), which a drop
    /// cannot. If ops dropped in flight still hold the file, it is closed
    /// when the kernel is done with the last of them, and this reports
    /// nothing.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let file = File::open(&p, "/dev/null").wait()?;
    /// file.close().wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(self) -> R::Op<io::Result<()>> {
        match Arc::try_unwrap(self.inner) {
            Ok(file) => crate::ops::fs::close(&self.proactor, file.into()),
            // It closes with the last op that holds it.
            Err(shared) => {
                let nop = ring_io_ops::Nop::new().build();
                self.proactor.op(nop, move |res: io::Result<u32>, _| {
                    drop(shared);
                    res.map(drop)
                })
            }
        }
    }

    /// A file of `proactor` from a std file (which keeps its position,
    /// unused by the ops here).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let file = File::from_std(&p, std::fs::File::open("/proc/self/status")?);
    /// let (n, buf) = file.read_at(vec![0u8; 5], 0).wait();
    /// assert_eq!(&buf[..n?], b"Name:");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(proactor: &impl AsRef<R>, file: std::fs::File) -> File<R> {
        let proactor = proactor.as_ref();
        File {
            inner: Arc::new(file),
            proactor: proactor.clone(),
        }
    }

    /// The std file, for what std does that the Proactor's ops do not
    /// (`set_len`, `set_permissions`, locks, ...). Its blocking reads and
    /// writes block the calling thread.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("as-std-doc-{}", std::process::id()));
    /// let file = File::create(&p, &path).wait()?;
    /// file.as_std().set_len(100)?;
    /// assert_eq!(file.metadata().wait()?.len(), 100);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_std(&self) -> &std::fs::File {
        &self.inner
    }

    /// The std file. If ops dropped in flight still hold this one, a new
    /// descriptor of the same open file (`dup(2)`: they share the
    /// position and the flags), which can fail.
    ///
    /// ```
    /// use std::io::Read;
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let mut file = File::open(&p, "/proc/self/status").wait()?.into_std()?;
    /// let mut start = [0u8; 5];
    /// file.read_exact(&mut start)?;
    /// assert_eq!(&start, b"Name:");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::fs::File> {
        Arc::try_unwrap(self.inner).or_else(|shared| shared.try_clone())
    }

    /// The runtime whose ops this file's are.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::File};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let file = File::open(&p, "/dev/null").wait()?;
    /// file.proactor().nop().wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn proactor(&self) -> &R {
        &self.proactor
    }
}

impl<R: Runtime> AsFd for File<R> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl<R: Runtime> AsRawFd for File<R> {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// The runtime's ops take `&File`: the op holds the file open until the
/// kernel is done with it.
impl<R: Runtime> IntoOpFd for &File<R> {
    fn into_op_fd(self) -> OpFd {
        (&self.inner).into_op_fd()
    }
}

impl<R: Runtime> fmt::Debug for File<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.inner.as_raw_fd())
            .finish_non_exhaustive()
    }
}
