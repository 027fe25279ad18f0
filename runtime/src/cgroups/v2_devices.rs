//! Device rules on cgroup v2: `linux.resources.devices` (and the rules every container
//! gets, as runc's) compiled into an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE and
//! attached to the container's cgroup. cgroup v2 has no devices.allow file: without such a
//! program, a container with CAP_MKNOD could mknod a host disk's node and open it.
//!
//! The program (as runc's devicefilter): the rules in order, the last one that matches a
//! request decides, deny when none does. It looks at them last first and returns at the
//! first match. A rule of type `a` with no major, no minor and access `rwm` matches every
//! request: the rules before it can never decide, and it becomes the default. A rule
//! matches a request of its type (`a`: any) and numbers (none or -1: any); an allow rule
//! when it grants every access asked for at once (open O_RDWR asks r and w), a deny rule
//! when it denies any of them.
//!
//! On create and on `update` the new program is attached (BPF_F_ALLOW_MULTI) before the
//! previous ones are detached: in between, a request must pass both, so there is no
//! moment without rules. The bpf(2) calls live in `syscall::linux`.

use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::syscall;
use crate::{Error, Result};

/// struct bpf_cgroup_dev_ctx's access_type: the device type in the low 16 bits...
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// ... and the access in the high 16.
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

const LICENSE: &std::ffi::CStr = c"Apache";

/// One rule, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// DEV_BLOCK, DEV_CHAR, or None for `a`.
    pub kind: Option<i32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// ACC_* bits.
    pub access: u32,
}

impl Rule {
    const fn allow(kind: i32, major: Option<u32>, minor: Option<u32>, access: u32) -> Rule {
        Rule {
            allow: true,
            kind: Some(kind),
            major,
            minor,
            access,
        }
    }

    /// Matches every request.
    fn is_everything(&self) -> bool {
        self.kind.is_none()
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

/// What every container may use after its config's rules, runc's list (its
/// AllowedDevices): mknod of any node, null, random, full, tty, zero, urandom, the pty
/// slaves, ptmx and tun.
pub const DEFAULT_RULES: &[Rule] = &[
    Rule::allow(DEV_CHAR, None, None, ACC_MKNOD),
    Rule::allow(DEV_BLOCK, None, None, ACC_MKNOD),
    Rule::allow(DEV_CHAR, Some(1), Some(3), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(1), Some(8), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(1), Some(7), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(5), Some(0), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(1), Some(5), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(1), Some(9), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(136), None, ACC_ALL),
    Rule::allow(DEV_CHAR, Some(5), Some(2), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(10), Some(200), ACC_ALL),
];

fn bad(i: usize, field: &str, what: impl std::fmt::Display) -> Error {
    Error::Cgroup(format!("linux.resources.devices[{i}].{field}: {what}"))
}

/// A device number: none or -1 is any; one above i32::MAX names no device Linux can
/// have (12-bit majors, 20-bit minors) and is kept as such.
fn number(i: usize, field: &str, n: Option<i64>) -> Result<Option<u32>> {
    match n {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| bad(i, field, format!("{n} is not a device number (or -1: any)"))),
    }
}

/// The config's rules, checked; FIFO rules (`p`), which no device cgroup knows, are left
/// out as runc does.
pub fn from_config(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            LinuxDeviceType::P => {
                tracing::debug!("linux.resources.devices[{i}]: a fifo rule, left out");
                continue;
            }
        };
        let access = match r.access().as_deref() {
            None => ACC_ALL,
            Some("") => return Err(bad(i, "access", "empty (want a subset of \"rwm\")")),
            Some(a) => a.chars().try_fold(0, |acc, c| match c {
                'r' => Ok(acc | ACC_READ),
                'w' => Ok(acc | ACC_WRITE),
                'm' => Ok(acc | ACC_MKNOD),
                _ => Err(bad(i, "access", format!("{a:?}: {c:?} is not r, w or m"))),
            })?,
        };
        out.push(Rule {
            allow: r.allow(),
            kind,
            major: number(i, "major", r.major())?,
            minor: number(i, "minor", r.minor())?,
            access,
        });
    }
    Ok(out)
}

/// The config's rules followed by the defaults: what the container's program enforces.
pub fn rules_for(config: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut rules = from_config(config)?;
    rules.extend_from_slice(DEFAULT_RULES);
    Ok(rules)
}

/// One `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers: R1 the context, R2 the type, R3 the access, R4 the major, R5 the minor;
// R0 the verdict (1 allow, 0 deny), R6 scratch.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

impl Insn {
    /// As the kernel reads it: code, dst_reg:4 | src_reg:4 (little-endian bitfields),
    /// off, imm, in host order.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = if cfg!(target_endian = "little") {
            self.dst | (self.src << 4)
        } else {
            (self.dst << 4) | self.src
        };
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// A "skip to the next rule" jump, its offset patched when the rule's block is complete.
const NEXT: i16 = i16::MIN;

/// The block of one rule: its tests (each jumping to the next block when it fails) and
/// its verdict. None when the rule can match no device.
fn block(rule: &Rule) -> Option<Vec<Insn>> {
    let mut b = Vec::new();
    if let Some(kind) = rule.kind {
        b.push(insn(JMP_JNE_K, R2, 0, NEXT, kind));
    }
    if rule.access != ACC_ALL {
        // R6 = requested & rule's access
        b.push(insn(ALU_MOV_X, R6, R3, 0, 0));
        b.push(insn(ALU_AND_K, R6, 0, 0, rule.access as i32));
        if rule.allow {
            // an allow rule grants all that is asked, or does not match
            b.push(insn(JMP_JNE_X, R6, R3, NEXT, 0));
        } else {
            // a deny rule matches as soon as it denies some of it
            b.push(insn(JMP_JEQ_K, R6, 0, NEXT, 0));
        }
    }
    for (reg, n) in [(R4, rule.major), (R5, rule.minor)] {
        if let Some(n) = n {
            // JNE's immediate is sign-extended to 64 bits, the loaded word zero-extended:
            // a number past i32::MAX could never be equal (and is no Linux device's).
            let imm = i32::try_from(n).ok()?;
            b.push(insn(JMP_JNE_K, reg, 0, NEXT, imm));
        }
    }
    b.push(insn(ALU_MOV_K, R0, 0, 0, i32::from(rule.allow)));
    b.push(insn(JMP_EXIT, 0, 0, 0, 0));
    let len = b.len();
    for (i, ins) in b.iter_mut().enumerate() {
        if ins.off == NEXT {
            // a jump's offset counts from the instruction after it
            ins.off = (len - i - 1) as i16;
        }
    }
    Some(b)
}

/// The program enforcing `rules` (in order, the last match wins, deny by default).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // A match-everything rule decides all that no later rule does.
    let (default, rules) = match rules.iter().rposition(Rule::is_everything) {
        Some(k) => (rules[k].allow, &rules[k + 1..]),
        None => (false, rules),
    };
    let mut p = vec![
        // R2 = ctx->access_type & 0xffff (the type)
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU_AND_K, R2, 0, 0, 0xffff),
        // R3 = ctx->access_type >> 16 (the access)
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU_RSH_K, R3, 0, 0, 16),
        // R4 = ctx->major, R5 = ctx->minor
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    // Last rule first. A rule whose verdict is the default's is kept: it may shadow an
    // earlier rule of the other verdict.
    for rule in rules.iter().rev() {
        if let Some(b) = block(rule) {
            p.extend(b);
        }
    }
    p.push(insn(ALU_MOV_K, R0, 0, 0, i32::from(default)));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// Whether a bpf(2) refusal may be passed over, as runc does (its canSkipEBPFError): a
/// refusal of permission to a rootless runtime (not root, or root of a user namespace:
/// bpf(2) is not ours there, and the host's device nodes are out of reach anyway), or any
/// refusal when the rules allow every access to everything they name.
fn may_skip(errno: Errno, rules: &[Rule]) -> bool {
    let permission = matches!(errno, Errno::EPERM | Errno::EACCES);
    (permission && is_rootless()) || rules.iter().all(|r| r.allow && r.access == ACC_ALL)
}

/// Not root, or root of a user namespace other than the host's.
fn is_rootless() -> bool {
    !nix::unistd::geteuid().is_root() || crate::rootless::in_user_namespace()
}

/// Attach the program of `config` (+ the defaults) to cgroup directory `dir`, then detach
/// the device programs that were there before.
pub fn apply(dir: &Path, config: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules = rules_for(config)?;
    let insns: Vec<[u8; 8]> = program(&rules).into_iter().map(Insn::to_bytes).collect();
    let cg = syscall::open_path(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .map_err(|e| Error::Cgroup(format!("open {}: {e}", dir.display())))?;
    // Rootless, this is the expected case (runc says nothing): logged at debug, so that
    // --debug shows it; anything else skipped (rules that allow everything) is a warning.
    let skip = |what: &str, errno: Errno| {
        if is_rootless() {
            tracing::debug!(
                "{}: rootless: linux.resources.devices not enforced ({what}: {errno}), as runc",
                dir.display()
            );
        } else {
            tracing::warn!(
                "{}: linux.resources.devices not enforced ({what}: {errno}): its rules allow \
                 everything they name",
                dir.display()
            );
        }
        Ok(())
    };
    let old = match syscall::bpf_query_cgroup_device(cg.as_fd()) {
        Ok(ids) => ids,
        Err(e) if may_skip(e, &rules) => return skip("BPF_PROG_QUERY", e),
        Err(e) => {
            return Err(Error::Cgroup(format!(
                "linux.resources.devices: list the device programs of {}: {e}",
                dir.display()
            )))
        }
    };
    let prog = match syscall::bpf_load_cgroup_device(&insns, LICENSE) {
        Ok(fd) => fd,
        Err((e, _)) if may_skip(e, &rules) => return skip("BPF_PROG_LOAD", e),
        Err((e, log)) => {
            return Err(Error::Cgroup(format!(
                "linux.resources.devices: the kernel refused the device filter ({} rules, {} \
                 instructions): {e}{}{log}",
                rules.len(),
                insns.len(),
                if log.is_empty() { "" } else { ": " }
            )))
        }
    };
    match syscall::bpf_attach_cgroup_device(cg.as_fd(), prog.as_fd()) {
        Ok(()) => {}
        Err(e) if may_skip(e, &rules) => return skip("BPF_PROG_ATTACH", e),
        Err(e) => {
            return Err(Error::Cgroup(format!(
                "linux.resources.devices: attach the device filter to {}: {e}",
                dir.display()
            )))
        }
    }
    tracing::debug!(
        "{}: device filter of {} rules attached, {} previous to detach",
        dir.display(),
        rules.len(),
        old.len()
    );
    for id in old {
        let detached = syscall::bpf_prog_fd_by_id(id)
            .and_then(|fd| syscall::bpf_detach_cgroup_device(cg.as_fd(), fd.as_fd()));
        match detached {
            Ok(()) => {}
            // gone meanwhile (another update)
            Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::Cgroup(format!(
                    "linux.resources.devices: detach the previous device filter (program \
                     {id}) from {}: {e}",
                    dir.display()
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `prog` on one request, as the kernel would (the subset of eBPF we emit).
    fn run(prog: &[Insn], kind: i32, access: u32, major: u32, minor: u32) -> bool {
        let ctx = [(access << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "runaway program");
            let i = prog[pc];
            let (d, s) = (i.dst as usize, i.src as usize);
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as i64 + i.off as i64) as usize
                }
            };
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1, "loads from the context only");
                    r[d] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU_AND_K => r[d] = u64::from((r[d] as u32) & (i.imm as u32)),
                ALU_RSH_K => r[d] = u64::from((r[d] as u32) >> i.imm),
                ALU_MOV_K => r[d] = u64::from(i.imm as u32),
                ALU_MOV_X => r[d] = u64::from(r[s] as u32),
                JMP_JNE_K => jump(r[d] != i.imm as i64 as u64, &mut pc),
                JMP_JEQ_K => jump(r[d] == i.imm as i64 as u64, &mut pc),
                JMP_JNE_X => jump(r[d] != r[s], &mut pc),
                JMP_EXIT => return r[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
            assert!(pc < prog.len(), "fell off the end");
        }
    }

    fn rules(json: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(json).unwrap()
    }

    const RW: u32 = ACC_READ | ACC_WRITE;

    #[test]
    fn runc_defaults_under_a_deny_all() {
        let r = rules_for(&rules(
            serde_json::json!([{ "allow": false, "access": "rwm" }]),
        ))
        .unwrap();
        let p = program(&r);
        // the defaults
        for (maj, min) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 4),
            (10, 200),
        ] {
            assert!(run(&p, DEV_CHAR, RW, maj, min), "c {maj}:{min} rw");
            assert!(run(&p, DEV_CHAR, ACC_MKNOD, maj, min), "c {maj}:{min} m");
        }
        // mknod of anything, but no open of what is not listed
        assert!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0));
        assert!(run(&p, DEV_CHAR, ACC_MKNOD, 10, 229));
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 8, 0), "host disk read");
        assert!(!run(&p, DEV_BLOCK, ACC_WRITE, 8, 0), "host disk write");
        assert!(!run(&p, DEV_BLOCK, RW, 259, 0), "nvme");
        assert!(!run(&p, DEV_CHAR, ACC_READ, 10, 229), "fuse");
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 1), "/dev/mem");
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 1, 3), "b 1:3 is not c 1:3");
        assert!(
            !run(&p, DEV_CHAR, ACC_READ, 5, 1),
            "console is not in runc's list"
        );
    }

    #[test]
    fn no_config_rules_is_the_defaults_and_deny() {
        let p = program(&rules_for(&[]).unwrap());
        // the prologue (6), 11 blocks (8 of 5, 1 of 4, 2 of 6), the default (2)
        assert_eq!(p.len(), 64);
        assert!(run(&p, DEV_CHAR, RW, 1, 3));
        assert!(!run(&p, DEV_BLOCK, RW, 8, 0));
        assert_eq!(
            p,
            program(
                &rules_for(&rules(
                    serde_json::json!([{ "allow": false, "access": "rwm" }])
                ))
                .unwrap()
            )
        );
    }

    #[test]
    fn allow_all() {
        let r = from_config(&rules(
            serde_json::json!([{ "allow": true, "access": "rwm" }]),
        ))
        .unwrap();
        let p = program(&r);
        // nothing but the prologue and "return 1"
        assert_eq!(p.len(), 8);
        assert_eq!(p[6], insn(ALU_MOV_K, R0, 0, 0, 1));
        assert!(run(&p, DEV_BLOCK, RW, 8, 0));
        assert!(run(&p, DEV_CHAR, ACC_ALL, 10, 229));
        // with the defaults after it: still everything
        let p = program(&rules_for(&rules(serde_json::json!([{ "allow": true }]))).unwrap());
        assert!(run(&p, DEV_BLOCK, RW, 8, 0));
    }

    #[test]
    fn deny_all() {
        let p = program(
            &from_config(&rules(serde_json::json!([{ "allow": false, "type": "a" }]))).unwrap(),
        );
        assert_eq!(p.len(), 8);
        assert_eq!(p[6], insn(ALU_MOV_K, R0, 0, 0, 0));
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 3));
        assert!(!run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0));
    }

    #[test]
    fn a_specific_allow_and_the_last_match_wins() {
        let r = from_config(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw" },
            { "allow": true, "type": "b", "major": 8, "access": "r" },
            { "allow": false, "type": "b", "major": 8, "minor": 1, "access": "r" },
        ])))
        .unwrap();
        let p = program(&r);
        assert!(run(&p, DEV_CHAR, RW, 10, 229));
        assert!(!run(&p, DEV_CHAR, ACC_MKNOD, 10, 229), "m not granted");
        assert!(!run(&p, DEV_CHAR, RW | ACC_MKNOD, 10, 229));
        assert!(!run(&p, DEV_CHAR, RW, 10, 228));
        assert!(!run(&p, DEV_BLOCK, RW, 10, 229));
        assert!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), "any minor of 8");
        assert!(!run(&p, DEV_BLOCK, RW, 8, 0), "w not granted");
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 8, 1), "the later deny wins");
        // a deny of r matches a request of rw
        let p = program(
            &from_config(&rules(serde_json::json!([
                { "allow": true, "access": "rwm" },
                { "allow": false, "type": "c", "major": 1, "minor": 3, "access": "r" },
            ])))
            .unwrap(),
        );
        assert!(!run(&p, DEV_CHAR, RW, 1, 3));
        assert!(run(&p, DEV_CHAR, ACC_WRITE, 1, 3));
        assert!(run(&p, DEV_CHAR, RW, 1, 5));
        // an earlier rule the everything-rule overrides is gone
        let p = program(
            &from_config(&rules(serde_json::json!([
                { "allow": true, "type": "b", "major": 8, "minor": 0, "access": "rwm" },
                { "allow": false, "access": "rwm" },
            ])))
            .unwrap(),
        );
        assert_eq!(p.len(), 8);
        assert!(!run(&p, DEV_BLOCK, RW, 8, 0));
    }

    #[test]
    fn wildcards() {
        let p = program(
            &from_config(&rules(serde_json::json!([
                { "allow": true, "type": "a", "major": 7, "access": "rwm" },
                { "allow": true, "type": "c", "major": -1, "minor": 4, "access": "m" },
            ])))
            .unwrap(),
        );
        assert!(run(&p, DEV_BLOCK, RW, 7, 12), "a 7:* (loop)");
        assert!(run(&p, DEV_CHAR, RW, 7, 0));
        assert!(run(&p, DEV_CHAR, ACC_MKNOD, 99, 4));
        assert!(!run(&p, DEV_CHAR, ACC_READ, 99, 4));
        assert!(!run(&p, DEV_BLOCK, ACC_MKNOD, 99, 4));
    }

    #[test]
    fn bad_rules_name_the_field() {
        let e = from_config(&rules(
            serde_json::json!([{ "allow": true }, { "allow": true, "access": "rx" }]),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.resources.devices[1].access"), "{e}");
        let e = from_config(&rules(serde_json::json!([{ "allow": true, "major": -2 }])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.resources.devices[0].major"), "{e}");
        let e = from_config(&rules(serde_json::json!([{ "allow": true, "access": "" }])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.resources.devices[0].access"), "{e}");
        // fifo rules are left out
        assert!(
            from_config(&rules(serde_json::json!([{ "allow": true, "type": "p" }])))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn numbers_past_i32_match_nothing() {
        let p = program(
            &from_config(&rules(serde_json::json!([
                { "allow": true, "type": "c", "major": 4_000_000_000u64, "access": "rwm" },
            ])))
            .unwrap(),
        );
        assert_eq!(p.len(), 8);
        assert!(!run(&p, DEV_CHAR, RW, 4_000_000_000, 0));
    }

    #[test]
    fn encoding() {
        assert_eq!(
            insn(LDX_MEM_W, R4, R1, 4, 0).to_bytes(),
            [0x61, 0x14, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            insn(JMP_JNE_K, R2, 0, 3, 2).to_bytes(),
            [0x55, 0x02, 3, 0, 2, 0, 0, 0]
        );
        assert_eq!(
            insn(ALU_MOV_X, R6, R3, 0, 0).to_bytes(),
            [0xbc, 0x36, 0, 0, 0, 0, 0, 0]
        );
    }

    /// Loads the program into the running kernel (needs root; skipped without bpf(2)).
    #[test]
    fn the_kernel_verifier_accepts_it() {
        let r = rules_for(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw" },
            { "allow": false, "type": "b", "major": 8, "access": "r" },
        ])))
        .unwrap();
        let insns: Vec<[u8; 8]> = program(&r).into_iter().map(Insn::to_bytes).collect();
        match syscall::bpf_load_cgroup_device(&insns, LICENSE) {
            Ok(_) => {}
            Err((Errno::EPERM, _)) => eprintln!("skipped: bpf(2) not permitted here"),
            Err((e, log)) => panic!("the kernel refused the program: {e}: {log}"),
        }
    }

    /// A cgroup of the host's cgroup2 mount (/sys/fs/cgroup, or /sys/fs/cgroup/unified on
    /// a hybrid host), removed on drop.
    struct TestCgroup(std::path::PathBuf);

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// `apply` on a real cgroup: one program attached, and a second `apply` (update)
    /// leaves exactly one, the new one (attached first, then the old one detached).
    #[test]
    fn apply_replaces_the_previous_filter() {
        if !nix::unistd::geteuid().is_root() {
            return eprintln!("skipped: not root");
        }
        let Some(mount) = capsa_linux::mountinfo::read()
            .into_iter()
            .find(|m| m.fstype == "cgroup2")
        else {
            return eprintln!("skipped: no cgroup2 mount");
        };
        let dir = std::path::Path::new(&mount.mount_point)
            .join(format!("capsa-unit-v2dev-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let cg = TestCgroup(dir);
        let ids = || {
            let fd = syscall::open_path(&cg.0, OFlag::O_RDONLY | OFlag::O_DIRECTORY).unwrap();
            syscall::bpf_query_cgroup_device(fd.as_fd()).unwrap()
        };
        assert!(ids().is_empty());
        apply(
            &cg.0,
            &rules(serde_json::json!([{ "allow": false, "access": "rwm" }])),
        )
        .unwrap();
        let first = ids();
        assert_eq!(first.len(), 1, "one filter after create");
        apply(&cg.0, &rules(serde_json::json!([{ "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw" }]))).unwrap();
        let second = ids();
        assert_eq!(second.len(), 1, "one filter after update: {second:?}");
        assert_ne!(first, second, "the new filter, not the old one");
        // a bad rule: an error naming the field, the filter in force untouched
        let e = apply(
            &cg.0,
            &rules(serde_json::json!([{ "allow": true, "access": "rwx" }])),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.resources.devices[0].access"), "{e}");
        assert_eq!(ids(), second);
    }
}
