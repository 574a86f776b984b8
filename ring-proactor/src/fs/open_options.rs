//! [`OpenOptions`]: how to open a [`File`].

use std::io;
use std::path::Path;

use crate::Runtime;
use crate::fs::File;
use crate::ops::Backend;
#[cfg(doc)]
use crate::{LocalProactor, Proactor};

/// How to open a [`File`]: which access, whether to create or truncate it,
/// with which permissions; then [`open`](Self::open) on a [`Proactor`] or
/// a [`LocalProactor`] (`IORING_OP_OPENAT`). The options and their errors are those of
/// [`std::fs::OpenOptions`]; the file is always opened close-on-exec.
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let path = std::env::temp_dir().join(format!("open-options-doc-{}", std::process::id()));
/// let file = OpenOptions::new()
///     .write(true)
///     .create_new(true)
///     .mode(0o600)
///     .open(&p, &path)
///     .wait()?;
/// file.write_all_at("hello", 0).wait().0?;
/// let again = OpenOptions::new().read(true).open(&p, &path).wait()?;
/// assert_eq!(again.metadata().wait()?.len(), 5);
/// // Created already: `create_new` fails.
/// let err = OpenOptions::new().write(true).create_new(true).open(&p, &path).wait();
/// assert_eq!(err.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// No access asked, nothing created, permissions `0o666` (less the
    /// process's umask) for a file created.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// // Neither read nor write: refused, as std refuses it.
    /// let err = OpenOptions::new().open(&p, "/dev/null").wait().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Self {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
        }
    }

    /// Open for reading.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let file = OpenOptions::new().read(true).open(&p, "/proc/self/status").wait()?;
    /// let (n, buf) = file.read_at(vec![0u8; 5], 0).wait();
    /// assert_eq!(&buf[..n?], b"Name:");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read(&mut self, read: bool) -> &mut Self {
        self.read = read;
        self
    }

    /// Open for writing.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let null = OpenOptions::new().write(true).open(&p, "/dev/null").wait()?;
    /// assert_eq!(null.write_at("gone", 0).wait().0?, 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&mut self, write: bool) -> &mut Self {
        self.write = write;
        self
    }

    /// Open for appending (implies writing): every write goes to the end
    /// of the file, whatever its offset (`O_APPEND`).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("append-doc-{}", std::process::id()));
    /// std::fs::write(&path, "log: ")?;
    /// let log = OpenOptions::new().append(true).open(&p, &path).wait()?;
    /// log.write_all_at("one", 0).wait().0?;
    /// assert_eq!(std::fs::read(&path)?, b"log: one");
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn append(&mut self, append: bool) -> &mut Self {
        self.append = append;
        self
    }

    /// Empty the file when it is opened (`O_TRUNC`; needs
    /// [`write`](Self::write)).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("truncate-doc-{}", std::process::id()));
    /// std::fs::write(&path, "old contents")?;
    /// let file = OpenOptions::new().write(true).truncate(true).open(&p, &path).wait()?;
    /// assert_eq!(file.metadata().wait()?.len(), 0);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn truncate(&mut self, truncate: bool) -> &mut Self {
        self.truncate = truncate;
        self
    }

    /// Create the file if it does not exist (`O_CREAT`; needs
    /// [`write`](Self::write) or [`append`](Self::append)).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("create-doc-{}", std::process::id()));
    /// OpenOptions::new().write(true).create(true).open(&p, &path).wait()?;
    /// assert!(path.exists());
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists
    /// (`O_CREAT | O_EXCL`, which also refuses a symlink there); overrides
    /// [`create`](Self::create) and [`truncate`](Self::truncate). See
    /// [`OpenOptions`] for an example.
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.create_new = create_new;
        self
    }

    /// The permissions of a file created (default `0o666`), less the
    /// process's umask, as `std::os::unix::fs::OpenOptionsExt::mode`.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, fs::OpenOptions};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("mode-doc-{}", std::process::id()));
    /// let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p, &path).wait()?;
    /// assert_eq!(file.metadata().wait()?.mode() & 0o777, 0o600);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Opens `path` (relative to the current directory) with these
    /// options: an op of `proactor` (see [`Runtime`]) whose output is the
    /// [`File`].
    ///
    /// Options that do not go together fail with `InvalidInput`, as std's
    /// do: no access at all, or creating or truncating without writing.
    /// See [`OpenOptions`] for an example.
    pub fn open<R: Runtime>(
        &self,
        proactor: &impl AsRef<R>,
        path: impl AsRef<Path>,
    ) -> R::Op<io::Result<File<R>>> {
        let proactor = proactor.as_ref();
        let open = crate::ops::fs::open(proactor, path, self);
        proactor.map_with(open, |p, fd| Ok(File::from_std(p, fd?.into())))
    }

    /// The `O_*` flags these options ask for (`O_CLOEXEC` included), or
    /// why they cannot go together.
    pub(crate) fn flags(&self) -> io::Result<i32> {
        let invalid = |what| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => {
                return invalid("open options with no access: ask for read, write or append");
            }
        };
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) if self.truncate || self.create || self.create_new => {
                return invalid("open options that create or truncate without write or append");
            }
            (false, false) => {}
            (_, true) if self.truncate && !self.create_new => {
                return invalid("open options that truncate and append");
            }
            (_, true) => {}
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
        };
        Ok(access | creation | libc::O_CLOEXEC)
    }

    pub(crate) fn mode_bits(&self) -> u32 {
        self.mode
    }
}
