//! Runs every test binary of a directory and writes the transcript that
//! [`crate::summary::Summary::parse`] reads. Shared by the guest's init (which
//! writes to the serial console) and `--kernel host` (which captures it).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::summary::MARK;

/// The arguments every test binary runs with: one test at a time, its output
/// shown, so a skip line sits right under its test.
pub(crate) const TEST_ARGS: &[&str] = &["--test-threads=1", "--nocapture"];

/// What to run of each binary, beyond [`TEST_ARGS`]: how many times, and
/// which tests (libtest's name filters). Written by `test-kernel --repeat
/// --filter` into the initramfs as [`Plan::FILE`], one `repeat N` line and
/// a `filter NAME` line per filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub(crate) repeat: u32,
    pub(crate) filters: Vec<String>,
}

impl Plan {
    /// Its name in the initramfs's root.
    pub(crate) const FILE: &'static str = "xtask-plan";

    pub(crate) fn to_text(&self) -> String {
        let mut t = format!("repeat {}\n", self.repeat.max(1));
        for f in &self.filters {
            t.push_str(&format!("filter {f}\n"));
        }
        t
    }

    pub(crate) fn parse(text: &str) -> Plan {
        let mut plan = Plan {
            repeat: 1,
            filters: Vec::new(),
        };
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("repeat ") {
                plan.repeat = n.trim().parse().unwrap_or(1).max(1);
            } else if let Some(f) = line.strip_prefix("filter ") {
                plan.filters.push(f.to_string());
            }
        }
        plan
    }
}

/// The binaries of `dir`, sorted by name.
pub(crate) fn binaries(dir: &Path) -> Vec<PathBuf> {
    let mut bins: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    bins.sort();
    bins
}

/// Runs `cmd` to its end, or kills it after `timeout`; returns its exit as
/// the transcript writes it (`0`, `101`, `signal 11`, `timeout after 60 s`).
fn run_one(cmd: &mut Command, timeout: Duration) -> String {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("spawn error: {e}"),
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return format!("timeout after {} s", timeout.as_secs());
            }
            Err(e) => return format!("wait error: {e}"),
        }
    };
    match (status.code(), status.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => "unknown".to_string(),
    }
}

/// Runs each binary of `dir` in turn, each for at most `timeout`. With
/// `capture`, the transcript is appended there (and echoed to stdout when
/// `echo`); without, it goes to this process's stdout and the binaries
/// inherit stdout and stderr.
pub(crate) fn run_dir(
    dir: &Path,
    timeout: Duration,
    plan: &Plan,
    mut capture: Option<(&mut String, bool)>,
) {
    let bins = binaries(dir);
    let runs = bins
        .iter()
        .flat_map(|b| std::iter::repeat_n(b, plan.repeat.max(1) as usize));
    for bin in runs {
        let label = bin.file_name().unwrap_or_default().to_string_lossy();
        let mut cmd = Command::new(bin);
        cmd.args(TEST_ARGS).args(&plan.filters).stdin(Stdio::null());
        match capture.as_mut() {
            None => {
                println!("{MARK} begin {label}");
                let _ = std::io::stdout().flush();
                let exit = run_one(&mut cmd, timeout);
                let _ = std::io::stdout().flush();
                println!("\n{MARK} end {label} exit={exit}");
            }
            Some((out, echo)) => {
                let begin = format!("{MARK} begin {label}\n");
                // One file for stdout and stderr keeps their order.
                let log = dir.with_extension(format!("{label}.log"));
                let (output, exit) = match File::create(&log).and_then(|f| Ok((f.try_clone()?, f)))
                {
                    Ok((o, e)) => {
                        let exit = run_one(cmd.stdout(o).stderr(e), timeout);
                        let mut bytes = Vec::new();
                        let _ = File::open(&log).and_then(|mut f| f.read_to_end(&mut bytes));
                        let _ = std::fs::remove_file(&log);
                        (String::from_utf8_lossy(&bytes).into_owned(), exit)
                    }
                    Err(e) => (String::new(), format!("cannot capture: {e}")),
                };
                let end = format!("\n{MARK} end {label} exit={exit}\n");
                if *echo {
                    print!("{begin}{output}{end}");
                }
                out.push_str(&begin);
                out.push_str(&output);
                out.push_str(&end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Plan, run_dir, run_one};
    use crate::summary::Summary;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    use std::time::Duration;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn exits_signals_and_timeouts_are_told_apart() {
        let long = Duration::from_secs(30);
        assert_eq!(run_one(&mut sh("exit 0"), long), "0");
        assert_eq!(run_one(&mut sh("exit 3"), long), "3");
        assert_eq!(run_one(&mut sh("kill -SEGV $$"), long), "signal 11");
        let t = std::time::Instant::now();
        assert_eq!(
            run_one(&mut sh("sleep 30"), Duration::from_millis(200)),
            "timeout after 0 s"
        );
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(run_one(&mut Command::new("/nonexistent/x"), long).starts_with("spawn error"));
    }

    #[test]
    fn a_captured_run_parses_like_the_guest_console() {
        let dir = std::env::temp_dir().join(format!("xtask-runner-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fake = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        // stdout and stderr interleave in order, as on a console.
        fake(
            "a.kernel",
            "[ \"$1 $2\" = '--test-threads=1 --nocapture' ] || exit 9\n\
             printf 'test one ... ok\\ntest two ... '\n\
             echo 'ring-skip: two: too old' >&2\n\
             echo ok",
        );
        fake("b.hang", "printf 'test stuck ... '\nsleep 30");
        let mut t = String::new();
        run_dir(
            &dir,
            Duration::from_millis(300),
            &Plan::default(),
            Some((&mut t, false)),
        );
        t.push_str("ring-xtask: done\n");
        let _ = std::fs::remove_dir_all(&dir);
        let s = Summary::parse(&t);
        assert_eq!(s.passed, ["a.kernel: one"], "{t}");
        assert_eq!(
            s.skipped,
            [("a.kernel: two".to_string(), "too old".to_string())]
        );
        assert_eq!(
            s.failed,
            ["b.hang: stuck: no result (exit=timeout after 0 s)"]
        );
        assert_eq!(s.binaries, 2);
    }

    #[test]
    fn a_plan_survives_its_file() {
        let plan = Plan {
            repeat: 7,
            filters: vec!["many_threads".into(), "a b".into()],
        };
        assert_eq!(Plan::parse(&plan.to_text()), plan);
        assert_eq!(Plan::parse("").repeat, 1);
        assert_eq!(Plan::parse("repeat 0\n").repeat, 1);
    }

    #[test]
    fn a_plan_repeats_each_binary_and_passes_its_filters() {
        let dir = std::env::temp_dir().join(format!("xtask-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("echo-args");
        std::fs::write(&bin, "#!/bin/sh\necho \"args: $*\"\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut t = String::new();
        let plan = Plan {
            repeat: 3,
            filters: vec!["only_this".into()],
        };
        run_dir(&dir, Duration::from_secs(10), &plan, Some((&mut t, false)));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            t.matches("args: --test-threads=1 --nocapture only_this")
                .count(),
            3,
            "{t}"
        );
    }
}
