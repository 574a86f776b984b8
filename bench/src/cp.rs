//! The `cp/*` rows: a 200 MiB page-cached file copied by the copy examples
//! (`cp` on the raw ring, `cp_proactor` on the Proactor) and by coreutils
//! `cp`, as processes, in one run, alternating.
//!
//! Every contender copies the same source (written, synced and read once
//! before timing, so it is in the page cache) to its own new destination
//! in the same directory; the destination is removed (untimed) before each
//! run, so each run creates a file, as `cp SRC NEW` does. Each run is timed
//! from the spawn to the exit (wall time), and its CPU time (user + system,
//! of all its threads, io-wq workers included) is read from
//! `getrusage(RUSAGE_CHILDREN)`. The order of the contenders rotates from
//! round to round. The examples are looked for next to this executable
//! (`target/release/examples/`, where `cargo xtask bench` builds them).

use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::io::filesystem;
use crate::median;

/// The source's size.
const LEN: usize = 200 << 20;

/// The source and the destinations' directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory on a real filesystem if there is one (as for the read4k
/// file), with the page-cached source in it; and where it is.
fn scratch() -> io::Result<(Scratch, PathBuf, String)> {
    let candidates = [
        std::env::temp_dir(),
        PathBuf::from("/var/tmp"),
        PathBuf::from("."),
    ];
    let base = candidates
        .iter()
        .find(|d| matches!(filesystem(d), Some((_, false))))
        .unwrap_or(&candidates[0]);
    let fs = filesystem(base).map_or_else(|| "unknown fs".into(), |(fs, _)| fs);
    let dir = Scratch(base.join(format!("ring-bench-cp-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let src = dir.0.join("src.bin");
    let mut file = std::fs::File::create_new(&src)?;
    // Bytes that differ from block to block (no extent or page is shared
    // with another).
    let mut chunk = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..LEN / chunk.len() {
        for word in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        file.write_all(&chunk)?;
    }
    // Written back now, not during the timed runs; then read once.
    file.sync_all()?;
    for at in (0..LEN).step_by(chunk.len()) {
        file.read_exact_at(&mut chunk, at as u64)?;
    }
    let place = format!("{fs} ({})", base.display());
    Ok((dir, src, place))
}

/// CPU time (user + system) of the waited-for children so far, in seconds.
fn children_cpu() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid place to write.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// One contender: a program and its arguments before `SRC DST`.
struct Contender {
    program: PathBuf,
    args: Vec<&'static str>,
    dst: PathBuf,
}

impl Contender {
    /// Copies `src` to its destination (removed first); returns the wall
    /// and CPU seconds.
    fn run(&self, src: &Path) -> (f64, f64) {
        match std::fs::remove_file(&self.dst) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => panic!("rm {:?}: {e}", self.dst),
            _ => {}
        }
        let cpu = children_cpu();
        let start = Instant::now();
        let status = Command::new(&self.program)
            .args(&self.args)
            .arg(src)
            .arg(&self.dst)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", self.program.display()));
        let wall = start.elapsed().as_secs_f64();
        assert!(status.success(), "{}: {status}", self.program.display());
        (wall, children_cpu() - cpu)
    }
}

/// The load average (1, 5, 15 minutes), as /proc/loadavg says it.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// coreutils `cp`'s version line ("cp (GNU coreutils) 9.1"), or `None`
/// if there is no GNU `cp` on the PATH.
fn coreutils() -> Option<String> {
    let out = Command::new("cp").arg("--version").output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .to_string();
    line.contains("GNU coreutils").then_some(line)
}

/// Prints the `cp/*` table (nothing if none of its rows is wanted; a note
/// instead of rows where coreutils or the examples are missing).
pub(crate) fn rows(rounds: usize, want: &dyn Fn(&str) -> bool) {
    let names = ["cp/200MiB/ring", "cp/200MiB/proactor"];
    if !names.iter().any(|n| want(n)) {
        return;
    }
    println!("table\tCopying a 200 MiB page-cached file: the cp examples against coreutils cp");
    let Some(version) = coreutils() else {
        println!("note\tNo GNU coreutils `cp` on the PATH: no cp rows.");
        return;
    };
    let exe = std::env::current_exe().expect("the bench's own path");
    let examples = exe.parent().expect("a directory").join("examples");
    let bins = ["cp", "cp_proactor"].map(|b| examples.join(b));
    if let Some(missing) = bins.iter().find(|b| !b.exists()) {
        println!(
            "note\tNo {} (`cargo xtask bench` builds the examples): no cp rows.",
            missing.display()
        );
        return;
    }
    let (dir, src, place) = scratch().expect("the cp source file");
    let contender = |program: PathBuf, args: Vec<&'static str>, dst: &str| Contender {
        program,
        args,
        dst: dir.0.join(dst),
    };
    let [ring, proactor] = bins;
    let contenders = [
        contender(ring, vec![], "ring.bin"),
        contender(proactor, vec![], "proactor.bin"),
        contender("cp".into(), vec!["--reflink=never"], "never.bin"),
        contender("cp".into(), vec![], "cp.bin"),
    ];
    let load_before = load();
    // One untimed run each: the executables in the page cache too.
    for c in &contenders {
        c.run(&src);
    }
    let mut wall = vec![Vec::with_capacity(rounds); contenders.len()];
    let mut cpu = wall.clone();
    for round in 0..rounds {
        for i in 0..contenders.len() {
            let c = (round + i) % contenders.len();
            let (w, u) = contenders[c].run(&src);
            wall[c].push(w);
            cpu[c].push(u);
        }
    }
    let wall: Vec<f64> = wall.into_iter().map(|t| median(t) * 1e3).collect();
    let cpu: Vec<f64> = cpu.into_iter().map(|t| median(t) * 1e3).collect();
    let load_after = load();
    drop(dir);
    println!("row\texample ms\tcp --reflink=never ms\tcp ms\tratio cp/example");
    for (i, name) in names.into_iter().enumerate() {
        if want(name) {
            println!(
                "{name}\t{:.1}\t{:.1}\t{:.1}\t{:.3}",
                wall[i],
                wall[2],
                wall[3],
                wall[3] / wall[i]
            );
        }
    }
    println!(
        "note\tA 200 MiB file on {place}, in the page cache, copied to a new file (removed, \
         untimed, before each run) by the examples `cp` (raw ring) and `cp_proactor` (Proactor) \
         and by {version}, each as a process timed from spawn to exit; medians of {rounds} \
         rounds, the order rotating. The examples splice (IORING_OP_SPLICE) 1 MiB blocks from \
         the source into a pipe and from the pipe into the destination, 4 blocks in flight: \
         the pipe holds references to the source's page-cache pages, so each byte is copied \
         once. coreutils `cp` tries a reflink (FICLONE), then `copy_file_range(2)`, which a \
         filesystem that cannot share extents (ext4) serves by splicing through a pipe inside \
         the kernel: the same one copy, in one system call. `cp --reflink=never` reads and \
         writes 128 KiB at a time (two copies). ratio = cp time / example time, against the \
         default `cp` (what users run, and the faster): above 1.00 means the example is \
         faster; the target is at least 0.91 (within 1.1x). The examples' splices run in io-wq \
         workers (a splice cannot be done without blocking), the fills beside the drains, so \
         the examples' wall time gains from a second core where `cp` runs on one, and more so \
         on a loaded machine, where two runnable threads get more of the CPUs than one; the \
         CPU time compares the work itself (user + system, io-wq workers included, medians): \
         cp example {:.1} ms, cp_proactor {:.1} ms, cp --reflink=never {:.1} ms, cp {:.1} ms. \
         Load average before the rows {load_before}, after {load_after}.",
        cpu[0], cpu[1], cpu[2], cpu[3]
    );
}
