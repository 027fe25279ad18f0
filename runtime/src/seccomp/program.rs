//! The BPF program: an arch dispatch written here, one segment per rule in config order,
//! argument conditions compiled by seccompiler.
//!
//! ```text
//!   ld arch
//!   arch == native?  → NATIVE
//!   arch == i386?    → X86            (when listed)
//!   ret KILL_PROCESS                   (an ABI the filter does not cover)
//! NATIVE:
//!   ld nr
//!   nr == -1? → RULES                 (x86_64 only: a tracer's "skip this syscall")
//!   nr >= 0x40000000? → HIGH          (x86_64 only: x32 syscalls carry that bit)
//! RULES:
//!   segment per rule …, ret default
//! HIGH:
//!   x32 segments …, ret default        (or ret KILL_PROCESS when x32 is not listed)
//! X86:
//!   x86 segments …, ret default
//! ```
//!
//! A segment without arguments is a binary search over its syscall numbers ending in `jeq`s to
//! a `ret action`. A segment with arguments is seccompiler's `SeccompFilter` of those syscalls with
//! one rule, compiled with stand-in actions (match = ALLOW, mismatch = TRAP) and its architecture
//! check cut off; its `ret ALLOW` become `ret <action>` and its `ret TRAP` become `ja <next
//! segment>`, same length, so seccompiler's own jumps stay right. The first matching rule wins.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use oci_spec::runtime::LinuxSeccompOperator as Op;
use seccompiler::{
    sock_filter, BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::arch::{Abi, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::bpf::{self, Asm, Label, BPF_JEQ, BPF_JGE, BPF_RET, DATA_ARCH, DATA_NR};
use super::rules::{Cond, Validated, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_TRAP};
use super::syscalls;
use super::SeccompError;

/// What an ABI the filter does not cover gets (libseccomp's bad-arch action, process-wide).
const BAD_ARCH: u32 = RET_KILL_PROCESS;
/// Syscalls compared one by one at the leaves of the search tree.
const LEAF: usize = 16;

pub(super) fn build(v: &Validated) -> Result<Vec<sock_filter>, SeccompError> {
    warn_unknown(v);
    let prefix = seccompiler_prefix()?;
    let mut asm = Asm::default();

    let native = asm.label();
    let compat_labels: Vec<_> = v
        .compat
        .iter()
        .filter(|&&abi| abi == Abi::X86)
        .map(|&abi| (abi, asm.label()))
        .collect();
    asm.load(DATA_ARCH);
    asm.jump_if(BPF_JEQ, audit_arch(v.native), native);
    for &(_, label) in &compat_labels {
        asm.jump_if(BPF_JEQ, AUDIT_ARCH_I386, label);
    }
    asm.ret(BAD_ARCH);

    asm.bind(native);
    asm.load(DATA_NR);
    let high = asm.label();
    if v.native == Abi::X86_64 {
        let rules = asm.label();
        asm.jump_if(BPF_JEQ, u32::MAX, rules);
        asm.jump_if(BPF_JGE, X32_SYSCALL_BIT, high);
        asm.bind(rules);
    }
    section(&mut asm, v, v.native, &prefix)?;
    if v.native == Abi::X86_64 {
        asm.bind(high);
        if v.compat.contains(&Abi::X32) {
            section(&mut asm, v, Abi::X32, &prefix)?;
        } else {
            asm.ret(BAD_ARCH);
        }
    }
    for (abi, label) in compat_labels {
        asm.bind(label);
        section(&mut asm, v, abi, &prefix)?;
    }

    if asm.len() > bpf::MAX_INSNS {
        return Err(SeccompError::TooLarge(asm.len()));
    }
    Ok(asm.finish())
}

fn audit_arch(abi: Abi) -> u32 {
    match abi {
        Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
        Abi::X86 => AUDIT_ARCH_I386,
        Abi::Aarch64 => AUDIT_ARCH_AARCH64,
    }
}

/// The rules of one ABI, then its default (after runc's -ENOSYS stub, see
/// `Validated::enosys`).
fn section(
    asm: &mut Asm,
    v: &Validated,
    abi: Abi,
    prefix: &[sock_filter],
) -> Result<(), SeccompError> {
    let enosys = enosys_stub(asm, v, abi);
    for (i, rule) in v.rules.iter().enumerate() {
        let nrs: BTreeSet<u32> = rule
            .names
            .iter()
            .filter_map(|n| syscalls::lookup(abi.table(), n))
            .collect();
        if nrs.is_empty() {
            continue;
        }
        let after = asm.label();
        if rule.args.is_empty() {
            // A rule before may have loaded an argument; seccompiler's code loads nr itself.
            asm.load(DATA_NR);
            let nrs: Vec<u32> = nrs.into_iter().collect();
            match_any(asm, &nrs, rule.action);
        } else {
            let body = conditional(&nrs, &rule.args, abi, prefix).map_err(|source| {
                SeccompError::Backend {
                    field: format!("linux.seccomp.syscalls[{i}].args"),
                    source,
                }
            })?;
            for insn in body {
                match (insn.code, insn.k) {
                    (BPF_RET, RET_ALLOW) => asm.ret(rule.action),
                    (BPF_RET, RET_TRAP) => asm.ja(after),
                    _ => asm.push(insn),
                }
            }
        }
        asm.bind(after);
    }
    asm.ret(v.default);
    if let Some(stub) = enosys {
        asm.bind(stub);
        asm.ret(RET_ERRNO | libc::ENOSYS as u32);
    }
    Ok(())
}

/// `nr` past the highest syscall of `abi` the profile names → the returned label (where
/// `section` puts `ret ERRNO(ENOSYS)`). x86_64's -1 (a tracer skipping the call) is not
/// a syscall and goes on to the rules.
fn enosys_stub(asm: &mut Asm, v: &Validated, abi: Abi) -> Option<Label> {
    if !v.enosys(abi) {
        return None;
    }
    let max = v
        .rules
        .iter()
        .flat_map(|r| &r.names)
        .filter_map(|n| syscalls::lookup(abi.table(), n))
        .max()?;
    let stub = asm.label();
    asm.load(DATA_NR);
    if abi == Abi::X86_64 {
        let rules = asm.label();
        asm.jump_if(BPF_JEQ, u32::MAX, rules);
        asm.jump_if(BPF_JGE, max + 1, stub);
        asm.bind(rules);
    } else {
        asm.jump_if(BPF_JGE, max + 1, stub);
    }
    Some(stub)
}

/// `ret action` when nr (in A) is one of `nrs` (sorted), else falls through: a binary search
/// (`jge` on the middle number) down to leaves of a few `jeq`, about 2·log2(n/16) + 16
/// instructions per syscall instead of n. Within one rule the order does not matter.
fn match_any(asm: &mut Asm, nrs: &[u32], action: u32) {
    let miss = asm.label();
    search(asm, nrs, action, miss);
    asm.bind(miss);
}

fn search(asm: &mut Asm, nrs: &[u32], action: u32, miss: Label) {
    let start = asm.len();
    if nrs.len() <= LEAF {
        for (j, &nr) in nrs.iter().enumerate() {
            // To this leaf's `ret`, after the remaining `jeq`s and the `ja`.
            let jt = u8::try_from(nrs.len() - j).expect("leaf under 255");
            asm.push(bpf::jump(BPF_JEQ, nr, jt, 0));
        }
        asm.ja(miss);
        asm.ret(action);
    } else {
        let (low, high) = nrs.split_at(nrs.len() / 2);
        // The low half's code is skipped with a short jump when it is close enough.
        match u8::try_from(search_len(low.len())) {
            Ok(skip) => asm.push(bpf::jump(BPF_JGE, high[0], skip, 0)),
            Err(_) => {
                let right = asm.label();
                asm.jump_if(BPF_JGE, high[0], right);
                search(asm, low, action, miss);
                asm.bind(right);
                search(asm, high, action, miss);
                debug_assert_eq!(asm.len() - start, search_len(nrs.len()));
                return;
            }
        }
        search(asm, low, action, miss);
        search(asm, high, action, miss);
    }
    debug_assert_eq!(asm.len() - start, search_len(nrs.len()));
}

/// The number of instructions `search` emits for `n` syscalls.
fn search_len(n: usize) -> usize {
    if n <= LEAF {
        return n + 2;
    }
    let low = search_len(n / 2);
    let node = if low <= usize::from(u8::MAX) { 1 } else { 2 };
    node + low + search_len(n - n / 2)
}

/// seccompiler's architecture check, which every program it compiles starts with.
fn seccompiler_prefix() -> Result<Vec<sock_filter>, SeccompError> {
    let empty = SeccompFilter::new(
        BTreeMap::new(),
        SeccompAction::Trap,
        SeccompAction::Allow,
        ARCH,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|source| SeccompError::Backend {
        field: "linux.seccomp".into(),
        source,
    })?;
    Ok(empty[..empty.len() - 1].to_vec())
}

/// The architecture seccompiler is told; only its (removed) arch check depends on it.
const ARCH: TargetArch = TargetArch::x86_64;

/// seccompiler's code for `nrs` with one rule made of `args`, without its arch check.
fn conditional(
    nrs: &BTreeSet<u32>,
    args: &[Cond],
    abi: Abi,
    prefix: &[sock_filter],
) -> Result<Vec<sock_filter>, BackendError> {
    let len = if abi.is_32bit() {
        SeccompCmpArgLen::Dword
    } else {
        SeccompCmpArgLen::Qword
    };
    let conds = args
        .iter()
        .map(|c| {
            let (op, value) = match c.op {
                Op::ScmpCmpNe => (SeccompCmpOp::Ne, c.value),
                Op::ScmpCmpLt => (SeccompCmpOp::Lt, c.value),
                Op::ScmpCmpLe => (SeccompCmpOp::Le, c.value),
                Op::ScmpCmpEq => (SeccompCmpOp::Eq, c.value),
                Op::ScmpCmpGe => (SeccompCmpOp::Ge, c.value),
                Op::ScmpCmpGt => (SeccompCmpOp::Gt, c.value),
                Op::ScmpCmpMaskedEq => (SeccompCmpOp::MaskedEq(c.value), c.value_two),
            };
            let value = if abi.is_32bit() {
                value & 0xffff_ffff
            } else {
                value
            };
            SeccompCondition::new(c.index, len.clone(), op, value)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rule = SeccompRule::new(conds)?;
    let rules = nrs
        .iter()
        .map(|&nr| (i64::from(nr), vec![rule.clone()]))
        .collect();
    let program = BpfProgram::try_from(SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        ARCH,
    )?)?;
    assert!(
        program.starts_with(prefix),
        "seccompiler output starts with its arch check"
    );
    Ok(program[prefix.len()..].to_vec())
}

/// A name no covered ABI knows is skipped, logged at debug level: the stock profiles of
/// podman and docker list syscalls of other architectures (ppc's `recv`, …), and a warning
/// on every container's stderr would only be noise (runc does not print one either).
fn warn_unknown(v: &Validated) {
    let unknown = unknown_names(v);
    if !unknown.is_empty() {
        tracing::debug!(
            "linux.seccomp: unknown syscalls skipped: {}",
            unknown.join(" ")
        );
    }
}

/// The names no covered ABI knows, each once, as `name (syscalls[i])`.
pub(super) fn unknown_names(v: &Validated) -> Vec<String> {
    let abis: Vec<Abi> = std::iter::once(v.native)
        .chain(v.compat.iter().copied())
        .collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, rule) in v.rules.iter().enumerate() {
        for name in &rule.names {
            let known = abis
                .iter()
                .any(|abi| syscalls::lookup(abi.table(), name).is_some());
            if !known && seen.insert(name.as_str()) {
                out.push(format!("{name} (syscalls[{i}])"));
            }
        }
    }
    out
}
