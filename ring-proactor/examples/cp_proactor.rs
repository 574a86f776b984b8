//! `cp SRC DST` on the [`Proactor`]'s files ([`fs::File`]): between two
//! regular files, 4 tasks on one thread (`join_all` in [`block_on`]), each
//! with its own pipe, splice every 4th block of 1 MiB from the source into
//! their pipe and, linked to it, from the pipe into the destination
//! (`Proactor::splice` and `Op::link`: one wake-up per block, no buffer in
//! user space, the bytes copied once, in the kernel, see
//! `cp_common/mod.rs`). Compare with `examples/cp.rs`, the same copy on the
//! raw ring with `unsafe` pushes. A progress bar is drawn when stderr is a
//! terminal. A source that is not a regular file (a pipe, a terminal), or
//! whose size says less than it holds (a procfs file), is read into an
//! owned buffer and written back out (`read_at` and `write_all_at` at
//! [`CURRENT_POSITION`]), in order, until a read returns 0. Errors name the
//! path and exit with status 1; nothing is truncated before both files are
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
use std::io;
use std::path::Path;
use std::process::ExitCode;

use common::{DEPTH, Error, Files, Pipe, Progress, REST_BLOCK, SPLICE_BLOCK};
use futures_util::future::join_all;
use ring_io_proactor::{CURRENT_POSITION, IoBuf, Proactor, ProactorConfig, block_on, fs::File};

/// The files of a copy as the Proactor's: the source and the destination
/// that `Files` opened and checked (new descriptors of the same open
/// files: they share the file positions).
struct Handles {
    input: File,
    output: File,
}

impl Handles {
    fn new(p: &Proactor, files: &Files) -> Result<Handles, Error> {
        let input = files.input.try_clone().map_err(|e| files.reading(e))?;
        let output = files.output.try_clone().map_err(|e| files.writing(e))?;
        Ok(Handles {
            input: File::from_std(p, input),
            output: File::from_std(p, output),
        })
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
    handles: &Handles,
    pipe: &Pipe,
    first: usize,
    progress: &Progress,
    stop: &Cell<bool>,
) -> Result<Option<(u64, u64)>, Error> {
    let result = splice_stride(p, files, handles, pipe, first, progress, stop).await;
    if !matches!(result, Ok(Some(_))) {
        stop.set(true);
    }
    result
}

/// [`splice_blocks`] without setting `stop`.
async fn splice_stride(
    p: &Proactor,
    files: &Files,
    handles: &Handles,
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
            let fill = p.splice(&handles.input, Some(at), &pipe.write, None, ask as u32);
            let drain = p.splice(&pipe.read, None, &handles.output, Some(at), ask as u32);
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
                let w = p.splice(&pipe.read, None, &handles.output, Some(to), left as u32);
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
/// read fills it from its start, each write sends the bytes read.
async fn copy_rest(files: &Files, handles: &Handles, progress: &Progress) -> Result<u64, Error> {
    let mut buf = vec![0u8; REST_BLOCK];
    let mut copied = 0;
    loop {
        let (n, back) = handles.input.read_at(buf, CURRENT_POSITION).await;
        let n = files.read_len(n.map_err(|e| files.reading(e))?, REST_BLOCK)?;
        if n == 0 {
            return Ok(copied);
        }
        let (res, back) = handles
            .output
            .write_all_at(back.slice(..n), CURRENT_POSITION)
            .await;
        res.map_err(|e| files.writing(e))?;
        buf = back.into_inner();
        copied += n as u64;
        progress.add(n as u64);
    }
}

/// Copies `src` to `dst` on `p` (see `cp_common/mod.rs` for the checks
/// before any byte moves); returns the bytes copied.
pub(crate) fn copy(p: &Proactor, src: &Path, dst: &Path) -> Result<u64, Error> {
    // Each op holds a file (and a pipe) open until the kernel is done with
    // it (see `OpFd`).
    let files = &Files::open(src, dst)?;
    let handles = &Handles::new(p, files)?;
    let progress = &Progress::new(files);
    let (mut end, mut copied) = (0, 0);
    if files.size > 0 {
        let pipes = (0..DEPTH)
            .map(|_| Pipe::new())
            .collect::<Result<Vec<_>, _>>()?;
        let stop = &Cell::new(false);
        let tasks = (pipes.iter().enumerate())
            .map(|(first, pipe)| splice_blocks(p, files, handles, pipe, first, progress, stop));
        let results = block_on(join_all(tasks));
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
    copied += block_on(copy_rest(files, handles, progress))?;
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
