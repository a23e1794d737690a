"""Loss and duplication without netem: a hand-assembled tc (SCHED_CLS) eBPF program.

Theory of operation: the program runs direct-action on a ``clsact`` egress hook, so it sees
every frame an interface sends before any qdisc. It draws ``bpf_get_prandom_u32()`` and
drops the frame when the draw falls under ``loss * 2**32``; a surviving
frame is duplicated when a second draw falls under ``duplicate * 2**32`` with
``bpf_clone_redirect(skb, skb->ifindex, 0)`` (a copy sent out of the same interface). The
copy passes the same hook again, so before cloning the program marks the frame
(``skb->mark = DUP_MARK``) and restores the mark afterwards; a frame arriving with that mark
is the copy: its mark is cleared and it passes untouched (a copy is never lost or copied
again, so the duplicate rate is exactly ``duplicate * (1 - loss)``, as netem's).

A lost frame is *stolen* (``TC_ACT_STOLEN``), not shot: the egress hook then reports success
to the sender, as a wire would (``net/core/dev.c``, ``sch_handle_egress``). ``TC_ACT_SHOT``
would make ``sendmsg`` fail with ENOBUFS, so ping would resend instead of counting a loss,
and TCP would see a local drop rather than a lost segment.

Instructions are encoded here (``struct bpf_insn``, ``include/uapi/linux/bpf.h``) rather than
compiled, so nothing but the kernel is needed: :func:`impair_program` is pure and unit-tested;
:func:`load` hands the bytes to ``bpf(BPF_PROG_LOAD)`` and returns the program's descriptor
(the kernel keeps the program alive once a filter holds it; close the descriptor after
attaching). The verifier's log is put in the error when it refuses a program.

Sources: ``include/uapi/linux/bpf.h`` (``struct __sk_buff`` offsets, helper ids 7 and 13),
``include/uapi/linux/pkt_cls.h`` (``TC_ACT_*``), ``net/core/filter.c``
(``bpf_clone_redirect``: egress when flags lack ``BPF_F_INGRESS``).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from dataclasses import dataclass

# Opcodes (class | size/op | source), include/uapi/linux/bpf_common.h and bpf.h.
MOV64_K, MOV64_X = 0xB7, 0xBF
LDX_W, STX_W = 0x61, 0x63
LD_DW_IMM = 0x18
JA, JNE_K, JLT_X, JGE_X = 0x05, 0x55, 0xAD, 0x3D
CALL, EXIT = 0x85, 0x95

HELPER_GET_PRANDOM_U32 = 7
HELPER_CLONE_REDIRECT = 13
SKB_MARK, SKB_IFINDEX = 8, 40  # offsetof(struct __sk_buff, mark / ifindex)
TC_ACT_OK, TC_ACT_STOLEN = 0, 4
DUP_MARK = 0x52534844  # "RSHD": a copy made by this program
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SCHED_CLS = 3
LICENSE = b"Dual MIT/GPL"
# __NR_bpf per machine (arch/*/entry/syscalls, include/uapi/asm-generic/unistd.h).
SYSCALL_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "i686": 357, "riscv64": 280}


def threshold(probability: float) -> int:
    """The u32 draw limit for ``probability`` (0..1): a draw below it hits."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability {probability!r} is not in 0..1")
    return round(probability * 2**32)


@dataclass(frozen=True)
class Insn:
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        return struct.pack("<BBhi", self.code, self.dst | (self.src << 4), self.off, self.imm)


class _Asm:
    """A tiny assembler: instructions with symbolic jump targets resolved at the end."""

    def __init__(self) -> None:
        self.slots: list[Insn | tuple[Insn, str]] = []
        self.labels: dict[str, int] = {}

    def emit(self, insn: Insn, target: str = "") -> None:
        self.slots.append((insn, target) if target else insn)

    def ld_imm64(self, dst: int, value: int) -> None:
        # Two slots: the low 32 bits, then a pseudo instruction holding the high 32 bits.
        low, high = value & 0xFFFFFFFF, value >> 32
        self.emit(Insn(LD_DW_IMM, dst, imm=struct.unpack("<i", struct.pack("<I", low))[0]))
        self.emit(Insn(0, imm=struct.unpack("<i", struct.pack("<I", high))[0]))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.slots)

    def assemble(self) -> bytes:
        out = []
        for pc, slot in enumerate(self.slots):
            if isinstance(slot, tuple):
                insn, target = slot
                insn = Insn(insn.code, insn.dst, insn.src, self.labels[target] - pc - 1, insn.imm)
            else:
                insn = slot
            out.append(insn.encode())
        return b"".join(out)


def impair_program(loss: float = 0.0, duplicate: float = 0.0) -> bytes:
    """The program's bytecode: drop with probability ``loss``, then copy with ``duplicate``."""
    asm = _Asm()
    asm.emit(Insn(MOV64_X, 6, 1))  # r6 = skb (r1 is clobbered by calls)
    asm.emit(Insn(LDX_W, 2, 6, SKB_MARK))
    asm.emit(Insn(JNE_K, 2, imm=DUP_MARK), "original")
    asm.emit(Insn(MOV64_K, 2, imm=0))  # our copy: clear the mark, let it pass
    asm.emit(Insn(STX_W, 6, 2, SKB_MARK))
    asm.emit(Insn(JA), "pass")
    asm.label("original")
    if loss > 0:
        asm.emit(Insn(CALL, imm=HELPER_GET_PRANDOM_U32))
        asm.ld_imm64(1, threshold(loss))
        asm.emit(Insn(JLT_X, 0, 1), "drop")
    if duplicate > 0:
        asm.emit(Insn(CALL, imm=HELPER_GET_PRANDOM_U32))
        asm.ld_imm64(1, threshold(duplicate))
        asm.emit(Insn(JGE_X, 0, 1), "pass")
        asm.emit(Insn(LDX_W, 7, 6, SKB_MARK))  # r7 = the original mark, restored below
        asm.emit(Insn(MOV64_K, 2, imm=DUP_MARK))
        asm.emit(Insn(STX_W, 6, 2, SKB_MARK))
        asm.emit(Insn(MOV64_X, 1, 6))
        asm.emit(Insn(LDX_W, 2, 6, SKB_IFINDEX))
        asm.emit(Insn(MOV64_K, 3, imm=0))  # flags 0: out of the interface (egress)
        asm.emit(Insn(CALL, imm=HELPER_CLONE_REDIRECT))
        asm.emit(Insn(STX_W, 6, 7, SKB_MARK))
    asm.label("pass")
    asm.emit(Insn(MOV64_K, 0, imm=TC_ACT_OK))
    asm.emit(Insn(EXIT))
    if loss > 0:  # the verifier refuses unreachable instructions
        asm.label("drop")
        asm.emit(Insn(MOV64_K, 0, imm=TC_ACT_STOLEN))
        asm.emit(Insn(EXIT))
    return asm.assemble()


class BpfError(OSError):
    """``bpf(2)`` refused the program; the message carries the verifier's last words."""


def load(code: bytes, name: str = "rsh_impair") -> int:
    """Load a SCHED_CLS program with ``bpf(BPF_PROG_LOAD)``; return its descriptor."""
    nr = SYSCALL_BPF.get(platform.machine())
    if nr is None:
        raise BpfError(0, f"bpf(2): no syscall number known for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(LICENSE)
    log = ctypes.create_string_buffer(65536)
    attr = ctypes.create_string_buffer(
        struct.pack(
            "=IIQQIIQII16s",
            BPF_PROG_TYPE_SCHED_CLS,
            len(code) // 8,
            ctypes.addressof(insns),
            ctypes.addressof(lic),
            1,  # log_level: the verifier explains a refusal
            len(log),
            ctypes.addressof(log),
            0,
            0,
            name.encode()[:15],
        )
    )
    libc.syscall.restype = ctypes.c_long
    fd = int(libc.syscall(ctypes.c_long(nr), ctypes.c_long(BPF_PROG_LOAD), attr, len(attr.raw) - 1))
    if fd < 0:
        err = ctypes.get_errno()
        lines = log.value.decode(errors="replace").strip().splitlines()
        detail = f" (verifier: {lines[-1]})" if lines else ""
        raise BpfError(err, f"bpf(BPF_PROG_LOAD): {os.strerror(err)}{detail}")
    return fd
