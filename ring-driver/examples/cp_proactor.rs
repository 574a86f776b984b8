//! `cp SRC DST` on the [`Proactor`]: 16 tasks on one thread, each copying
//! every 16th block (read into an owned buffer, write it back out, the
//! buffer reused), joined by a few lines of executor below. Compare with
//! `examples/cp.rs`, the same copy on the raw ring with `unsafe` pushes.
//!
//! Run: `cargo run --release -p ring-driver --example cp_proactor -- SRC DST`
//!
//! `tests/proactor.rs` includes this file and checks [`copy`] on a file
//! whose size is not a multiple of the block.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use ring_driver::{Proactor, ProactorConfig, block_on};

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

/// Copies blocks `first`, `first + TASKS`, ... of `input` (`size` bytes)
/// into `output` at the same offsets; returns the bytes copied.
async fn copy_blocks(
    p: &Proactor,
    input: &Arc<File>,
    output: &Arc<File>,
    size: u64,
    first: usize,
) -> io::Result<u64> {
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
            let (n, back) = p.read(input, buf, at).await;
            buf = back;
            if n? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the source shrank",
                ));
            }
        }
        buf.truncate(want);
        // Write it all; a short write leaves the rest at the front.
        let mut at = offset;
        while !buf.is_empty() {
            let (n, back) = p.write(output, buf, at).await;
            buf = back;
            let n = n?;
            buf.drain(..n);
            at += n as u64;
        }
        copied += want as u64;
        offset += (TASKS * BLOCK) as u64;
    }
    Ok(copied)
}

/// Copies `src` to `dst` (created or truncated) on `p`; returns the bytes
/// copied.
pub(crate) fn copy(p: &Proactor, src: &Path, dst: &Path) -> io::Result<u64> {
    // Each op holds a clone of the `Arc` until the kernel is done with the
    // file (see `OpFd`).
    let input = Arc::new(File::open(src)?);
    let size = input.metadata()?.len();
    let output = Arc::new(
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dst)?,
    );
    let (input, output) = (&input, &output);
    let tasks = (0..TASKS)
        .map(|first| (Box::pin(copy_blocks(p, input, output, size, first)), None))
        .collect();
    let mut copied = 0;
    for result in block_on(JoinAll(tasks)) {
        copied += result?;
    }
    p.fsync(output, false).wait()?;
    Ok(copied)
}

#[allow(dead_code, reason = "the tests include this file for `copy`")]
fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        eprintln!("usage: cp_proactor SRC DST");
        std::process::exit(2);
    };
    let p = Proactor::new(ProactorConfig::new(64))?;
    let start = Instant::now();
    let copied = copy(&p, Path::new(src), Path::new(dst))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{copied} bytes in {secs:.3} s ({:.1} MiB/s)",
        copied as f64 / secs / (1 << 20) as f64
    );
    Ok(())
}
