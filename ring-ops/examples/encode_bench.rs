//! In place or by value? Encodes `N` entries into a 256-slot array standing
//! for a submission queue, one way or the other, and reports the time per
//! entry. Run under callgrind for instruction counts:
//!
//! ```text
//! cargo build --release -p ring-io-ops --example encode_bench
//! valgrind --tool=callgrind target/release/examples/encode_bench by-value 1000000
//! valgrind --tool=callgrind target/release/examples/encode_bench in-place 1000000
//! ```
//!
//! Modes: `by-value` (`*slot = op.build().user_data(i).into_sqe()`),
//! `in-place` (`op.encode(slot); slot.user_data = i`), and `baseline`
//! (the loop and the arguments without any encoding, to subtract).

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use ring_io_ops::{Fd, Read, Send};
use ring_io_sys::io_uring_sqe;

const SLOTS: usize = 256;

const USAGE: &str =
    "usage: encode_bench [by-value | in-place | baseline] [N (default 10000000, at least 1)]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let refuse = |why: String| {
        eprintln!("encode_bench: {why}\n{USAGE}");
        ExitCode::from(2)
    };
    if args.len() > 2 {
        return refuse(format!("expected at most 2 arguments, got {}", args.len()));
    }
    let mode = args.first().map_or("by-value", String::as_str).to_owned();
    if !["by-value", "in-place", "baseline"].contains(&mode.as_str()) {
        return refuse(format!("unknown mode {mode:?}"));
    }
    let n: u64 = match args.get(1).map(|s| s.parse::<u64>()) {
        None => 10_000_000,
        Some(Ok(0)) => return refuse("N must be at least 1, not 0".into()),
        Some(Ok(n)) => n,
        Some(Err(e)) => return refuse(format!("N {:?} is not a number: {e}", args[1])),
    };

    let mut sq = vec![io_uring_sqe::zeroed(); SLOTS];
    let data = black_box([0u8; 64]);
    let buf = data.as_ptr();
    let start = Instant::now();
    match mode.as_str() {
        "by-value" => {
            for i in 0..n {
                let slot = &mut sq[i as usize % SLOTS];
                let fd = Fd(black_box(i as i32));
                *slot = if i & 1 == 0 {
                    Read::new(fd, buf.cast_mut(), 64).offset(i).build()
                } else {
                    Send::new(fd, buf, 64).flags(0x40).build()
                }
                .user_data(i)
                .into_sqe();
                black_box(&mut *slot);
            }
        }
        "in-place" => {
            for i in 0..n {
                let slot = &mut sq[i as usize % SLOTS];
                let fd = Fd(black_box(i as i32));
                if i & 1 == 0 {
                    Read::new(fd, buf.cast_mut(), 64).offset(i).encode(slot);
                } else {
                    Send::new(fd, buf, 64).flags(0x40).encode(slot);
                }
                slot.user_data = i;
                black_box(&mut *slot);
            }
        }
        "baseline" => {
            for i in 0..n {
                let slot = &mut sq[i as usize % SLOTS];
                black_box(Fd(black_box(i as i32)));
                slot.user_data = i;
                black_box(&mut *slot);
            }
        }
        other => unreachable!("mode {other} was checked"),
    }
    let elapsed = start.elapsed();
    let check: u64 = sq.iter().map(|s| s.user_data).sum();
    println!(
        "{mode}: {n} entries in {elapsed:?}, {:.2} ns/entry (checksum {check})",
        elapsed.as_nanos() as f64 / n as f64
    );
    ExitCode::SUCCESS
}
