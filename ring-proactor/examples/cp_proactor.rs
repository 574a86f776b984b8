//! `cp SRC DST` on the [`Proactor`]: between two regular files, 4 tasks on
//! one thread, each with its own pipe, splice every 4th block of 1 MiB from
//! the source into their pipe and, linked to it, from the pipe into the
//! destination (`Proactor::splice` and `Op::link`: one wake-up per block, no
//! buffer in user space, the bytes copied once, in the kernel, see
//! `cp_common/mod.rs`), joined by a few lines of executor below. Compare with `examples/cp.rs`, the same copy on the raw ring with
//! `unsafe` pushes. A progress bar is drawn when stderr is a terminal. A
//! source that is not a regular file (a pipe, a terminal), or whose size
//! says less than it holds (a procfs file), is read into an owned buffer and
//! written back out (a short write's rest as a slice of it), in order, until
//! a read returns 0. Errors name the path
//! and exit with status 1; nothing is truncated before both files are
//! checked.
//!
//! Run: `cargo run --release -p ring-io-proactor --example cp_proactor -- SRC DST`
//!
//! `tests/proactor.rs` includes this file and checks [`copy`] on a file
//! whose size is not a multiple of the block.

#[path = "../../ring-driver/examples/cp_common/mod.rs"]
#[allow(dead_code, reason = "the tests include this file for `copy` only")]
mod common;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};

use common::{DEPTH, Error, Files, Pipe, Progress, REST_BLOCK, SPLICE_BLOCK};
use ring_io_proactor::{IoBuf, Proactor, ProactorConfig, block_on};

/// Polls every future until all are done (none is polled after it ends).
struct JoinAll<F: Future>(Vec<Task<F>>);

/// A future and, once it has ended, its output.
type Task<F> = (Pin<Box<F>>, Option<<F as Future>::Output>);

// The futures are pinned in their boxes; the outputs are never pinned.
impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<F::Output>> {
        let mut pending = false;
        for (future, out) in self.0.iter_mut() {
            if out.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(self.0.iter_mut().map(|(_, o)| o.take().unwrap()).collect())
    }
}

/// Splices blocks `first`, `first + DEPTH`, ... below `files.size` into
/// the destination at the same offsets, through `pipe`, and stops early if
/// `stop` is set (another task failed); sets `stop` when it fails. Returns
/// where the source ended (its size, or less if a splice returned 0 first)
/// and the bytes copied, or `None` if the files cannot be spliced.
async fn splice_blocks(
    p: &Proactor,
    files: &Files,
    pipe: &Pipe,
    first: usize,
    progress: &Progress,
    stop: &Cell<bool>,
) -> Result<Option<(u64, u64)>, Error> {
    let result = splice_stride(p, files, pipe, first, progress, stop).await;
    if !matches!(result, Ok(Some(_))) {
        stop.set(true);
    }
    result
}

/// [`splice_blocks`] without setting `stop`.
async fn splice_stride(
    p: &Proactor,
    files: &Files,
    pipe: &Pipe,
    first: usize,
    progress: &Progress,
    stop: &Cell<bool>,
) -> Result<Option<(u64, u64)>, Error> {
    let size = files.size;
    let mut copied = 0;
    let mut offset = (first * SPLICE_BLOCK) as u64;
    while offset < size {
        let want = SPLICE_BLOCK.min((size - offset) as usize);
        let mut filled = 0;
        // A pipe smaller than the block (the kernel did not grow it), or a
        // short splice, takes several rounds.
        while filled < want {
            if stop.get() {
                return Ok(Some((size, copied)));
            }
            let at = offset + filled as u64;
            let ask = pipe.capacity.min(want - filled);
            // Fill the pipe, then (linked: without coming back here) empty
            // it into the destination.
            let fill = p.splice(&files.input, Some(at), &pipe.write, None, ask as u32);
            let drain = p.splice(&pipe.read, None, &files.output, Some(at), ask as u32);
            let (n, w) = fill.link(drain).await;
            let Some(n) = moved(n).map_err(|e| files.reading(e))? else {
                return Ok(None);
            };
            let n = files.read_len(n, ask)?;
            let w = match w {
                // A short fill cancels the drain linked to it.
                Err(e) if n < ask && e.raw_os_error() == Some(libc::ECANCELED) => 0,
                w => match moved(w).map_err(|e| files.writing(e))? {
                    Some(w) => files.written_len(w, n)?,
                    None => return Ok(None),
                },
            };
            progress.add(w as u64);
            if n == 0 {
                // The end of the source, before its size said.
                return Ok(Some((at, copied)));
            }
            // Empty the rest of the pipe into the destination.
            let mut left = n - w;
            while left > 0 {
                let to = at + (n - left) as u64;
                let w = p.splice(&pipe.read, None, &files.output, Some(to), left as u32);
                let Some(w) = moved(w.await).map_err(|e| files.writing(e))? else {
                    return Ok(None);
                };
                let w = files.written_len(w, left)?;
                left -= w;
                progress.add(w as u64);
            }
            filled += n;
            copied += n as u64;
        }
        offset += (DEPTH * SPLICE_BLOCK) as u64;
    }
    Ok(Some((size, copied)))
}

/// The bytes a splice moved, or `None` if these files cannot be spliced.
fn moved(result: io::Result<usize>) -> io::Result<Option<usize>> {
    match result {
        Err(e) if common::unsupported(&e) => Ok(None),
        other => other.map(Some),
    }
}

/// Copies the rest of the source, at the file positions, one block at a
/// time, until a read returns 0; returns the bytes copied. One buffer: each
/// read fills it from its start.
async fn copy_rest(p: &Proactor, files: &Files, progress: &Progress) -> Result<u64, Error> {
    let mut buf = vec![0u8; REST_BLOCK];
    let mut copied = 0;
    loop {
        // `u64::MAX`: at (and moving) the file position.
        let (n, back) = p.read(&files.input, buf, u64::MAX).await;
        buf = back;
        let n = files.read_len(n.map_err(|e| files.reading(e))?, REST_BLOCK)?;
        if n == 0 {
            return Ok(copied);
        }
        copied += n as u64;
        buf = write_all(p, files, buf, n, u64::MAX).await?;
        progress.add(n as u64);
    }
}

/// Writes the first `len` bytes of `buf` at `at` (`u64::MAX`: at the file
/// position), a short write followed by one of the rest (a slice of the
/// same buffer). Hands the buffer back.
async fn write_all(
    p: &Proactor,
    files: &Files,
    mut buf: Vec<u8>,
    len: usize,
    mut at: u64,
) -> Result<Vec<u8>, Error> {
    let mut done = 0;
    while done < len {
        let asked = len - done;
        let (n, back) = p.write(&files.output, buf.slice(done..len), at).await;
        buf = back.into_inner();
        let n = files.written_len(n.map_err(|e| files.writing(e))?, asked)?;
        done += n;
        if at != u64::MAX {
            at += n as u64;
        }
    }
    Ok(buf)
}

/// Copies `src` to `dst` on `p` (see `cp_common/mod.rs` for the checks
/// before any byte moves); returns the bytes copied.
pub(crate) fn copy(p: &Proactor, src: &Path, dst: &Path) -> Result<u64, Error> {
    // Each op holds a clone of a file's (and a pipe's) `Arc` until the
    // kernel is done with it (see `OpFd`).
    let files = &Files::open(src, dst)?;
    let progress = &Progress::new(files);
    let (mut end, mut copied) = (0, 0);
    if files.size > 0 {
        let pipes = (0..DEPTH)
            .map(|_| Pipe::new())
            .collect::<Result<Vec<_>, _>>()?;
        let stop = &Cell::new(false);
        let tasks = pipes
            .iter()
            .enumerate()
            .map(|(first, pipe)| {
                let task = splice_blocks(p, files, pipe, first, progress, stop);
                (Box::pin(task), None)
            })
            .collect();
        let results = block_on(JoinAll(tasks));
        // An error first, then whether to start over.
        let done = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        match done.into_iter().collect::<Option<Vec<_>>>() {
            Some(done) => {
                end = files.size;
                for (task_end, n) in done {
                    end = end.min(task_end);
                    copied += n;
                }
            }
            // Start over, reading and writing all of it.
            None => {
                files.restart()?;
                progress.restart();
            }
        }
    }
    files.resume_at(end)?;
    copied += block_on(copy_rest(p, files, progress))?;
    progress.finish();
    Ok(copied)
}

#[allow(dead_code, reason = "the tests include this file for `copy`")]
fn main() -> ExitCode {
    common::main("cp_proactor", |src, dst| {
        let config = ProactorConfig::new(64);
        let p = Proactor::new(config)
            .map_err(|e| Error::new(format!("cannot start a Proactor: {e}")))?;
        copy(&p, src, dst)
    })
}
