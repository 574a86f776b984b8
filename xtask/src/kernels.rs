//! Obtains kernel images: Debian's cloud kernels through a private apt
//! configuration (nothing of the system's apt state is touched), cached under
//! `target/xtask/kernels/<series>/vmlinuz`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, root};

/// A long-term kernel series and where Debian ships it.
pub(crate) struct Series {
    /// What `--kernel` accepts.
    pub(crate) name: &'static str,
    /// The Debian release whose archive has it (names the private apt state).
    dist: &'static str,
    /// `sources.list` lines.
    sources: &'static [&'static str],
    /// An `apt-cache search --names-only` regex of its unsigned cloud images.
    pattern: &'static str,
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
        pattern: r"^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$",
    },
    Series {
        name: "6.1",
        dist: "bookworm",
        sources: &[
            "http://deb.debian.org/debian bookworm main",
            "http://deb.debian.org/debian-security bookworm-security main",
        ],
        pattern: r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$",
    },
    Series {
        name: "6.12",
        dist: "bookworm",
        sources: &[
            "http://deb.debian.org/debian bookworm main",
            "http://deb.debian.org/debian-security bookworm-security main",
        ],
        pattern: r"^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$",
    },
];

fn kernels_dir() -> PathBuf {
    root().join("target/xtask/kernels")
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
/// lists and cache).
fn apt_options(state: &Path) -> Vec<String> {
    vec![
        format!(
            "-oDir::Etc::SourceList={}",
            state.join("sources.list").display()
        ),
        "-oDir::Etc::SourceParts=/dev/null".into(),
        format!("-oDir::State::Lists={}", state.join("lists").display()),
        format!("-oDir::Cache={}", state.join("cache").display()),
        "-oDebug::NoLocking=1".into(),
        "-oAPT::Sandbox::User=root".into(),
        "-q".into(),
    ]
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Downloads the newest package of `series` that the mirror has into `work`
/// (emptied first); `None` if none could be.
fn download(series: &Series, opts: &[String], work: &Path) -> Result<Option<String>> {
    let found =
        run(Command::new("apt-cache")
            .args(opts)
            .args(["search", "--names-only", series.pattern]))?;
    // Newest first; a mirror may have dropped the newest file its index still
    // lists (bullseye-security does), so fall back to older ones.
    for name in newest_first(&found).iter().take(8) {
        let _ = std::fs::remove_dir_all(work);
        std::fs::create_dir_all(work)?;
        eprintln!("xtask: downloading {name}");
        match run(Command::new("apt-get")
            .args(opts)
            .args(["download", name])
            .current_dir(work))
        {
            Ok(_) => return Ok(Some(name.to_string())),
            Err(e) => eprintln!(
                "xtask: {name}: download failed, trying an older one: {}",
                e.to_string().lines().last().unwrap_or_default()
            ),
        }
    }
    Ok(None)
}

/// The kernel image of `series`, downloaded on first use.
pub(crate) fn obtain(series: &Series) -> Result<PathBuf> {
    let dir = kernels_dir().join(series.name);
    let image = dir.join("vmlinuz");
    if image.exists() {
        return Ok(image);
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!(
            "kernel {}: apt-get is needed to download Debian's kernel; or pass the path of a bzImage to --kernel",
            series.name
        )
        .into());
    }
    let state = kernels_dir().join("apt").join(series.dist);
    std::fs::create_dir_all(state.join("lists/partial"))?;
    std::fs::create_dir_all(state.join("cache/archives/partial"))?;
    let list: String = series
        .sources
        .iter()
        .map(|s| format!("deb [signed-by={KEYRING}] {s}\n"))
        .collect();
    std::fs::write(state.join("sources.list"), list)?;
    let opts = apt_options(&state);
    // Per process, so that two runs in one tree do not collide.
    let work = dir.join(format!("download.{}", std::process::id()));
    let stamp = state.join("updated");
    let mut package = None;
    for fresh_lists in [false, true] {
        if fresh_lists || !stamp.exists() {
            eprintln!("xtask: apt-get update ({})", series.dist);
            run(Command::new("apt-get").args(&opts).arg("update"))?;
            std::fs::write(&stamp, "")?;
        } else {
            eprintln!(
                "xtask: using the apt lists of an earlier run ({})",
                series.dist
            );
        }
        package = download(series, &opts, &work)?;
        if package.is_some() || fresh_lists {
            break;
        }
        // The lists were old: the archive has moved on. Refresh them once.
    }
    let package =
        package.ok_or_else(|| format!("kernel {}: no package could be downloaded", series.name))?;
    let deb = std::fs::read_dir(&work)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let tree = work.join("tree");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    let vmlinuz = std::fs::read_dir(tree.join("boot"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("{package} has no boot/vmlinuz-*"))?;
    let part = work.join("vmlinuz");
    std::fs::copy(&vmlinuz, &part)?;
    std::fs::rename(&part, &image)?;
    std::fs::write(
        dir.join("package"),
        format!(
            "{}\n",
            deb.file_name().unwrap_or_default().to_string_lossy()
        ),
    )?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::{SERIES, newest_first, version_key};

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
        let keys: Vec<_> = SERIES.iter().map(|s| version_key(s.name)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    }
}
