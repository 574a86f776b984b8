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
use std::time::Instant;

use ring_io_ops::{Fd, Read, Send};
use ring_io_sys::io_uring_sqe;

const SLOTS: usize = 256;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "by-value".into());
    let n: u64 = args
        .next()
        .map_or(10_000_000, |s| s.parse().expect("a count"));

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
        other => panic!("unknown mode {other}: by-value | in-place | baseline"),
    }
    let elapsed = start.elapsed();
    let check: u64 = sq.iter().map(|s| s.user_data).sum();
    println!(
        "{mode}: {n} entries in {elapsed:?}, {:.2} ns/entry (checksum {check})",
        elapsed.as_nanos() as f64 / n as f64
    );
}
