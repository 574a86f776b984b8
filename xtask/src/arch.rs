//! The architectures the kernel tests run on: how to build for each, which
//! Debian kernels it has, and how qemu boots it.

use std::process::Command;

use crate::Result;

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Arch {
    /// x86_64 (Debian's amd64).
    X86_64,
    /// aarch64 (Debian's arm64).
    Aarch64,
    /// riscv64 (Debian's riscv64, since trixie).
    Riscv64,
}

impl Arch {
    /// Every architecture, in the order `--arch all` runs them.
    pub(crate) const ALL: [Arch; 3] = [Arch::X86_64, Arch::Aarch64, Arch::Riscv64];

    /// What `--arch` accepts, and what `uname -m` says.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
        }
    }

    /// The architecture this xtask runs on, if it is one of ours.
    pub(crate) fn host() -> Option<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == std::env::consts::ARCH)
    }

    /// Parses a comma-separated list of names and `all` (default: the host's).
    pub(crate) fn parse_list(specs: &[String]) -> Result<Vec<Arch>> {
        let mut out: Vec<Arch> = Vec::new();
        for spec in specs
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.is_empty())
        {
            let add: Vec<Arch> = match spec {
                "all" => Arch::ALL.to_vec(),
                "arm64" => vec![Arch::Aarch64],
                "amd64" => vec![Arch::X86_64],
                _ => match Arch::ALL.into_iter().find(|a| a.name() == spec) {
                    Some(a) => vec![a],
                    None => {
                        return Err(format!(
                            "--arch `{spec}`: not x86_64, aarch64, riscv64 nor all"
                        )
                        .into());
                    }
                },
            };
            for a in add {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        if out.is_empty() {
            out.push(Arch::host().ok_or_else(|| {
                format!(
                    "this machine is {}: pass --arch x86_64, aarch64 or riscv64",
                    std::env::consts::ARCH
                )
            })?);
        }
        Ok(out)
    }

    /// Debian's name of the architecture (`APT::Architecture`).
    pub(crate) fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::Riscv64 => "riscv64",
        }
    }

    /// The flavour of Debian's kernel packages that the VMs boot: the cloud
    /// kernels (few drivers, fast to boot) where Debian builds them.
    pub(crate) fn flavour(self) -> &'static str {
        match self {
            Arch::X86_64 => "cloud-amd64",
            Arch::Aarch64 => "cloud-arm64",
            Arch::Riscv64 => "riscv64",
        }
    }

    /// The Rust target of the guest binaries: static, so the initramfs
    /// needs no libc. musl where rustup ships its standard library; riscv64
    /// has none there, so glibc linked statically (`+crt-static`).
    pub(crate) fn target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
            Arch::Riscv64 => "riscv64gc-unknown-linux-gnu",
        }
    }

    /// The environment of the cargo build for [`Arch::target`]: its linker
    /// (and flags), unless the caller set them. The musl targets carry their
    /// own C runtime, so `rust-lld` (shipped with rustc) links them without a
    /// cross toolchain; static glibc needs Debian's cross gcc.
    pub(crate) fn cargo_env(self) -> Vec<(String, String)> {
        let var = |what: &str| {
            format!(
                "CARGO_TARGET_{}_{what}",
                self.target().to_uppercase().replace('-', "_")
            )
        };
        let mut env = Vec::new();
        let mut set = |k: String, v: &str| {
            if std::env::var_os(&k).is_none() {
                env.push((k, v.to_string()));
            }
        };
        match self {
            // The host's cc links it, as before.
            Arch::X86_64 if Arch::host() == Some(Arch::X86_64) => {}
            Arch::X86_64 | Arch::Aarch64 => set(var("LINKER"), "rust-lld"),
            Arch::Riscv64 => {
                set(var("LINKER"), CROSS_GCC);
                set(var("RUSTFLAGS"), "-C target-feature=+crt-static");
            }
        }
        env
    }

    /// What the build needs beyond `rustup target add`, if it is missing:
    /// the command that installs it.
    pub(crate) fn missing_build_tool(self) -> Option<String> {
        if self != Arch::Riscv64 || Arch::host() == Some(self) {
            return None;
        }
        let found = Command::new(CROSS_GCC)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        (!found).then(|| {
            format!(
                "{CROSS_GCC} links the static riscv64 binaries: \
                 `apt-get install -y gcc-riscv64-linux-gnu libc6-dev-riscv64-cross`"
            )
        })
    }

    /// The qemu that boots it.
    pub(crate) fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
            Arch::Riscv64 => "qemu-system-riscv64",
        }
    }

    /// The Debian package of [`Arch::qemu`].
    pub(crate) fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Aarch64 => "qemu-system-arm",
            Arch::Riscv64 => "qemu-system-misc",
        }
    }

    /// The accelerator, machine and CPU of qemu's command line. Under TCG:
    /// on aarch64, `pauth-impdef` uses qemu's cheap pointer-authentication
    /// hash instead of emulating QARMA, which otherwise dominates TCG's
    /// time; on riscv64, OpenSBI (qemu's bundled `-bios default`) starts the
    /// kernel.
    pub(crate) fn machine(self, kvm: bool) -> &'static [&'static str] {
        match (self, kvm) {
            (Arch::X86_64, true) => &["-accel", "kvm", "-cpu", "host"],
            (Arch::X86_64, false) => &["-accel", "tcg", "-cpu", "max"],
            (Arch::Aarch64, true) => &["-accel", "kvm", "-M", "virt", "-cpu", "host"],
            (Arch::Aarch64, false) => {
                &["-accel", "tcg", "-M", "virt", "-cpu", "max,pauth-impdef=on"]
            }
            (Arch::Riscv64, true) => &[
                "-accel", "kvm", "-M", "virt", "-cpu", "host", "-bios", "default",
            ],
            (Arch::Riscv64, false) => &[
                "-accel", "tcg", "-M", "virt", "-cpu", "rv64", "-bios", "default",
            ],
        }
    }

    /// Seconds a test binary may run unless `--timeout` says: riscv64 under
    /// TCG is the slowest (its Proactor tests take over 2 minutes there).
    pub(crate) fn default_timeout(self) -> u64 {
        match self {
            Arch::X86_64 | Arch::Aarch64 => crate::guest::DEFAULT_TIMEOUT,
            Arch::Riscv64 => 300,
        }
    }

    /// The kernel's name of the serial console qemu's `-serial` is wired to.
    pub(crate) fn console(self) -> &'static str {
        match self {
            Arch::X86_64 | Arch::Riscv64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }
}

/// Debian's cross gcc for riscv64 (package gcc-riscv64-linux-gnu).
const CROSS_GCC: &str = "riscv64-linux-gnu-gcc";

#[cfg(test)]
mod tests {
    use super::Arch;

    fn parse(s: &[&str]) -> Vec<&'static str> {
        let specs: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        Arch::parse_list(&specs)
            .unwrap()
            .into_iter()
            .map(Arch::name)
            .collect()
    }

    #[test]
    fn arch_lists_expand_without_duplicates() {
        assert_eq!(parse(&["all"]), ["x86_64", "aarch64", "riscv64"]);
        assert_eq!(parse(&["riscv64,arm64", "aarch64"]), ["riscv64", "aarch64"]);
        assert_eq!(parse(&[]), [std::env::consts::ARCH]);
        assert!(Arch::parse_list(&["sparc".to_string()]).is_err());
    }

    #[test]
    fn cargo_variables_name_the_target() {
        let env = Arch::Riscv64.cargo_env();
        if std::env::var_os("CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER").is_none() {
            assert!(env.contains(&(
                "CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER".into(),
                "riscv64-linux-gnu-gcc".into()
            )));
        }
        if std::env::var_os("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER").is_none() {
            assert_eq!(
                Arch::Aarch64.cargo_env(),
                [(
                    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER".to_string(),
                    "rust-lld".to_string()
                )]
            );
        }
    }
}
