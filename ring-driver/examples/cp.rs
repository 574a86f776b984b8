//! `cp SRC DST` through the ring: up to 16 reads in flight, each followed by
//! the write of what it read, with a progress bar when stderr is a terminal.
//!
//! Run: `cargo run --release -p ring-driver --example cp -- SRC DST`

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write as _};
use std::os::fd::AsRawFd;
use std::time::Instant;

use ring_driver::Ring;
use ring_ops::{Fd, Read, Write};

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

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        eprintln!("usage: cp SRC DST");
        std::process::exit(2);
    };
    let input = File::open(src)?;
    let size = input.metadata()?.len();
    let output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)?;
    let (ifd, ofd) = (Fd(input.as_raw_fd()), Fd(output.as_raw_fd()));

    let mut ring = Ring::new(2 * DEPTH as u32)?;
    let mut bufs = vec![vec![0u8; BLOCK]; DEPTH];
    let mut slots = [Slot::Free; DEPTH];
    let (mut next_read, mut copied) = (0u64, 0u64);
    // Ranges left over by short reads, read again first.
    let mut again: std::collections::VecDeque<(u64, usize)> = Default::default();
    let progress = io::stderr().is_terminal();
    let start = Instant::now();

    while copied < size {
        // Start reads into free buffers.
        {
            let mut sq = ring.sq();
            for (i, slot) in slots.iter_mut().enumerate() {
                if *slot != Slot::Free {
                    continue;
                }
                let (offset, len) = match again.pop_front() {
                    Some(range) => range,
                    None if next_read < size => {
                        let len = BLOCK.min((size - next_read) as usize);
                        next_read += len as u64;
                        (next_read - len as u64, len)
                    }
                    None => break,
                };
                let read = Read::new(ifd, bufs[i].as_mut_ptr(), len as u32)
                    .offset(offset)
                    .build()
                    .user_data(i as u64);
                // SAFETY: `bufs[i]` is not touched until this read completes,
                // and `bufs` and the files outlive the ring's use of them
                // (every request is reaped before the loop ends).
                unsafe { sq.push(read) }.map_err(io::Error::from)?;
                *slot = Slot::Reading { offset, want: len };
            }
        }
        ring.submitter().submit_and_wait(1)?;
        let done: Vec<_> = ring.cq().collect();
        for cqe in done {
            let i = cqe.user_data() as usize;
            let n = cqe
                .result()
                .map_err(|e| io::Error::from_raw_os_error(e.0))? as usize;
            slots[i] = match slots[i] {
                Slot::Reading { offset, .. } if n == 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{src} shrank at {offset}"),
                    ));
                }
                Slot::Reading { offset, want } => {
                    if n < want {
                        again.push_back((offset + n as u64, want - n));
                    }
                    Slot::Writing {
                        offset,
                        len: n,
                        done: 0,
                    }
                }
                Slot::Writing { offset, len, done } => {
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
                Slot::Free => unreachable!("a completion for a free buffer"),
            };
            if let Slot::Writing { offset, len, done } = slots[i] {
                let write = Write::new(ofd, bufs[i][done..].as_ptr(), (len - done) as u32)
                    .offset(offset + done as u64)
                    .build()
                    .user_data(i as u64);
                // SAFETY: as above: the buffer stays put until the write completes.
                unsafe { ring.sq().push(write) }.map_err(io::Error::from)?;
            }
        }
        if progress {
            let pct = (copied * 100).checked_div(size).unwrap_or(100);
            let bar = "#".repeat((pct / 4) as usize);
            eprint!("\r[{bar:<25}] {pct:>3}% {copied}/{size} bytes");
        }
    }
    output.sync_all()?;
    let secs = start.elapsed().as_secs_f64();
    if progress {
        eprintln!();
    }
    eprintln!(
        "copied {copied} bytes in {secs:.3} s ({:.1} MiB/s)",
        copied as f64 / secs.max(1e-9) / (1 << 20) as f64
    );
    io::stderr().flush()
}
