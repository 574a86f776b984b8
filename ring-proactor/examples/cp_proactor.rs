//! `cp SRC DST` on the [`Proactor`]: 16 tasks on one thread, each copying
//! every 16th block (read into an owned buffer, write it back out, the
//! buffer reused), joined by a few lines of executor below. Compare with
//! `examples/cp.rs`, the same copy on the raw ring with `unsafe` pushes.
//! A source that is not a regular file (a pipe, a terminal), or whose size
//! says less than it holds (a procfs file), is copied in order until a read
//! returns 0. Errors name the path and exit with status 1; nothing is
//! truncated before both files are checked (`cp_common/mod.rs`).
//!
//! Run: `cargo run --release -p ring-io-proactor --example cp_proactor -- SRC DST`
//!
//! `tests/proactor.rs` includes this file and checks [`copy`] on a file
//! whose size is not a multiple of the block.

#[path = "../../ring-driver/examples/cp_common/mod.rs"]
#[allow(dead_code, reason = "the tests include this file for `copy` only")]
mod common;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};

use common::{Error, Files};
use ring_io_proactor::{Proactor, ProactorConfig, block_on};

const BLOCK: usize = 128 * 1024;
const TASKS: usize = 16;

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

/// Copies blocks `first`, `first + TASKS`, ... below `files.size` into the
/// destination at the same offsets; returns where the source ended (its
/// size, or less if a read returned 0 first) and the bytes copied.
async fn copy_blocks(p: &Proactor, files: &Files, first: usize) -> Result<(u64, u64), Error> {
    let size = files.size;
    let mut buf = Vec::with_capacity(BLOCK);
    let mut copied = 0;
    let mut offset = (first * BLOCK) as u64;
    while offset < size {
        let want = BLOCK.min((size - offset) as usize);
        // Read the whole block; a short read continues where it stopped
        // (reads land in the vector's spare capacity).
        buf.clear();
        while buf.len() < want {
            let at = offset + buf.len() as u64;
            let spare = buf.capacity() - buf.len();
            let (n, back) = p.read(&files.input, buf, at).await;
            buf = back;
            if files.read_len(n.map_err(|e| files.reading(e))?, spare)? == 0 {
                // The end of the source, before its size said: what was
                // read is all there is.
                write_all(p, files, buf, offset).await?;
                return Ok((at, copied + (at - offset)));
            }
        }
        buf.truncate(want);
        buf = write_all(p, files, buf, offset).await?;
        copied += want as u64;
        offset += (TASKS * BLOCK) as u64;
    }
    Ok((size, copied))
}

/// Copies the rest of the source, at the file positions, one block at a
/// time, until a read returns 0; returns the bytes copied.
async fn copy_rest(p: &Proactor, files: &Files) -> Result<u64, Error> {
    let mut buf = Vec::with_capacity(BLOCK);
    let mut copied = 0;
    loop {
        buf.clear();
        let spare = buf.capacity();
        // `u64::MAX`: at (and moving) the file position.
        let (n, back) = p.read(&files.input, buf, u64::MAX).await;
        buf = back;
        let n = files.read_len(n.map_err(|e| files.reading(e))?, spare)?;
        if n == 0 {
            return Ok(copied);
        }
        copied += n as u64;
        buf = write_all(p, files, buf, u64::MAX).await?;
    }
}

/// Writes all of `buf` at `at` (`u64::MAX`: at the file position); a short
/// write leaves the rest at the front. Hands the emptied buffer back.
async fn write_all(
    p: &Proactor,
    files: &Files,
    mut buf: Vec<u8>,
    mut at: u64,
) -> Result<Vec<u8>, Error> {
    while !buf.is_empty() {
        let asked = buf.len();
        let (n, back) = p.write(&files.output, buf, at).await;
        buf = back;
        let n = files.written_len(n.map_err(|e| files.writing(e))?, asked)?;
        buf.drain(..n);
        if at != u64::MAX {
            at += n as u64;
        }
    }
    Ok(buf)
}

/// Copies `src` to `dst` on `p` (see `cp_common/mod.rs` for the checks
/// before any byte moves); returns the bytes copied.
pub(crate) fn copy(p: &Proactor, src: &Path, dst: &Path) -> Result<u64, Error> {
    // Each op holds a clone of a file's `Arc` until the kernel is done with
    // it (see `OpFd`).
    let files = &Files::open(src, dst)?;
    let tasks = (0..TASKS)
        .map(|first| (Box::pin(copy_blocks(p, files, first)), None))
        .collect();
    let (mut end, mut copied) = (files.size, 0);
    for result in block_on(JoinAll(tasks)) {
        let (task_end, n) = result?;
        end = end.min(task_end);
        copied += n;
    }
    files.resume_at(end)?;
    copied += block_on(copy_rest(p, files))?;
    if files.output_regular {
        p.fsync(&files.output, false)
            .wait()
            .map_err(|e| files.writing(e))?;
    }
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
