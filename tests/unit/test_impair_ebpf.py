"""The impairment BPF program, run on a small interpreter of the instructions it uses.

The interpreter is written from the eBPF instruction-set document (RFC 9669): registers are
64-bit, ``call`` puts the helper's result in r0 and clobbers r1-r5, ``ld_imm64`` takes two
slots. Draws from ``bpf_get_prandom_u32`` and ``bpf_clone_redirect`` calls are scripted, so
each verdict can be checked for draws just under and at the threshold.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from rawstack_harness.backends.linux.impair import ebpf


class Skb:
    def __init__(self, mark: int = 0, ifindex: int = 7) -> None:
        self.fields = {ebpf.SKB_MARK: mark, ebpf.SKB_IFINDEX: ifindex}


def run(code: bytes, skb: Skb, draws: Iterator[int]) -> tuple[int, list[tuple[int, int, int]]]:
    """(return value, clone_redirect calls as (ifindex, flags, mark at the call))."""
    insns = [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]
    regs = [0] * 11
    regs[1] = -1  # the context pointer: only ever used as the base of loads and stores
    clones: list[tuple[int, int, int]] = []
    pc = 0
    steps = 0
    while True:
        steps += 1
        assert steps < 1000, "no exit"
        op, r, off, imm = insns[pc]
        dst, src = r & 0xF, r >> 4
        pc += 1
        if op == ebpf.MOV64_K:
            regs[dst] = imm & 0xFFFFFFFFFFFFFFFF
        elif op == ebpf.MOV64_X:
            regs[dst] = regs[src]
        elif op == ebpf.LDX_W:
            assert regs[src] == -1
            regs[dst] = skb.fields[off]
        elif op == ebpf.STX_W:
            assert regs[dst] == -1
            skb.fields[off] = regs[src] & 0xFFFFFFFF
        elif op == ebpf.LD_DW_IMM:
            regs[dst] = (imm & 0xFFFFFFFF) | ((insns[pc][3] & 0xFFFFFFFF) << 32)
            pc += 1
        elif op == ebpf.JA:
            pc += off
        elif op == ebpf.JNE_K:
            pc += off if regs[dst] != imm & 0xFFFFFFFFFFFFFFFF else 0
        elif op == ebpf.JLT_X:
            pc += off if regs[dst] < regs[src] else 0
        elif op == ebpf.JGE_X:
            pc += off if regs[dst] >= regs[src] else 0
        elif op == ebpf.CALL:
            if imm == ebpf.HELPER_GET_PRANDOM_U32:
                result = next(draws)
            else:
                assert imm == ebpf.HELPER_CLONE_REDIRECT
                assert regs[1] == -1
                clones.append((regs[2], regs[3], skb.fields[ebpf.SKB_MARK]))
                result = 0
            regs[0] = result
            for i in range(1, 6):
                regs[i] = 0xDEAD  # clobbered, as the verifier assumes
        elif op == ebpf.EXIT:
            return regs[0], clones
        else:
            raise AssertionError(f"unexpected opcode {op:#x} at {pc - 1}")


def draws(*values: int) -> Iterator[int]:
    yield from values


LOSS = ebpf.threshold(0.1)
DUP = ebpf.threshold(0.05)


def test_threshold() -> None:
    assert ebpf.threshold(0) == 0
    assert ebpf.threshold(1) == 2**32
    assert ebpf.threshold(0.5) == 2**31
    with pytest.raises(ValueError, match=r"not in 0\.\.1"):
        ebpf.threshold(1.5)


@pytest.mark.parametrize(
    ("draw", "verdict"), [(0, ebpf.TC_ACT_STOLEN), (LOSS - 1, ebpf.TC_ACT_STOLEN), (LOSS, 0)]
)
def test_loss_steals_a_frame_whose_draw_is_under_the_threshold(draw: int, verdict: int) -> None:
    assert run(ebpf.impair_program(loss=0.1), Skb(), draws(draw))[0] == verdict


def test_loss_of_everything() -> None:
    code = ebpf.impair_program(loss=1.0)
    assert run(code, Skb(), draws(2**32 - 1))[0] == ebpf.TC_ACT_STOLEN


def test_duplicate_clones_out_of_the_same_interface_marked_and_restores_the_mark() -> None:
    skb = Skb(mark=0x77, ifindex=9)
    verdict, clones = run(ebpf.impair_program(duplicate=0.05), skb, draws(DUP - 1))
    assert verdict == ebpf.TC_ACT_OK
    assert clones == [(9, 0, ebpf.DUP_MARK)]  # flags 0: egress
    assert skb.fields[ebpf.SKB_MARK] == 0x77


def test_no_duplicate_at_the_threshold() -> None:
    verdict, clones = run(ebpf.impair_program(duplicate=0.05), Skb(), draws(DUP))
    assert (verdict, clones) == (ebpf.TC_ACT_OK, [])


def test_the_copy_passes_untouched_and_unmarked() -> None:
    skb = Skb(mark=ebpf.DUP_MARK)
    # No draw at all: a copy is never lost or copied again.
    verdict, clones = run(ebpf.impair_program(loss=1.0, duplicate=1.0), skb, draws())
    assert (verdict, clones) == (ebpf.TC_ACT_OK, [])
    assert skb.fields[ebpf.SKB_MARK] == 0


def test_loss_is_decided_before_duplication() -> None:
    code = ebpf.impair_program(loss=0.1, duplicate=0.05)
    assert run(code, Skb(), draws(0)) == (ebpf.TC_ACT_STOLEN, [])
    verdict, clones = run(code, Skb(), draws(LOSS, 0))
    assert verdict == ebpf.TC_ACT_OK
    assert len(clones) == 1


def test_every_instruction_is_reachable_and_jumps_stay_inside() -> None:
    # The verifier refuses unreachable code (check_cfg), so each variant is checked here.
    for loss, dup in ((0.1, 0), (0, 0.1), (0.1, 0.1), (0, 0)):
        code = ebpf.impair_program(loss, dup)
        insns = [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]
        seen, todo = set(), [0]
        while todo:
            pc = todo.pop()
            if pc in seen:
                continue
            assert 0 <= pc < len(insns)
            seen.add(pc)
            op, _, off, _ = insns[pc]
            if op == ebpf.EXIT:
                continue
            if op == ebpf.LD_DW_IMM:
                seen.add(pc + 1)
                todo.append(pc + 2)
            elif op == ebpf.JA:
                todo.append(pc + 1 + off)
            elif op in (ebpf.JNE_K, ebpf.JLT_X, ebpf.JGE_X):
                todo += [pc + 1, pc + 1 + off]
            else:
                todo.append(pc + 1)
        assert seen == set(range(len(insns))), (loss, dup)
