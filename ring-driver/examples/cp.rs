//! `cp SRC DST` through the ring. Between two regular files each block is
//! spliced (`IORING_OP_SPLICE`) from the source into a pipe, then from the
//! pipe into the destination, 4 blocks of 1 MiB in flight, each through its
//! own pipe: the bytes are copied once, in the kernel, as coreutils `cp`
//! copies them (see `cp_common/mod.rs`). A progress bar is drawn when stderr
//! is a terminal. A source that is not a regular file (a pipe, a terminal),
//! or whose size says less than it holds (a procfs file), is read and
//! written in order until a read returns 0. Errors name the path and exit
//! with status 1; nothing is truncated before both files are checked.
//!
//! Run: `cargo run --release -p ring-io-driver --example cp -- SRC DST`

#[path = "cp_common/mod.rs"]
mod common;

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;

use common::{DEPTH, Error, Files, Pipe, Progress, REST_BLOCK};
use ring_io_driver::Ring;
use ring_io_ops::{Entry, Fd, Read, Splice, Write};

/// One block's pipe and what it is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The pipe is empty.
    Free,
    /// Splicing `want` bytes of the source at `offset` into the pipe.
    Filling { offset: u64, want: usize },
    /// Splicing the `left` bytes in the pipe into the destination at
    /// `offset`.
    Draining { offset: u64, left: usize },
}

fn main() -> ExitCode {
    common::main("cp", copy)
}

/// Copies `src` to `dst`; returns the bytes copied.
fn copy(src: &Path, dst: &Path) -> Result<u64, Error> {
    // Leaked, as the pipes and the buffer: they stay valid for every
    // request the ring may still hold when an error returns early (the
    // process ends right after).
    let files: &'static Files = Box::leak(Box::new(Files::open(src, dst)?));
    let mut ring = Ring::new(2 * DEPTH as u32)
        .map_err(|e| Error::new(format!("cannot set up a ring: {e}")))?;
    let progress = Progress::new(files);
    let (mut end, mut copied) = (0, 0);
    if files.size > 0 {
        match splice_blocks(&mut ring, files, &progress)? {
            Some(spliced) => (end, copied) = spliced,
            // Start over, reading and writing all of it.
            None => {
                files.restart()?;
                progress.restart();
            }
        }
    }
    files.resume_at(end)?;
    copied += copy_rest(&mut ring, files, &progress)?;
    progress.finish();
    Ok(copied)
}

/// Splices the blocks below `files.size` at their offsets, `DEPTH` at a
/// time; returns where the source ended (its size, or less if a splice
/// returned 0 first) and the bytes copied, or `None` if the files cannot be
/// spliced (after every request has completed; what was copied is to be
/// copied again).
fn splice_blocks(
    ring: &mut Ring,
    files: &'static Files,
    progress: &Progress,
) -> Result<Option<(u64, u64)>, Error> {
    let pipes: &'static [Pipe] = (0..DEPTH)
        .map(|_| Pipe::new())
        .collect::<Result<Vec<_>, _>>()?
        .leak();
    let (ifd, ofd) = (Fd(files.input.as_raw_fd()), Fd(files.output.as_raw_fd()));
    let mut end = files.size;
    let mut slots = [Slot::Free; DEPTH];
    let (mut next, mut copied) = (0u64, 0u64);
    // Ranges left over by short splices, spliced again first.
    let mut again: VecDeque<(u64, usize)> = VecDeque::new();
    let mut unsupported = false;
    let mut done = Vec::with_capacity(2 * DEPTH);
    loop {
        // Start filling the free pipes.
        if !unsupported {
            let mut sq = ring.sq();
            for (i, slot) in slots.iter_mut().enumerate() {
                if *slot != Slot::Free {
                    continue;
                }
                let cap = pipes[i].capacity;
                let (offset, want) = match again.pop_front() {
                    Some((at, len)) if len > cap => {
                        again.push_front((at + cap as u64, len - cap));
                        (at, cap)
                    }
                    Some(range) => range,
                    None if next < end => {
                        let len = cap.min((end - next) as usize);
                        next += len as u64;
                        (next - len as u64, len)
                    }
                    None => break,
                };
                let fill = Splice::new(
                    ifd,
                    offset as i64,
                    Fd(pipes[i].write.as_raw_fd()),
                    -1,
                    want as u32,
                );
                // SAFETY: the files and the pipes are leaked: open until
                // the process ends; no pointer is involved.
                unsafe { sq.push(fill.build().user_data(i as u64)) }.map_err(Error::new)?;
                *slot = Slot::Filling { offset, want };
            }
        }
        if slots.iter().all(|s| *s == Slot::Free) {
            // Nothing in flight and nothing left below `end`.
            return Ok((!unsupported).then_some((end, copied)));
        }
        ring.submitter()
            .submit_and_wait(1)
            .map_err(|e| Error::new(format!("io_uring_enter: {e}")))?;
        done.clear();
        done.extend(ring.cq().map(|cqe| (cqe.user_data(), cqe.result())));
        for &(i, result) in &done {
            let Some(&slot) = slots.get(i as usize) else {
                return Err(Error::new(format!("a completion for no request: {i}")));
            };
            let i = i as usize;
            let n = result.map_err(io::Error::from);
            if let Err(e) = &n {
                if common::unsupported(e) {
                    // Let what is in flight end, then start over.
                    unsupported = true;
                }
            }
            slots[i] = match slot {
                _ if unsupported => Slot::Free,
                Slot::Filling { offset, want } => {
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
                        Slot::Draining { offset, left: n }
                    }
                }
                Slot::Draining { offset, left } => {
                    let n = n.map_err(|e| files.writing(e))? as usize;
                    let n = files.written_len(n, left)?;
                    copied += n as u64;
                    progress.add(n as u64);
                    if n == left {
                        Slot::Free
                    } else {
                        Slot::Draining {
                            offset: offset + n as u64,
                            left: left - n,
                        }
                    }
                }
                Slot::Free => {
                    return Err(Error::new(format!("a completion for no request: {i}")));
                }
            };
            if let Slot::Draining { offset, left } = slots[i] {
                let drain = Splice::new(
                    Fd(pipes[i].read.as_raw_fd()),
                    -1,
                    ofd,
                    offset as i64,
                    left as u32,
                );
                // SAFETY: as for the fill: all leaked, no pointers.
                unsafe { ring.sq().push(drain.build().user_data(i as u64)) }.map_err(Error::new)?;
            }
        }
    }
}

/// Copies the rest of the source, at the file positions, one block at a
/// time, until a read returns 0; returns the bytes copied.
fn copy_rest(ring: &mut Ring, files: &'static Files, progress: &Progress) -> Result<u64, Error> {
    let (ifd, ofd) = (Fd(files.input.as_raw_fd()), Fd(files.output.as_raw_fd()));
    // Leaked, as in `copy` (untouched pages cost nothing where a read
    // returns 0 at once).
    let buf: &'static mut [u8] = vec![0u8; REST_BLOCK].leak();
    let mut copied = 0;
    loop {
        // `u64::MAX`: at (and moving) the file position.
        let read = Read::new(ifd, buf.as_mut_ptr(), REST_BLOCK as u32).offset(u64::MAX);
        // SAFETY: `buf` and the files are leaked, and nothing else is in
        // flight (every block request was reaped).
        let n = unsafe { complete(ring, read.build()) }.map_err(|e| files.reading(e))?;
        let n = files.read_len(n as usize, REST_BLOCK)?;
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
        progress.add(n as u64);
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
