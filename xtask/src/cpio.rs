//! A writer of `newc` cpio archives, the format the kernel unpacks as an
//! initramfs (`Documentation/driver-api/early-userspace/buffer-format.rst`).

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

/// Builds an archive in memory; entries are written in the order added, so
/// add each directory before what it contains.
#[derive(Default)]
pub(crate) struct Cpio {
    out: Vec<u8>,
    next_ino: u32,
}

impl Cpio {
    /// An empty archive.
    pub(crate) fn new() -> Cpio {
        Cpio {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    /// A directory (`path` without a leading `/`).
    pub(crate) fn dir(&mut self, path: &str, perm: u32) {
        self.entry(path, S_IFDIR | perm, 2, (0, 0), &[]);
    }

    /// A regular file.
    pub(crate) fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | perm, 1, (0, 0), data);
    }

    /// A character device node.
    pub(crate) fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 1, (0, 0), 0, 0);
        self.out
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let size = u32::try_from(data.len()).expect("cpio newc entries are below 4 GiB");
        self.header(path, mode, nlink, rdev, size, ino);
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), size: u32, ino: u32) {
        let namesize = u32::try_from(name.len() + 1).expect("short name");
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cpio;

    /// One entry read back: name, mode, rdev, data.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Reads an archive back, trailer excluded.
    fn read(mut a: &[u8]) -> Vec<Entry> {
        let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
        let mut out = Vec::new();
        let total = a.len();
        loop {
            assert_eq!(&a[..6], b"070701");
            let field = |i: usize| hex(&a[6 + 8 * i..14 + 8 * i]);
            let (mode, size, rdev, namesize) =
                (field(1), field(6), (field(9), field(10)), field(11));
            let name_end = 110 + namesize as usize;
            assert_eq!(a[name_end - 1], 0, "names are NUL-terminated");
            let name = String::from_utf8(a[110..name_end - 1].to_vec()).unwrap();
            let data_start = name_end.next_multiple_of(4);
            let data_end = data_start + size as usize;
            let data = a[data_start..data_end].to_vec();
            a = &a[data_end.next_multiple_of(4)..];
            assert_eq!((total - a.len()) % 4, 0, "entries are 4-byte aligned");
            if name == "TRAILER!!!" {
                assert!(a.is_empty());
                return out;
            }
            out.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn round_trips_dirs_files_and_devices() {
        let mut c = Cpio::new();
        c.dir("dev", 0o755);
        c.char_dev("dev/console", 0o600, 5, 1);
        c.file("init", 0o755, b"#!abc");
        c.file("empty", 0o644, b"");
        c.file("tests/ab", 0o755, &[7u8; 1001]);
        let entries = read(&c.finish());
        assert_eq!(
            entries,
            vec![
                ("dev".into(), 0o040_755, (0, 0), vec![]),
                ("dev/console".into(), 0o020_600, (5, 1), vec![]),
                ("init".into(), 0o100_755, (0, 0), b"#!abc".to_vec()),
                ("empty".into(), 0o100_644, (0, 0), vec![]),
                ("tests/ab".into(), 0o100_755, (0, 0), vec![7; 1001]),
            ]
        );
    }

    #[test]
    fn header_layout_matches_the_kernel_format() {
        let mut c = Cpio::new();
        c.file("a", 0o644, b"xy");
        let a = c.finish();
        let expect = [
            "070701", "00000001", "000081A4", "00000000", "00000000", "00000001", "00000000",
            "00000002", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
        ]
        .concat();
        assert_eq!(std::str::from_utf8(&a[..110]).unwrap(), expect);
        assert_eq!(&a[110..112], b"a\0");
        assert_eq!(&a[112..114], b"xy");
        assert_eq!(&a[114..116], b"\0\0");
    }
}
