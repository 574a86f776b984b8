//! `cargo xtask bench`: runs `ring-bench` (ring and the io-uring crate side
//! by side, alternating, in one run; with its `peers` feature, the Proactor
//! beside tokio-uring, monoio and compio too), counts user-space
//! instructions per op with callgrind, and writes BENCHMARKS.md.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

use crate::{Args, Result, cargo, root};

/// One table of ring-bench's output: its heading (none for the first,
/// the ns/op table of ring against the io-uring crate), column names, rows
/// (a name, then the numbers as ring-bench formatted them) and the notes
/// to print under it.
#[derive(Debug, Default)]
struct Table {
    heading: Option<String>,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

/// Whether `cell` is a value of a row: a number, or "n/a" (a system that
/// cannot run the row, such as monoio on the NOP rows; a footnote mark may
/// follow).
fn is_cell(cell: &str) -> bool {
    cell.parse::<f64>().is_ok() || cell.starts_with("n/a")
}

/// Parses ring-bench's tab-separated output: `table<TAB>heading` starts a
/// table, `row<TAB>column...` names its columns, `note<TAB>text` adds a
/// line under it, and every line of a name and as many values as there
/// are columns (see [`is_cell`]) is a row; anything else is ignored.
fn parse_tables(out: &str) -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    let mut heading = None;
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["table", h] => heading = Some(h.to_string()),
            ["row", columns @ ..] => tables.push(Table {
                heading: heading.take(),
                columns: columns.iter().map(|c| c.to_string()).collect(),
                ..Table::default()
            }),
            ["note", text] => {
                if let Some(t) = tables.last_mut() {
                    t.notes.push(text.to_string());
                }
            }
            [_, values @ ..] => {
                // (Not a let chain: those need Rust 1.88, above rust-version.)
                let fits = |t: &Table| {
                    values.len() == t.columns.len() && values.iter().all(|v| is_cell(v))
                };
                if let Some(t) = tables.last_mut().filter(|t| fits(t)) {
                    t.rows.push(f.iter().map(|v| v.to_string()).collect());
                }
            }
            [] => {}
        }
    }
    tables
}

/// Writes `t` as a Markdown table, its heading above, its notes below.
fn write_table(md: &mut String, t: &Table) -> Result<()> {
    if let Some(h) = &t.heading {
        writeln!(md, "\n## {h}\n")?;
    }
    writeln!(md, "| workload | {} |", t.columns.join(" | "))?;
    writeln!(md, "|---|{}", "---:|".repeat(t.columns.len()))?;
    for r in &t.rows {
        writeln!(md, "| {} |", r.join(" | "))?;
    }
    for n in &t.notes {
        writeln!(md, "\n{n}")?;
    }
    Ok(())
}

/// The last column (the ratio) of every row whose name starts with
/// `prefix`, with the row's name.
fn ratios<'t>(tables: &'t [Table], prefix: &str) -> Vec<(&'t str, f64)> {
    tables
        .iter()
        .flat_map(|t| &t.rows)
        .filter(|r| r[0].starts_with(prefix))
        .filter_map(|r| Some((r[0].as_str(), r.last()?.parse().ok()?)))
        .collect()
}

/// What the split table (user and kernel time per QD1 read) says of the
/// Proactor against monoio, as the end of a sentence: ": in this run, ..."
/// and a full stop, or a full stop alone without the table.
fn split_note(tables: &[Table]) -> String {
    let row = |system: &str| {
        let name = format!("split/read0/qd1/{system}");
        let r = tables.iter().flat_map(|t| &t.rows).find(|r| r[0] == name)?;
        let value = |i: usize| r.get(i)?.parse::<f64>().ok();
        Some((value(2)?, value(3)?, value(4)))
    };
    let (Some(p), Some(m)) = (row("Proactor"), row("monoio")) else {
        return ".".to_string();
    };
    let error = |e: Option<f64>| e.map_or_else(String::new, |e| format!(" (std. error {e:.0})"));
    format!(
        ": per QD1 read at the file's end in this run (the split table), the Proactor spent \
         {:.0} ns in user space and {:.0} ns in the kernel{}, monoio {:.0} and {:.0}{}.",
        p.0,
        p.1,
        error(p.2),
        m.0,
        m.1,
        error(m.2)
    )
}

/// One row of the `peers/*` table (the Proactor and the peer runtimes,
/// each a ratio to the io-uring crate): `(row, Proactor, [(peer, ratio)])`.
type PeerRow<'t> = (&'t str, f64, Vec<(&'t str, f64)>);

/// The columns of the peers table that are ring's own (the others are the
/// peer runtimes).
const OURS: [&str; 2] = ["Proactor", "LocalProactor"];

/// The rows of the `peers/*` table, for ring's column `ours`: its ratio,
/// and the peers' (ring's other columns left out, and a peer's "n/a" cell:
/// the row is judged against the peers that ran it).
fn peer_rows<'t>(tables: &'t [Table], ours: &str) -> Vec<PeerRow<'t>> {
    let Some(t) = tables
        .iter()
        .find(|t| t.rows.iter().any(|r| r[0].starts_with("peers/")))
    else {
        return Vec::new();
    };
    // The columns after the row's name; the first is the io-uring crate's ns/op.
    let Some(column) = t.columns.iter().position(|c| c == ours) else {
        return Vec::new();
    };
    t.rows
        .iter()
        .filter_map(|r| {
            let value = |i: usize| r.get(i + 1)?.parse::<f64>().ok();
            let peers = (1..t.columns.len())
                .filter(|&i| !OURS.contains(&t.columns[i].as_str()))
                .filter_map(|i| Some((t.columns[i].as_str(), value(i)?)))
                .collect();
            Some((r[0].as_str(), value(column)?, peers))
        })
        .collect()
}

/// The callgrind ratios of one NOP loop: ring / io-uring and, where
/// liburing was measured, ring / liburing.
#[derive(Debug, Clone, Copy)]
struct Instructions {
    batch: u32,
    io_uring: f64,
    liburing: Option<f64>,
}

/// The liburing the C program links, as Debian's package names it (or
/// nothing if dpkg does not know it).
fn liburing_version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "liburing-dev"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .map_or_else(String::new, |v| format!("({v})"))
}

/// The targets, each against this run's numbers: `(target,
/// measured, met, what limits it when missed)`. `instructions`: the
/// callgrind ratios of the batch-1 and batch-32 loops.
fn targets(tables: &[Table], instructions: &[Instructions]) -> Vec<(String, String, bool, String)> {
    let mut out = Vec::new();
    let list = |rs: &[(&str, f64)]| {
        rs.iter()
            .map(|(n, r)| format!("{n} {r:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let nop = ratios(tables, "nop/");
    if !nop.is_empty() {
        out.push((
            "ring >= the io-uring crate on every NOP row (ratio >= 0.98)".to_string(),
            format!("lowest: {}", {
                let low = nop
                    .iter()
                    .copied()
                    .fold(("", f64::MAX), |a, b| if b.1 < a.1 { b } else { a });
                format!("{} {:.3}", low.0, low.1)
            }),
            nop.iter().all(|(_, r)| *r >= 0.98),
            "Both libraries spend nearly all of a NOP in the kernel; what differs is a few \
             dozen user-space instructions (next target) against a ~50-250 ns syscall, which \
             run-to-run noise on a shared 2-vCPU VM can exceed."
                .to_string(),
        ));
    }
    if !instructions.is_empty() {
        let rs: Vec<(String, f64)> = instructions
            .iter()
            .map(|i| (format!("batch {}", i.batch), i.io_uring))
            .collect();
        let shown: Vec<(&str, f64)> = rs.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        out.push((
            "user-space instructions per NOP <= 0.8x the io-uring crate's".to_string(),
            list(&shown),
            rs.iter().all(|(_, r)| *r <= 0.8),
            INSTRUCTIONS_LIMIT.to_string(),
        ));
    }
    if let Some(batch1) = instructions
        .iter()
        .find(|i| i.batch == 1)
        .and_then(|i| i.liburing)
    {
        out.push((
            "user-space instructions per NOP at batch 1 <= liburing's".to_string(),
            format!("batch 1 {batch1:.3}"),
            batch1 <= 1.0,
            INSTRUCTIONS_LIMIT.to_string(),
        ));
    }
    let shared: Vec<(&str, f64)> = ratios(tables, "shared/threads")
        .into_iter()
        .filter(|(n, _)| n.ends_with("/batch16") && !n.starts_with("shared/threads1/"))
        .collect();
    if !shared.is_empty() {
        out.push((
            "SharedRing >= 1.5x Mutex<IoUring> at 2 and 4 threads (batch 16)".to_string(),
            list(&shared),
            shared.iter().all(|(_, r)| *r >= 1.5),
            "See the note under the first table (the batch-16 shared rows): the kernel \
             serializes submission under the ring's uring_lock, and a one-thread NOP loop \
             spends nearly all its time inside io_uring_enter, so no number of threads can beat \
             the mutex by much on NOPs; sharing the ring between cores also moves entries, \
             completions and counters between caches, which the mutex (unfair: one thread keeps \
             the lock and the data) mostly avoids."
                .to_string(),
        ));
    }
    let one: Vec<(&str, f64)> = ratios(tables, "shared/threads")
        .into_iter()
        .filter(|(n, _)| n.ends_with("/batch1") && !n.starts_with("shared/threads1/"))
        .collect();
    if !one.is_empty() {
        let need = |n: &str| {
            if n.starts_with("shared/threads2/") {
                1.3
            } else {
                1.5
            }
        };
        out.push((
            "SharedRing >= 1.3x Mutex<IoUring> at 2 threads, >= 1.5x at 4 (one op per thread \
             per round)"
                .to_string(),
            list(&one),
            one.iter().all(|(n, r)| *r >= need(n)),
            "See the note under the first table (the batch-1 shared rows): only merging \
             several threads' entries into one io_uring_enter can win there. The note \
             measures, in each run, each call's cost on 1 and 2 threads, one cache line's \
             round trip between the cores and what a merged NOP saves in the kernel, and from \
             them whether lockstep merging (every enter carrying an entry of each thread) \
             would reach the target; where it would, the threads' schedule does not give \
             lockstep. With more threads than cores (4 on 2), it adds a voluntary context \
             switch's cost (measured) for each entry an enter carries past the core count: \
             only threads that gave up their cores can have pushed them. A combining window (the gate holder waiting 1-2 us for the other \
             threads' entries) raised the entries per enter to 1.3-1.9 and lost in every run \
             (2-thread ratio 0.37 against 0.79 unchanged, back to back): at 2 threads each \
             push and reap then moved the ring's shared words between the cores."
                .to_string(),
        ));
    }
    // The default configuration; the /spin rows are an opt-in trade-off.
    let (spin, proactor): (Vec<_>, Vec<_>) = ratios(tables, "proactor/")
        .into_iter()
        .partition(|(n, _)| n.contains("/spin"));
    if !proactor.is_empty() {
        out.push((
            "Proactor >= 0.5x the raw ring's ops/s (default configuration)".to_string(),
            list(&proactor),
            proactor.iter().all(|(_, r)| *r >= 0.5),
            format!(
                "The waiting caller drives the ring (one io_uring_enter per batch, no thread \
                 wake-up), but each op's bookkeeping (slot, queue, dispatch, wakers, the \
                 Proactor's mutex, taken once to submit and once to complete) costs many \
                 times a raw NOP's user-space instructions (the Proactors' callgrind table): \
                 a NOP is all bookkeeping, a read or a round trip much less so. The fallback \
                 thread's spin (work nobody waits on): {}.",
                if spin.is_empty() {
                    "not measured in this run".to_string()
                } else {
                    list(&spin)
                }
            ),
        ));
    }
    for (ours, limit_speed, limit_peers) in [
        (
            "Proactor",
            "The waiting caller drives the ring; what is left is the Proactor's per-op \
             bookkeeping (the Proactors' callgrind table: user-space instructions per NOP at \
             QD1 and QD32 against the raw ring's), which NOPs at QD32 show most. Besides \
             instructions, each op makes atomic read-modify-writes a single-thread runtime \
             does not: the state mutex locked and unlocked to submit it (and once or \
             twice per turn), the Proactor's and the file's reference counts.",
            format!(
                "All drive the ring on the thread that awaits; the Proactor's per-op \
                 bookkeeping (a mutex-guarded slot table that any thread may use, where the \
                 runtimes keep single-threaded state) costs more user-space instructions per \
                 op (the Proactors' callgrind tables: the read0 one counts the same read on \
                 the Proactor, the LocalProactor and monoio) and atomic read-modify-writes: \
                 per op at QD1 the state mutex twice (submit and reap: two each; a block_on \
                 that finds nothing but its own work pushes its ops into the SQ as it \
                 submits them, so its turn takes no lock of its own: \
                 ProactorStats::holder_pushes), the token's step out (a fence) and its return \
                 (a compare-exchange), and an increment and a decrement of the file's \
                 reference count: 8, where a single-thread runtime's counts are not atomic \
                 (the Proactor's own count is spared: an op dropped inside block_on leaves \
                 its reference to the next op, as the waker's clones are kept); at QD32 the \
                 turn's share is spread over the batch. Most of what it loses is lost in \
                 user space (its driving thread enters through its own registration of the \
                 ring's fd; like monoio's, its ring goes without DEFER_TASKRUN, which needs a \
                 single submitting thread and gives the LocalProactor the least kernel time \
                 in the split table){} monoio is the fastest of the three; where it leads, the \
                 LocalProactor is the like-for-like comparison.",
                split_note(tables)
            ),
        ),
        (
            "LocalProactor",
            "Its per-op bookkeeping in user space (the Proactors' callgrind table: a slot, \
             the RefCell, the waker, the future), against the raw NOP loop's few dozen \
             instructions at QD32: a NOP is all bookkeeping, a read much less so.",
            "Its per-op bookkeeping against the runtimes' (the Proactors' callgrind table \
             has its instructions per NOP): a NOP or a read at the file's end (read0) is all \
             bookkeeping, a 4 KiB read or a round trip much less so. monoio has no NOP (its \
             nop cells are n/a, and the nop rows are judged against tokio-uring and compio): \
             the read0 rows are where it and the LocalProactor do the same op."
                .to_string(),
        ),
    ] {
        let peers = peer_rows(tables, ours);
        if peers.is_empty() {
            continue;
        }
        let wanted = [
            ("peers/nop/qd32", 0.5),
            ("peers/read4k/qd32", 0.9),
            ("peers/echo/1conn", 0.9),
        ];
        let against: Vec<(&str, f64, f64)> = wanted
            .iter()
            .filter_map(|&(name, min)| {
                let (_, p, _) = peers.iter().find(|(n, _, _)| *n == name)?;
                Some((name, *p, min))
            })
            .collect();
        if !against.is_empty() {
            out.push((
                format!(
                    "{ours} >= 0.5x the io-uring crate on NOP QD32, >= 0.9x on read QD32 and \
                     echo 1 connection (peers table)"
                ),
                against
                    .iter()
                    .map(|(n, p, _)| format!("{n} {p:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                against.iter().all(|(_, p, min)| p >= min),
                limit_speed.to_string(),
            ));
        }
        // Per row it is behind on: the fastest peer.
        let behind: Vec<String> = peers
            .iter()
            .filter_map(|(row, p, others)| {
                let (peer, r) = others.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
                (r > *p).then(|| format!("{row} {p:.3} < {peer} {r:.3}"))
            })
            .collect();
        out.push((
            format!("{ours} >= each of tokio-uring, monoio and compio on every peers row"),
            if behind.is_empty() {
                "ahead on every row".to_string()
            } else {
                format!("behind the fastest on: {}", behind.join(", "))
            },
            behind.is_empty(),
            limit_peers,
        ));
    }
    let cp = ratios(tables, "cp/");
    if !cp.is_empty() {
        out.push((
            "the cp examples within 1.1x of coreutils cp (ratio cp/example >= 0.91)".to_string(),
            list(&cp),
            cp.iter().all(|(_, r)| *r >= 1.0 / 1.1),
            "See the note under the cp table: both copy each byte once (a splice through a \
             pipe); what is left is the examples' requests and their io-wq workers against \
             one copy_file_range call, and a loaded machine's noise on 0.1 s runs."
                .to_string(),
        ));
    }
    out
}

/// What the batch-1 instruction count pays for that the other libraries
/// do not do, when a target on it is missed.
const INSTRUCTIONS_LIMIT: &str = "At batch 1 the fixed cost of one push, one enter and one \
     reap is what counts, and ring spends part of it on what neither other library does: \
     validating the CQ tail the kernel writes before any CQE is read (a tail no kernel could \
     write is an error, not an out-of-bounds or racing read), proving the SQ head from the \
     enter's count (or loading and validating it), making sure `submit_and_wait(n)` returns \
     with n CQEs visible (a look at the tail after the wait: a signal can end the kernel's \
     wait early without an error), and the EBUSY stash. liburing spends about 20 on calls \
     (ring's path is inline). At batch 32 these are shared by the batch and ring is below \
     both.";

/// The Proactors' table: user-space instructions per NOP future at QD1
/// and QD32 (ring-bench's `--callgrind proactor|local`), beside the raw
/// ring's NOP loop at the same depth (its own loop, BATCH submitted and
/// waited for at once: the least a NOP costs).
fn proactor_instructions(md: &mut String, bin: &str) -> Result<()> {
    writeln!(
        md,
        "\n## The Proactors' user-space instructions per op (callgrind)\n\n\
         NOP futures (`nop()`) on each one's `block_on`, as in the peers rows: at QD1 a loop \
         awaiting each, at QD32 one future polling 32, each refilled as it completes; the same difference \
         of a 20k- and a 40k-op run. What a NOP costs above the raw ring's NOP loop at the \
         same depth is the Proactor's bookkeeping per op: slot, submission, completion, \
         waker, future.\n"
    )?;
    writeln!(
        md,
        "| QD | Proactor | LocalProactor | raw ring (NOP loop, batch QD) |"
    )?;
    writeln!(md, "|---:|---:|---:|---:|")?;
    for depth in [1, 32] {
        let shared = instructions_per_op(&[bin, "--callgrind", "proactor"], depth)?;
        let local = instructions_per_op(&[bin, "--callgrind", "local"], depth)?;
        let raw = instructions_per_op(&[bin, "--callgrind", "ring"], depth)?;
        writeln!(md, "| {depth} | {shared:.1} | {local:.1} | {raw:.1} |")?;
    }
    writeln!(
        md,
        "\nReads at the file's end (the peers table's read0 rows: the whole op but no copy), \
         beside monoio's (which has no NOP) and the raw ring's read loop at the same depth:\n"
    )?;
    writeln!(md, "| QD | Proactor | LocalProactor | monoio | raw ring |")?;
    writeln!(md, "|---:|---:|---:|---:|---:|")?;
    for depth in [1, 32] {
        let count = |lib: &str| -> Result<String> {
            Ok(format!(
                "{:.1}",
                instructions_per_op(&[bin, "--callgrind", lib], depth)?
            ))
        };
        writeln!(
            md,
            "| {depth} | {} | {} | {} | {} |",
            count("read0-proactor")?,
            count("read0-local")?,
            count("read0-monoio").unwrap_or_else(|_| "n/a".to_string()),
            count("read0-ring")?,
        )?;
    }
    Ok(())
}

/// The "Collected : N" total of a callgrind run's stderr.
fn collected(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
}

/// User-space instructions per NOP of `cmd BATCH OPS` (ring-bench's
/// `--callgrind LIB`, or the liburing program): the difference of two run
/// lengths, so start-up and setup cancel.
fn instructions_per_op(cmd: &[&str], batch: u32) -> Result<f64> {
    let (short, long) = (20_000u64, 40_000u64);
    let mut totals = Vec::new();
    for ops in [short, long] {
        let out = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .args(cmd)
            .arg(batch.to_string())
            .arg(ops.to_string())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("callgrind {cmd:?} batch {batch}: {}", stderr.trim()).into());
        }
        totals.push(collected(&stderr).ok_or("no callgrind total")?);
    }
    Ok((totals[1] - totals[0]) as f64 / (long - short) as f64)
}

/// The Debian packages the instruction counts need: valgrind, and
/// liburing's headers for the C program of the same NOP loop.
const BENCH_PACKAGES: [&str; 2] = ["valgrind", "liburing-dev"];

/// Installs [`BENCH_PACKAGES`] with apt-get if valgrind or liburing's header
/// is missing, as `.ci/run` installs qemu; best effort (a machine without
/// apt-get, or without the right to use it, gets no counts, or none for
/// liburing, and the page says so).
fn install_bench_packages() {
    let have_valgrind = Command::new("valgrind").arg("--version").output().is_ok();
    if have_valgrind && std::path::Path::new("/usr/include/liburing.h").exists() {
        return;
    }
    eprintln!(
        "xtask: installing {} for the instruction counts",
        BENCH_PACKAGES.join(" ")
    );
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let _ = apt(&["update", "-q"])
        && apt(&[
            &["install", "-y", "-q", "--no-install-recommends"][..],
            &BENCH_PACKAGES[..],
        ]
        .concat());
}

/// Builds `bench/c/liburing_nops.c` (the NOP loop on liburing) next to
/// ring-bench; `None`, with the reason, when it cannot be built.
fn build_liburing_nops(bin_dir: &std::path::Path) -> std::result::Result<String, String> {
    let out = bin_dir.join("liburing-nops");
    let out = out.to_str().ok_or("non-UTF-8 path")?.to_string();
    let src = root().join("bench/c/liburing_nops.c");
    let built = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O2", "-o", &out])
        .arg(&src)
        .arg("-luring")
        .output()
        .map_err(|e| format!("no C compiler ({e})"))?;
    if !built.status.success() {
        return Err(format!(
            "cc could not build it (is liburing-dev installed?): {}",
            String::from_utf8_lossy(&built.stderr).trim()
        ));
    }
    Ok(out)
}

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let release = read("/proc/sys/kernel/osrelease").trim().to_string();
    // Other work on the machine skews every time measured; the counts of
    // instructions do not move with it.
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{cpu}, {cores} cores, Linux {release}, load average {load} at the start")
}

/// `cargo xtask bench [--quick]`.
/// Runs ring-bench with `args` (and `--quick`) and parses its tables;
/// `None` (its stderr printed) if it failed.
fn run_bench(bin: &str, args: &[&str], quick: bool) -> Result<Option<Vec<Table>>> {
    let mut run = Command::new(bin);
    run.args(args);
    if quick {
        run.arg("--quick");
    }
    let out = run.output()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return Ok(None);
    }
    Ok(Some(parse_tables(&String::from_utf8_lossy(&out.stdout))))
}

pub(crate) fn bench(mut args: Args) -> Result<bool> {
    let quick = args.flag(&["--quick"]);
    args.finish()?;
    let start = Instant::now();
    // The bench, and the copy examples its `cp` rows run (it finds them
    // next to itself, in target/release/examples).
    if !cargo()
        // `peers`: the tokio-uring, monoio and compio rows (those runtimes
        // are built only here, never by `cargo test --workspace`).
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "ring-bench",
            "--features",
            "peers",
            "--bin",
            "ring-bench",
        ])
        .args(["-p", "ring-io-driver", "--example", "cp"])
        .args(["-p", "ring-io-proactor", "--example", "cp_proactor"])
        .status()?
        .success()
    {
        return Ok(false);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), Into::into);
    let bin_dir = &target.join("release");
    let bin = bin_dir.join("ring-bench");
    let bin = bin.to_str().ok_or("non-UTF-8 path")?.to_string();
    let Some(mut tables) = run_bench(&bin, &[], quick)? else {
        return Ok(false);
    };
    // The peers table again, beside CPU-bound processes (one per CPU):
    // reported beside the quiet one, not judged.
    if tables
        .iter()
        .any(|t| t.rows.iter().any(|r| r[0].starts_with("peers/")))
    {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let Some(loaded) = run_bench(&bin, &["--load", &cpus.to_string()], quick)? else {
            return Ok(false);
        };
        tables.extend(loaded);
    }
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `cargo xtask bench{}` on {}. ring and the io-uring crate (0.7) run the same \
         workloads in one process, alternating rounds; each number is the median of the rounds. \
         ratio = io-uring time / ring time: above 1.00 means ring is faster.\n",
        if quick { " --quick" } else { "" },
        machine()
    )?;
    for t in &tables {
        write_table(&mut md, t)?;
    }
    writeln!(md, "\n## User-space instructions per NOP (callgrind)\n")?;
    install_bench_packages();
    let mut instructions = Vec::new();
    if Command::new("valgrind").arg("--version").output().is_ok() {
        let liburing = build_liburing_nops(bin_dir);
        writeln!(
            md,
            "Difference of a 20k- and a 40k-NOP run, plain setup (start-up cancels); the same \
             loop (push BATCH, submit and wait for them, reap them) on ring, the io-uring crate \
             and liburing {} (`bench/c/liburing_nops.c`, built with `cc -O2 -luring`). ratio = \
             ring / other: below 1.00 means ring executes fewer instructions.\n",
            liburing_version()
        )?;
        if let Err(why) = &liburing {
            writeln!(md, "liburing: not measured, {why}\n")?;
        }
        writeln!(
            md,
            "| loop | ring | io-uring | liburing | ratio ring/io-uring | ratio ring/liburing |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
        for batch in [1, 32] {
            let ours = instructions_per_op(&[&bin, "--callgrind", "ring"], batch)?;
            let theirs = instructions_per_op(&[&bin, "--callgrind", "io-uring"], batch)?;
            let c = match &liburing {
                Ok(c) => Some(instructions_per_op(&[c], batch)?),
                Err(_) => None,
            };
            writeln!(
                md,
                "| NOP batch {batch} | {ours:.1} | {theirs:.1} | {} | {:.3} | {} |",
                c.map_or("-".to_string(), |c| format!("{c:.1}")),
                ours / theirs,
                c.map_or("-".to_string(), |c| format!("{:.3}", ours / c)),
            )?;
            instructions.push(Instructions {
                batch,
                io_uring: ours / theirs,
                liburing: c.map(|c| ours / c),
            });
        }
        // The `shared` rows' loops on one thread: SharedRing against
        // Mutex<IoUring> (ring-bench's `--callgrind shared|mutex`, and
        // `shared1|mutex1` for the batch-1 rows).
        for (batch, ours, theirs) in [(16, "shared", "mutex"), (1, "shared1", "mutex1")] {
            let ours = instructions_per_op(&[&bin, "--callgrind", ours], 1)?;
            let theirs = instructions_per_op(&[&bin, "--callgrind", theirs], 1)?;
            writeln!(
                md,
                "| shared loop, batch {batch}, 1 thread (SharedRing / Mutex<IoUring>) | {ours:.1} | {theirs:.1} | - | {:.3} | - |",
                ours / theirs
            )?;
        }
        proactor_instructions(&mut md, &bin)?;
    } else {
        writeln!(md, "valgrind is not installed here: no instruction counts.")?;
    }
    let targets = targets(&tables, &instructions);
    if !targets.is_empty() {
        writeln!(md, "\n## The targets, in this run\n")?;
        writeln!(md, "| target | measured | met |")?;
        writeln!(md, "|---|---|---|")?;
        for (target, measured, met, _) in &targets {
            writeln!(
                md,
                "| {target} | {measured} | {} |",
                if *met { "yes" } else { "no" }
            )?;
        }
        for (target, _, met, limit) in &targets {
            if !met {
                writeln!(md, "\n- Missed: {target}. {limit}")?;
            }
        }
    }
    writeln!(
        md,
        "\n(The whole run took {:.0} s.)",
        start.elapsed().as_secs_f64()
    )?;
    std::fs::write(root().join("BENCHMARKS.md"), &md)?;
    print!("{md}");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::{Instructions, collected, parse_tables, split_note, targets, write_table};

    #[test]
    fn targets_are_judged_on_the_runs_ratios() {
        let out = "row\tring ns/op\tio-uring ns/op\tratio\n\
                   nop/batch1/plain\t10\t10\t0.990\n\
                   nop/batch32/plain\t10\t9\t0.950\n\
                   shared/threads1/batch16\t1\t1\t0.9\n\
                   shared/threads2/batch16\t1\t2\t2.0\n\
                   shared/threads4/batch16\t1\t2\t1.6\n\
                   shared/threads1/batch1\t1\t1\t0.9\n\
                   shared/threads2/batch1\t1\t2\t1.35\n\
                   shared/threads4/batch1\t1\t2\t1.4\n\
                   table\tP\nrow\tProactor\tring\tratio\n\
                   proactor/nop/qd32\t100\t50\t0.5\n\
                   table\tC\nrow\texample ms\tnever ms\tcp ms\tratio\n\
                   cp/200MiB/ring\t100\t120\t95\t0.950\n\
                   cp/200MiB/proactor\t110\t120\t95\t0.864\n";
        let tables = parse_tables(out);
        let counts = [
            Instructions {
                batch: 1,
                io_uring: 1.2,
                liburing: Some(0.98),
            },
            Instructions {
                batch: 32,
                io_uring: 0.7,
                liburing: Some(0.5),
            },
        ];
        let t = targets(&tables, &counts);
        let met: Vec<bool> = t.iter().map(|x| x.2).collect();
        assert_eq!(met, [false, false, true, true, false, true, false]);
        assert_eq!(t[6].1, "cp/200MiB/ring 0.950, cp/200MiB/proactor 0.864");
        assert_eq!(t[0].1, "lowest: nop/batch32/plain 0.950");
        assert_eq!(t[1].1, "batch 1 1.200, batch 32 0.700");
        assert_eq!(t[2].1, "batch 1 0.980");
        assert_eq!(
            t[3].1,
            "shared/threads2/batch16 2.000, shared/threads4/batch16 1.600"
        );
        assert_eq!(
            t[4].1,
            "shared/threads2/batch1 1.350, shared/threads4/batch1 1.400"
        );
        assert!(targets(&[], &[]).is_empty());
    }

    #[test]
    fn the_peers_table_is_judged_column_by_column() {
        let out = "table\tPeers (load 1.0)\n\
                   row\tio-uring ns/op\tProactor\ttokio-uring\tmonoio\tcompio\n\
                   peers/nop/qd32\t60\t0.6\t0.2\t0.7\t0.1\n\
                   peers/read4k/qd32\t900\t0.95\t0.8\t0.9\t0.9\n\
                   peers/echo/1conn\t15000\t0.95\t0.9\t0.9\t0.9\n";
        let t = targets(&parse_tables(out), &[]);
        assert_eq!(t.len(), 2);
        assert!(t[0].2, "0.6, 0.95 and 0.95 meet 0.5, 0.9 and 0.9");
        assert_eq!(
            t[0].1,
            "peers/nop/qd32 0.600, peers/read4k/qd32 0.950, peers/echo/1conn 0.950"
        );
        assert!(!t[1].2);
        assert_eq!(
            t[1].1,
            "behind the fastest on: peers/nop/qd32 0.600 < monoio 0.700"
        );
        let slow = out.replace("\t0.95\t0.8", "\t0.85\t0.8");
        let t = targets(&parse_tables(&slow), &[]);
        assert!(!t[0].2, "0.85 misses 0.9 on read QD32");
    }

    #[test]
    fn the_local_proactor_is_judged_on_its_own_and_is_nobodys_peer() {
        let out = "table\tPeers (load 1.0)\n\
                   row\tio-uring ns/op\tProactor\tLocalProactor\ttokio-uring\tmonoio\tcompio\n\
                   peers/nop/qd32\t60\t0.6\t0.9\t0.2\t0.7\t0.1\n";
        let t = targets(&parse_tables(out), &[]);
        let find = |what: &str| t.iter().find(|x| x.0.starts_with(what)).unwrap();
        // The LocalProactor's 0.9 does not count against the Proactor.
        assert_eq!(
            find("Proactor >= each").1,
            "behind the fastest on: peers/nop/qd32 0.600 < monoio 0.700"
        );
        assert!(
            find("LocalProactor >= each").2,
            "0.9 is ahead of every peer"
        );
        assert!(find("LocalProactor >= 0.5x").2);
    }

    #[test]
    fn a_peer_with_n_a_is_left_out_of_that_row_only() {
        // monoio has no NOP: n/a (with its footnote mark) on the nop rows.
        let out = "table\tPeers (load 1.0)\n\
                   row\tio-uring ns/op\tProactor\tLocalProactor\ttokio-uring\tmonoio\tcompio\n\
                   peers/nop/qd32\t60\t0.6\t0.9\t0.2\tn/a\u{b9}\t0.7\n\
                   peers/read0/qd32\t300\t0.4\t0.5\t0.4\t0.6\t0.4\n\
                   note\t\u{b9} monoio has no NOP.\n";
        let tables = parse_tables(out);
        assert_eq!(tables[0].rows.len(), 2, "the row with n/a is a row");
        assert_eq!(tables[0].rows[0][5], "n/a\u{b9}");
        let t = targets(&tables, &[]);
        let find = |what: &str| t.iter().find(|x| x.0.starts_with(what)).unwrap();
        // The nop row is judged against the peers that ran it.
        assert_eq!(
            find("Proactor >= each").1,
            "behind the fastest on: peers/nop/qd32 0.600 < compio 0.700, \
             peers/read0/qd32 0.400 < monoio 0.600"
        );
        assert_eq!(
            find("LocalProactor >= each").1,
            "behind the fastest on: peers/read0/qd32 0.500 < monoio 0.600"
        );
        assert_eq!(find("LocalProactor >= 0.5x").1, "peers/nop/qd32 0.900");
    }

    #[test]
    fn the_split_note_names_the_proactors_and_monoios_times() {
        let out = "table\tSplit\n\
                   row\tns/op\tuser ns/op\tkernel ns/op\tsplit's std. error ns/op\n\
                   split/read0/qd1/io-uring\t560\t60\t500\t7.0\n\
                   split/read0/qd1/Proactor\t680\t155\t525\t10.2\n\
                   split/read0/qd1/monoio\t640\t125\t515\t9.6\n";
        let note = split_note(&parse_tables(out));
        assert!(
            note.contains("the Proactor spent 155 ns in user space and 525 ns in the kernel (std. error 10), monoio 125 and 515 (std. error 10)."),
            "{note}"
        );
        assert_eq!(split_note(&parse_tables("")), ".");
    }

    #[test]
    fn tables_and_totals_parse() {
        let tables = parse_tables(
            "noise\nrow\tring ns/op\tio-uring ns/op\tratio\nnop/batch1/plain\t200.5\t210.0\t1.047\n\
             bad line\nnop/x\t1.0\tnan?\t1.0\ntable\tReads\nrow\ta\tb\nread/qd1\t1.5\t2\n\
             note\tWhat is measured.\n",
        );
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].heading, None);
        assert_eq!(tables[0].columns, ["ring ns/op", "io-uring ns/op", "ratio"]);
        assert_eq!(
            tables[0].rows,
            [["nop/batch1/plain", "200.5", "210.0", "1.047"]]
        );
        assert!(tables[0].notes.is_empty());
        assert_eq!(tables[1].heading.as_deref(), Some("Reads"));
        assert_eq!(tables[1].rows, [["read/qd1", "1.5", "2"]]);
        assert_eq!(tables[1].notes, ["What is measured."]);
        let mut md = String::new();
        write_table(&mut md, &tables[1]).unwrap();
        assert_eq!(
            md,
            "\n## Reads\n\n| workload | a | b |\n|---|---:|---:|\n| read/qd1 | 1.5 | 2 |\n\nWhat is measured.\n"
        );
        assert_eq!(
            collected("==1== Events : Ir\n==1== Collected : 4718669\n"),
            Some(4_718_669)
        );
        assert_eq!(collected("nothing"), None);
    }
}
