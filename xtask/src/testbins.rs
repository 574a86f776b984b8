//! Builds the kernel tests (and the guest's init) as static binaries for a
//! guest architecture ([`Arch::target`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::arch::Arch;
use crate::json::Json;
use crate::{Result, cargo, root};

/// The packages whose tests run against a kernel, with their test targets
/// (empty: every test target of the package, `cargo test --tests`).
/// Extend this list as crates gain kernel tests.
pub(crate) const KERNEL_TESTS: &[(&str, &[&str])] = &[
    ("ring-io-sys", &["kernel"]),
    ("ring-io-ops", &["kernel"]),
    ("ring-io-driver", &[]),
    ("ring-io-proactor", &[]),
];

/// Features the kernel tests of a package are built with: code behind them
/// has kernel tests of its own (the Proactor's tokio drive task watches the
/// ring's fd, whose readiness each kernel must signal).
const KERNEL_TEST_FEATURES: &[(&str, &str)] = &[("ring-io-proactor", "tokio")];

/// Test targets of those packages that are not kernel tests: they run the
/// example programs through cargo, which the guests do not have (`cargo
/// test` runs them on the host).
const NOT_KERNEL_TESTS: &[&str] = &["ring-io-driver.examples_cp", "ring-io-driver.examples_cli"];

/// The cargo target directory of the guest builds, apart from the shared
/// one (each target has its own directory inside).
pub(crate) fn target_dir() -> PathBuf {
    root().join("target/xtask/musl")
}

/// Installs the standard library of `arch`'s target with rustup if this
/// toolchain lacks it (a toolchain component, like the crates cargo
/// fetches), and checks the linker it needs.
pub(crate) fn ensure_target(arch: Arch) -> Result<()> {
    if let Some(missing) = arch.missing_build_tool() {
        return Err(missing.into());
    }
    let target = arch.target();
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .current_dir(root())
        .output()?;
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The directory exists for every target; its libraries only once installed.
    let installed = out.status.success()
        && std::fs::read_dir(&libdir).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        });
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing the {target} standard library: rustup target add {target}");
    let ok = Command::new("rustup")
        .args(["target", "add", target])
        .current_dir(root())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(
            format!("the {target} target is missing and `rustup target add {target}` failed")
                .into(),
        )
    }
}

/// One executable cargo built.
#[derive(Debug)]
pub(crate) struct Artifact {
    /// `package.target` (`package.lib` for unit tests of a library).
    pub(crate) label: String,
    /// Where cargo put it.
    pub(crate) path: PathBuf,
}

/// Runs a cargo build command with `--message-format=json` and returns the
/// executables it produced (test harnesses only when `tests`).
fn artifacts(arch: Arch, package: &str, args: &[&str], tests: bool) -> Result<Vec<Artifact>> {
    let mut cmd = cargo();
    cmd.args(args)
        .args([
            "--message-format=json-render-diagnostics",
            "--target",
            arch.target(),
            "-p",
            package,
        ])
        .envs(arch.cargo_env())
        .env("CARGO_TARGET_DIR", target_dir())
        // Line tables keep backtraces readable while the initramfs stays small.
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("building {package} for {} failed: {cmd:?}", arch.target()).into());
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = Json::parse(line) else { continue };
        if msg.get("reason").and_then(Json::as_str) != Some("compiler-artifact") {
            continue;
        }
        let Some(exe) = msg.get("executable").and_then(Json::as_str) else {
            continue;
        };
        let is_test = msg
            .get("profile")
            .and_then(|p| p.get("test"))
            .and_then(Json::as_bool)
            == Some(true);
        if is_test != tests {
            continue;
        }
        let target = msg.get("target");
        let name = target
            .and_then(|t| t.get("name"))
            .and_then(Json::as_str)
            .unwrap_or("?");
        let is_lib = target
            .and_then(|t| t.get("kind"))
            .and_then(Json::as_array)
            .is_some_and(|k| {
                k.iter()
                    .any(|k| k.as_str().is_some_and(|k| k.ends_with("lib")))
            });
        let label = if is_lib { "lib" } else { name };
        found.push(Artifact {
            label: format!("{package}.{label}"),
            path: PathBuf::from(exe),
        });
    }
    Ok(found)
}

/// Builds the kernel tests of `packages` (each with the targets of
/// [`KERNEL_TESTS`], or all its test targets if it is not listed).
pub(crate) fn build_tests(arch: Arch, packages: &[String]) -> Result<Vec<Artifact>> {
    let mut all = Vec::new();
    for package in packages {
        let targets = KERNEL_TESTS
            .iter()
            .find(|(p, _)| p == package)
            .map(|(_, t)| *t)
            .unwrap_or(&[]);
        let mut args = vec!["test", "--no-run"];
        if targets.is_empty() {
            args.push("--tests");
        }
        for t in targets {
            args.extend(["--test", t]);
        }
        if let Some((_, features)) = KERNEL_TEST_FEATURES.iter().find(|(p, _)| p == package) {
            args.extend(["--features", features]);
        }
        let mut found = artifacts(arch, package, &args, true)?;
        found.retain(|a| !NOT_KERNEL_TESTS.contains(&a.label.as_str()));
        if found.is_empty() {
            return Err(format!("{package}: cargo built no test binary").into());
        }
        all.extend(found);
    }
    Ok(all)
}

/// Builds this xtask for `arch`: the guest's `/init`.
pub(crate) fn build_init(arch: Arch) -> Result<PathBuf> {
    let found = artifacts(arch, "xtask", &["build", "--bin", "xtask"], false)?;
    found
        .into_iter()
        .next()
        .map(|a| a.path)
        .ok_or_else(|| "cargo built no xtask binary for the guest".into())
}

/// Copies the test binaries into `dir` (emptied first), named by label.
pub(crate) fn stage(tests: &[Artifact], dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    for t in tests {
        std::fs::copy(&t.path, dir.join(&t.label))?;
    }
    Ok(())
}
