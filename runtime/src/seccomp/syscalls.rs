//! Syscall name → number tables, generated from the kernel's UAPI headers by gen_syscalls.py.

#[rustfmt::skip]
mod table {
    include!("syscalls_table.rs");
}

/// One syscall table of one ABI.
pub(super) type Table = &'static [(&'static str, u32)];

pub(super) const X86_64: Table = table::X86_64;
pub(super) const X86: Table = table::X86;
pub(super) const X32: Table = table::X32;
pub(super) const AARCH64: Table = table::AARCH64;

/// The number of `name` in `table` (sorted by name).
pub(super) fn lookup(table: Table, name: &str) -> Option<u32> {
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for table in [X86_64, X86, X32, AARCH64] {
            assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn native_table_agrees_with_libc() {
        #[cfg(target_arch = "x86_64")]
        let native = X86_64;
        #[cfg(target_arch = "aarch64")]
        let native = AARCH64;
        let expect = [
            ("read", libc::SYS_read),
            ("write", libc::SYS_write),
            ("openat", libc::SYS_openat),
            ("mkdirat", libc::SYS_mkdirat),
            ("clone3", libc::SYS_clone3),
            ("getpid", libc::SYS_getpid),
            ("personality", libc::SYS_personality),
            ("fchmodat2", libc::SYS_fchmodat2),
            ("mseal", libc::SYS_mseal),
            ("newfstatat", libc::SYS_newfstatat),
            ("fcntl", libc::SYS_fcntl),
        ];
        for (name, nr) in expect {
            assert_eq!(lookup(native, name), Some(nr as u32), "{name}");
        }
        assert_eq!(lookup(native, "no_such_syscall"), None);
    }

    #[test]
    fn compat_tables() {
        assert_eq!(lookup(X86, "getpid"), Some(20));
        assert_eq!(lookup(X86, "socketcall"), Some(102));
        assert_eq!(lookup(X32, "getpid"), Some(0x4000_0000 + 39));
        assert_eq!(lookup(X32, "rt_sigaction"), Some(0x4000_0000 + 512));
        assert_eq!(lookup(AARCH64, "getpid"), Some(172));
        assert_eq!(lookup(AARCH64, "open"), None);
    }
}
