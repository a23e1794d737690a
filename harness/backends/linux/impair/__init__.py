"""Link impairment on Linux: netem where the kernel has it, else tbf/htb, tc BPF and a relay.

:mod:`.plan` chooses (pure), :mod:`.probe` finds what this kernel has, :mod:`.tc` and
:mod:`.ebpf` put qdiscs and the BPF program on an interface, :mod:`.relay` is the delay line
process, :mod:`.links` builds one impaired link from all of them.
"""
