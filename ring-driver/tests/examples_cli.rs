//! The small examples (`probe`, `shared_nops`, `echo`, `tour`) run as
//! programs: a bad command line prints the usage and exits with status 2
//! (never runs with defaults it made up), a failure prints a message naming
//! what failed and exits with status 1 (never a `Debug` `Error: Os { .. }`),
//! and the probe table is aligned and names the kernel once.
//!
//! The examples are built with the `cargo` that runs this test; where there is
//! none (the kernel VMs), the tests skip.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The examples under test.
const EXAMPLES: [&str; 4] = ["probe", "shared_nops", "echo", "tour"];

/// How long one run of an example may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(10);

/// The examples' executables by name, built once (`Err` with the reason
/// where there is no cargo to build them).
fn binaries() -> Result<&'static [(String, PathBuf)], &'static str> {
    static BUILT: OnceLock<Result<Vec<(String, PathBuf)>, String>> = OnceLock::new();
    BUILT
        .get_or_init(build)
        .as_ref()
        .map(Vec::as_slice)
        .map_err(|reason| reason.as_str())
}

fn build() -> Result<Vec<(String, PathBuf)>, String> {
    let paths = common::build_examples(&EXAMPLES)?;
    Ok(EXAMPLES.iter().map(|n| n.to_string()).zip(paths).collect())
}

/// Runs the example `name` with `args`, nothing on stdin, at most
/// [`RUN_LIMIT`] (killed and failed after).
fn run(bins: &[(String, PathBuf)], name: &str, args: &[&str]) -> Output {
    let bin = &bins.iter().find(|(n, _)| n == name).expect("built").1;
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::finish_within(child, RUN_LIMIT, &format!("{name} {args:?}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `out` is a refused command line: status 2, the usage and
/// `why` on stderr, nothing on stdout.
fn assert_usage(out: &Output, what: &str, why: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}{stdout}");
    assert!(stderr.contains("usage: "), "{what}: no usage in {stderr:?}");
    assert!(stderr.contains(why), "{what}: {why:?} not in {stderr:?}");
    assert!(stdout.is_empty(), "{what}: it ran anyway: {stdout}");
}

macro_rules! binaries_or_skip {
    ($test:expr) => {
        match binaries() {
            Ok(bins) => bins,
            Err(reason) => skip!($test, "{reason}"),
        }
    };
}

#[test]
fn shared_nops_refuses_a_bad_command_line_with_its_usage() {
    let bins = binaries_or_skip!("shared_nops_refuses_a_bad_command_line_with_its_usage");
    let cases: [(&[&str], &str); 6] = [
        (&["abc"], "\"abc\" is not a number"),
        (&["0", "10"], "THREADS must be at least 1, not 0"),
        (&["2", "0"], "NOPS_PER_THREAD must be at least 1, not 0"),
        (&["2", "x"], "\"x\" is not a number"),
        (&["1", "2", "3"], "at most 2 arguments"),
        (&["1024", "1073741824"], "must be at most"),
    ];
    for (args, why) in cases {
        let out = run(bins, "shared_nops", args);
        assert_usage(&out, &format!("shared_nops {args:?}"), why);
    }
    // A good command line runs, with a finite rate.
    let out = run(bins, "shared_nops", &["2", "64"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("2 threads x 64 NOPs") && stdout.contains("ns/op"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("inf") && !stdout.contains("NaN"),
        "{stdout}"
    );
}

#[test]
fn the_probe_table_is_aligned_and_names_the_kernel_once() {
    let bins = binaries_or_skip!("the_probe_table_is_aligned_and_names_the_kernel_once");
    let out = run(bins, "probe", &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kernel = ring_io_driver::kernel_version().expect("uname parses");
    assert_eq!(
        stdout.lines().filter(|l| l.contains("kernel")).count(),
        1,
        "{stdout}"
    );
    assert_eq!(stdout.matches(&kernel.to_string()).count(), 1, "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("IORING_OP_"))
        .collect();
    assert_eq!(rows.len(), ring_io_ops::ALL.len(), "{stdout}");
    let column = |row: &str| {
        row.find(" yes ")
            .or_else(|| row.find(" no "))
            .unwrap_or_else(|| panic!("no yes/no in {row:?}"))
    };
    for row in &rows {
        assert_eq!(
            column(row),
            column(rows[0]),
            "misaligned {row:?} in\n{stdout}"
        );
    }
    let out = run(bins, "probe", &["extra"]);
    assert_usage(&out, "probe extra", "takes no arguments");
}

#[test]
fn echo_says_it_is_on_only_after_its_setup_and_names_the_address_it_could_not_use() {
    let bins = binaries_or_skip!(
        "echo_says_it_is_on_only_after_its_setup_and_names_the_address_it_could_not_use"
    );
    // An address in use: bind fails.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(bins, "echo", &[&addr]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}{stdout}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "the message does not name {addr}: {stderr}"
    );
    assert!(!stderr.contains("Os {"), "Debug output: {stderr}");
    assert!(
        !stdout.contains("echoing on"),
        "it said it was on before its setup failed: {stdout}"
    );
    let out = run(bins, "echo", &["127.0.0.1:1", "more"]);
    assert_usage(&out, "echo with 2 arguments", "at most 1 argument");
}

#[test]
fn the_tour_runs_and_refuses_arguments() {
    let bins = binaries_or_skip!("the_tour_runs_and_refuses_arguments");
    let out = run(bins, "tour", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("TCP echo"),
        "{}",
        text(&out.stdout)
    );
    let out = run(bins, "tour", &["extra"]);
    assert_usage(&out, "tour extra", "takes no arguments");
}
