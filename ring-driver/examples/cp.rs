//! `cp SRC DST` through the ring: up to 16 reads in flight, each followed by
//! the write of what it read, with a progress bar when stderr is a terminal.
//! A source that is not a regular file (a pipe, a terminal), or whose size
//! says less than it holds (a procfs file), is copied in order until a read
//! returns 0. Errors name the path and exit with status 1; nothing is
//! truncated before both files are checked (`cp_common/mod.rs`).
//!
//! Run: `cargo run --release -p ring-io-driver --example cp -- SRC DST`

#[path = "cp_common/mod.rs"]
mod common;

use std::collections::VecDeque;
use std::io::{self, IsTerminal};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;

use common::{Error, Files};
use ring_io_driver::Ring;
use ring_io_ops::{Entry, Fd, Read, Write};

const BLOCK: usize = 128 * 1024;
const DEPTH: usize = 16;

/// One block buffer and what it is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Reading {
        offset: u64,
        want: usize,
    },
    Writing {
        offset: u64,
        len: usize,
        done: usize,
    },
}

fn main() -> ExitCode {
    common::main("cp", copy)
}

/// Copies `src` to `dst`; returns the bytes copied.
fn copy(src: &Path, dst: &Path) -> Result<u64, Error> {
    // Leaked, as the buffers: they stay valid for every request the ring
    // may still hold when an error returns early (the process ends right
    // after).
    let files: &'static Files = Box::leak(Box::new(Files::open(src, dst)?));
    let bufs: &'static mut [Vec<u8>] = vec![vec![0u8; BLOCK]; DEPTH].leak();
    let mut ring = Ring::new(2 * DEPTH as u32)
        .map_err(|e| Error::new(format!("cannot set up a ring: {e}")))?;
    let progress = io::stderr().is_terminal();
    let (end, mut copied) = copy_blocks(&mut ring, files, bufs, progress)?;
    files.resume_at(end)?;
    copied += copy_rest(&mut ring, files, copied, progress)?;
    files.sync()?;
    if progress {
        eprintln!();
    }
    Ok(copied)
}

/// Copies the blocks below `files.size` at their offsets, `DEPTH` at a time;
/// returns where the source ended (its size, or less if a read returned 0
/// first) and the bytes copied.
fn copy_blocks(
    ring: &mut Ring,
    files: &'static Files,
    bufs: &'static mut [Vec<u8>],
    progress: bool,
) -> Result<(u64, u64), Error> {
    let (ifd, ofd) = (Fd(files.input.as_raw_fd()), Fd(files.output.as_raw_fd()));
    let size = files.size;
    let mut end = size;
    let mut slots = [Slot::Free; DEPTH];
    let (mut next_read, mut copied) = (0u64, 0u64);
    // Ranges left over by short reads, read again first.
    let mut again: VecDeque<(u64, usize)> = VecDeque::new();
    let mut done = Vec::with_capacity(2 * DEPTH);
    loop {
        // Start reads into free buffers.
        {
            let mut sq = ring.sq();
            for (i, slot) in slots.iter_mut().enumerate() {
                if *slot != Slot::Free {
                    continue;
                }
                let (offset, len) = match again.pop_front() {
                    Some(range) => range,
                    None if next_read < end => {
                        let len = BLOCK.min((end - next_read) as usize);
                        next_read += len as u64;
                        (next_read - len as u64, len)
                    }
                    None => break,
                };
                let read = Read::new(ifd, bufs[i].as_mut_ptr(), len as u32)
                    .offset(offset)
                    .build()
                    .user_data(i as u64);
                // SAFETY: `bufs[i]` is used by no other request until this
                // one completes (its slot says so), and the buffers and the
                // files are leaked: valid until the process ends.
                unsafe { sq.push(read) }.map_err(Error::new)?;
                *slot = Slot::Reading { offset, want: len };
            }
        }
        if slots.iter().all(|s| *s == Slot::Free) {
            // Nothing in flight and nothing left to read below `end`.
            return Ok((end, copied));
        }
        ring.submitter()
            .submit_and_wait(1)
            .map_err(|e| Error::new(format!("io_uring_enter: {e}")))?;
        done.clear();
        done.extend(ring.cq());
        for cqe in &done {
            let i = cqe.user_data() as usize;
            let Some(&slot) = slots.get(i) else {
                return Err(Error::new(format!("a completion for no request: {i}")));
            };
            let n = cqe.result().map_err(io::Error::from);
            slots[i] = match slot {
                Slot::Reading { offset, want } => {
                    let n = files.read_len(n.map_err(|e| files.reading(e))? as usize, want)?;
                    if n == 0 {
                        // The end of the source, before its size said.
                        end = end.min(offset);
                        again.retain(|&(at, _)| at < end);
                        Slot::Free
                    } else {
                        if n < want && offset + (n as u64) < end {
                            again.push_back((offset + n as u64, want - n));
                        }
                        Slot::Writing {
                            offset,
                            len: n,
                            done: 0,
                        }
                    }
                }
                Slot::Writing { offset, len, done } => {
                    let n = n.map_err(|e| files.writing(e))? as usize;
                    let n = files.written_len(n, len - done)?;
                    copied += n as u64;
                    if done + n == len {
                        Slot::Free
                    } else {
                        Slot::Writing {
                            offset,
                            len,
                            done: done + n,
                        }
                    }
                }
                Slot::Free => {
                    return Err(Error::new(format!("a completion for no request: {i}")));
                }
            };
            if let Slot::Writing { offset, len, done } = slots[i] {
                let write = Write::new(ofd, bufs[i][done..].as_ptr(), (len - done) as u32)
                    .offset(offset + done as u64)
                    .build()
                    .user_data(i as u64);
                // SAFETY: as above: the buffer is this slot's and leaked.
                unsafe { ring.sq().push(write) }.map_err(Error::new)?;
            }
        }
        if progress {
            let pct = (copied * 100).checked_div(size).unwrap_or(100);
            let bar = "#".repeat((pct / 4) as usize);
            eprint!("\r[{bar:<25}] {pct:>3}% {copied}/{size} bytes");
        }
    }
}

/// Copies the rest of the source, at the file positions, one block at a
/// time, until a read returns 0; returns the bytes copied. `before` bytes
/// were copied already (for the progress line).
fn copy_rest(
    ring: &mut Ring,
    files: &'static Files,
    before: u64,
    progress: bool,
) -> Result<u64, Error> {
    let (ifd, ofd) = (Fd(files.input.as_raw_fd()), Fd(files.output.as_raw_fd()));
    // Leaked, as in `copy` (untouched pages cost nothing where a read
    // returns 0 at once).
    let buf: &'static mut [u8] = vec![0u8; BLOCK].leak();
    let mut copied = 0;
    loop {
        // `u64::MAX`: at (and moving) the file position.
        let read = Read::new(ifd, buf.as_mut_ptr(), BLOCK as u32).offset(u64::MAX);
        // SAFETY: `buf` and the files are leaked, and nothing else is in
        // flight (every block request was reaped).
        let n = unsafe { complete(ring, read.build()) }.map_err(|e| files.reading(e))?;
        let n = files.read_len(n as usize, BLOCK)?;
        if n == 0 {
            return Ok(copied);
        }
        let mut done = 0;
        while done < n {
            let write = Write::new(ofd, buf[done..n].as_ptr(), (n - done) as u32).offset(u64::MAX);
            // SAFETY: as for the read.
            let w = unsafe { complete(ring, write.build()) }.map_err(|e| files.writing(e))?;
            done += files.written_len(w as usize, n - done)?;
        }
        copied += n as u64;
        if progress {
            eprint!("\r{} bytes", before + copied);
        }
    }
}

/// Pushes `entry` and waits for its completion, the only one the ring
/// holds; returns its result.
///
/// # Safety
///
/// As for `SubmissionQueue::push`: every buffer and fd of `entry` stays
/// valid until its completion is reaped, which an error may leave for later
/// (or never).
unsafe fn complete(ring: &mut Ring, entry: Entry) -> io::Result<u32> {
    // SAFETY: the caller keeps the entry's buffers and fds valid.
    unsafe { ring.sq().push(entry) }.map_err(io::Error::from)?;
    ring.submitter().submit_and_wait(1)?;
    let cqe = ring
        .cq()
        .next()
        .ok_or_else(|| io::Error::other("no completion after waiting for one"))?;
    cqe.result().map_err(io::Error::from)
}
