//! A report of a fatal signal in a test binary (SIGSEGV, SIGBUS, SIGILL,
//! SIGFPE): the signal, the faulting address, the thread and a backtrace,
//! on stderr, before the binary dies of it as it would have. Without it, a
//! test binary that dies of a signal in the kernel matrix's VM leaves no
//! trace of where (the VMs run musl builds, whose std prints no message
//! for a stack overflow either).
//!
//! Installed before `main` (`.init_array`), so std sees a handler in place
//! and installs none of its own: a stack overflow then finds no alternate
//! stack and dies silently, as before; every other fault is reported.

use std::io::Write as _;

// SAFETY: `.init_array` holds pointers to `extern "C" fn()`s the C runtime
// calls once before `main`, single-threaded; `install` is one, and touches
// nothing that needs std's runtime (only sigaction(2)).
#[used]
#[unsafe(link_section = ".init_array")]
static INSTALL: extern "C" fn() = install;

extern "C" fn install() {
    for signal in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE] {
        // SAFETY: a zeroed sigaction is a valid value (no handler, empty
        // mask); `report` has the SA_SIGINFO handler's signature; the old
        // action is not asked for (null).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = report as *const () as usize;
            // Once: the default action is back when `report` returns, and
            // the faulting instruction, run again, kills the binary with
            // the same signal (the exit status the runner reports).
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn report(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler;
    // `si_addr` is the faulting address for these four signals.
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    // First what is safe in a signal handler: a fixed-size line, written
    // with write(2).
    let mut line = [0u8; 160];
    let n = {
        let mut cursor = std::io::Cursor::new(&mut line[..]);
        let _ = write!(
            cursor,
            "\nring-crash: signal {signal} (code {code}) at address {addr:#x}\n"
        );
        cursor.position() as usize
    };
    // SAFETY: writes `n` initialized bytes of `line` to stderr.
    unsafe { libc::write(2, line.as_ptr().cast(), n) };
    // Then what may not be (it allocates: a fault inside the allocator can
    // hang here, which the runner's timeout reports instead).
    let thread = std::thread::current();
    let backtrace = std::backtrace::Backtrace::force_capture();
    let _ = writeln!(
        std::io::stderr(),
        "ring-crash: in thread {:?}\n{backtrace}",
        thread.name().unwrap_or("<unnamed>")
    );
}
