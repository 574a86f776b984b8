//! Boots a kernel with the test initramfs in qemu and collects its serial
//! console, killing the guest at a deadline.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Result;
use crate::arch::Arch;
use crate::cpio::Cpio;
use crate::guest::TESTS_DIR;
use crate::summary::MARK;

/// How the guest's CPU is run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Emulation: slower, works everywhere.
    Tcg,
    /// KVM if a boot shows it works, else TCG.
    Auto,
}

impl Accel {
    /// Parses `kvm`, `tcg` or `auto`.
    pub(crate) fn parse(s: &str) -> Result<Accel> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            "auto" => Ok(Accel::Auto),
            _ => Err(format!("--accel takes kvm, tcg or auto, not `{s}`").into()),
        }
    }
}

/// Fails with the install command if `arch`'s qemu is missing.
pub(crate) fn check_qemu(arch: Arch) -> Result<()> {
    let qemu = arch.qemu();
    match Command::new(qemu).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(format!(
            "{qemu} not found: install it (`apt-get install -y {}`), or use --kernel host",
            arch.qemu_package()
        )
        .into()),
    }
}

/// Whether `/dev/kvm` can be opened for reading and writing.
pub(crate) fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Writes the initramfs: `/init`, the test binaries of `stage` and the plan.
pub(crate) fn initramfs(
    init: &Path,
    stage: &Path,
    plan: &crate::runner::Plan,
    out: &Path,
) -> Result<()> {
    let mut c = Cpio::new();
    for d in ["dev", "proc", "sys", "tmp", "bin", TESTS_DIR] {
        c.dir(d, 0o755);
    }
    c.char_dev("dev/console", 0o600, 5, 1);
    c.char_dev("dev/null", 0o666, 1, 3);
    c.file("init", 0o755, &std::fs::read(init)?);
    c.file(crate::runner::Plan::FILE, 0o644, plan.to_text().as_bytes());
    for bin in crate::runner::binaries(stage) {
        let name = bin
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        c.file(&format!("{TESTS_DIR}/{name}"), 0o755, &std::fs::read(&bin)?);
    }
    std::fs::write(out, c.finish())?;
    Ok(())
}

/// What one boot produced.
pub(crate) struct Boot {
    /// The serial console.
    pub(crate) console: String,
    /// qemu's own stderr.
    pub(crate) stderr: String,
    /// Whether the deadline killed the guest.
    pub(crate) timed_out: bool,
    /// Whether KVM failed (internal error, or no sign of life): retry with TCG.
    pub(crate) kvm_failed: bool,
}

fn pump(
    mut from: impl Read + Send + 'static,
    to: Arc<Mutex<Vec<u8>>>,
    echo: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if echo {
                let _ = std::io::stdout().write_all(&buf[..n]);
                let _ = std::io::stdout().flush();
            }
            to.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// How long a boot may take.
pub(crate) struct Limits {
    /// The whole guest, from boot to power-off: a backstop for a hung kernel.
    pub(crate) guest: Duration,
    /// Each test binary (the guest's init kills one that runs longer).
    pub(crate) per_binary: Duration,
    /// With KVM: how soon the guest must show a sign of life.
    pub(crate) probe: Duration,
}

/// The guest's memory in MiB for an initramfs of `initrd_len` bytes: the
/// kernel unpacks the initramfs into RAM while its image is still there
/// (two copies at the peak), and the files stay in RAM; the tests need the
/// rest. With too little, unpacking fails part way ("Initramfs unpacking
/// failed: write error"): the last test binaries are then missing, and one
/// cut short dies of SIGSEGV as it starts (seen with 335 MB of aarch64
/// test binaries in 1 GiB).
pub(crate) fn guest_memory_mib(initrd_len: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let initrd = initrd_len.div_ceil(MIB);
    // 1 GiB for the kernel and the tests, two copies of the initramfs,
    // rounded up to 256 MiB.
    (1024 + 2 * initrd).div_ceil(256) * 256
}

/// Boots `kernel` (built for `arch`) with `initrd` and waits for it to
/// power off, at most `limits.guest`. With `kvm`, a guest that shows no sign
/// of life within `limits.probe` is given up (`kvm_failed`).
pub(crate) fn boot(
    arch: Arch,
    kernel: &Path,
    initrd: &Path,
    kvm: bool,
    limits: &Limits,
    echo: bool,
) -> Result<Boot> {
    let (timeout, probe) = (limits.guest, limits.probe);
    let qemu = arch.qemu();
    let mut cmd = Command::new(qemu);
    cmd.args(arch.machine(kvm));
    let append = format!(
        "console={} panic=-1 oops=panic quiet loglevel=3 rdinit=/init {}={}",
        arch.console(),
        crate::guest::TIMEOUT_PARAM,
        limits.per_binary.as_secs()
    );
    let initrd_len = std::fs::metadata(initrd)?.len();
    let memory = format!("{}M", guest_memory_mib(initrd_len));
    cmd.args(["-m", &memory, "-smp", "2", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{qemu}: {e}"))?;
    let console = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let t1 = pump(child.stdout.take().expect("piped"), console.clone(), echo);
    let t2 = pump(child.stderr.take().expect("piped"), stderr.clone(), false);
    let start = Instant::now();
    let mut timed_out = false;
    let mut kvm_failed = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        let elapsed = start.elapsed();
        if kvm {
            let dead =
                String::from_utf8_lossy(&stderr.lock().unwrap()).contains("KVM internal error");
            let alive = String::from_utf8_lossy(&console.lock().unwrap()).contains(MARK);
            if dead || (!alive && elapsed > probe) {
                kvm_failed = true;
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
        if elapsed > timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = (t1.join(), t2.join());
    let console = String::from_utf8_lossy(&console.lock().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
    Ok(Boot {
        console,
        stderr,
        timed_out,
        kvm_failed,
    })
}

#[cfg(test)]
mod tests {
    use super::guest_memory_mib;

    #[test]
    fn the_guest_holds_two_copies_of_its_initramfs_and_a_gib_more() {
        const MIB: u64 = 1 << 20;
        assert_eq!(guest_memory_mib(0), 1024);
        // The aarch64 kernel matrix's 335 MB: 1024 + 2 x 320 MiB = 1664 MiB.
        assert_eq!(guest_memory_mib(335_140 * 1024), 1792);
        let big = guest_memory_mib(600 * MIB);
        assert!(big >= 1024 + 1200 && big % 256 == 0, "{big}");
    }
}
