//! Helpers shared by the kernel tests.
#![allow(dead_code, unreachable_pub)]

mod crash;

/// Skips the current test with a reason: prints `ring-skip: <test>: <reason>`
/// on stderr (counted by `cargo xtask test-kernel`) and returns.
#[macro_export]
macro_rules! skip {
    ($test:expr, $($reason:tt)*) => {{
        eprintln!("ring-skip: {}: {}", $test, format_args!($($reason)*));
        return;
    }};
}

/// The running kernel's version.
pub fn kernel() -> ring_io_driver::KernelVersion {
    ring_io_driver::kernel_version().expect("uname release parses")
}

/// Memory lent to a `NO_MMAP` ring by a test: private anonymous pages,
/// never unmapped (the kernel may write them after the ring is dropped).
pub fn lend(len: usize) -> std::ptr::NonNull<u8> {
    // SAFETY: a fresh private anonymous mapping; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    std::ptr::NonNull::new(p.cast::<u8>()).expect("mmap returned null")
}

/// A `NO_MMAP` ring (with `registered_fd_only`: without an fd) on memory
/// lent by the test: the ring, the base of its rings region and its params.
/// `None` (after printing why) where the kernel cannot make it.
pub fn lent_ring(
    test: &str,
    registered_fd_only: bool,
) -> Option<(ring_io_driver::Ring, *mut u8, ring_io_sys::io_uring_params)> {
    if !kernel().at_least(6, 5) {
        eprintln!("ring-skip: {test}: IORING_SETUP_NO_MMAP needs Linux 6.5");
        return None;
    }
    let mut builder = ring_io_driver::Builder::new(4).no_mmap();
    if registered_fd_only {
        builder = builder.registered_fd_only();
    }
    let (rings_len, sqes_len) = builder.no_mmap_sizes().expect("a 4-entry ring has sizes");
    let (rings, sqes) = (lend(rings_len), lend(sqes_len));
    // SAFETY: private anonymous memory, never used again by the test except
    // to watch (atomically) what the kernel writes into it.
    let builder = unsafe { builder.no_mmap_memory((rings, rings_len), (sqes, sqes_len)) };
    match builder.build() {
        Ok(ring) => {
            let params = *ring.params().raw();
            Some((ring, rings.as_ptr(), params))
        }
        // Before 6.13 a NO_MMAP region must be a single (huge) page.
        Err(e) if !kernel().at_least(6, 13) => {
            eprintln!("ring-skip: {test}: {e}");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// A pipe `(read end, write end)`.
pub fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: two new fds, owned here.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

/// Queues a read of `fd` (which must have nothing to read) with
/// `user_data`, into a buffer that is leaked (the kernel may write it until
/// the request ends, which may be after the ring is dropped).
pub fn pending_read(ring: &mut ring_io_driver::Ring, fd: std::os::fd::RawFd, user_data: u64) {
    let buf: &'static mut [u8; 8] = Box::leak(Box::new([0u8; 8]));
    let read = ring_io_ops::Read::new(ring_io_ops::Fd(fd), buf.as_mut_ptr(), 8)
        .build()
        .user_data(user_data);
    // SAFETY: the buffer is leaked and the fd outlives the test's wait.
    unsafe { ring.sq().push(read) }.expect("room for one entry");
    assert_eq!(ring.submitter().submit().expect("submit"), 1);
}

/// The CQ tail word of a ring whose rings region starts at `base`.
pub fn cq_tail(
    base: *mut u8,
    params: &ring_io_sys::io_uring_params,
) -> &'static std::sync::atomic::AtomicU32 {
    // SAFETY: the region is leaked (never unmapped) and the offset is the
    // kernel's, inside it; the kernel writes the word atomically.
    unsafe { &*base.add(params.cq_off.tail as usize).cast() }
}

/// The first CQE of a ring whose rings region starts at `base`, read after
/// the tail showed it.
pub fn first_cqe(
    base: *mut u8,
    params: &ring_io_sys::io_uring_params,
) -> ring_io_sys::io_uring_cqe {
    // SAFETY: in the leaked region; written before the tail that showed it
    // (acquired by the caller), and not written again.
    unsafe {
        base.add(params.cq_off.cqes as usize)
            .cast::<ring_io_sys::io_uring_cqe>()
            .read_volatile()
    }
}

/// Waits (up to `limit`) until `cond` holds; true if it did.
pub fn wait_until(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    cond()
}

/// Builds the examples `names` (of any crate of the workspace) with the `cargo` that runs
/// the tests (release if the tests are), and returns their executables in
/// the same order; `Err` with the reason where there is no cargo (the
/// kernel VMs).
pub fn build_examples(names: &[&str]) -> Result<Vec<std::path::PathBuf>, String> {
    use std::path::{Path, PathBuf};
    let cargo = env!("CARGO");
    if !Path::new(cargo).exists() {
        return Err(format!("no cargo at {cargo} to build the examples"));
    }
    // The workspace's manifest: an example may live in any of its crates.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "--message-format=json", "--manifest-path"])
        .arg(&manifest);
    for name in names {
        cmd.args(["--example", name]);
    }
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo build of the examples failed");
    let json = String::from_utf8(out.stdout).expect("cargo prints UTF-8");
    let find = |name: &str| -> PathBuf {
        // One JSON object per line; the example's has `"name":"<name>"` in
        // its target and the path of the executable it built.
        let line = json
            .lines()
            .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
            .filter(|l| l.contains("\"kind\":[\"example\"]"))
            .find(|l| l.contains(&format!("\"name\":\"{name}\"")))
            .unwrap_or_else(|| panic!("cargo reported no build of the example {name}"));
        let key = "\"executable\":\"";
        let at = line.find(key).expect("an executable path") + key.len();
        let end = line[at..].find('"').expect("a closing quote") + at;
        PathBuf::from(&line[at..end])
    };
    Ok(names.iter().map(|name| find(name)).collect())
}

/// Waits for `child` at most `limit`, killing it and failing the test after
/// (`what` names it in the message).
pub fn finish_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::Output {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.wait_with_output().unwrap()
}

/// The sysctl that disables io_uring (Linux 6.6).
pub const DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";

/// Whether `test` may change the io_uring sysctls here (else it printed why).
pub fn sysctls_are_ours(test: &str) -> bool {
    if std::env::var_os("RING_XTASK_VM").is_none() {
        eprintln!(
            "ring-skip: {test}: changes the kernel.io_uring_disabled sysctl, so runs only in \
             the throwaway VM of `cargo xtask test-kernel`"
        );
        return false;
    }
    if !std::path::Path::new(DISABLED).exists() {
        eprintln!("ring-skip: {test}: the kernel.io_uring_disabled sysctl needs Linux 6.6");
        return false;
    }
    true
}

/// A sysctl set for a while: the old value is written back on drop.
pub struct Sysctl {
    path: &'static str,
    old: String,
}

impl Sysctl {
    pub fn set(path: &'static str, value: &str) -> Sysctl {
        let old = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::fs::write(path, value).unwrap_or_else(|e| panic!("{path} = {value}: {e}"));
        Sysctl { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, self.old.trim());
    }
}
