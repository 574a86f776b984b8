//! `cargo xtask test-kernel`: the kernel tests on every (kernel,
//! architecture) pair asked for, each in a qemu VM (or on this machine with
//! `--kernel host`), with a report per run and a table of all of them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::arch::Arch;
use crate::summary::{MARK, Summary};
use crate::vm::Accel;
use crate::{Args, Result, guest, kernels, root, runner, testbins, vm};

/// A kernel to test on.
pub(crate) enum Kernel {
    /// This machine, no VM.
    Host,
    /// A Debian series.
    Series(&'static kernels::Series),
    /// A kernel image the user passed (for the architectures of `--arch`).
    Image(PathBuf),
}

impl Kernel {
    pub(crate) fn name(&self) -> String {
        match self {
            Kernel::Host => "host".into(),
            Kernel::Series(s) => s.name.into(),
            Kernel::Image(p) => p.display().to_string(),
        }
    }
}

/// The names `--kernel` accepts besides a path.
fn series_names() -> String {
    kernels::SERIES
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn parse_kernels(specs: &[String]) -> Result<Vec<Kernel>> {
    let mut out = Vec::new();
    for spec in specs
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        match spec {
            "all" => out.extend(kernels::SERIES.iter().map(Kernel::Series)),
            "host" => out.push(Kernel::Host),
            _ => match kernels::SERIES.iter().find(|s| s.name == spec) {
                Some(s) => out.push(Kernel::Series(s)),
                None if Path::new(spec).is_file() => out.push(Kernel::Image(spec.into())),
                None => {
                    return Err(format!(
                        "--kernel `{spec}`: not {}, all, host, nor a kernel image file",
                        series_names()
                    )
                    .into());
                }
            },
        }
    }
    if out.is_empty() {
        out.extend(kernels::SERIES.iter().map(Kernel::Series));
    }
    Ok(out)
}

/// The last `n` lines of `text`, indented.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("    | {}\n", l.trim_end_matches('\r')))
        .collect()
}

/// A directory removed when the run ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One (kernel, architecture) pair of the matrix.
struct Job<'a> {
    kernel: &'a Kernel,
    arch: Arch,
}

/// What the table shows of one pair.
#[derive(Debug, PartialEq)]
pub(crate) enum Row {
    /// It ran (or could not be started: then `summary` says why).
    Ran { summary: Summary, took: Duration },
    /// Debian builds no such kernel for this architecture.
    NotBuilt,
}

/// The per-kernel, per-architecture table: one line per pair, in the
/// order asked for.
pub(crate) fn table(rows: &[(String, Arch, Row)]) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:<30} {:<7} {:>6} {:>6} {:>7} {:>7}\n",
        "kernel", "arch", "release", "result", "passed", "failed", "skipped", "time"
    );
    for (kernel, arch, row) in rows {
        let line = match row {
            Row::Ran { summary: s, took } => format!(
                "{:<8} {:<8} {:<30} {:<7} {:>6} {:>6} {:>7} {:>5} s",
                kernel,
                arch.name(),
                s.release.as_deref().unwrap_or("?"),
                if s.ok() { "ok" } else { "FAILED" },
                s.passed.len(),
                s.failed.len(),
                s.skipped.len(),
                took.as_secs()
            ),
            Row::NotBuilt => format!(
                "{:<8} {:<8} {:<30} {:<7}",
                kernel,
                arch.name(),
                format!("(Debian builds none for {})", arch.debian()),
                "-"
            ),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// What one architecture's runs share: its test binaries and initramfs.
struct Built {
    stage: PathBuf,
    initrd: PathBuf,
    binaries: usize,
    plan: runner::Plan,
}

/// Builds `arch`'s test binaries (and, for VMs, its init and initramfs)
/// into `dir`.
fn build(arch: Arch, what: &What, dir: &Path, vm: bool) -> Result<Built> {
    let t0 = Instant::now();
    testbins::ensure_target(arch)?;
    let mut tests = testbins::build_tests(arch, &what.packages)?;
    if !what.bins.is_empty() {
        tests.retain(|t| {
            what.bins
                .iter()
                .any(|b| t.label == *b || t.label.ends_with(&format!(".{b}")))
        });
        if tests.is_empty() {
            return Err(format!("no test binary is named {}", what.bins.join(" or ")).into());
        }
    }
    let stage = dir.join(guest::TESTS_DIR);
    testbins::stage(&tests, &stage)?;
    let initrd = dir.join("initramfs.cpio");
    if vm {
        let init = testbins::build_init(arch)?;
        vm::initramfs(&init, &stage, &what.plan, &initrd)?;
    }
    eprintln!(
        "xtask: built {} {} test binaries in {:.1} s: {}",
        tests.len(),
        arch.name(),
        t0.elapsed().as_secs_f64(),
        tests
            .iter()
            .map(|t| t.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Built {
        stage,
        initrd,
        binaries: tests.len(),
        plan: what.plan.clone(),
    })
}

/// Which tests a run builds and runs.
struct What {
    packages: Vec<String>,
    /// `--bin`: only these test binaries (`server` or `ring-io-proactor.server`).
    bins: Vec<String>,
    plan: runner::Plan,
}

/// What every run shares.
struct Context {
    accel: Accel,
    /// Set once KVM failed with `--accel auto`: TCG from then on.
    kvm_broken: AtomicBool,
    /// `--timeout`, if given: else each architecture's default.
    timeout: Option<Duration>,
    verbose: bool,
    logs: PathBuf,
}

/// Runs one pair: boots its kernel (or runs on the host) and returns the
/// report to print and the table's row.
fn run_one(
    ctx: &Context,
    job: &Job<'_>,
    built: &Built,
    image: Option<&Path>,
) -> Result<(String, Row)> {
    let name = job.kernel.name();
    let arch = job.arch;
    let timeout = ctx
        .timeout
        .unwrap_or(Duration::from_secs(arch.default_timeout()));
    let mut notes = String::new();
    let start = Instant::now();
    let (transcript, mut summary) = match image {
        None => {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let mut t = format!("{MARK} kernel {}\n", release.trim());
            runner::run_dir(
                &built.stage,
                timeout,
                &built.plan,
                Some((&mut t, ctx.verbose)),
            );
            t.push_str(&format!("{MARK} done\n"));
            let s = Summary::parse(&t);
            (t, s)
        }
        Some(image) => {
            let limits = vm::Limits {
                // Boot and power-off take seconds (a minute or two for
                // another architecture under TCG); the rest is the binaries.
                guest: Duration::from_secs(if Some(arch) == Arch::host() { 60 } else { 180 })
                    + timeout
                        * u32::try_from(built.binaries)
                            .unwrap_or(u32::MAX)
                            .saturating_mul(built.plan.repeat.max(1)),
                per_binary: timeout,
                // A KVM guest reaches init in about a second where KVM works.
                probe: Duration::from_secs(15),
            };
            eprintln!(
                "xtask: booting {name} on {} ({})",
                arch.name(),
                image.display()
            );
            let kvm = Some(arch) == Arch::host()
                && ctx.accel != Accel::Tcg
                && !ctx.kvm_broken.load(Ordering::Relaxed);
            let mut boot = vm::boot(arch, image, &built.initrd, kvm, &limits, ctx.verbose)?;
            if boot.kvm_failed {
                let why = match tail(&boot.stderr, 1).trim() {
                    "" => format!("no sign of life within {} s", limits.probe.as_secs()),
                    err => err.to_string(),
                };
                if ctx.accel == Accel::Auto {
                    eprintln!("xtask: KVM does not work here ({why}): using TCG from now on");
                    ctx.kvm_broken.store(true, Ordering::Relaxed);
                    boot = vm::boot(arch, image, &built.initrd, false, &limits, ctx.verbose)?;
                } else {
                    notes.push_str(&format!("  KVM failed: {why} (try --accel tcg)\n"));
                }
            }
            let mut s = Summary::parse(&boot.console);
            if let Some(line) = boot
                .console
                .lines()
                .find(|l| l.contains("Initramfs unpacking failed"))
            {
                s.failed.push(format!(
                    "the guest could not unpack its test binaries ({}): the last ones are \
                     missing or cut short",
                    line.trim()
                ));
            }
            if boot.timed_out {
                s.failed.push(format!(
                    "the guest timed out after {} s",
                    limits.guest.as_secs()
                ));
            }
            let transcript = format!("{}\n---- qemu stderr ----\n{}", boot.console, boot.stderr);
            (transcript, s)
        }
    };
    // Every binary staged must have run (each time asked), or the run
    // counts as failed: a binary missing from the guest is no pass.
    let runs = built.binaries * built.plan.repeat.max(1) as usize;
    if summary.complete && summary.binaries < runs {
        summary.failed.push(format!(
            "only {} of {runs} test binary runs reached their end",
            summary.binaries
        ));
    }
    let took = start.elapsed();
    let log = ctx
        .logs
        .join(format!("{}-{}.log", arch.name(), name.replace('/', "_")));
    std::fs::write(&log, &transcript)?;
    if !summary.complete || summary.binaries == 0 {
        notes.push_str(&format!(
            "  console tail ({}):\n{}",
            log.display(),
            tail(&transcript, 30)
        ));
    }
    summary
        .release
        .get_or_insert_with(|| "release unknown".into());
    let mut report = format!(
        "{}{notes}",
        summary.report(&format!("{name} on {}", arch.name()), took)
    );
    if !summary.ok() {
        report.push_str(&format!("  full log: {}\n", log.display()));
    }
    Ok((report, Row::Ran { summary, took }))
}

/// A row for a pair that could not run at all.
fn could_not_run(why: String) -> Row {
    Row::Ran {
        summary: Summary {
            release: Some("-".into()),
            failed: vec![why],
            complete: true,
            ..Summary::default()
        },
        took: Duration::ZERO,
    }
}

/// `cargo xtask test-kernel`: returns whether every run passed.
pub(crate) fn test_kernel(mut args: Args) -> Result<bool> {
    let kernels = parse_kernels(&args.values(&["--kernel", "-k"])?)?;
    let archs = Arch::parse_list(&args.values(&["--arch"])?)?;
    let mut accel = Accel::parse(args.value(&["--accel"])?.as_deref().unwrap_or("tcg"))?;
    let timeout = match args.value(&["--timeout"])? {
        None => None,
        Some(v) => {
            Some(Duration::from_secs(v.parse().map_err(|_| {
                format!("--timeout takes a number, not `{v}`")
            })?))
        }
    };
    let jobs = args.number(&["--jobs", "-j"], 1)?.max(1);
    let mut packages = args.values(&["--package", "-p"])?;
    let verbose = args.flag(&["--verbose", "-v"]);
    let bins = args.values(&["--bin"])?;
    let repeat = u32::try_from(args.number(&["--repeat"], 1)?.max(1))
        .map_err(|_| "--repeat is too large")?;
    let filters = args.values(&["--filter"])?;
    args.finish()?;
    if packages.is_empty() {
        packages = testbins::KERNEL_TESTS
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
    }
    let what = What {
        packages,
        bins,
        plan: runner::Plan { repeat, filters },
    };
    let host = Arch::host();

    // The matrix, architecture by architecture, in the order asked for.
    let mut rows: Vec<(String, Arch, Row)> = Vec::new();
    let mut plan: Vec<(usize, Job<'_>)> = Vec::new();
    for &arch in &archs {
        for kernel in &kernels {
            match kernel {
                // The host runs on its own architecture only.
                Kernel::Host if Some(arch) != host => continue,
                Kernel::Series(s) if !s.has(arch) => {
                    rows.push((kernel.name(), arch, Row::NotBuilt));
                    continue;
                }
                _ => {}
            }
            plan.push((rows.len(), Job { kernel, arch }));
            rows.push((kernel.name(), arch, Row::NotBuilt));
        }
    }
    if plan.is_empty() {
        return Err(format!(
            "nothing to run: --kernel host runs on {} only",
            std::env::consts::ARCH
        )
        .into());
    }
    for &arch in &archs {
        let vm = plan
            .iter()
            .any(|(_, j)| j.arch == arch && !matches!(j.kernel, Kernel::Host));
        if vm {
            vm::check_qemu(arch)?;
        }
    }

    let work = root().join("target/xtask");
    // Per run, so that runs beside each other (a shared tree) do not mix.
    let run_dir = RemoveOnDrop(work.join("run").join(std::process::id().to_string()));
    let mut built = Vec::new();
    for &arch in &archs {
        let mine: Vec<_> = plan.iter().filter(|(_, j)| j.arch == arch).collect();
        if mine.is_empty() {
            continue;
        }
        let vm = mine.iter().any(|(_, j)| !matches!(j.kernel, Kernel::Host));
        built.push((arch, build(arch, &what, &run_dir.0.join(arch.name()), vm)?));
    }
    if accel == Accel::Auto && !vm::kvm_usable() {
        accel = Accel::Tcg;
    }

    // Downloads first (one at a time: they share apt state), then the runs.
    let mut images: Vec<Option<PathBuf>> = Vec::new();
    let mut runnable = Vec::new();
    for (row, job) in &plan {
        let image = match job.kernel {
            Kernel::Host => None,
            Kernel::Image(p) => Some(p.clone()),
            Kernel::Series(s) => match kernels::obtain(s, job.arch) {
                Ok(image) => Some(image),
                Err(e) => {
                    let why = format!("could not obtain the kernel: {e}");
                    println!(
                        "kernel {} on {}: FAILED: {why}",
                        job.kernel.name(),
                        job.arch.name()
                    );
                    rows[*row].2 = could_not_run(why);
                    continue;
                }
            },
        };
        images.push(image);
        runnable.push((*row, job));
    }

    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let ctx = Context {
        accel,
        kvm_broken: AtomicBool::new(false),
        timeout,
        verbose,
        logs,
    };
    // A pool of `jobs` threads takes the runs in order; each report is
    // printed whole as its run ends.
    let next = Mutex::new(0usize);
    let done: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(runnable.len() as u64) {
            scope.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(&(row, job)) = runnable.get(i) else {
                        break;
                    };
                    let built = &built
                        .iter()
                        .find(|(a, _)| *a == job.arch)
                        .expect("every planned architecture is built")
                        .1;
                    let result = match run_one(&ctx, job, built, images[i].as_deref()) {
                        Ok((report, row)) => {
                            print!("{report}");
                            row
                        }
                        Err(e) => {
                            let why = format!("could not run: {e}");
                            println!(
                                "kernel {} on {}: FAILED: {why}",
                                job.kernel.name(),
                                job.arch.name()
                            );
                            could_not_run(why)
                        }
                    };
                    done.lock().unwrap().push((row, result));
                }
            });
        }
    });
    for (row, result) in done.into_inner().unwrap() {
        rows[row].2 = result;
    }
    drop(run_dir);
    println!(
        "\n==== kernel matrix ({} runs, {jobs} at a time, {:.0} s)",
        runnable.len(),
        t0.elapsed().as_secs_f64()
    );
    print!("{}", table(&rows));
    let ok = rows.iter().all(|(_, _, row)| match row {
        Row::Ran { summary, .. } => summary.ok(),
        Row::NotBuilt => true,
    });
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::{Row, parse_kernels, table};
    use crate::arch::Arch;
    use crate::summary::Summary;
    use std::time::Duration;

    #[test]
    fn kernel_specs_expand() {
        let names = |s: &[&str]| {
            let specs: Vec<String> = s.iter().map(|x| x.to_string()).collect();
            parse_kernels(&specs).map(|k| k.iter().map(|k| k.name()).collect::<Vec<_>>())
        };
        let all = ["5.10", "6.1", "6.12", "newest"];
        assert_eq!(names(&["all"]).unwrap(), all);
        assert_eq!(names(&[]).unwrap(), all);
        assert_eq!(
            names(&["host,6.12", "newest,5.10"]).unwrap(),
            ["host", "6.12", "newest", "5.10"]
        );
        let err = names(&["4.19"]).unwrap_err().to_string();
        assert!(
            err.contains("not 5.10, 6.1, 6.12, newest, all, host"),
            "{err}"
        );
    }

    #[test]
    fn the_table_has_a_line_per_kernel_and_architecture() {
        let t = "ring-xtask: kernel 6.12.1-riscv64\nring-xtask: begin b\n\
                 test x ... ok\ntest y ... ring-skip: y: needs 6.18\nok\n\
                 ring-xtask: end b exit=0\nring-xtask: done\n";
        let ran = |s: &str| Row::Ran {
            summary: Summary::parse(s),
            took: Duration::from_secs(75),
        };
        let rows = vec![
            ("6.12".to_string(), Arch::Riscv64, ran(t)),
            ("5.10".to_string(), Arch::Riscv64, Row::NotBuilt),
            (
                "6.1".to_string(),
                Arch::Aarch64,
                ran("ring-xtask: kernel 6.1.0-1-cloud-arm64\n"),
            ),
        ];
        let lines: Vec<String> = table(&rows)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            lines,
            [
                "kernel arch release result passed failed skipped time",
                "6.12 riscv64 6.12.1-riscv64 ok 1 0 1 75 s",
                "5.10 riscv64 (Debian builds none for riscv64) -",
                // No `done` marker: the run is incomplete, so it failed.
                "6.1 aarch64 6.1.0-1-cloud-arm64 FAILED 0 0 0 75 s",
            ]
        );
    }
}
