//! Project automation for the ring workspace: `cargo xtask <command>`.
//!
//! - `test-kernel`: the kernel tests on other kernels, each in a qemu VM
//!   (or on this machine with `--kernel host`), with a summary per kernel.
//! - `fuzz`: every cargo-fuzz target for a bounded time.
//! - `ci`: what `.ci/run` runs, in one command.
//! - `bench`: ring beside the io-uring crate (and liburing, for instruction
//!   counts); writes BENCHMARKS.md.
//!
//! Standard library only: the initramfs (cpio), the JSON of cargo's messages
//! and the arguments are handled here. Built for musl, the same binary is the
//! VM's `/init` (it knows by being PID 1).

mod arch;
mod bench;
mod cpio;
mod guest;
mod json;
mod kernels;
mod matrix;
mod runner;
mod summary;
mod testbins;
mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Errors are reported as text and end the command.
pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test-kernel [--kernel K]... [--arch A]... [--accel kvm|tcg|auto] [--timeout SECS]
              [--jobs N] [-p PACKAGE]... [--bin NAME]... [--repeat N] [--filter TEST]... [-v]
        run the kernel tests on each K and architecture A. K: 5.10, 6.1, 6.12, newest
        (Debian's kernels; newest: trixie-backports'), all (those four), host (this
        machine, no VM), or the path of a kernel image; A: x86_64, aarch64, riscv64
        or all (default: this machine's). Both may be comma-separated lists. Kernels
        are downloaded once into target/xtask/kernels/A/K ($RING_XTASK_KERNELS if
        set); riscv64 has 6.12 and newest only. Prints a table of every pair.
        --accel: default tcg; auto tries KVM (this machine's architecture) and falls
        back to TCG. --timeout: seconds each test binary may run before it counts
        as hung (default 120, riscv64 300); a guest gets 60 s (180 s under another
        architecture) plus that per binary. --jobs: VMs run at once (default 1).
        -p: test these packages instead of the kernel-test list; --bin: only these test
        binaries (`server`, or `ring-io-proactor.server`); --repeat: run each binary N
        times (to catch a rare failure); --filter: run only the tests whose names
        contain TEST (libtest's filter); -v: show the console.
        Needs qemu-system-x86 / -arm / -misc; riscv64 also gcc-riscv64-linux-gnu.
  fuzz [--seconds N] [--dir DIR]
        run every [[bin]] target of DIR/Cargo.toml (default: fuzz/) for N seconds each
        (default 30) with `cargo +nightly fuzz run`; needs nightly and cargo-fuzz.
  ci [--no-kernel] [--keep-going] [--accel A] [--arch A] [--fuzz-seconds N]
        what .ci/run runs: fmt, clippy, docs (rustdoc -D warnings), tests, the main
        example, Miri, loom, fuzz smoke (if there are targets; N default 10),
        AddressSanitizer on the Proactor, the kernel matrix (all kernels on
        x86_64 and aarch64 unless --arch); stops at the first failure unless
        --keep-going.
  bench [--quick]
        ring and the io-uring crate side by side (ring-bench, alternating rounds,
        medians, ratios), the Proactor beside tokio-uring, monoio and compio
        (ring-bench's `peers` feature), plus callgrind instruction counts beside the
        io-uring crate and liburing (a C program; valgrind and liburing-dev are
        installed with apt-get if missing); writes BENCHMARKS.md.
  help  this text";

fn main() -> ExitCode {
    if std::process::id() == 1 {
        guest::init();
    }
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let command = args.remove(0);
    let args = Args(args);
    let result = match command.as_str() {
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(true)
        }
        "test-kernel" => matrix::test_kernel(args),
        "fuzz" => fuzz(args),
        "ci" => ci(args),
        "bench" => bench::bench(args),
        other => Err(format!("unknown command `{other}` (try `cargo xtask help`)").into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The cargo that runs this xtask, in the workspace root.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Command-line arguments, taken one option at a time.
struct Args(Vec<String>);

impl Args {
    /// Removes `name` if present.
    fn flag(&mut self, names: &[&str]) -> bool {
        let before = self.0.len();
        self.0.retain(|a| !names.contains(&a.as_str()));
        before != self.0.len()
    }

    /// Removes every `name VALUE` and `name=VALUE`, returning the values.
    fn values(&mut self, names: &[&str]) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut i = 0;
        while i < self.0.len() {
            let a = &self.0[i];
            if names.contains(&a.as_str()) {
                if i + 1 >= self.0.len() {
                    return Err(format!("{a} needs a value").into());
                }
                found.push(self.0.remove(i + 1));
                self.0.remove(i);
            } else if let Some(v) = names
                .iter()
                .find_map(|n| a.strip_prefix(n).and_then(|r| r.strip_prefix('=')))
            {
                found.push(v.to_string());
                self.0.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(found)
    }

    /// The last `name VALUE`, if any.
    fn value(&mut self, names: &[&str]) -> Result<Option<String>> {
        Ok(self.values(names)?.pop())
    }

    /// A number option.
    fn number(&mut self, names: &[&str], default: u64) -> Result<u64> {
        match self.value(names)? {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{} takes a number, not `{v}`", names[0]).into()),
        }
    }

    /// Fails on anything not taken.
    fn finish(self) -> Result<()> {
        match self.0.first() {
            None => Ok(()),
            Some(a) => Err(format!("unexpected argument `{a}` (try `cargo xtask help`)").into()),
        }
    }
}

/// The `[[bin]]` names of a cargo-fuzz manifest.
fn fuzz_targets(manifest: &str) -> Vec<String> {
    let mut in_bin = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "name" {
                    names.push(value.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    names
}

/// `cargo +nightly <args>` without the variables of the cargo running us, so
/// the nightly toolchain is the one used throughout.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

fn fuzz_run(dir: &Path, seconds: u64) -> Result<bool> {
    let targets = fuzz_targets(&std::fs::read_to_string(dir.join("Cargo.toml"))?);
    if targets.is_empty() {
        println!(
            "xtask fuzz: {} lists no [[bin]] target: nothing to fuzz",
            dir.join("Cargo.toml").display()
        );
        return Ok(true);
    }
    if !nightly_cargo()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err(
            "fuzzing needs the nightly toolchain: `rustup toolchain install nightly`".into(),
        );
    }
    if !nightly_cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err("fuzzing needs cargo-fuzz: `cargo install cargo-fuzz`".into());
    }
    let mut failed = Vec::new();
    for t in &targets {
        println!("==== fuzz {t} for {seconds} s");
        let ok = nightly_cargo()
            .args(["fuzz", "run", "--fuzz-dir"])
            .arg(dir)
            .args([t, "--", &format!("-max_total_time={seconds}")])
            .current_dir(root())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            failed.push(t.as_str());
        }
    }
    if failed.is_empty() {
        println!(
            "xtask fuzz: {} targets ran {seconds} s each without a finding",
            targets.len()
        );
    } else {
        println!("xtask fuzz: FAILED: {}", failed.join(", "));
    }
    Ok(failed.is_empty())
}

/// `cargo xtask fuzz`.
fn fuzz(mut args: Args) -> Result<bool> {
    let seconds = args.number(&["--seconds"], 30)?;
    let dir = args
        .value(&["--dir"])?
        .map_or_else(|| root().join("fuzz"), PathBuf::from);
    args.finish()?;
    fuzz_run(&dir, seconds)
}

/// Runs `cmd` as a CI step.
fn step(cmd: &mut Command) -> Result<bool> {
    Ok(cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?.success())
}

fn ci_fmt() -> Result<bool> {
    step(cargo().args(["fmt", "--all", "--check"]))
}

/// The docs of every crate, with rustdoc's warnings (unresolved links,
/// bare URLs) as errors.
fn ci_doc() -> Result<bool> {
    step(
        cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )
}

/// The docs as docs.rs builds them (nightly, `--cfg docsrs`): the
/// feature-gated items carry their `doc(cfg)` marks.
fn ci_docsrs() -> Result<bool> {
    step(
        nightly_cargo()
            .args(["doc", "--no-deps", "--all-features"])
            .args(["-p", "ring-io", "-p", "ring-io-driver"])
            .args(["-p", "ring-io-ops", "-p", "ring-io-sys"])
            .env("RUSTDOCFLAGS", "--cfg docsrs -D warnings")
            .env("CARGO_TARGET_DIR", root().join("target/docsrs")),
    )
}

/// `cargo package` of every published crate, in dependency order: each
/// packages (metadata, license files, no path outside it) and builds from
/// its package (what `cargo publish` verifies).
fn ci_package() -> Result<bool> {
    step(
        cargo()
            .args(["package", "--allow-dirty"])
            .args([
                "-p",
                "ring-io-sys",
                "-p",
                "ring-io-core",
                "-p",
                "ring-io-ops",
            ])
            .args(["-p", "ring-io-driver", "-p", "ring-io"])
            .env("CARGO_TARGET_DIR", root().join("target/package-check")),
    )
}

fn ci_clippy() -> Result<bool> {
    Ok(step(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))? && step(cargo().args([
        "clippy",
        "-p",
        "ring-io-proactor",
        "--all-targets",
        "--features",
        "tokio",
        "--",
        "-D",
        "warnings",
    ]))?)
}

/// The README's test command, then the Proactor's tests with its `tokio`
/// feature (the drive task; kept out of the workspace run, which stays fast).
fn ci_test() -> Result<bool> {
    Ok(step(cargo().args(["test", "--workspace"]))?
        && step(cargo().args(["test", "-p", "ring-io-proactor", "--features", "tokio"]))?)
}

/// The README's run command, as `.ci/run` runs it.
fn ci_main_example() -> Result<bool> {
    step(cargo().args(["run", "-q", "--example", "tour"]))
}

/// The workspace's `rust-version` (`[workspace.package]` of the root
/// `Cargo.toml`): the oldest Rust it promises to build with.
fn msrv(manifest: &str) -> Result<String> {
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rust-version"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .find(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| "the root Cargo.toml has no rust-version = \"x.y\"".into())
}

/// The declared MSRV builds every crate and test: its toolchain (installed
/// with the minimal profile if missing) runs `cargo test --workspace
/// --no-run`, in its own target directory. Build only, to keep CI short.
fn ci_msrv() -> Result<bool> {
    let msrv = msrv(&std::fs::read_to_string(root().join("Cargo.toml"))?)?;
    let has = Command::new("rustup")
        .args(["run", &msrv, "rustc", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has
        && !step(Command::new("rustup").args([
            "toolchain",
            "install",
            &msrv,
            "--profile",
            "minimal",
        ]))?
    {
        return Ok(false);
    }
    step(
        Command::new("cargo")
            .arg(format!("+{msrv}"))
            .args(["test", "--workspace", "--no-run"])
            .current_dir(root())
            .env_remove("CARGO")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env("CARGO_TARGET_DIR", root().join("target/msrv")),
    )
}

/// Miri over ring-core's tests, SharedRing's credit release and the
/// Proactor's fixed-buffer pool, in its own target directory.
fn ci_miri() -> Result<bool> {
    let miri = |args: &[&str]| {
        step(
            nightly_cargo()
                .arg("miri")
                .args(args)
                .env("CARGO_TARGET_DIR", root().join("target/miri")),
        )
    };
    Ok(miri(&["test", "-p", "ring-io-core"])?
        && miri(&["test", "-p", "ring-io-driver", "--lib", "--", "shared_sync"])?
        && miri(&["test", "-p", "ring-io-driver", "--test", "sim"])?
        && miri(&[
            "test",
            "-p",
            "ring-io-proactor",
            "--lib",
            "--",
            "fixed::",
            "finish::",
            "cells::",
            "wakers::",
            "driver::cell::",
        ])?)
}

/// loom over ring-core's concurrent protocols and SharedRing's credit
/// release, the LocalProactor's wake-ups, the Proactor's lock-free
/// completions and its driver token's handover (`--cfg loom`, own target
/// dir): one cargo invocation, so loom and ring-core are built once for
/// every test target (each model's bound is in its doc comment).
fn ci_loom() -> Result<bool> {
    step(
        cargo()
            .args(["test", "--profile", "loom"])
            .args([
                "-p",
                "ring-io-core",
                "-p",
                "ring-io-driver",
                "-p",
                "ring-io-proactor",
            ])
            .args([
                "--test",
                "loom",
                "--test",
                "shared_loom",
                "--test",
                "wake_loom",
                "--test",
                "cells_loom",
                "--test",
                "handover_loom",
            ])
            .env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", root().join("target/loom")),
    )
}

/// The Proactor's tests under AddressSanitizer (nightly, `-Zbuild-std`):
/// ops dropped while in flight must keep their buffers until the CQE. The
/// only leaks allowed are the deliberate ones after a panic of the
/// Proactor's thread (`.ci/lsan.supp`).
fn ci_asan() -> Result<bool> {
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let supp = root().join(".ci/lsan.supp");
    step(
        nightly_cargo()
            .args(["test", "-Zbuild-std", "--target", &target])
            .args([
                "-p",
                "ring-io-proactor",
                "--lib",
                "--test",
                "proactor",
                "--test",
                "proactor_adversarial",
                "--test",
                "cancel",
                "--test",
                "local",
                "--test",
                "local_adversarial",
                "--test",
                "local_tasks",
                "--test",
                "attack_chains",
                "--test",
                "attack_token",
                "--test",
                "server",
                "--test",
                "driving",
                "--test",
                "handles",
                "--test",
                "holder_pushes",
                "-p",
                "ring-io-driver",
                "--test",
                "bufring",
                "--test",
                "setup",
                "--test",
                "register",
                "--test",
                "shared",
                "--test",
                "queue",
            ])
            .env("RUSTFLAGS", "-Zsanitizer=address")
            .env("RUSTDOCFLAGS", "-Zsanitizer=address")
            .env("LSAN_OPTIONS", format!("suppressions={}", supp.display()))
            .env("CARGO_TARGET_DIR", root().join("target/asan")),
    )
}

/// One CI step: a name and what it runs.
type Step = (&'static str, Box<dyn FnOnce() -> Result<bool>>);

/// `cargo xtask ci`: the steps of `.ci/run`, stopping at the first failure
/// unless `--keep-going`.
fn ci(mut args: Args) -> Result<bool> {
    let no_kernel = args.flag(&["--no-kernel"]);
    let keep_going = args.flag(&["--keep-going"]);
    let accel = args.value(&["--accel"])?.unwrap_or_else(|| "tcg".into());
    let arch = args
        .value(&["--arch"])?
        .unwrap_or_else(|| "x86_64,aarch64".into());
    let fuzz_seconds = args.number(&["--fuzz-seconds"], 10)?;
    args.finish()?;
    let mut steps: Vec<Step> = vec![
        ("fmt", Box::new(ci_fmt)),
        ("clippy", Box::new(ci_clippy)),
        ("doc", Box::new(ci_doc)),
        ("package", Box::new(ci_package)),
        ("tests", Box::new(ci_test)),
        ("msrv", Box::new(ci_msrv)),
        ("main example", Box::new(ci_main_example)),
        ("docsrs", Box::new(ci_docsrs)),
        ("miri", Box::new(ci_miri)),
        ("loom", Box::new(ci_loom)),
        ("asan", Box::new(ci_asan)),
        (
            "fuzz smoke",
            Box::new(move || fuzz_run(&root().join("fuzz"), fuzz_seconds)),
        ),
    ];
    if !no_kernel {
        let args = [
            "--kernel", "all", "--arch", &arch, "--accel", &accel, "--jobs", "2",
        ]
        .map(String::from)
        .to_vec();
        steps.push((
            "kernel matrix",
            Box::new(move || matrix::test_kernel(Args(args))),
        ));
    }
    let start = Instant::now();
    let mut failed = Vec::new();
    for (name, run) in steps {
        let t = Instant::now();
        println!("\n==== {name}");
        let ok = run().unwrap_or_else(|e| {
            eprintln!("xtask: {name}: {e}");
            false
        });
        let verdict = if ok { "ok" } else { "FAILED" };
        println!(
            "==== {name}: {verdict} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(name);
            if !keep_going {
                break;
            }
        }
    }
    let took = start.elapsed().as_secs_f64();
    if failed.is_empty() {
        println!("\n==== all checks passed in {took:.0} s");
    } else {
        println!("\n==== FAILED in {took:.0} s: {}", failed.join(", "));
    }
    Ok(failed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::{Args, fuzz_targets, msrv};

    #[test]
    fn the_msrv_is_read_from_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(super::root().join("Cargo.toml")).unwrap();
        let v = msrv(&manifest).unwrap();
        assert!(v.starts_with("1."), "{v}");
        assert_eq!(
            msrv("[package]\nrust-version.workspace = true\n[workspace.package]\nrust-version = \"1.85\"\n")
                .unwrap(),
            "1.85"
        );
        assert!(msrv("[package]\nname = \"x\"\n").is_err());
    }

    #[test]
    fn options_take_both_spellings_and_leftovers_fail() {
        let mut a = Args(
            [
                "--kernel",
                "6.1",
                "-v",
                "--kernel=5.10,host",
                "--timeout",
                "9",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(a.values(&["--kernel"]).unwrap(), ["6.1", "5.10,host"]);
        assert_eq!(a.number(&["--timeout"], 1).unwrap(), 9);
        assert!(a.flag(&["-v"]));
        assert!(a.finish().is_ok());
        let mut b = Args(vec!["--seconds".into()]);
        assert!(b.value(&["--seconds"]).is_err());
        let mut c = Args(vec!["--seconds".into(), "x".into()]);
        assert!(c.number(&["--seconds"], 1).is_err());
        assert!(Args(vec!["stray".into()]).finish().is_err());
    }

    #[test]
    fn finds_the_fuzz_bins() {
        let manifest = "[package]\nname = \"ring-fuzz\"\n\n[[bin]]\nname = \"sq_ring\"\npath = \"fuzz_targets/sq_ring.rs\"\n\
                        test = false\n\n[dependencies]\nname = \"no\"\n[[bin]]\nname=\"cq\"\n";
        assert_eq!(fuzz_targets(manifest), ["sq_ring", "cq"]);
        assert!(fuzz_targets("[package]\nname = \"x\"\n").is_empty());
    }
}
