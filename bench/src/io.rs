//! The `read4k` rows: 4 KiB random reads from a page-cached file, on ring,
//! on the io-uring crate and with synchronous `pread(2)` in a loop.
//!
//! The file (64 MiB) lives in a temp dir on a real filesystem (tmpfs and
//! ramfs are skipped unless nothing else is at hand), is written, synced
//! and read once before timing, so every read is a page-cache hit. Each 4 KiB block starts with its own
//! offset, and every read checks it. The offsets come from a fixed-seed
//! xorshift, and every contender reads the same sequence into buffers
//! allocated once.
//!
//! Queue depth: the rings keep `depth` reads in flight, refilling each slot
//! as its completion is reaped (push `depth`, then: submit and wait for one
//! completion, reap what is there, push one new read per reaped one). Both
//! rings run this same loop; `pread` is one read at a time at every depth.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use io_uring::{IoUring, opcode, types};
use ring_io_driver::{Builder, Cqe, Ring};
use ring_io_ops::{Entry, Fd};

use crate::median;

/// Bytes per read.
pub(crate) const BLOCK: usize = 4096;
/// The file's size.
const FILE_LEN: usize = 64 << 20;
/// Reads per timed sample (and offsets in the sequence).
pub(crate) const READS: u64 = 1 << 14;
/// The deep queue depth (and the most slots any loop here uses).
pub(crate) const DEPTH: usize = 32;
/// The xorshift seed (fixed: every run reads the same offsets).
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// xorshift64 (Marsaglia): a tiny PRNG, enough to scatter offsets.
fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// A page-cached test file (already unlinked) and the offsets to read.
pub(crate) struct TestFile {
    /// The open file (shared: the Proactor's ops hold it open).
    pub(crate) file: Arc<File>,
    /// `READS` 4 KiB-aligned offsets, from [`SEED`].
    pub(crate) offsets: Vec<u64>,
    /// Where it was made: "ext4 (/tmp)".
    pub(crate) place: String,
}

/// The filesystem type of `dir` by `statfs(2)` magic, and whether it is a
/// RAM filesystem (tmpfs, ramfs).
pub(crate) fn filesystem(dir: &Path) -> Option<(String, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let mut path = dir.as_os_str().as_bytes().to_vec();
    path.push(0);
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid place to write.
    if unsafe { libc::statfs(path.as_ptr().cast(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast, reason = "f_type's type differs by arch")]
    let magic = st.f_type as u64;
    let (name, ram) = match magic {
        0x0102_1994 => ("tmpfs".to_string(), true),
        0x8584_58f6 => ("ramfs".to_string(), true),
        0xef53 => ("ext4".to_string(), false),
        0x5846_5342 => ("xfs".to_string(), false),
        0x9123_683e => ("btrfs".to_string(), false),
        0x794c_7630 => ("overlayfs".to_string(), false),
        0x2fc1_2fc1 => ("zfs".to_string(), false),
        other => (format!("fs 0x{other:x}"), false),
    };
    Some((name, ram))
}

/// The test file, made on first use and shared by every row that reads.
pub(crate) fn test_file() -> &'static TestFile {
    static FILE: std::sync::OnceLock<TestFile> = std::sync::OnceLock::new();
    FILE.get_or_init(|| TestFile::new().expect("test file"))
}

impl TestFile {
    /// Creates, fills, syncs and reads the file once.
    fn new() -> io::Result<TestFile> {
        let candidates = [
            std::env::temp_dir(),
            PathBuf::from("/var/tmp"),
            PathBuf::from("."),
        ];
        let (dir, fs) = candidates
            .iter()
            .find_map(|d| match filesystem(d) {
                Some((fs, false)) => Some((d.clone(), fs)),
                _ => None,
            })
            // All in RAM: still measure, and say where (the note names it).
            .unwrap_or_else(|| {
                let dir = std::env::temp_dir();
                let fs = filesystem(&dir).map_or_else(|| "unknown fs".into(), |(fs, _)| fs);
                (dir, fs)
            });
        let path = dir.join(format!("ring-bench-{}.dat", std::process::id()));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Unlinked at once: the open fd keeps it, and nothing is left behind.
        std::fs::remove_file(&path)?;
        let mut chunk = vec![0u8; 1 << 20];
        for start in (0..FILE_LEN).step_by(chunk.len()) {
            for (i, block) in chunk.chunks_mut(BLOCK).enumerate() {
                let offset = (start + i * BLOCK) as u64;
                block.fill(offset as u8 ^ 0x5a);
                block[..8].copy_from_slice(&offset.to_le_bytes());
            }
            file.write_all(&chunk)?;
        }
        // Written back now, not by writeback during the timed loops.
        file.sync_all()?;
        // Read once: every page is in the page cache from here on.
        for start in (0..FILE_LEN).step_by(chunk.len()) {
            file.read_exact_at(&mut chunk, start as u64)?;
            assert_eq!(chunk[..8], (start as u64).to_le_bytes());
        }
        let mut state = SEED;
        let blocks = (FILE_LEN / BLOCK) as u64;
        let offsets = (0..READS)
            .map(|_| (xorshift(&mut state) % blocks) * BLOCK as u64)
            .collect();
        Ok(TestFile {
            file: Arc::new(file),
            offsets,
            place: format!("{fs} ({})", dir.display()),
        })
    }

    pub(crate) fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Where read `k` of `what` starts.
    pub(crate) fn offset(&self, what: Reads, k: u64) -> u64 {
        match what {
            Reads::Blocks => self.offsets[(k % READS) as usize],
            Reads::AtEnd => FILE_LEN as u64,
        }
    }

    /// Asserts that read `k` of `what` returned what it should: `n` bytes,
    /// read into the start of `buf` (the whole block at its offset, or
    /// nothing at the file's end).
    pub(crate) fn check(&self, what: Reads, k: u64, n: usize, buf: &[u8]) {
        assert_eq!(n, what.bytes(), "a read of the wrong length");
        if what == Reads::Blocks {
            let head = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
            assert_eq!(head, self.offset(what, k), "read the wrong block");
        }
    }
}

/// What a row's 4 KiB reads read: the same requests (4 KiB asked for,
/// into the same buffers), at different offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reads {
    /// The `read4k` rows': a whole block at each of the file's
    /// [`offsets`](TestFile::offsets), a page-cache hit.
    Blocks,
    /// Every read at the file's end: each returns 0 bytes (no page-cache
    /// lookup, no copy), the `peers/read0` rows'.
    AtEnd,
}

impl Reads {
    /// The bytes each read returns.
    pub(crate) fn bytes(self) -> usize {
        match self {
            Reads::Blocks => BLOCK,
            Reads::AtEnd => 0,
        }
    }
}

/// `DEPTH` read buffers of `BLOCK` bytes, allocated once, read and written
/// only through the raw pointer (the kernel writes them too).
pub(crate) struct Buffers {
    /// Owns the memory `base` points into (never touched through it).
    #[allow(dead_code, reason = "held, not read: keeps `base` valid")]
    mem: Vec<u8>,
    base: *mut u8,
}

impl Buffers {
    pub(crate) fn new() -> Buffers {
        let mut mem = vec![0u8; DEPTH * BLOCK];
        let base = mem.as_mut_ptr();
        Buffers { mem, base }
    }

    /// Slot `slot`'s buffer.
    pub(crate) fn ptr(&self, slot: usize) -> *mut u8 {
        assert!(slot < DEPTH);
        // SAFETY: `slot < DEPTH`, so the offset stays inside `mem`.
        unsafe { self.base.add(slot * BLOCK) }
    }

    /// Asserts that slot `slot` holds the block at `offset`.
    pub(crate) fn check(&self, slot: usize, offset: u64) {
        // SAFETY: the slot's first 8 bytes are inside `mem`, and the read
        // that filled them has completed (no one writes them now).
        let head = unsafe { self.ptr(slot).cast::<u64>().read_unaligned() };
        assert_eq!(u64::from_le(head), offset, "read the wrong block");
    }
}

/// Runs `ops` requests on `ring`, `depth` in flight: `entry(k, slot)`
/// builds request `k` for `slot` (its `user_data` is set to `slot`);
/// `check(k, slot, cqe)` sees its completion. Each turn submits and waits
/// for one completion (`wait_all`: for all in flight, so it runs batches of
/// `depth`), reaps what is there and refills each reaped slot. Returns with
/// every request completed.
///
/// # Safety
///
/// Every entry's pointers must stay valid until its completion, and no two
/// requests in flight may share a slot's memory.
pub(crate) unsafe fn ring_depth(
    ring: &mut Ring,
    depth: usize,
    wait_all: bool,
    ops: u64,
    mut entry: impl FnMut(u64, usize) -> Entry,
    mut check: impl FnMut(u64, usize, &Cqe),
) {
    assert!(depth <= DEPTH);
    let mut slot_op = [0u64; DEPTH];
    // The slots to (re)fill: all of them at first.
    let mut reaped: [usize; DEPTH] = std::array::from_fn(|slot| slot);
    let mut n = depth;
    let mut issued = 0u64;
    let mut done = 0u64;
    loop {
        {
            let mut sq = ring.sq();
            for &slot in &reaped[..n] {
                if issued == ops {
                    break;
                }
                slot_op[slot] = issued;
                // SAFETY: the caller vouches for the entry's pointers; the
                // slot is free (never used, or its request has completed).
                unsafe { sq.push(entry(issued, slot).user_data(slot as u64)) }
                    .expect("fits the SQ");
                issued += 1;
            }
        }
        if done == ops {
            return;
        }
        let want = if wait_all { issued - done } else { 1 };
        ring.submitter()
            .submit_and_wait(want as u32)
            .expect("enter");
        n = 0;
        for cqe in ring.cq() {
            let slot = cqe.user_data() as usize;
            check(slot_op[slot], slot, &cqe);
            reaped[n] = slot;
            n += 1;
        }
        done += n as u64;
    }
}

/// `ops` reads at `depth` on ring (`wait_all`: see [`ring_depth`]).
pub(crate) fn ring_reads(
    ring: &mut Ring,
    f: &TestFile,
    bufs: &Buffers,
    depth: usize,
    wait_all: bool,
    ops: u64,
) {
    let fd = Fd(f.fd());
    let offsets = &f.offsets;
    let at = |k: u64| offsets[(k % READS) as usize];
    // SAFETY: each read targets its own slot's buffer, which `bufs` keeps
    // alive past `ring_depth`, which returns only after every completion.
    unsafe {
        ring_depth(
            ring,
            depth,
            wait_all,
            ops,
            |k, slot| {
                ring_io_ops::Read::new(fd, bufs.ptr(slot), BLOCK as u32)
                    .offset(at(k))
                    .build()
            },
            |k, slot, cqe| {
                assert_eq!(cqe.res(), BLOCK as i32, "a short or failed read");
                bufs.check(slot, at(k));
            },
        );
    }
}

/// `ops` reads at the file's end on ring, `depth` in flight (each returns
/// 0): the `peers/read0` rows' reads, for `--callgrind read0-ring`.
pub(crate) fn ring_reads_at_end(
    ring: &mut Ring,
    f: &TestFile,
    bufs: &Buffers,
    depth: u32,
    ops: u64,
) {
    let fd = Fd(f.fd());
    let end = f.offset(Reads::AtEnd, 0);
    // SAFETY: as in `ring_reads`.
    unsafe {
        ring_depth(
            ring,
            depth as usize,
            false,
            ops,
            |_, slot| {
                ring_io_ops::Read::new(fd, bufs.ptr(slot), BLOCK as u32)
                    .offset(end)
                    .build()
            },
            |_, _, cqe| assert_eq!(cqe.res(), 0, "a read at the end returns 0"),
        );
    }
}

/// [`ring_depth`]'s loop on the io-uring crate (waiting for one completion
/// per enter): `entry(k, slot)` builds request `k` for `slot` (its
/// `user_data` is set to `slot`); `check(k, slot, result)` sees its
/// completion's result. Returns with every request completed.
///
/// # Safety
///
/// Every entry's pointers must stay valid until its completion, and no two
/// requests in flight may share a slot's memory.
pub(crate) unsafe fn uring_depth(
    ring: &mut IoUring,
    depth: usize,
    ops: u64,
    mut entry: impl FnMut(u64, usize) -> io_uring::squeue::Entry,
    mut check: impl FnMut(u64, usize, i32),
) {
    assert!(depth <= DEPTH);
    let mut slot_op = [0u64; DEPTH];
    // The slots to (re)fill: all of them at first.
    let mut reaped: [usize; DEPTH] = std::array::from_fn(|slot| slot);
    let mut n = depth;
    let mut issued = 0u64;
    let mut done = 0u64;
    loop {
        {
            let mut sq = ring.submission();
            for &slot in &reaped[..n] {
                if issued == ops {
                    break;
                }
                slot_op[slot] = issued;
                // SAFETY: the caller vouches for the entry's pointers; the
                // slot is free (never used, or its request has completed).
                unsafe { sq.push(&entry(issued, slot).user_data(slot as u64)) }
                    .expect("fits the SQ");
                issued += 1;
            }
        }
        if done == ops {
            return;
        }
        ring.submit_and_wait(1).expect("enter");
        n = 0;
        for cqe in ring.completion() {
            let slot = cqe.user_data() as usize;
            check(slot_op[slot], slot, cqe.result());
            reaped[n] = slot;
            n += 1;
        }
        done += n as u64;
    }
}

/// The same loop on the io-uring crate (`what`: where the reads land).
pub(crate) fn uring_reads(
    ring: &mut IoUring,
    f: &TestFile,
    bufs: &Buffers,
    what: Reads,
    depth: usize,
    ops: u64,
) {
    let fd = types::Fd(f.fd());
    let at = |k: u64| f.offset(what, k);
    // SAFETY: each read targets its own slot's buffer, which `bufs` keeps
    // alive past `uring_depth`, which returns only after every completion.
    unsafe {
        uring_depth(
            ring,
            depth,
            ops,
            |k, slot| {
                opcode::Read::new(fd, bufs.ptr(slot), BLOCK as u32)
                    .offset(at(k))
                    .build()
            },
            |k, slot, res| {
                assert_eq!(res, what.bytes() as i32, "a short or failed read");
                if what == Reads::Blocks {
                    bufs.check(slot, at(k));
                }
            },
        );
    }
}

/// `ops` reads with `pread(2)`, one at a time.
fn pread_reads(f: &TestFile, bufs: &Buffers, ops: u64) {
    for k in 0..ops {
        let offset = f.offsets[(k % READS) as usize];
        // SAFETY: slot 0's buffer has BLOCK writable bytes and nothing
        // else uses it now.
        let n = unsafe { libc::pread(f.fd(), bufs.ptr(0).cast(), BLOCK, offset as libc::off_t) };
        assert_eq!(n, BLOCK as isize, "pread: {}", io::Error::last_os_error());
        bufs.check(0, offset);
    }
}

/// Times the contenders in turn, `rounds` times, rotating which goes
/// first; returns each one's median ns/op.
pub(crate) fn alternate_n(rounds: usize, ops: u64, fs: &mut [&mut dyn FnMut(u64)]) -> Vec<f64> {
    for f in fs.iter_mut() {
        f(ops / 8);
    }
    let mut times = vec![Vec::with_capacity(rounds); fs.len()];
    for round in 0..rounds {
        for i in 0..fs.len() {
            let c = (round + i) % fs.len();
            let start = Instant::now();
            fs[c](ops);
            times[c].push(start.elapsed().as_nanos() as f64 / ops as f64);
        }
    }
    times.into_iter().map(median).collect()
}

/// ring's fast defaults, and the io-uring crate's equivalent where it has
/// them (COOP_TASKRUN + TASKRUN_FLAG, SUBMIT_ALL, NO_SQARRAY, registered
/// ring fd), as in the `nop/*/defaults` rows.
pub(crate) fn rings(entries: u32) -> (Ring, IoUring) {
    let ring = Builder::new(entries).build().expect("ring setup");
    (ring, uring(entries))
}

/// The io-uring crate's ring of [`rings`].
pub(crate) fn uring(entries: u32) -> IoUring {
    let mut b = IoUring::builder();
    b.setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_submit_all();
    b.setup_no_sqarray();
    let theirs = b.build(entries).expect("io-uring setup");
    let _ = theirs.submitter().register_ring_fd();
    theirs
}

/// Prints the `read4k/qd1` and `read4k/qd32` table.
pub(crate) fn rows(rounds: usize, want: &dyn Fn(&str) -> bool) {
    let names = ["read4k/qd1", "read4k/qd32"];
    if !names.iter().any(|n| want(n)) {
        return;
    }
    let f = test_file();
    let bufs = Buffers::new();
    let (mut ring, mut theirs) = rings(DEPTH as u32);
    println!("table\t4 KiB random reads from a page-cached file");
    println!("row\tring ns/op\tio-uring ns/op\tpread ns/op\tratio io-uring/ring\tratio pread/ring");
    for (name, depth) in names.into_iter().zip([1, DEPTH]) {
        if !want(name) {
            continue;
        }
        let t = alternate_n(
            rounds,
            READS,
            &mut [
                &mut |n| ring_reads(&mut ring, f, &bufs, depth, false, n),
                &mut |n| uring_reads(&mut theirs, f, &bufs, Reads::Blocks, depth, n),
                &mut |n| pread_reads(f, &bufs, n),
            ],
        );
        println!(
            "{name}\t{:.1}\t{:.1}\t{:.1}\t{:.3}\t{:.3}",
            t[0],
            t[1],
            t[2],
            t[1] / t[0],
            t[2] / t[0]
        );
    }
    println!(
        "note\tIORING_OP_READ of 4 KiB at random 4 KiB-aligned offsets (fixed-seed xorshift, the \
         same {READS} offsets for every contender) from a 64 MiB file on {} read once before \
         timing, so every read hits the page cache; each read is checked. qdN keeps N reads in \
         flight on both rings (submit, wait for one completion, reap all, refill each reaped \
         slot); pread reads one at a time in a loop at every depth. Both rings with the fast \
         defaults (the io-uring crate with the same flags). ratio = other time / ring time: \
         above 1.00 means ring is faster.",
        f.place
    );
}
