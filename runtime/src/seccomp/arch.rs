//! Which syscall ABIs a filter covers: the native one plus the listed ones this kernel can run.
//!
//! The kernel reports the ABI of each syscall in `seccomp_data.arch` (an AUDIT_ARCH value); x32
//! shares x86_64's value and sets bit 30 of the syscall number instead. A listed architecture
//! that this machine can never run (e.g. s390x on x86_64) cannot appear there, so it needs no
//! code; an ABI that can appear but is not covered gets the bad-arch action (kill).

use oci_spec::runtime::Arch;

use super::syscalls::{self, Table};

pub(super) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub(super) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub(super) const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One syscall ABI the filter gives rules to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Abi {
    X86_64,
    X86,
    X32,
    Aarch64,
}

impl Abi {
    pub(super) fn table(self) -> Table {
        match self {
            Abi::X86_64 => syscalls::X86_64,
            Abi::X86 => syscalls::X86,
            Abi::X32 => syscalls::X32,
            Abi::Aarch64 => syscalls::AARCH64,
        }
    }

    /// 32-bit ABIs pass 32-bit arguments: conditions compare the low half only.
    pub(super) fn is_32bit(self) -> bool {
        matches!(self, Abi::X86)
    }
}

/// The native ABI of this build, `None` where capsa has no syscall table.
pub(super) fn native() -> Option<Abi> {
    if cfg!(target_arch = "x86_64") {
        Some(Abi::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Abi::Aarch64)
    } else {
        None
    }
}

/// What a listed architecture means on this machine.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Listed {
    /// An ABI the filter covers.
    Covered(Abi),
    /// An ABI this machine can run but capsa has no table for (arm on arm64).
    NoTable,
    /// An ABI this kernel never reports: nothing to do.
    Unreachable,
}

pub(super) fn classify(arch: Arch, native: Abi) -> Listed {
    match (native, arch) {
        (n, Arch::ScmpArchNative) => Listed::Covered(n),
        (Abi::X86_64, Arch::ScmpArchX86_64) => Listed::Covered(Abi::X86_64),
        (Abi::X86_64, Arch::ScmpArchX86) => Listed::Covered(Abi::X86),
        (Abi::X86_64, Arch::ScmpArchX32) => Listed::Covered(Abi::X32),
        (Abi::Aarch64, Arch::ScmpArchAarch64) => Listed::Covered(Abi::Aarch64),
        (Abi::Aarch64, Arch::ScmpArchArm) => Listed::NoTable,
        _ => Listed::Unreachable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_on_x86_64() {
        let n = Abi::X86_64;
        assert_eq!(classify(Arch::ScmpArchNative, n), Listed::Covered(n));
        assert_eq!(classify(Arch::ScmpArchX32, n), Listed::Covered(Abi::X32));
        assert_eq!(classify(Arch::ScmpArchX86, n), Listed::Covered(Abi::X86));
        assert_eq!(classify(Arch::ScmpArchS390x, n), Listed::Unreachable);
        assert_eq!(classify(Arch::ScmpArchArm, Abi::Aarch64), Listed::NoTable);
    }
}
