//! A tiny classic-BPF assembler: raw instructions plus forward jumps to labels.
//!
//! Conditional BPF jumps only reach 255 instructions ahead, so a conditional jump to a label is
//! emitted as `jcond k, 0, 1; ja label` (`ja` has a 32-bit offset): no distance limit.

use seccompiler::sock_filter;

/// BPF_LD | BPF_W | BPF_ABS (the first two are 0).
pub(super) const BPF_LD_W_ABS: u16 = 0x20;
pub(super) const BPF_JMP: u16 = 0x05;
pub(super) const BPF_JA: u16 = BPF_JMP;
pub(super) const BPF_JEQ: u16 = BPF_JMP | 0x10;
pub(super) const BPF_JGE: u16 = BPF_JMP | 0x30;
pub(super) const BPF_RET: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
pub(super) const DATA_NR: u32 = 0;
pub(super) const DATA_ARCH: u32 = 4;

/// The kernel's BPF_MAXINSNS.
pub(super) const MAX_INSNS: usize = 4096;

pub(super) fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(super) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Label(usize);

#[derive(Default)]
pub(super) struct Asm {
    insns: Vec<sock_filter>,
    labels: Vec<Option<usize>>,
    /// (pc of a `ja`, its target).
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub(super) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub(super) fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    pub(super) fn push(&mut self, insn: sock_filter) {
        self.insns.push(insn);
    }

    pub(super) fn load(&mut self, offset: u32) {
        self.push(stmt(BPF_LD_W_ABS, offset));
    }

    pub(super) fn ret(&mut self, action: u32) {
        self.push(stmt(BPF_RET, action));
    }

    pub(super) fn ja(&mut self, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(stmt(BPF_JA, 0));
    }

    /// Jumps to `target` when `A <op> k` holds, else falls through.
    pub(super) fn jump_if(&mut self, op: u16, k: u32, target: Label) {
        self.push(jump(op, k, 0, 1));
        self.ja(target);
    }

    /// Resolves the jumps. Every label is bound ahead of its jumps (BPF only jumps forward).
    pub(super) fn finish(mut self) -> Vec<sock_filter> {
        for (pc, label) in self.fixups {
            let target = self.labels[label.0].expect("every label is bound");
            assert!(target > pc, "BPF jumps only forward");
            self.insns[pc].k = u32::try_from(target - pc - 1).expect("program under 4096");
        }
        self.insns
    }

    pub(super) fn len(&self) -> usize {
        self.insns.len()
    }
}
