//! What both copy examples share: the checks that run before any byte moves,
//! errors that name the path, the pipes the copy splices through, the
//! progress bar, and `main`.
//!
//! Nothing is destroyed: the source is opened and checked first (a directory
//! is refused), the destination is opened without truncating it and refused
//! if it is the source under another name (a hard link, a symlink, `./x`),
//! and only then truncated. A source whose size says nothing (a pipe, a
//! terminal, a procfs file: `st_size` 0; a sysfs file: 4096) is copied until
//! a read returns 0, never up to its size only.
//!
//! How the bytes move: between two regular files, `IORING_OP_SPLICE` from
//! the source into a pipe, then from the pipe into the destination, a
//! [`SPLICE_BLOCK`] at a time, [`DEPTH`] blocks in flight, each through its
//! own pipe. The pipe holds references to the source's page-cache pages, so
//! each byte is copied once (into the destination's pages), where a read
//! into a buffer and a write out of it copy it twice; it is what coreutils
//! `cp` gets from `copy_file_range(2)`, which on a filesystem that cannot
//! share extents splices through a pipe inside the kernel. Anything else (a
//! pipe, a terminal, what comes after a size that said too little, or files
//! that cannot be spliced) is read and written [`REST_BLOCK`] at a time.
//! Like coreutils `cp`, the copy is not synced to the disk when it ends.

use std::cell::Cell;
use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal as _, Seek as _, SeekFrom};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../cli/mod.rs"]
#[allow(dead_code, reason = "each example uses part of it")]
mod cli;

pub(crate) use cli::Error;

/// Bytes per splice (and the size asked of each pipe): 1 MiB, the most an
/// unprivileged process may give a pipe by default (`/proc/sys/fs/pipe-max-size`).
pub(crate) const SPLICE_BLOCK: usize = 1 << 20;

/// Blocks in flight (and pipes). Measured on a 200 MB page-cached copy:
/// 2 and 4 are as fast, 16 slower (more io-wq workers for the same work).
pub(crate) const DEPTH: usize = 4;

/// Bytes per read and write where the copy cannot splice.
pub(crate) const REST_BLOCK: usize = 128 * 1024;

/// The two files of a copy, opened and checked.
pub(crate) struct Files {
    /// The source.
    pub(crate) input: Arc<File>,
    /// The destination, emptied.
    pub(crate) output: Arc<File>,
    /// When both are regular files, the source's `st_size`: the blocks below
    /// it may be copied at their offsets, in any order (a read that returns
    /// 0 ends the source there). 0 otherwise: all of it is copied in order.
    /// Either way the copy goes on at the file positions until a read
    /// returns 0 (see [`resume_at`](Self::resume_at)).
    pub(crate) size: u64,
    src: PathBuf,
    dst: PathBuf,
}

impl Files {
    /// Opens `src` and checks it, then opens `dst` and checks that it is not
    /// `src`, then empties `dst`: an error before the last step leaves `dst`
    /// as it was.
    pub(crate) fn open(src: &Path, dst: &Path) -> Result<Files, Error> {
        let input = File::open(src).map_err(|e| Error::at("cannot open", src, e))?;
        let from = input
            .metadata()
            .map_err(|e| Error::at("cannot stat", src, e))?;
        if from.is_dir() {
            let e = io::Error::from_raw_os_error(libc::EISDIR);
            return Err(Error::at("cannot copy", src, e));
        }
        // Not truncated yet: it may be the source under another name.
        let output = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dst)
            .map_err(|e| Error::at("cannot create", dst, e))?;
        let to = output
            .metadata()
            .map_err(|e| Error::at("cannot stat", dst, e))?;
        if (from.dev(), from.ino()) == (to.dev(), to.ino()) {
            return Err(Error::new(format!(
                "'{}' and '{}' are the same file",
                src.display(),
                dst.display()
            )));
        }
        let regular = to.is_file();
        // Not an empty file: ext4 takes a truncation to 0 for a file being
        // replaced and writes it back when it is closed (`auto_da_alloc`),
        // which coreutils `cp` does not pay for a new file either.
        if regular && to.len() > 0 {
            output
                .set_len(0)
                .map_err(|e| Error::at("cannot truncate", dst, e))?;
        }
        let size = if from.is_file() && regular {
            from.len()
        } else {
            0
        };
        Ok(Files {
            input: Arc::new(input),
            output: Arc::new(output),
            size,
            src: src.to_owned(),
            dst: dst.to_owned(),
        })
    }

    /// Puts both file positions at `end`, where the copy goes on after the
    /// blocks below it (copied at their offsets, which moves no position).
    /// Nothing to do at 0 (where a pipe cannot seek to; the positions of
    /// files just opened are there).
    pub(crate) fn resume_at(&self, end: u64) -> Result<(), Error> {
        if end == 0 {
            return Ok(());
        }
        (&*self.input)
            .seek(SeekFrom::Start(end))
            .map_err(|e| self.reading(e))?;
        (&*self.output)
            .seek(SeekFrom::Start(end))
            .map_err(|e| self.writing(e))?;
        Ok(())
    }

    /// An error reading the source.
    pub(crate) fn reading(&self, cause: impl fmt::Display) -> Error {
        Error::at("error reading", &self.src, cause)
    }

    /// An error writing the destination.
    pub(crate) fn writing(&self, cause: impl fmt::Display) -> Error {
        Error::at("error writing", &self.dst, cause)
    }

    /// Checks what the kernel says a read of `asked` bytes returned.
    pub(crate) fn read_len(&self, n: usize, asked: usize) -> Result<usize, Error> {
        if n > asked {
            return Err(self.reading(format!("{n} bytes read of {asked} asked")));
        }
        Ok(n)
    }

    /// Checks what the kernel says a write of `asked` bytes returned: 0 is
    /// an error (the same write again would loop forever), more than asked
    /// too.
    pub(crate) fn written_len(&self, n: usize, asked: usize) -> Result<usize, Error> {
        if n == 0 && asked > 0 {
            return Err(self.writing(io::Error::from(io::ErrorKind::WriteZero)));
        }
        if n > asked {
            return Err(self.writing(format!("{n} bytes written of {asked} asked")));
        }
        Ok(n)
    }

    /// Empties the destination again, for a copy that starts over (after
    /// splicing turned out to be unsupported).
    pub(crate) fn restart(&self) -> Result<(), Error> {
        self.output.set_len(0).map_err(|e| self.writing(e))
    }
}

/// Whether a failed splice means that these files cannot be spliced (the
/// source has no `splice_read`, the destination no `splice_write`, or the
/// kernel has no `IORING_OP_SPLICE`): then the copy is read and written.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// A pipe to splice through: its read and its write end, shared with the
/// ops that use them (the Proactor's hold an `Arc` each until their
/// completion).
pub(crate) struct Pipe {
    /// The read end.
    pub(crate) read: Arc<OwnedFd>,
    /// The write end.
    pub(crate) write: Arc<OwnedFd>,
    /// What the pipe holds (`F_GETPIPE_SZ`): [`SPLICE_BLOCK`] if the kernel
    /// granted it, less if it did not (a user over `pipe-user-pages-soft`
    /// gets one page).
    pub(crate) capacity: usize,
}

impl Pipe {
    /// A new pipe, grown to [`SPLICE_BLOCK`] if the kernel allows it.
    pub(crate) fn new() -> Result<Pipe, Error> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            let e = io::Error::last_os_error();
            return Err(Error::new(format!("cannot create a pipe: {e}")));
        }
        // SAFETY: pipe2 succeeded: both descriptors are new and owned by
        // nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A refusal leaves the default size, which the copy then uses.
        // SAFETY: F_SETPIPE_SZ and F_GETPIPE_SZ take an int and touch no
        // memory of ours.
        let capacity = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                SPLICE_BLOCK as libc::c_int,
            );
            libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        let capacity = usize::try_from(capacity)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| {
                Error::new(format!(
                    "cannot size a pipe: {}",
                    io::Error::last_os_error()
                ))
            })?;
        Ok(Pipe {
            read: Arc::new(read),
            write: Arc::new(write),
            capacity: capacity.min(SPLICE_BLOCK),
        })
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal, at most
/// every [`Progress::EVERY`] and once more when the copy ends. Shared by the
/// tasks of a copy on one thread (hence the `Cell`s).
pub(crate) struct Progress {
    /// What the source's size announces (0: nothing; then only the bytes
    /// copied are shown).
    total: u64,
    done: Cell<u64>,
    /// When the bar was last drawn; `None` before the first time.
    drawn: Cell<Option<Instant>>,
    on: bool,
}

impl Progress {
    /// The shortest time between two drawings.
    const EVERY: Duration = Duration::from_millis(100);

    /// A bar for the copy of `files` (of `files.size` bytes; 0: unknown),
    /// drawn if stderr is a terminal and the destination is not one (the
    /// bar would land among the bytes copied).
    pub(crate) fn new(files: &Files) -> Progress {
        Progress {
            total: files.size,
            done: Cell::new(0),
            drawn: Cell::new(None),
            on: io::stderr().is_terminal() && !files.output.is_terminal(),
        }
    }

    /// Counts `n` more bytes copied; redraws if it is time.
    pub(crate) fn add(&self, n: u64) {
        self.done.set(self.done.get() + n);
        if self.on
            && self
                .drawn
                .get()
                .is_none_or(|at| at.elapsed() >= Self::EVERY)
        {
            self.draw();
        }
    }

    /// Counts from 0 again, for a copy that starts over.
    pub(crate) fn restart(&self) {
        self.done.set(0);
    }

    /// Draws the bar a last time (its line ends when it is dropped).
    pub(crate) fn finish(&self) {
        if self.on {
            self.draw();
        }
    }

    fn draw(&self) {
        const WIDTH: usize = 30;
        const MIB: f64 = (1 << 20) as f64;
        let done = self.done.get();
        if 0 < self.total && done <= self.total {
            let bar = "#".repeat((done * WIDTH as u64 / self.total) as usize);
            let pct = done * 100 / self.total;
            eprint!(
                "\r[{bar:<WIDTH$}] {pct:>3}% {:.1}/{:.1} MiB ",
                done as f64 / MIB,
                self.total as f64 / MIB
            );
        } else {
            // An unknown size, or more than it said.
            eprint!("\r{:.1} MiB ", done as f64 / MIB);
        }
        self.drawn.set(Some(Instant::now()));
    }
}

impl Drop for Progress {
    /// Ends the bar's line, so that what is printed next (the summary, or
    /// an error) starts on its own.
    fn drop(&mut self) {
        if self.drawn.get().is_some() {
            eprintln!();
        }
    }
}

/// `main` of a copy example called `name`: takes `SRC DST` (any bytes,
/// not only UTF-8), runs `copy`, reports the bytes and the speed, or the
/// error naming the path with exit status 1 (2 for a bad command line).
pub(crate) fn main(name: &str, copy: impl FnOnce(&Path, &Path) -> Result<u64, Error>) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        let why = format!("expected 2 arguments, SRC and DST; got {}", args.len());
        return cli::usage(name, "SRC DST", why);
    };
    let start = Instant::now();
    match copy(Path::new(src), Path::new(dst)) {
        Ok(copied) => {
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "copied {copied} bytes in {secs:.3} s ({:.1} MiB/s)",
                copied as f64 / secs.max(1e-9) / (1 << 20) as f64
            );
            ExitCode::SUCCESS
        }
        Err(e) => cli::exit(name, Err(e)),
    }
}
