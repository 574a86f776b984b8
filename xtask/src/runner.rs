//! Runs every test binary of a directory and writes the transcript that
//! [`crate::summary::Summary::parse`] reads. Shared by the guest's init (which
//! writes to the serial console) and `--kernel host` (which captures it).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::summary::MARK;

/// The arguments every test binary runs with: one test at a time, its output
/// shown, so a skip line sits right under its test.
pub(crate) const TEST_ARGS: &[&str] = &["--test-threads=1", "--nocapture"];

/// The binaries of `dir`, sorted by name.
pub(crate) fn binaries(dir: &Path) -> Vec<PathBuf> {
    let mut bins: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    bins.sort();
    bins
}

fn exit_text(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c.to_string(),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "unknown".to_string(),
        },
        Err(e) => format!("spawn error: {e}"),
    }
}

/// Runs each binary of `dir` in turn. With `capture`, the transcript is
/// appended there (and echoed to stdout when `echo`); without, it goes to this
/// process's stdout and the binaries inherit stdout and stderr.
pub(crate) fn run_dir(dir: &Path, mut capture: Option<(&mut String, bool)>) {
    let bins = binaries(dir);
    for bin in &bins {
        let label = bin.file_name().unwrap_or_default().to_string_lossy();
        let mut cmd = Command::new(bin);
        cmd.args(TEST_ARGS).stdin(Stdio::null());
        match capture.as_mut() {
            None => {
                println!("{MARK} begin {label}");
                let _ = std::io::stdout().flush();
                let status = cmd.status();
                let _ = std::io::stdout().flush();
                println!("{MARK} end {label} exit={}", exit_text(status));
            }
            Some((out, echo)) => {
                let begin = format!("{MARK} begin {label}\n");
                // One file for stdout and stderr keeps their order.
                let log = dir.with_extension(format!("{label}.log"));
                let (output, status) =
                    match File::create(&log).and_then(|f| Ok((f.try_clone()?, f))) {
                        Ok((o, e)) => {
                            let status = cmd.stdout(o).stderr(e).status();
                            let mut bytes = Vec::new();
                            let _ = File::open(&log).and_then(|mut f| f.read_to_end(&mut bytes));
                            let _ = std::fs::remove_file(&log);
                            (String::from_utf8_lossy(&bytes).into_owned(), status)
                        }
                        Err(e) => (String::new(), Err(e)),
                    };
                let end = format!("\n{MARK} end {label} exit={}\n", exit_text(status));
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
