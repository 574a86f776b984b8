//! The guest's `/init`: this same xtask binary, built for musl, run as PID 1.
//!
//! It mounts what tests need, brings up `lo`, runs every binary in `/tests`
//! (the transcript format of [`crate::summary`]), and powers the VM off.

use std::ffi::{CString, c_char, c_int, c_ulong, c_void};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::summary::MARK;

/// Where the initramfs keeps the test binaries.
pub(crate) const TESTS_DIR: &str = "tests";
/// The kernel parameter that tells init how long each test binary may run.
pub(crate) const TIMEOUT_PARAM: &str = "ring.timeout";
/// Seconds a test binary may run when the command line does not say.
pub(crate) const DEFAULT_TIMEOUT: u64 = 120;
/// The environment variable init sets (to `1`) for the tests: they run in a
/// throwaway VM, so a test may change what is global to the machine (such
/// as the `kernel.io_uring_disabled` sysctl), which it must never do
/// elsewhere. ring-driver's tests read it by this name.
pub(crate) const VM_ENV: &str = "RING_XTASK_VM";

/// The value of `ring.timeout=SECS` on a kernel command line.
fn timeout_from_cmdline(cmdline: &str) -> Option<u64> {
    cmdline.split_whitespace().find_map(|p| {
        p.strip_prefix(TIMEOUT_PARAM)?
            .strip_prefix('=')?
            .parse()
            .ok()
    })
}

// SAFETY: these are the C library's declarations of mount(2), reboot(2),
// sync(2), socket(2), ioctl(2) and close(2), with the argument and return
// types their manual pages give; the C library the guest links defines them.
unsafe extern "C" {
    fn mount(
        src: *const c_char,
        target: *const c_char,
        fstype: *const c_char,
        flags: c_ulong,
        data: *const c_void,
    ) -> c_int;
    fn reboot(cmd: c_int) -> c_int;
    fn sync();
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    fn close(fd: c_int) -> c_int;
}

const LINUX_REBOOT_CMD_POWER_OFF: c_int = 0x4321_FEDC;
const AF_INET: c_int = 2;
const SOCK_DGRAM: c_int = 2;
const SIOCGIFFLAGS: c_ulong = 0x8913;
const SIOCSIFFLAGS: c_ulong = 0x8914;
const IFF_UP: i16 = 1;

/// `struct ifreq` with its `ifr_flags` member.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

fn do_mount(fstype: &str, target: &str) {
    let _ = std::fs::create_dir_all(target);
    let (src, tgt) = (CString::new(fstype).unwrap(), CString::new(target).unwrap());
    // SAFETY: every pointer is a valid NUL-terminated string or null `data`,
    // which mount(2) accepts for these file systems.
    let rc = unsafe {
        mount(
            src.as_ptr(),
            tgt.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        println!("{MARK} mount {fstype} on {target}: {err}");
    }
}

fn loopback_up() {
    // SAFETY: plain socket(2) call; the fd is closed below.
    let fd = unsafe { socket(AF_INET, SOCK_DGRAM, 0) };
    if fd < 0 {
        println!("{MARK} socket: {}", std::io::Error::last_os_error());
        return;
    }
    let mut req = IfReq {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: `req` is a valid `struct ifreq` that outlives both calls.
    let rc = unsafe {
        if ioctl(fd, SIOCGIFFLAGS, &mut req as *mut IfReq) == 0 {
            req.flags |= IFF_UP;
            ioctl(fd, SIOCSIFFLAGS, &mut req as *mut IfReq)
        } else {
            -1
        }
    };
    if rc != 0 {
        println!("{MARK} lo up: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is ours and closed once.
    unsafe { close(fd) };
}

/// Runs as PID 1: never returns.
pub(crate) fn init() -> ! {
    do_mount("proc", "/proc");
    do_mount("sysfs", "/sys");
    do_mount("devtmpfs", "/dev");
    do_mount("tmpfs", "/tmp");
    do_mount("tmpfs", "/dev/shm");
    loopback_up();
    // SAFETY: PID 1 is single-threaded here; nothing reads the environment concurrently.
    unsafe {
        std::env::set_var("PATH", "/bin");
        std::env::set_var("HOME", "/tmp");
        std::env::set_var("TMPDIR", "/tmp");
        std::env::set_var("RUST_BACKTRACE", "1");
        std::env::set_var(VM_ENV, "1");
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("{MARK} kernel {}", release.trim());
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let timeout = Duration::from_secs(timeout_from_cmdline(&cmdline).unwrap_or(DEFAULT_TIMEOUT));
    let plan = std::fs::read_to_string(Path::new("/").join(crate::runner::Plan::FILE))
        .map(|t| crate::runner::Plan::parse(&t))
        .unwrap_or_default();
    crate::runner::run_dir(
        Path::new("/").join(TESTS_DIR).as_path(),
        timeout,
        &plan,
        None,
    );
    println!("{MARK} done");
    let _ = std::io::stdout().flush();
    // SAFETY: sync(2) and reboot(2) take no pointers; PID 1 may power off.
    unsafe {
        sync();
        reboot(LINUX_REBOOT_CMD_POWER_OFF);
    }
    // reboot only returns on failure; with `panic=-1` the kernel then restarts
    // and `-no-reboot` makes qemu exit.
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::timeout_from_cmdline;

    #[test]
    fn reads_the_timeout_parameter() {
        assert_eq!(
            timeout_from_cmdline("console=ttyS0 ring.timeout=45 quiet\n"),
            Some(45)
        );
        assert_eq!(
            timeout_from_cmdline("console=ttyS0 ring.timeoutx=4 quiet"),
            None
        );
        assert_eq!(timeout_from_cmdline("ring.timeout=x"), None);
        assert_eq!(timeout_from_cmdline(""), None);
    }
}
