//! `hash_file PATH`: the 64-bit FNV-1a hash of a file, read with 32 reads
//! of 64 KiB in flight ([`fs::File::read_at`] ops started at once and
//! taken in order, each slot refilled as its read is hashed), on
//! `block_on`. Prints the hash, the bytes and the time.
//!
//! Run: `cargo run --release -p ring-io-proactor --example hash_file -- PATH`
//!
//! `tests/handles.rs` includes this file and checks [`hash`] against the
//! hash of the file's bytes read by std.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use ring_io_proactor::{Op, Proactor, ProactorConfig, block_on, fs::File};

/// Reads in flight.
pub(crate) const IN_FLIGHT: usize = 32;
/// Bytes per read.
pub(crate) const BLOCK: usize = 64 * 1024;

/// The 64-bit FNV-1a hash of nothing, to go on from with [`fnv1a`].
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Goes on hashing `hash` with `bytes` (64-bit FNV-1a).
pub(crate) fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A read of the block at `offset`, started.
type Read = (u64, Op<(io::Result<usize>, Vec<u8>)>);

/// The hash of `file` and its length: the blocks below its size are read
/// [`IN_FLIGHT`] at a time and hashed in order; what lies past the size
/// (a file that grew, or one whose size says nothing, as in procfs) is
/// then read one block at a time until a read returns 0.
pub(crate) async fn hash(file: &File) -> io::Result<(u64, u64)> {
    let size = file.metadata().await?.len();
    let start = |offset: u64| {
        (
            offset,
            file.read_at(Vec::with_capacity(BLOCK), offset).start(),
        )
    };
    let mut reads: VecDeque<Read> = VecDeque::with_capacity(IN_FLIGHT);
    let (mut hash, mut offset, mut next) = (FNV_OFFSET, 0u64, 0u64);
    loop {
        while reads.len() < IN_FLIGHT && next < size {
            reads.push_back(start(next));
            next += BLOCK as u64;
        }
        let (at, read) = match reads.pop_front() {
            Some(read) => read,
            // Past the size: one block at a time.
            None => start(offset),
        };
        debug_assert_eq!(at, offset);
        let (n, mut buf) = read.await;
        let n = n?;
        if n == 0 {
            return Ok((hash, offset));
        }
        let short = size.min(at + BLOCK as u64).saturating_sub(at + n as u64);
        if short > 0 {
            // A short read before the block's end: read the rest of it.
            let more = Vec::with_capacity(short as usize);
            let (res, rest) = file.read_exact_at(more, at + n as u64).await;
            buf.extend_from_slice(&rest);
            // Filled, or the file shrank: hash what there is (the check
            // below stops).
            res.or_else(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => Ok(()),
                _ => Err(e),
            })?;
        }
        hash = fnv1a(hash, &buf);
        offset += buf.len() as u64;
        if buf.len() < BLOCK && offset < size {
            // The file shrank: what is queued reads past its end.
            return Ok((hash, offset));
        }
    }
}

#[allow(dead_code, reason = "the tests include this file for `hash`")]
fn main() -> io::Result<()> {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: hash_file PATH");
        std::process::exit(2);
    };
    let p = Proactor::new(ProactorConfig::new(IN_FLIGHT as u32))?;
    let started = Instant::now();
    let (hash, len) = block_on(async { hash(&File::open(&p, &path).await?).await })?;
    let secs = started.elapsed().as_secs_f64();
    println!("{hash:016x}  {}", path.to_string_lossy());
    eprintln!(
        "{len} bytes in {secs:.3} s ({:.1} MiB/s)",
        len as f64 / secs.max(1e-9) / (1 << 20) as f64
    );
    Ok(())
}
