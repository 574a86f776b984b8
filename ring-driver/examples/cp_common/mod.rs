//! What both copy examples share: the checks that run before any byte moves,
//! errors that name the path, and `main`.
//!
//! Nothing is destroyed: the source is opened and checked first (a directory
//! is refused), the destination is opened without truncating it and refused
//! if it is the source under another name (a hard link, a symlink, `./x`),
//! and only then truncated. A source whose size says nothing (a pipe, a
//! terminal, a procfs file: `st_size` 0; a sysfs file: 4096) is copied until
//! a read returns 0, never up to its size only.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[path = "../cli/mod.rs"]
#[allow(dead_code, reason = "each example uses part of it")]
mod cli;

pub(crate) use cli::Error;

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
    /// Whether the destination is a regular file, synced at the end (a pipe
    /// or a terminal cannot be).
    pub(crate) output_regular: bool,
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
        let sync = to.is_file();
        if sync {
            output
                .set_len(0)
                .map_err(|e| Error::at("cannot truncate", dst, e))?;
        }
        let size = if from.is_file() && sync {
            from.len()
        } else {
            0
        };
        Ok(Files {
            input: Arc::new(input),
            output: Arc::new(output),
            size,
            output_regular: sync,
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

    /// Syncs the destination if it is a regular file.
    pub(crate) fn sync(&self) -> Result<(), Error> {
        if self.output_regular {
            self.output.sync_all().map_err(|e| self.writing(e))?;
        }
        Ok(())
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
