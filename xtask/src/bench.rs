//! `cargo xtask bench`: runs `ring-bench` (ring and the io-uring crate side
//! by side, alternating, in one run), counts user-space instructions per op
//! with callgrind, and writes BENCHMARKS.md.

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

/// Parses ring-bench's tab-separated output: `table<TAB>heading` starts a
/// table, `row<TAB>column...` names its columns, `note<TAB>text` adds a
/// line under it, and every line of a name and as many numbers as there
/// are columns is a row; anything else is ignored.
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
                if let Some(t) = tables.last_mut()
                    && values.len() == t.columns.len()
                    && values.iter().all(|v| v.parse::<f64>().is_ok())
                {
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

/// The "Collected : N" total of a callgrind run's stderr.
fn collected(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
}

/// User-space instructions per NOP: the difference of two run lengths, so
/// start-up and setup cancel.
fn instructions_per_op(bin: &str, lib: &str, batch: u32) -> Result<f64> {
    let (short, long) = (20_000u64, 40_000u64);
    let mut totals = Vec::new();
    for ops in [short, long] {
        let out = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                bin,
                "--callgrind",
                lib,
            ])
            .arg(batch.to_string())
            .arg(ops.to_string())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("callgrind {lib} batch {batch}: {}", stderr.trim()).into());
        }
        totals.push(collected(&stderr).ok_or("no callgrind total")?);
    }
    Ok((totals[1] - totals[0]) as f64 / (long - short) as f64)
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
    format!("{cpu}, {cores} cores, Linux {release}")
}

/// `cargo xtask bench [--quick]`.
pub(crate) fn bench(mut args: Args) -> Result<bool> {
    let quick = args.flag(&["--quick"]);
    args.finish()?;
    let start = Instant::now();
    if !cargo()
        .args(["build", "--release", "-q", "-p", "ring-bench"])
        .status()?
        .success()
    {
        return Ok(false);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), Into::into);
    let bin = target.join("release/ring-bench");
    let bin = bin.to_str().ok_or("non-UTF-8 path")?.to_string();
    let mut run = Command::new(&bin);
    if quick {
        run.arg("--quick");
    }
    let out = run.output()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return Ok(false);
    }
    let tables = parse_tables(&String::from_utf8_lossy(&out.stdout));
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
    if Command::new("valgrind").arg("--version").output().is_ok() {
        writeln!(
            md,
            "Difference of a 20k- and a 40k-NOP run, plain setup (start-up cancels). \
             ratio = ring / io-uring: below 1.00 means ring executes fewer instructions.\n"
        )?;
        writeln!(md, "| loop | ring | io-uring | ratio |")?;
        writeln!(md, "|---|---:|---:|---:|")?;
        for batch in [1, 32] {
            let ours = instructions_per_op(&bin, "ring", batch)?;
            let theirs = instructions_per_op(&bin, "io-uring", batch)?;
            writeln!(
                md,
                "| NOP batch {batch} | {ours:.1} | {theirs:.1} | {:.3} |",
                ours / theirs
            )?;
        }
        // The `shared` rows' loop on one thread: SharedRing against
        // Mutex<IoUring> (ring-bench's `--callgrind shared|mutex`).
        let ours = instructions_per_op(&bin, "shared", 1)?;
        let theirs = instructions_per_op(&bin, "mutex", 1)?;
        writeln!(
            md,
            "| shared loop, 1 thread (SharedRing / Mutex<IoUring>) | {ours:.1} | {theirs:.1} | {:.3} |",
            ours / theirs
        )?;
    } else {
        writeln!(md, "valgrind is not installed here: no instruction counts.")?;
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
    use super::{collected, parse_tables, write_table};

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
