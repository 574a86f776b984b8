//! Helpers shared by the kernel tests.
#![allow(dead_code, unreachable_pub)]

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
pub fn kernel() -> ring_driver::KernelVersion {
    ring_driver::KernelVersion::current().expect("uname release parses")
}
