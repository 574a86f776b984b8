//! Reads the transcript of a test run (a VM's serial console, or the same
//! lines produced on the host) and counts passed, failed and skipped tests.
//!
//! The transcript is what the runner prints around libtest's own output:
//!
//! ```text
//! ring-xtask: kernel 6.1.0-56-cloud-amd64
//! ring-xtask: begin ring-io-sys.kernel
//! test nop_round_trip ... ring-skip: nop_round_trip: no SINGLE_MMAP
//! ok
//! test result: ok. 1 passed; 0 failed; ...
//! ring-xtask: end ring-io-sys.kernel exit=0
//! ring-xtask: done
//! ```
//!
//! Tests run with `--test-threads=1 --nocapture`, so a test's own output sits
//! between `test NAME ... ` and its result, possibly on the same line.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The marker that starts every line the runner itself prints.
pub(crate) const MARK: &str = "ring-xtask:";
/// The prefix of a kernel test's skip line (on stderr).
pub(crate) const SKIP: &str = "ring-skip: ";
/// The prefix of the lines a test binary's fatal-signal handler prints
/// (ring-driver/tests/common/crash.rs), a backtrace after them.
const CRASH: &str = "ring-crash: ";
/// How many lines of a failed test's output a report shows.
const FAILURE_LINES: usize = 8;

/// The outcome of one run on one kernel.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Summary {
    /// `uname -r` as the runner saw it.
    pub(crate) release: Option<String>,
    /// `binary: test` of every test that ran and passed (possibly with
    /// skipped cases inside it).
    pub(crate) passed: Vec<String>,
    /// `binary: test` or `binary: what went wrong` of every failure,
    /// including binaries that crashed.
    pub(crate) failed: Vec<String>,
    /// The output of each failed test, by its `failed` entry.
    pub(crate) output: BTreeMap<String, Vec<String>>,
    /// `(binary: test, reason)` of every skip line: a whole test when the
    /// line names the test, else a case within it (`test/case`).
    pub(crate) skipped: Vec<(String, String)>,
    /// How many test binaries ran to their end marker.
    pub(crate) binaries: usize,
    /// Whether the run reached its final `done` marker.
    pub(crate) complete: bool,
}

#[derive(Default)]
struct Binary {
    label: String,
    /// The test that has started but not reported yet.
    pending: Option<Pending>,
    failures: usize,
    /// How many results the transcript showed.
    results: usize,
    /// How many libtest's `test result:` line counted (passed, failed, ignored).
    announced: Option<usize>,
    /// A fatal-signal report printed while no test was pending (a thread
    /// left running by an earlier test, or the binary's exit): its lines
    /// and its backtrace's frames, one line each.
    crash: Vec<String>,
    /// The last frame seen was the handler's own: its `at` line goes too.
    crash_skipping: bool,
}

impl Binary {
    /// Keeps `line` if it belongs to a crash report (see [`CRASH`]).
    fn crash_line(&mut self, line: &str) -> bool {
        let t = line.trim();
        if t.starts_with(CRASH) {
            self.crash.push(t.to_string());
            self.crash_skipping = true;
            return true;
        }
        if self.crash.is_empty() || self.crash.len() >= 40 {
            return false;
        }
        if let Some(at) = t.strip_prefix("at ") {
            if !self.crash_skipping {
                if let Some(frame) = self.crash.last_mut() {
                    frame.push_str(&format!(" ({at})"));
                }
            }
            return true;
        }
        match t.split_once(": ") {
            Some((n, name)) if n.parse::<u32>().is_ok() => {
                // The handler's own frames say nothing.
                self.crash_skipping = name.contains("crash::report") || name == "<unknown>";
                if !self.crash_skipping {
                    self.crash.push(t.to_string());
                }
                true
            }
            _ => false,
        }
    }
}

/// The passed + failed + ignored counts of a `test result:` line.
fn announced_count(line: &str) -> Option<usize> {
    let counts = line.strip_prefix("test result: ")?.split_once(". ")?.1;
    let mut total = 0;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        if matches!(what, "passed" | "failed" | "ignored") {
            total += n.parse::<usize>().ok()?;
        }
    }
    Some(total)
}

struct Pending {
    name: String,
    /// Why the whole test skipped, if it did.
    skip: Option<String>,
    /// What it printed so far.
    output: Vec<String>,
}

/// Whether a skip line's name is libtest's test name (`a::b::name` or `name`).
fn names_the_test(skip_name: &str, test: &str) -> bool {
    skip_name == test || test.rsplit("::").next() == Some(skip_name)
}

impl Summary {
    /// Parses a transcript.
    pub(crate) fn parse(transcript: &str) -> Summary {
        let mut s = Summary::default();
        let mut bin: Option<Binary> = None;
        for raw in transcript.lines() {
            let line = raw.trim_end_matches('\r');
            // A skip line may follow `test NAME ... ` on the same line.
            let (head, skip) = match line.find(SKIP) {
                Some(i) => (&line[..i], Some(&line[i + SKIP.len()..])),
                None => (line, None),
            };
            s.line(&mut bin, head);
            if let Some(skip) = skip {
                let (name, reason) = skip.split_once(": ").unwrap_or((skip, "(no reason)"));
                let (name, reason) = (name.trim(), reason.trim().to_string());
                let label = bin.as_ref().map_or("?".to_string(), |b| b.label.clone());
                match bin.as_mut().and_then(|b| b.pending.as_mut()) {
                    Some(p) if names_the_test(name, &p.name) => p.skip = Some(reason),
                    _ => s.skipped.push((format!("{label}: {name}"), reason)),
                }
            }
        }
        if let Some(b) = bin {
            let at = b
                .pending
                .map(|p| format!(" during `{}`", p.name))
                .unwrap_or_default();
            s.failed.push(format!(
                "{}: no end marker{at} (the binary or the guest died, or timed out)",
                b.label
            ));
        }
        s
    }

    fn line(&mut self, bin: &mut Option<Binary>, line: &str) {
        if let Some(rest) = line.strip_prefix(MARK) {
            let rest = rest.trim();
            if let Some(release) = rest.strip_prefix("kernel ") {
                self.release = Some(release.to_string());
            } else if let Some(label) = rest.strip_prefix("begin ") {
                *bin = Some(Binary {
                    label: label.to_string(),
                    ..Binary::default()
                });
            } else if let Some(end) = rest.strip_prefix("end ") {
                let (label, exit) = end.split_once(" exit=").unwrap_or((end, "?"));
                let b = bin.take().unwrap_or_default();
                if let Some(p) = b.pending {
                    let who = format!("{label}: {}: no result (exit={exit})", p.name);
                    self.output.insert(who.clone(), p.output);
                    self.failed.push(who);
                } else if exit != "0" && b.failures == 0 {
                    let who = format!("{label}: exited with {exit}");
                    if !b.crash.is_empty() {
                        self.output.insert(who.clone(), b.crash);
                    }
                    self.failed.push(who);
                } else if let Some(n) = b.announced.filter(|n| *n != b.results) {
                    // Never pass silently: every test libtest counted must
                    // have been seen and counted here.
                    self.failed.push(format!(
                        "{label}: libtest counted {n} tests, the transcript shows {}",
                        b.results
                    ));
                }
                self.binaries += 1;
            } else if rest == "done" {
                self.complete = true;
            }
            return;
        }
        let Some(b) = bin.as_mut() else { return };
        if b.pending.is_none() && b.crash_line(line) {
            return;
        }
        let result = if let Some(rest) = line.strip_prefix("test ") {
            let Some((name, outcome)) = rest.split_once(" ... ") else {
                if b.pending.is_none() {
                    if let Some(n) = announced_count(line) {
                        b.announced = Some(n);
                    }
                }
                return;
            };
            b.pending = Some(Pending {
                name: name.to_string(),
                skip: None,
                output: Vec::new(),
            });
            outcome.trim()
        } else if b.pending.is_some() {
            line.trim()
        } else {
            return;
        };
        let outcome = match result {
            "ok" => Outcome::Ok,
            "FAILED" => Outcome::Failed,
            r if r.starts_with("ignored") => Outcome::Ignored,
            _ => {
                // The test's own output.
                if let Some(p) = b.pending.as_mut() {
                    if !result.is_empty() {
                        let text = if line.starts_with("test ") {
                            result
                        } else {
                            line.trim_end()
                        };
                        p.output.push(text.to_string());
                    }
                }
                return;
            }
        };
        let p = b.pending.take().expect("a pending test");
        b.results += 1;
        let who = format!("{}: {}", b.label, p.name);
        match (outcome, p.skip) {
            (Outcome::Failed, _) => {
                b.failures += 1;
                self.output.insert(who.clone(), p.output);
                self.failed.push(who);
            }
            (Outcome::Ok, None) => self.passed.push(who),
            (Outcome::Ok, Some(reason)) => self.skipped.push((who, reason)),
            (Outcome::Ignored, _) => self.skipped.push((who, "ignored by libtest".to_string())),
        }
    }

    /// Whether everything ran and nothing failed.
    pub(crate) fn ok(&self) -> bool {
        self.complete && self.failed.is_empty() && self.binaries > 0
    }

    /// The report of one kernel: a headline and the failures and skip reasons.
    pub(crate) fn report(&self, kernel: &str, took: Duration) -> Report<'_> {
        Report {
            s: self,
            kernel: kernel.to_string(),
            took,
        }
    }
}

enum Outcome {
    Ok,
    Failed,
    Ignored,
}

/// [`Summary::report`], for display.
pub(crate) struct Report<'a> {
    s: &'a Summary,
    kernel: String,
    took: Duration,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.s;
        let verdict = if s.ok() { "ok" } else { "FAILED" };
        write!(f, "kernel {}", self.kernel)?;
        if let Some(r) = &s.release {
            write!(f, " ({r})")?;
        }
        writeln!(
            f,
            ": {verdict}: {} passed, {} failed, {} skipped, {} binaries, {:.1} s",
            s.passed.len(),
            s.failed.len(),
            s.skipped.len(),
            s.binaries,
            self.took.as_secs_f64()
        )?;
        if !s.complete {
            writeln!(f, "  incomplete: the run never reached its end")?;
        }
        if s.binaries == 0 && s.complete {
            writeln!(f, "  no test binary ran")?;
        }
        for fail in &s.failed {
            writeln!(f, "  failed: {fail}")?;
            // The panic message comes first; the backtrace is in the log.
            let output = s.output.get(fail).into_iter().flatten();
            for line in output
                .take_while(|l| !l.starts_with("stack backtrace:"))
                .take(FAILURE_LINES)
            {
                writeln!(f, "    | {line}")?;
            }
        }
        // Group skips by reason: one reason, every test it covers.
        let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (test, reason) in &s.skipped {
            by_reason.entry(reason).or_default().push(test);
        }
        for (reason, tests) in by_reason {
            writeln!(f, "  skipped ({}): {reason}", tests.len())?;
            for t in tests {
                writeln!(f, "      {t}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;
    use std::time::Duration;

    const RUN: &str = "\
[    1.234] random kernel message\r
ring-xtask: kernel 5.10.0-46-cloud-amd64\r
ring-xtask: begin ring-io-sys.kernel\r
\r
running 4 tests\r
test setup_works ... ok\r
test multishot ... ring-skip: multishot: IORING_OP_RECV multishot needs 6.0\r
ok\r
test defer ... \r
ring-skip: defer: DEFER_TASKRUN needs 6.1\r
ok\r
test broken ... thread 'broken' panicked at tests/kernel.rs:10:5:\r
assertion failed\r
FAILED\r
\r
failures:\r
    broken\r
\r
test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\r
ring-xtask: end ring-io-sys.kernel exit=101\r
ring-xtask: begin ring-io-driver.setup\r
test a::b ... ok\r
test c ... ignored, slow\r
ring-xtask: end ring-io-driver.setup exit=0\r
ring-xtask: done\r
";

    #[test]
    fn counts_passes_failures_and_skips_with_reasons() {
        let s = Summary::parse(RUN);
        assert_eq!(s.release.as_deref(), Some("5.10.0-46-cloud-amd64"));
        assert_eq!(
            s.passed,
            [
                "ring-io-sys.kernel: setup_works",
                "ring-io-driver.setup: a::b"
            ]
        );
        assert_eq!(s.failed, ["ring-io-sys.kernel: broken"]);
        assert_eq!(
            s.skipped,
            [
                (
                    "ring-io-sys.kernel: multishot".to_string(),
                    "IORING_OP_RECV multishot needs 6.0".to_string()
                ),
                (
                    "ring-io-sys.kernel: defer".to_string(),
                    "DEFER_TASKRUN needs 6.1".to_string()
                ),
                (
                    "ring-io-driver.setup: c".to_string(),
                    "ignored by libtest".to_string()
                ),
            ]
        );
        assert_eq!(s.binaries, 2);
        assert!(s.complete);
        assert!(!s.ok());
        let report = s.report("5.10", Duration::from_millis(1500)).to_string();
        assert!(report.starts_with(
            "kernel 5.10 (5.10.0-46-cloud-amd64): FAILED: 2 passed, 1 failed, 3 skipped, 2 binaries, 1.5 s\n"
        ));
        assert!(
            report.contains(
                "  skipped (1): DEFER_TASKRUN needs 6.1\n      ring-io-sys.kernel: defer\n"
            )
        );
    }

    #[test]
    fn same_reason_is_listed_once() {
        let t = "ring-xtask: begin b\ntest x ... ring-skip: x: old kernel\nok\n\
                 test y ... ring-skip: y: old kernel\nok\nring-xtask: end b exit=0\nring-xtask: done\n";
        let s = Summary::parse(t);
        assert!(s.ok());
        let report = s.report("k", Duration::ZERO).to_string();
        assert_eq!(report.matches("old kernel").count(), 1);
        assert!(report.contains("skipped (2): old kernel\n      b: x\n      b: y\n"));
    }

    #[test]
    fn a_skip_line_naming_a_case_skips_only_that_case() {
        let t = "ring-xtask: begin d.setup\n\
                 test every_flag ... ring-skip: every_flag/NO_MMAP: NO_MMAP needs Linux 6.5\n\
                 ring-skip: every_flag/CQE_MIXED: CQE_MIXED needs Linux 6.18\n\
                 ok\n\
                 test m::whole ... ring-skip: whole: needs 6.0\n\
                 ok\n\
                 ring-xtask: end d.setup exit=0\nring-xtask: done\n";
        let s = Summary::parse(t);
        assert_eq!(s.passed, ["d.setup: every_flag"]);
        assert_eq!(
            s.skipped,
            [
                (
                    "d.setup: every_flag/NO_MMAP".to_string(),
                    "NO_MMAP needs Linux 6.5".to_string()
                ),
                (
                    "d.setup: every_flag/CQE_MIXED".to_string(),
                    "CQE_MIXED needs Linux 6.18".to_string()
                ),
                ("d.setup: m::whole".to_string(), "needs 6.0".to_string()),
            ]
        );
        assert!(s.ok());
    }

    #[test]
    fn a_failed_test_shows_its_output() {
        let t = "ring-xtask: begin b\ntest x ... \nthread 'x' panicked at a.rs:1:1:\nboom\nFAILED\n\
                 ring-xtask: end b exit=101\nring-xtask: done\n";
        let s = Summary::parse(t);
        assert_eq!(s.failed, ["b: x"]);
        let report = s.report("k", Duration::ZERO).to_string();
        assert!(
            report.contains("  failed: b: x\n    | thread 'x' panicked at a.rs:1:1:\n    | boom\n"),
            "{report}"
        );
    }

    #[test]
    fn a_result_line_must_match_what_was_seen() {
        let line = "test result: ok. 3 passed; 1 failed; 2 ignored; 4 measured; 5 filtered out; finished in 0.04s";
        assert_eq!(super::announced_count(line), Some(6));
        assert_eq!(super::announced_count("test result: garbled"), None);
        // libtest counted two tests, but kernel noise mangled one test's line.
        let t = "ring-xtask: begin b\ntest x ... ok\n[  3.1] noisetest y ... ok\n\
                 test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
                 ring-xtask: end b exit=0\nring-xtask: done\n";
        let s = Summary::parse(t);
        assert_eq!(
            s.failed,
            ["b: libtest counted 2 tests, the transcript shows 1"]
        );
        // The sample run is consistent: no such failure there.
        assert!(
            !Summary::parse(RUN)
                .failed
                .iter()
                .any(|f| f.contains("counted"))
        );
    }

    #[test]
    fn a_crash_between_tests_shows_its_report() {
        // A thread left by test x dies after x passed: the handler's report
        // and the backtrace's frames (not the handler's own) are shown.
        let t = "ring-xtask: begin b\ntest x ... ok\n\
                 ring-crash: signal 11 (code 1) at address 0x10\n\
                 ring-crash: in thread \"fallback\"\n   0: b::common::crash::report\n\
                 \x20            at ./crash.rs:56:21\n   1: <unknown>\n   2: ring::drive::turn\n\
                 \x20            at ./src/drive.rs:10:5\nring-xtask: end b exit=signal 11\nring-xtask: done\n";
        let s = Summary::parse(t);
        assert_eq!(s.passed, ["b: x"]);
        assert_eq!(s.failed, ["b: exited with signal 11"]);
        let report = s.report("k", Duration::ZERO).to_string();
        assert!(
            report.contains(
                "    | ring-crash: signal 11 (code 1) at address 0x10\n\
                 \x20   | ring-crash: in thread \"fallback\"\n\
                 \x20   | 2: ring::drive::turn (./src/drive.rs:10:5)\n"
            ),
            "{report}"
        );
    }

    #[test]
    fn a_crash_a_bad_exit_and_a_hang_are_failures() {
        // The binary dies by a signal in the middle of a test.
        let crash = "ring-xtask: begin b\ntest x ... \nring-xtask: end b exit=signal 11\nring-xtask: done\n";
        let s = Summary::parse(crash);
        assert_eq!(s.failed, ["b: x: no result (exit=signal 11)"]);
        // Every test passed, yet the binary exited non-zero.
        let bad =
            "ring-xtask: begin b\ntest x ... ok\nring-xtask: end b exit=3\nring-xtask: done\n";
        let s = Summary::parse(bad);
        assert_eq!(s.passed, ["b: x"]);
        assert_eq!(s.failed, ["b: exited with 3"]);
        // The guest hangs: no end marker, no done.
        let hang = "ring-xtask: begin b\ntest x ... ok\ntest y ... ";
        let s = Summary::parse(hang);
        assert!(!s.complete);
        assert_eq!(s.failed.len(), 1);
        assert!(s.failed[0].contains("during `y`"), "{:?}", s.failed);
        assert!(!s.ok());
        // Nothing ran at all.
        assert!(!Summary::parse("ring-xtask: done\n").ok());
    }
}
