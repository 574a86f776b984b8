//! Obtains kernel images: Debian's kernels through a private apt
//! configuration (nothing of the system's apt state is touched), cached under
//! `target/xtask/kernels/<arch>/<series>/vmlinuz` (or under
//! `$RING_XTASK_KERNELS`, a directory that outlives the work tree: CI keeps
//! its downloads there).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::Arch;
use crate::{Result, root};

/// A kernel series and where Debian ships it.
pub(crate) struct Series {
    /// What `--kernel` accepts.
    pub(crate) name: &'static str,
    /// The Debian release whose archive has it (names the private apt state).
    dist: &'static str,
    /// `sources.list` lines.
    sources: &'static [&'static str],
    /// An `apt-cache search --names-only` regex of the packages that carry
    /// its image; `{flavour}` stands for [`Arch::flavour`].
    pattern: &'static str,
    /// The architectures Debian builds it for.
    pub(crate) archs: &'static [Arch],
}

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Every series `--kernel all` runs, oldest first.
pub(crate) const SERIES: &[Series] = &[
    Series {
        name: "5.10",
        dist: "bullseye",
        sources: &[
            "http://deb.debian.org/debian bullseye main",
            "http://deb.debian.org/debian-security bullseye-security main",
        ],
        pattern: r"^linux-image-5\.10\.0-[0-9]+-{flavour}(-unsigned)?$",
        archs: &[Arch::X86_64, Arch::Aarch64],
    },
    Series {
        name: "6.1",
        dist: "bookworm",
        sources: &[
            "http://deb.debian.org/debian bookworm main",
            "http://deb.debian.org/debian-security bookworm-security main",
        ],
        pattern: r"^linux-image-6\.1\.0-[0-9]+-{flavour}(-unsigned)?$",
        archs: &[Arch::X86_64, Arch::Aarch64],
    },
    Series {
        name: "6.12",
        dist: "trixie",
        sources: &[
            "http://deb.debian.org/debian trixie main",
            "http://deb.debian.org/debian-security trixie-security main",
        ],
        pattern: r"^linux-image-6\.12\.[0-9]+\+deb13-{flavour}(-unsigned)?$",
        archs: &Arch::ALL,
    },
    // The newest kernel Debian builds: trixie's backports. Since 7.x the
    // image is in linux-binary(-unsigned)-*, and linux-image-* only depends
    // on it; either is tried, newest first, until one has an image.
    Series {
        name: "newest",
        dist: "trixie-backports",
        sources: &["http://deb.debian.org/debian trixie-backports main"],
        pattern: r"^linux-(image|binary|binary-unsigned)-[0-9]+\.[0-9]+\.[0-9]+\+deb13-{flavour}(-unsigned)?$",
        archs: &Arch::ALL,
    },
];

impl Series {
    /// Whether Debian builds this series for `arch`.
    pub(crate) fn has(&self, arch: Arch) -> bool {
        self.archs.contains(&arch)
    }

    /// The package regex for `arch`.
    fn pattern(&self, arch: Arch) -> String {
        self.pattern.replace("{flavour}", arch.flavour())
    }
}

/// Where kernels are cached: `$RING_XTASK_KERNELS`, else under `target/`.
fn kernels_dir() -> PathBuf {
    std::env::var_os("RING_XTASK_KERNELS")
        .filter(|d| !d.is_empty())
        .map_or_else(|| root().join("target/xtask/kernels"), PathBuf::from)
}

/// The numbers of a version-like string, for ordering (`6.12.9` < `6.12.10`).
fn version_key(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect()
}

/// The packages of `apt-cache search` output, newest first.
fn newest_first(search_output: &str) -> Vec<&str> {
    let mut names: Vec<&str> = search_output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names.sort_by_key(|name| std::cmp::Reverse(version_key(name)));
    names
}

/// apt-get/apt-cache options that confine apt to `state` (its own sources,
/// lists and cache) and to `arch`'s packages, fetching only the package
/// lists (no translations, no AppStream metadata).
fn apt_options(state: &Path, arch: Arch) -> Vec<String> {
    vec![
        format!(
            "-oDir::Etc::SourceList={}",
            state.join("sources.list").display()
        ),
        "-oDir::Etc::SourceParts=/dev/null".into(),
        format!("-oDir::State::Lists={}", state.join("lists").display()),
        format!("-oDir::Cache={}", state.join("cache").display()),
        format!("-oAPT::Architecture={}", arch.debian()),
        format!("-oAPT::Architectures={}", arch.debian()),
        "-oAcquire::Languages=none".into(),
        "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
        "-oDebug::NoLocking=1".into(),
        "-oAPT::Sandbox::User=root".into(),
        "-q".into(),
    ]
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        // The command on a line of its own: the last line is apt's error.
        return Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel image in an unpacked package: `boot/vmlinuz-*` (amd64,
/// arm64), `boot/vmlinux-*` (riscv64), or `usr/lib/modules/*/vmlinuz*`
/// (Debian's 7.x packages).
fn find_image(tree: &Path) -> Option<PathBuf> {
    let mut dirs = vec![tree.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let path = e.path();
            let Ok(ty) = e.file_type() else { continue };
            if ty.is_dir() {
                dirs.push(path);
            } else if ty.is_file() && e.file_name().to_string_lossy().starts_with("vmlinu") {
                return Some(path);
            }
        }
    }
    None
}

/// Downloads the newest package of `series` for `arch` that the mirror has
/// and that carries a kernel image, unpacked into `work` (emptied first):
/// the package's file name and its image; `None` if there is none.
fn download(
    series: &Series,
    arch: Arch,
    opts: &[String],
    work: &Path,
) -> Result<Option<(String, PathBuf)>> {
    let found = run(Command::new("apt-cache").args(opts).args([
        "search",
        "--names-only",
        &series.pattern(arch),
    ]))?;
    // Newest first; a mirror may have dropped the newest files its index
    // still lists (bullseye-security has, for arm64, several versions
    // back), so fall back to older ones (each miss costs one request).
    for name in newest_first(&found).iter().take(24) {
        let _ = std::fs::remove_dir_all(work);
        std::fs::create_dir_all(work)?;
        eprintln!("xtask: downloading {name} ({})", arch.debian());
        if let Err(e) = run(Command::new("apt-get")
            .args(opts)
            .args(["download", name])
            .current_dir(work))
        {
            eprintln!(
                "xtask: {name}: download failed, trying an older one: {}",
                e.to_string().lines().last().unwrap_or_default()
            );
            continue;
        }
        let deb = std::fs::read_dir(work)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .ok_or("apt-get download left no .deb")?;
        let tree = work.join("tree");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
        match find_image(&tree) {
            Some(image) => {
                let file = deb.file_name().unwrap_or_default().to_string_lossy();
                return Ok(Some((file.into_owned(), image)));
            }
            None => eprintln!("xtask: {name} has no kernel image, trying the next one"),
        }
    }
    Ok(None)
}

/// The kernel image of `series` for `arch`, downloaded on first use.
pub(crate) fn obtain(series: &Series, arch: Arch) -> Result<PathBuf> {
    if !series.has(arch) {
        return Err(format!("Debian has no {} kernel {}", arch.name(), series.name).into());
    }
    let dir = kernels_dir().join(arch.name()).join(series.name);
    let image = dir.join("vmlinuz");
    if image.exists() {
        return Ok(image);
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!(
            "kernel {}: apt-get is needed to download Debian's kernel; or pass the path of a kernel image to --kernel",
            series.name
        )
        .into());
    }
    let state = kernels_dir()
        .join("apt")
        .join(format!("{}-{}", series.dist, arch.debian()));
    std::fs::create_dir_all(state.join("lists/partial"))?;
    std::fs::create_dir_all(state.join("cache/archives/partial"))?;
    std::fs::create_dir_all(&dir)?;
    let list: String = series
        .sources
        .iter()
        .map(|s| format!("deb [signed-by={KEYRING}] {s}\n"))
        .collect();
    std::fs::write(state.join("sources.list"), list)?;
    let opts = apt_options(&state, arch);
    // Per process, so that two runs in one tree do not collide.
    let work = dir.join(format!("download.{}", std::process::id()));
    let stamp = state.join("updated");
    let mut found = None;
    for fresh_lists in [false, true] {
        if fresh_lists || !stamp.exists() {
            eprintln!("xtask: apt-get update ({} {})", series.dist, arch.debian());
            run(Command::new("apt-get").args(&opts).arg("update"))?;
            std::fs::write(&stamp, "")?;
        } else {
            eprintln!(
                "xtask: using the apt lists of an earlier run ({} {})",
                series.dist,
                arch.debian()
            );
        }
        found = download(series, arch, &opts, &work)?;
        if found.is_some() || fresh_lists {
            break;
        }
        // The lists were old: the archive has moved on. Refresh them once.
    }
    let (package, vmlinuz) = found.ok_or_else(|| {
        format!(
            "kernel {} ({}): no package could be downloaded",
            series.name,
            arch.name()
        )
    })?;
    let part = work.join("vmlinuz");
    std::fs::copy(&vmlinuz, &part)?;
    std::fs::rename(&part, &image)?;
    std::fs::write(dir.join("package"), format!("{package}\n"))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::{Arch, SERIES, find_image, newest_first, version_key};

    #[test]
    fn picks_the_newest_package_numerically() {
        let out = "linux-image-6.12.9+deb12-cloud-amd64-unsigned - Linux 6.12\n\
                   linux-image-6.12.43+deb12-cloud-amd64-unsigned - Linux 6.12\n\
                   linux-image-6.12.111+deb12-cloud-amd64-unsigned - Linux 6.12\n\
                   linux-image-6.12.38+deb12-cloud-amd64-unsigned - Linux 6.12\n";
        assert_eq!(
            newest_first(out),
            [
                "linux-image-6.12.111+deb12-cloud-amd64-unsigned",
                "linux-image-6.12.43+deb12-cloud-amd64-unsigned",
                "linux-image-6.12.38+deb12-cloud-amd64-unsigned",
                "linux-image-6.12.9+deb12-cloud-amd64-unsigned",
            ]
        );
        assert!(newest_first("").is_empty());
        assert!(version_key("5.10.0-9") < version_key("5.10.0-10"));
    }

    #[test]
    fn series_are_oldest_first_and_distinct() {
        let numbered: Vec<_> = SERIES.iter().filter(|s| s.name != "newest").collect();
        let keys: Vec<_> = numbered.iter().map(|s| version_key(s.name)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(SERIES.last().map(|s| s.name), Some("newest"));
    }

    #[test]
    fn patterns_name_each_architecture_flavour() {
        let newest = SERIES.last().unwrap();
        let arm = newest.pattern(Arch::Aarch64);
        assert!(arm.ends_with(r"\+deb13-cloud-arm64(-unsigned)?$"), "{arm}");
        assert!(!SERIES[0].has(Arch::Riscv64));
        assert!(
            SERIES
                .iter()
                .all(|s| s.has(Arch::X86_64) && s.has(Arch::Aarch64))
        );
        assert!(SERIES[0].pattern(Arch::X86_64).contains("-cloud-amd64("));
    }

    #[test]
    fn the_image_is_found_wherever_the_package_keeps_it() {
        let dir = std::env::temp_dir().join(format!("xtask-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let deep = dir.join("usr/lib/modules/7.3.4+deb13-cloud-arm64");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(dir.join("usr/share/doc")).unwrap();
        std::fs::write(dir.join("usr/share/doc/changelog"), "").unwrap();
        assert_eq!(find_image(&dir), None);
        std::fs::write(deep.join("vmlinuz.unsigned"), "MZ").unwrap();
        assert_eq!(find_image(&dir), Some(deep.join("vmlinuz.unsigned")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
