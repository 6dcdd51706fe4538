//! Whether a program's tail calls are direct jumps. The verifier makes a tail call a direct
//! jump (patched whenever the program array is written) only when its index is one constant
//! on every path to it; any other is an indirect jump, which costs a retpoline where the kernel
//! has them. The compiler merges two tail calls that differ only in their index into one with
//! a variable index unless something keeps them apart (`lvs-ebpf/src/maps.rs`, `tail_call`):
//! [`variable_tail_calls`] finds such a call in a loaded program's translated instructions.

use crate::bpf::{CALL, FN_TAIL_CALL, Insn, LD_IMM64};

/// Instruction classes (the opcode's low 3 bits).
const CLASS_LDX: u8 = 0x01;
const CLASS_ALU: u8 = 0x04;
const CLASS_JMP: u8 = 0x05;
const CLASS_JMP32: u8 = 0x06;
const CLASS_ALU64: u8 = 0x07;
/// Jump operations (the opcode's high 4 bits) that do not jump within the program.
const OP_JA: u8 = 0x00;
const OP_CALL: u8 = 0x80;
const OP_EXIT: u8 = 0x90;
/// `dst = imm`, 64-bit and 32-bit.
const MOV64_K: u8 = 0xb7;
const MOV32_K: u8 = 0xb4;
/// The register of a tail call's index.
const R3: u8 = 3;

/// The indexes of the tail calls in `insns` whose index register is not set to a constant in a
/// straight line before them: a path that joins between the constant and the call (a jump
/// landing there), a call or jump in the way, or an index not set from an immediate.
pub fn variable_tail_calls(insns: &[Insn]) -> Vec<usize> {
    let halves = second_halves(insns);
    let targets = jump_targets(insns, &halves);
    tail_calls(insns)
        .filter(|&i| !one_constant_index(insns, &halves, &targets, i))
        .collect()
}

/// The indexes of the tail calls in `insns`.
pub fn tail_calls(insns: &[Insn]) -> impl Iterator<Item = usize> + '_ {
    let halves = second_halves(insns);
    (0..insns.len()).filter(move |&i| {
        let x = &insns[i];
        x.code() == CALL && x.src() == 0 && x.imm() == FN_TAIL_CALL && !halves[i]
    })
}

/// Whether the index of the tail call at `call` is set from an immediate on the one straight
/// path into it.
fn one_constant_index(insns: &[Insn], halves: &[bool], targets: &[bool], call: usize) -> bool {
    if targets[call] {
        return false;
    }
    let mut j = call;
    while j > 0 {
        j -= 1;
        if halves[j] {
            continue;
        }
        let x = &insns[j];
        let class = x.code() & 0x07;
        let op = x.code() & 0xf0;
        if writes_r3(x) {
            return x.code() == MOV64_K || x.code() == MOV32_K;
        }
        if class == CLASS_JMP || class == CLASS_JMP32 {
            // A call clobbers r1-r5; after an exit or an unconditional jump, the next
            // instruction is reached only by a jump.
            if op == OP_CALL || op == OP_EXIT || (class == CLASS_JMP && op == OP_JA) {
                return false;
            }
        }
        if targets[j] {
            return false;
        }
    }
    false
}

/// Whether `x` writes r3.
fn writes_r3(x: &Insn) -> bool {
    let class = x.code() & 0x07;
    x.dst() == R3
        && (class == CLASS_ALU
            || class == CLASS_ALU64
            || class == CLASS_LDX
            || x.code() == LD_IMM64)
}

/// For each instruction, whether it is the second half of a 64-bit immediate load.
fn second_halves(insns: &[Insn]) -> Vec<bool> {
    let mut halves = vec![false; insns.len()];
    let mut i = 0;
    while i < insns.len() {
        if insns[i].code() == LD_IMM64 && i + 1 < insns.len() {
            halves[i + 1] = true;
            i += 1;
        }
        i += 1;
    }
    halves
}

/// For each instruction, whether a jump of the program lands on it.
fn jump_targets(insns: &[Insn], halves: &[bool]) -> Vec<bool> {
    let mut targets = vec![false; insns.len() + 1];
    for (i, x) in insns.iter().enumerate() {
        let class = x.code() & 0x07;
        let op = x.code() & 0xf0;
        if (class != CLASS_JMP && class != CLASS_JMP32)
            || op == OP_CALL
            || op == OP_EXIT
            || halves[i]
        {
            continue;
        }
        // `gotol` (JMP32 | JA) jumps by its immediate.
        let off = if class == CLASS_JMP32 && op == OP_JA {
            i64::from(x.imm())
        } else {
            i64::from(x.off())
        };
        let t = i as i64 + 1 + off;
        if let Some(slot) = usize::try_from(t).ok().and_then(|t| targets.get_mut(t)) {
            *slot = true;
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{EXIT, JEQ_K, MOV_K, insn};

    const JA: u8 = 0x05;

    fn tail_call() -> Insn {
        insn(CALL, 0, 0, 0, FN_TAIL_CALL)
    }

    #[test]
    fn a_call_after_its_constant_index_is_direct() {
        let insns = [
            insn(LD_IMM64, 2, 1, 0, 5),
            insn(0, 0, 0, 0, 0),
            insn(MOV_K, R3, 0, 0, 2),
            insn(0xbf, 1, 6, 0, 0),
            tail_call(),
            insn(MOV_K, 0, 0, 0, 1),
            insn(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(tail_calls(&insns).collect::<Vec<_>>(), [4]);
        assert!(variable_tail_calls(&insns).is_empty());
    }

    #[test]
    fn two_indexes_merged_into_one_call_are_found() {
        // if r0 == 0 { r3 = 0 } else { r3 = 2 }; tail_call: the compiler's merged site.
        let insns = [
            insn(JEQ_K, 0, 0, 2, 0),
            insn(MOV_K, R3, 0, 0, 2),
            insn(JA, 0, 0, 1, 0),
            insn(MOV_K, R3, 0, 0, 0),
            tail_call(),
            insn(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(variable_tail_calls(&insns), [4]);
        // A jump landing between the constant and the call.
        let insns = [
            insn(JEQ_K, 0, 0, 2, 0),
            insn(MOV_K, R3, 0, 0, 1),
            insn(0xbf, 1, 6, 0, 0),
            insn(0xbf, 2, 7, 0, 0),
            tail_call(),
            insn(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(variable_tail_calls(&insns), [4]);
    }

    #[test]
    fn an_index_from_a_register_or_memory_is_variable() {
        let insns = [insn(0xbf, R3, 7, 0, 0), tail_call(), insn(EXIT, 0, 0, 0, 0)];
        assert_eq!(variable_tail_calls(&insns), [1]);
        let insns = [
            insn(0x61, R3, 10, -4, 0),
            tail_call(),
            insn(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(variable_tail_calls(&insns), [1]);
        // A call between the constant and the tail call clobbers r3.
        let insns = [
            insn(MOV_K, R3, 0, 0, 1),
            insn(CALL, 0, 0, 0, 1),
            tail_call(),
            insn(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(variable_tail_calls(&insns), [2]);
    }
}
