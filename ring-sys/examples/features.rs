//! What io_uring can do on this machine, through ring-sys's raw syscalls only:
//! the kernel's features, which setup flags it accepts, and which opcodes it
//! supports.
//!
//! Run: `cargo run -p ring-io-sys --example features`

use core::ffi::c_void;
use std::ffi::CStr;

use ring_io_sys::*;

fn kernel_release() -> String {
    // SAFETY: all-zero is a valid utsname; uname fills it in.
    let mut uts: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates `release`.
    unsafe { CStr::from_ptr(uts.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Sets up a ring with `flags` (plus what they require) and reports the result.
fn try_setup(flags: SetupFlags) -> Result<io_uring_params, Errno> {
    let mut p = io_uring_params {
        flags: flags.bits(),
        ..Default::default()
    };
    if flags.contains(SetupFlags::CQSIZE) {
        p.cq_entries = 64;
    }
    // SAFETY: `p` is a valid io_uring_params; NO_MMAP is never requested here.
    let fd = unsafe { io_uring_setup(8, &mut p) }?;
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    Ok(p)
}

fn main() {
    println!("kernel {}", kernel_release());
    let params = match try_setup(SetupFlags::empty()) {
        Ok(p) => p,
        Err(e) => {
            println!("io_uring is unavailable here: {e}");
            return;
        }
    };
    println!("\nfeatures reported by io_uring_setup:");
    for (name, flag) in Features::all().iter_names() {
        let has = Features::from_bits_retain(params.features).contains(flag);
        println!("  {:<18} {}", name, if has { "yes" } else { "no" });
    }

    println!("\nsetup flags (each tried alone, with what it requires):");
    for (name, flag) in SetupFlags::all().iter_names() {
        let with = match flag {
            SetupFlags::SQ_AFF => flag | SetupFlags::SQPOLL,
            SetupFlags::TASKRUN_FLAG => flag | SetupFlags::COOP_TASKRUN,
            SetupFlags::DEFER_TASKRUN => flag | SetupFlags::SINGLE_ISSUER,
            SetupFlags::HYBRID_IOPOLL => flag | SetupFlags::IOPOLL,
            // ATTACH_WQ needs a ring to attach to, NO_MMAP (and so
            // REGISTERED_FD_ONLY) caller-provided memory: reported, not tried.
            SetupFlags::ATTACH_WQ | SetupFlags::NO_MMAP | SetupFlags::REGISTERED_FD_ONLY => {
                println!("  {name:<18} (needs arguments; not tried)");
                continue;
            }
            _ => flag,
        };
        match try_setup(with) {
            Ok(_) => println!("  {name:<18} accepted"),
            Err(e) => println!("  {name:<18} rejected: {e}"),
        }
    }

    // SAFETY: the ring fd is only used for the probe below and then closed.
    let fd =
        unsafe { io_uring_setup(2, &mut io_uring_params::default()) }.expect("setup worked above");
    #[repr(C)]
    struct Probe {
        head: io_uring_probe,
        ops: [io_uring_probe_op; 256],
    }
    // SAFETY: all-zero is a valid value of these plain-integer structs.
    let mut probe: Probe = unsafe { core::mem::zeroed() };
    // SAFETY: room for 256 ops, as `nr_args` says.
    let res = unsafe {
        io_uring_register(
            fd,
            IORING_REGISTER_PROBE,
            (&raw mut probe).cast::<c_void>(),
            256,
        )
    };
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    println!("\nopcodes (IORING_REGISTER_PROBE):");
    if let Err(e) = res {
        println!("  probe unavailable: {e}");
        return;
    }
    let mut supported = 0;
    for &(op, name, (major, minor)) in IORING_OPS {
        let yes = op <= probe.head.last_op
            && ProbeOpFlags::from_bits_retain(probe.ops[usize::from(op)].flags)
                .contains(ProbeOpFlags::SUPPORTED);
        supported += usize::from(yes);
        println!(
            "  {:>2} {:<28} {:<4} since {major}.{minor}",
            op,
            name.trim_start_matches("IORING_OP_"),
            if yes { "yes" } else { "no" }
        );
    }
    println!(
        "\n{supported} of the {} opcodes of Linux 6.18 are supported here.",
        IORING_OPS.len()
    );
}
