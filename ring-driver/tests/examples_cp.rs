//! The copy examples (`examples/cp.rs` on the raw ring, `examples/cp_proactor.rs`
//! on the Proactor) run as programs: they never destroy data (the same file
//! under any name, a directory or a missing source leave the destination as it
//! was, with an error naming the path and a non-zero exit), they copy what
//! `st_size` does not announce (procfs files, pipes) until EOF, they copy
//! regular files byte for byte at any size (they splice 1 MiB blocks, 4 in
//! flight), and they draw a progress bar on a terminal only.
//!
//! The examples are built with the `cargo` that runs this test; where there is
//! none (the kernel VMs), the tests skip.

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

/// The two examples under test.
const EXAMPLES: [&str; 2] = ["cp", "cp_proactor"];

/// How long one run of an example may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(10);

/// The examples' executables, built once (`None`, with the reason, where
/// there is no cargo to build them).
fn binaries() -> Result<&'static [PathBuf; 2], &'static str> {
    static BUILT: OnceLock<Result<[PathBuf; 2], String>> = OnceLock::new();
    BUILT
        .get_or_init(build)
        .as_ref()
        .map_err(|reason| reason.as_str())
}

fn build() -> Result<[PathBuf; 2], String> {
    let [cp, proactor]: [PathBuf; 2] = common::build_examples(&EXAMPLES)?
        .try_into()
        .expect("one path per example");
    Ok([cp, proactor])
}

/// A fresh directory for one test, removed when dropped (also when the test
/// fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn scratch(test: &str) -> Scratch {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ring-examples-cp-{}-{}-{test}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// Waits for `child` at most [`RUN_LIMIT`] (killing it and failing after).
fn finish(child: Child, what: &str) -> Output {
    common::finish_within(child, RUN_LIMIT, what)
}

/// Runs `bin SRC DST` with nothing on stdin.
fn run(bin: &Path, src: &Path, dst: &Path) -> Output {
    let child = Command::new(bin)
        .arg(src)
        .arg(dst)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, &format!("{} {src:?} {dst:?}", bin.display()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that the run failed with a message naming `path` (quoted, as the
/// user typed it) and no `Debug` output.
fn assert_refused(out: &Output, bin: &Path, path: &Path) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "{}: exited with success; stderr: {err}",
        bin.display()
    );
    assert!(
        err.contains(&format!("'{}'", path.display())),
        "{}: the message does not name '{}': {err}",
        bin.display(),
        path.display()
    );
    assert!(
        !err.contains("Os {") && !err.contains("Custom {"),
        "{}: Debug output instead of a message: {err}",
        bin.display()
    );
}

/// Bytes that differ from block to block and are not a repeated pattern.
fn data(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
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
fn the_same_file_is_refused_and_left_intact() {
    let bins = binaries_or_skip!("the_same_file_is_refused_and_left_intact");
    let dir = scratch("same");
    let keep = b"the only copy of these bytes\n".repeat(100);
    for bin in bins {
        let file = dir.join("same.bin");
        std::fs::write(&file, &keep).unwrap();
        let out = run(bin, &file, &file);
        assert_eq!(std::fs::read(&file).unwrap(), keep, "{}", bin.display());
        assert_refused(&out, bin, &file);
        // The same file written another way (`./same.bin` vs `same.bin`).
        let dotted = dir.join(".").join("same.bin");
        let out = run(bin, &file, &dotted);
        assert!(!out.status.success(), "{}: {}", bin.display(), stderr(&out));
        assert_eq!(std::fs::read(&file).unwrap(), keep, "{}", bin.display());
    }
}

#[test]
fn the_same_file_through_a_hard_link_is_refused() {
    let bins = binaries_or_skip!("the_same_file_through_a_hard_link_is_refused");
    let dir = scratch("hardlink");
    let keep = data(300 << 10);
    let (file, link) = (dir.join("a.bin"), dir.join("b.bin"));
    std::fs::write(&file, &keep).unwrap();
    std::fs::hard_link(&file, &link).unwrap();
    for bin in bins {
        for (src, dst) in [(&file, &link), (&link, &file)] {
            let out = run(bin, src, dst);
            assert!(std::fs::read(&file).unwrap() == keep, "{}", bin.display());
            assert!(!out.status.success(), "{}: {}", bin.display(), stderr(&out));
            assert!(stderr(&out).contains("same file"), "{}", stderr(&out));
        }
    }
}

#[test]
fn the_same_file_through_a_symlink_is_refused() {
    let bins = binaries_or_skip!("the_same_file_through_a_symlink_is_refused");
    let dir = scratch("symlink");
    let keep = data(300 << 10);
    let (file, link) = (dir.join("a.bin"), dir.join("link.bin"));
    std::fs::write(&file, &keep).unwrap();
    std::os::unix::fs::symlink("a.bin", &link).unwrap();
    for bin in bins {
        for (src, dst) in [(&file, &link), (&link, &file), (&link, &link)] {
            let out = run(bin, src, dst);
            assert!(std::fs::read(&file).unwrap() == keep, "{}", bin.display());
            assert!(!out.status.success(), "{}: {}", bin.display(), stderr(&out));
            assert!(stderr(&out).contains("same file"), "{}", stderr(&out));
        }
    }
}

#[test]
fn a_directory_source_leaves_the_destination_untouched() {
    let bins = binaries_or_skip!("a_directory_source_leaves_the_destination_untouched");
    let dir = scratch("dir");
    let (src, dst) = (dir.join("DIR"), dir.join("keep.txt"));
    std::fs::create_dir(&src).unwrap();
    for bin in bins {
        std::fs::write(&dst, "keep me\n").unwrap();
        let out = run(bin, &src, &dst);
        assert_eq!(
            std::fs::read(&dst).unwrap(),
            b"keep me\n",
            "{}",
            bin.display()
        );
        assert_refused(&out, bin, &src);
    }
}

#[test]
fn a_missing_source_is_named_and_the_destination_untouched() {
    let bins = binaries_or_skip!("a_missing_source_is_named_and_the_destination_untouched");
    let dir = scratch("missing");
    let (src, dst) = (dir.join("missing.bin"), dir.join("keep.txt"));
    for bin in bins {
        std::fs::write(&dst, "keep me\n").unwrap();
        let out = run(bin, &src, &dst);
        assert_refused(&out, bin, &src);
        assert!(stderr(&out).contains("No such file or directory"));
        assert_eq!(std::fs::read(&dst).unwrap(), b"keep me\n");
        // Nor is a destination created for nothing.
        let fresh = dir.join("fresh.txt");
        let out = run(bin, &src, &fresh);
        assert_refused(&out, bin, &src);
        assert!(!fresh.exists(), "{}: created {fresh:?}", bin.display());
    }
}

#[test]
fn a_procfs_file_is_copied_although_its_size_says_zero() {
    let bins = binaries_or_skip!("a_procfs_file_is_copied_although_its_size_says_zero");
    let dir = scratch("procfs");
    let dst = dir.join("status");
    for bin in bins {
        let out = run(bin, Path::new("/proc/self/status"), &dst);
        assert!(out.status.success(), "{}: {}", bin.display(), stderr(&out));
        let copied = std::fs::read_to_string(&dst).unwrap();
        // The copy is the example's own status: whole, not cut at a block.
        assert!(copied.starts_with("Name:"), "{}: {copied:?}", bin.display());
        assert!(copied.contains("\nPid:"), "{}: {copied:?}", bin.display());
        assert!(copied.ends_with('\n'), "{}: {copied:?}", bin.display());
    }
}

#[test]
fn a_sysfs_file_is_copied_although_its_size_says_more() {
    let test = "a_sysfs_file_is_copied_although_its_size_says_more";
    let bins = binaries_or_skip!(test);
    // Sysfs files say 4096 bytes and hold a few: a read returns 0 early.
    let src = Path::new("/sys/devices/system/cpu/online");
    let (Ok(meta), Ok(want)) = (std::fs::metadata(src), std::fs::read(src)) else {
        skip!(test, "no {} to read", src.display());
    };
    if meta.len() <= want.len() as u64 {
        skip!(
            test,
            "{} says its size ({} bytes)",
            src.display(),
            meta.len()
        );
    }
    let dir = scratch("sysfs");
    let dst = dir.join("online");
    for bin in bins {
        let out = run(bin, src, &dst);
        assert!(out.status.success(), "{}: {}", bin.display(), stderr(&out));
        assert_eq!(std::fs::read(&dst).unwrap(), want, "{}", bin.display());
    }
}

#[test]
fn a_pipe_on_stdin_is_copied_until_eof() {
    let bins = binaries_or_skip!("a_pipe_on_stdin_is_copied_until_eof");
    let dir = scratch("stdin");
    let dst = dir.join("out.bin");
    // More than a pipe's buffer and more than a block: many short reads.
    let input = data((1 << 20) + 4321);
    for bin in bins {
        std::fs::write(&dst, "old contents, longer than nothing").unwrap();
        let mut child = Command::new(bin)
            .arg("/dev/stdin")
            .arg(&dst)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        let feed = input.clone();
        // Fed in pieces with pauses: the copy sees the pipe empty, not only
        // full, and must keep reading until the writer closes it.
        let writer = thread::spawn(move || {
            for piece in feed.chunks(100_000) {
                pipe.write_all(piece)?;
                thread::sleep(Duration::from_millis(3));
            }
            Ok::<_, std::io::Error>(())
        });
        let out = finish(child, &format!("{} /dev/stdin", bin.display()));
        let fed = writer.join().unwrap();
        assert!(out.status.success(), "{}: {}", bin.display(), stderr(&out));
        let copied = std::fs::read(&dst).unwrap();
        assert_eq!(copied.len(), input.len(), "{}", bin.display());
        assert!(copied == input, "{}: the copy differs", bin.display());
        fed.unwrap();
    }
}

#[test]
fn a_pipe_destination_gets_every_byte_in_order() {
    let bins = binaries_or_skip!("a_pipe_destination_gets_every_byte_in_order");
    let dir = scratch("stdout");
    let src = dir.join("src.bin");
    let input = data((2 << 20) + 77);
    std::fs::write(&src, &input).unwrap();
    for bin in bins {
        let mut child = Command::new(bin)
            .arg(&src)
            .arg("/dev/stdout")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdout.take().unwrap();
        let reader = thread::spawn(move || {
            let mut all = Vec::new();
            pipe.read_to_end(&mut all).map(|_| all)
        });
        let out = finish(child, &format!("{} {src:?} /dev/stdout", bin.display()));
        let copied = reader.join().unwrap().unwrap();
        assert!(out.status.success(), "{}: {}", bin.display(), stderr(&out));
        assert_eq!(copied.len(), input.len(), "{}", bin.display());
        assert!(copied == input, "{}: the copy differs", bin.display());
    }
}

/// The examples splice blocks of this size (if the kernel grows their pipes
/// to it), this many in flight.
const BLOCK: usize = 1 << 20;
const DEPTH: usize = 4;

#[test]
fn a_regular_file_is_copied_byte_for_byte() {
    let bins = binaries_or_skip!("a_regular_file_is_copied_byte_for_byte");
    let dir = scratch("regular");
    let (src, dst, fresh) = (
        dir.join("src.bin"),
        dir.join("dst.bin"),
        dir.join("fresh.bin"),
    );
    // Empty, less than a page, less than a block, one block, one byte more,
    // and more blocks than are in flight with a part block at the end.
    let lens = [
        0,
        1,
        4095,
        BLOCK - 1,
        BLOCK,
        BLOCK + 1,
        (2 * DEPTH + 1) * BLOCK + 12_345,
    ];
    for len in lens {
        let input = data(len);
        std::fs::write(&src, &input).unwrap();
        for bin in bins {
            // An old, longer destination is replaced, not overwritten in
            // part; a missing one is created.
            std::fs::write(&dst, data(len + 1000)).unwrap();
            let _ = std::fs::remove_file(&fresh);
            for to in [&dst, &fresh] {
                let out = run(bin, &src, to);
                let what = format!("{} ({len} bytes to {})", bin.display(), to.display());
                assert!(out.status.success(), "{what}: {}", stderr(&out));
                let copied = std::fs::read(to).unwrap();
                assert_eq!(copied.len(), input.len(), "{what}");
                assert!(copied == input, "{what}: the copy differs");
                // stderr is a pipe here: the summary line, and no bar.
                assert!(
                    stderr(&out).starts_with("copied "),
                    "{what}: {}",
                    stderr(&out)
                );
                assert!(!stderr(&out).contains('\r'), "{what}: {:?}", stderr(&out));
            }
        }
    }
}

#[test]
fn a_write_error_while_splicing_names_the_destination() {
    let bins = binaries_or_skip!("a_write_error_while_splicing_names_the_destination");
    let dir = scratch("fsize");
    let (src, dst) = (dir.join("src.bin"), dir.join("dst.bin"));
    let input = data(4 * BLOCK);
    std::fs::write(&src, &input).unwrap();
    // Past this size every write fails with EFBIG (a write across it is cut
    // short first): in the middle of the second block.
    const LIMIT: u64 = (3 * BLOCK / 2) as u64;
    for bin in bins {
        let mut cmd = Command::new(bin);
        cmd.arg(&src)
            .arg(&dst)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: signal and setrlimit are async-signal-safe and touch only
        // the child.
        unsafe {
            cmd.pre_exec(|| {
                // An error, not death by SIGXFSZ.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: LIMIT,
                    rlim_max: LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let out = finish(
            cmd.spawn().unwrap(),
            &format!("{} (RLIMIT_FSIZE)", bin.display()),
        );
        assert_refused(&out, bin, &dst);
        assert!(stderr(&out).contains("error writing"), "{}", stderr(&out));
        assert!(stderr(&out).contains("File too large"), "{}", stderr(&out));
        // What was written before the limit is the source's.
        let copied = std::fs::read(&dst).unwrap();
        assert!(
            copied.len() as u64 <= LIMIT,
            "{}: {}",
            bin.display(),
            copied.len()
        );
        assert!(copied == input[..copied.len()], "{}", bin.display());
    }
}

/// A new pseudo-terminal: its master, its slave opened (not as the
/// controlling terminal) and the slave's path; or why there is none.
fn pty() -> Result<(std::fs::File, std::fs::File, PathBuf), String> {
    use std::os::fd::FromRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // SAFETY: posix_openpt returns a new fd or -1.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if master < 0 {
        return Err(format!("posix_openpt: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a new fd that nothing else owns.
    let master = unsafe { std::fs::File::from_raw_fd(master) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&master);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `fd` is a pty master; `name` has room for 128 bytes.
    let ok = unsafe {
        libc::grantpt(fd) == 0
            && libc::unlockpt(fd) == 0
            && libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) == 0
    };
    if !ok {
        return Err(format!("pty setup: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: ptsname_r wrote a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    let path = PathBuf::from(name.to_str().unwrap());
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .map_err(|e| format!("open {path:?}: {e}"))?;
    Ok((master, slave, path))
}

/// Runs `bin SRC DST` with stderr on a new pseudo-terminal (and DST the
/// terminal itself if `dst` is `None`); returns how it ended and what the
/// terminal showed, or why there is no terminal.
fn run_on_terminal(bin: &Path, src: &Path, dst: Option<&Path>) -> Result<(Output, String), String> {
    let (master, slave, path) = pty().map_err(|e| format!("no pseudo-terminal: {e}"))?;
    // The command (and the slave it holds) is gone after spawning: the
    // child holds the only slave, and reading the master ends (EIO) when it
    // exits.
    let child = Command::new(bin)
        .arg(src)
        .arg(dst.unwrap_or(&path))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(slave)
        .spawn()
        .unwrap();
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        let mut master = master;
        let mut buf = [0u8; 4096];
        // Until EIO (every slave closed) or EOF.
        while let Ok(n @ 1..) = master.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let out = finish(child, &format!("{} with a terminal", bin.display()));
    Ok((out, reader.join().unwrap()))
}

#[test]
fn a_terminal_on_stderr_gets_a_progress_bar() {
    let test = "a_terminal_on_stderr_gets_a_progress_bar";
    let bins = binaries_or_skip!(test);
    let dir = scratch("bar");
    let (src, dst) = (dir.join("src.bin"), dir.join("dst.bin"));
    let input = data(3 * BLOCK + 1);
    std::fs::write(&src, &input).unwrap();
    for bin in bins {
        let (out, shown) = match run_on_terminal(bin, &src, Some(&dst)) {
            Ok(run) => run,
            Err(reason) => skip!(test, "{reason}"),
        };
        assert!(out.status.success(), "{}: {shown}", bin.display());
        assert!(std::fs::read(&dst).unwrap() == input, "{}", bin.display());
        // Redrawn in place, full at the end, then the summary on a line of
        // its own (the terminal turns each \n into \r\n).
        let full = format!("\r[{}] 100% 3.0/3.0 MiB", "#".repeat(30));
        assert!(shown.contains(&full), "{}: {shown:?}", bin.display());
        let after = &shown[shown.rfind(&full).unwrap() + full.len()..];
        assert!(
            after
                .trim_start_matches(' ')
                .starts_with("\r\ncopied 3145729 bytes"),
            "{}: {shown:?}",
            bin.display()
        );
    }
}

#[test]
fn no_progress_bar_among_bytes_copied_to_the_terminal() {
    let test = "no_progress_bar_among_bytes_copied_to_the_terminal";
    let bins = binaries_or_skip!(test);
    let dir = scratch("tty-dst");
    let src = dir.join("src.txt");
    std::fs::write(&src, "to the terminal").unwrap();
    for bin in bins {
        let (out, shown) = match run_on_terminal(bin, &src, None) {
            Ok(run) => run,
            Err(reason) => skip!(test, "{reason}"),
        };
        assert!(out.status.success(), "{}: {shown}", bin.display());
        // The bytes, then the summary, and nothing between them.
        assert!(
            shown.starts_with("to the terminalcopied 15 bytes"),
            "{}: {shown:?}",
            bin.display()
        );
    }
}

#[test]
fn a_write_error_names_the_destination() {
    let bins = binaries_or_skip!("a_write_error_names_the_destination");
    let dir = scratch("full");
    let src = dir.join("src.bin");
    std::fs::write(&src, data(300 << 10)).unwrap();
    // Every write to /dev/full fails with ENOSPC.
    let dst = Path::new("/dev/full");
    for bin in bins {
        let out = run(bin, &src, dst);
        assert_refused(&out, bin, dst);
        assert!(
            stderr(&out).contains("No space left on device"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn paths_that_are_not_utf8_are_copied() {
    use std::os::unix::ffi::OsStrExt as _;
    let bins = binaries_or_skip!("paths_that_are_not_utf8_are_copied");
    let dir = scratch("utf8");
    let src = dir.join(std::ffi::OsStr::from_bytes(b"src-\xff.bin"));
    let dst = dir.join(std::ffi::OsStr::from_bytes(b"dst-\xfe.bin"));
    let input = data(5000);
    std::fs::write(&src, &input).unwrap();
    for bin in bins {
        let _ = std::fs::remove_file(&dst);
        let out = run(bin, &src, &dst);
        assert!(out.status.success(), "{}: {}", bin.display(), stderr(&out));
        assert!(std::fs::read(&dst).unwrap() == input, "{}", bin.display());
    }
}
