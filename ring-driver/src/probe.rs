//! What the running kernel supports: its version, and the opcodes
//! `IORING_REGISTER_PROBE` reports.

use std::fmt;

use ring_io_sys::{IORING_OPS, ProbeOpFlags};

use crate::sys;
use ring_io_ops::{KernelVersion, Unsupported};

/// The running kernel's version (from `uname(2)`), or `None` if its release
/// string cannot be parsed.
///
/// ```
/// let v = ring_io_driver::kernel_version().expect("uname release parses");
/// assert!(v.at_least(5, 1));
/// ```
pub fn kernel_version() -> Option<KernelVersion> {
    KernelVersion::parse(&sys::kernel_release())
}

/// The opcodes the kernel supports, from `IORING_REGISTER_PROBE`.
///
/// ```
/// use ring_io_driver::Probe;
/// use ring_io_sys::IORING_OP_RECV_ZC;
///
/// let probe = Probe::current()?;
/// if let Err(unsupported) = probe.check(IORING_OP_RECV_ZC) {
///     println!("{unsupported}"); // "RecvZc needs Linux 6.15; this kernel is 6.1"
/// }
/// print!("{}", probe.report());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Probe {
    last_op: u8,
    supported: [u64; 4],
    kernel: Option<KernelVersion>,
}

impl Probe {
    /// Probes through `ring`.
    pub(crate) fn new(ring: &sys::RingFd) -> Result<Self, ring_io_sys::Errno> {
        let buf = sys::probe(ring)?;
        let mut supported = [0u64; 4];
        let len = usize::from(buf.head.ops_len).min(256);
        for op in &buf.ops[..len] {
            if ProbeOpFlags::from_bits_retain(op.flags).contains(ProbeOpFlags::SUPPORTED) {
                supported[usize::from(op.op) / 64] |= 1 << (op.op % 64);
            }
        }
        Ok(Self {
            last_op: buf.head.last_op,
            supported,
            kernel: kernel_version(),
        })
    }

    /// Probes the running kernel through a small temporary ring.
    pub fn current() -> std::io::Result<Self> {
        let mut params = ring_io_sys::io_uring_params::default();
        // Closed when `ring` drops, at the end of this function.
        let ring = sys::setup(2, &mut params).map_err(crate::error::os)?;
        Self::new(&ring).map_err(crate::error::os)
    }

    /// A probe from known facts (for tests and simulated kernels): every
    /// opcode in `supported` is supported.
    pub fn from_supported(supported: &[u8], kernel: Option<KernelVersion>) -> Self {
        let mut bits = [0u64; 4];
        for &op in supported {
            bits[usize::from(op) / 64] |= 1 << (op % 64);
        }
        Self {
            last_op: supported.iter().copied().max().unwrap_or(0),
            supported: bits,
            kernel,
        }
    }

    /// The last opcode the kernel knows.
    pub fn last_op(&self) -> u8 {
        self.last_op
    }

    /// The kernel version, if known.
    pub fn kernel(&self) -> Option<KernelVersion> {
        self.kernel
    }

    /// True if the kernel supports `opcode` (an `IORING_OP_*`).
    pub fn supports(&self, opcode: u8) -> bool {
        self.supported[usize::from(opcode) / 64] & (1 << (opcode % 64)) != 0
    }

    /// `Ok` if the kernel supports `opcode`, else an error naming the op, the
    /// kernel it needs and the running kernel.
    pub fn check(&self, opcode: u8) -> Result<(), Unsupported> {
        if self.supports(opcode) {
            return Ok(());
        }
        let (name, since) = op_info(opcode);
        Err(Unsupported {
            what: name,
            needs: since,
            kernel: self.kernel,
        })
    }

    /// A readable table of every opcode of Linux 6.18: supported or not, and
    /// since which kernel.
    pub fn report(&self) -> ProbeReport<'_> {
        ProbeReport(self)
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let supported: Vec<&str> = IORING_OPS
            .iter()
            .filter(|op| self.supports(op.0))
            .map(|op| op.1)
            .collect();
        f.debug_struct("Probe")
            .field("last_op", &self.last_op)
            .field("kernel", &self.kernel)
            .field("supported", &supported)
            .finish()
    }
}

/// The builder name (`"RecvZc"`) and first kernel of an opcode, from
/// ring-ops's table.
pub(crate) fn op_info(opcode: u8) -> (&'static str, Option<(u16, u16)>) {
    match ring_io_ops::info_of(opcode) {
        Some(info) => (info.builder, Some((info.since.major, info.since.minor))),
        None => ("an opcode newer than Linux 6.18", None),
    }
}

/// [`Probe::report`]'s table.
pub struct ProbeReport<'a>(&'a Probe);

impl fmt::Display for ProbeReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let probe = self.0;
        match probe.kernel {
            Some(k) => writeln!(f, "kernel {k}, last opcode {}", probe.last_op)?,
            None => writeln!(f, "kernel unknown, last opcode {}", probe.last_op)?,
        }
        // Columns as wide as their longest entry (IORING_OP_SYNC_FILE_RANGE
        // is 25 characters).
        let width = |of: fn(&ring_io_ops::OpInfo) -> &'static str| {
            ring_io_ops::ALL
                .iter()
                .map(|op| of(op).len())
                .max()
                .unwrap_or(0)
        };
        let (builders, names) = (width(|op| op.builder), width(|op| op.name));
        let mut count = 0;
        for op in ring_io_ops::ALL.iter() {
            let yes = probe.supports(op.code);
            count += usize::from(yes);
            writeln!(
                f,
                "  {:>2} {:<builders$} {:<names$} {:<3}  since {}",
                op.code,
                op.builder,
                op.name,
                if yes { "yes" } else { "no" },
                op.since
            )?;
        }
        writeln!(f, "{count} of {} opcodes supported", IORING_OPS.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_then_minor() {
        let v = KernelVersion::new(5, 10, 200);
        assert!(v.at_least(5, 10));
        assert!(v.at_least(5, 4));
        assert!(!v.at_least(5, 11));
        assert!(!v.at_least(6, 0));
        assert!(KernelVersion::new(6, 1, 0) > v);
    }

    #[test]
    fn unsupported_ops_name_the_op_and_both_kernels() {
        let probe = Probe::from_supported(&[0, 1, 2], Some(KernelVersion::new(6, 1, 0)));
        assert!(probe.supports(1));
        assert!(!probe.supports(ring_io_sys::IORING_OP_RECV_ZC));
        let err = probe.check(ring_io_sys::IORING_OP_RECV_ZC).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RecvZc needs Linux 6.15; this kernel is 6.1"
        );
        assert!(probe.check(2).is_ok());
        let report = probe.report().to_string();
        assert!(report.contains("RECV_ZC"), "{report}");
        assert!(report.ends_with("3 of 63 opcodes supported\n"), "{report}");
    }

    #[test]
    fn the_report_aligns_its_columns_for_the_longest_names() {
        let probe = Probe::from_supported(&[0, 1, 2], Some(KernelVersion::new(6, 1, 0)));
        let report = probe.report().to_string();
        let rows: Vec<&str> = report
            .lines()
            .filter(|l| l.contains("IORING_OP_"))
            .collect();
        assert_eq!(rows.len(), ring_io_ops::ALL.len(), "{report}");
        // The yes/no column starts at the same place on every row.
        let column = |row: &str| {
            row.find(" yes ")
                .or_else(|| row.find(" no "))
                .unwrap_or_else(|| panic!("no yes/no in {row:?}"))
        };
        let first = column(rows[0]);
        for row in &rows {
            assert_eq!(column(row), first, "misaligned row {row:?} in\n{report}");
        }
    }
}
