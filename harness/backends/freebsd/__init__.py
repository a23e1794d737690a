"""The FreeBSD backend: the same topology spec on VNET jails joined by epair interfaces.

Split by responsibility, each module readable on its own:

* :mod:`.planning` -- pure: spec + run id -> the exact ``jail``/``ifconfig``/``route``/
  ``sysctl`` commands that build it and tear it down (:func:`plan`), epair name capture.
* :mod:`.runs` -- locked run directories, :class:`FreeBSDRun`, dead-run cleanup and
  ``status`` (:func:`clean_dead_runs`, :func:`describe_runs`), :func:`unavailable_reason`,
  checked teardown and the reaper of epairs dying jails hand back
  (:func:`finish_teardown`, :func:`reap_returned_epairs`).
* :mod:`.nodes` -- executing a plan: :class:`FreeBSDNetwork` and its jails'
  :class:`FreeBSDNode` handles (``run``/``popen`` through ``jexec``, no ``socket()``).
* :mod:`.probes` -- supervision probes, run as a short process inside the probing jail.

Everything public is re-exported here, so ``from rawstack_harness.backends.freebsd import X`` works
for every name. The backend object that callers normally use is
:data:`rawstack_harness.backends.FREEBSD`.
"""

from __future__ import annotations

from rawstack_harness.backends.freebsd.nodes import (
    ICMP_RESPONDER,
    NO_NODE_SOCKETS,
    FreeBSDNetwork,
    FreeBSDNode,
    build,
    parse_ether,
)
from rawstack_harness.backends.freebsd.planning import (
    GONE,
    JAIL_PREFIX,
    SYSCTL_MAP,
    Plan,
    Step,
    freebsd_sysctl,
    host_ifname,
    jail_name,
    placeholders,
    plan,
    record_capture,
    substitute,
)
from rawstack_harness.backends.freebsd.probes import (
    PROBE_TIMEOUT,
    JailLike,
    chao_probe,
    probe_argv,
    probe_here,
    probe_main,
    probe_peer,
)
from rawstack_harness.backends.freebsd.runs import (
    DEFAULT_ROOT,
    RETURNING,
    FreeBSDRun,
    TeardownOutcome,
    clean_dead_runs,
    describe_runs,
    finish_teardown,
    new_run_dir,
    reap_returned_epairs,
    run_teardown,
    save_state,
    unavailable_reason,
)

__all__ = [
    "DEFAULT_ROOT",
    "GONE",
    "ICMP_RESPONDER",
    "JAIL_PREFIX",
    "NO_NODE_SOCKETS",
    "PROBE_TIMEOUT",
    "RETURNING",
    "SYSCTL_MAP",
    "FreeBSDNetwork",
    "FreeBSDNode",
    "FreeBSDRun",
    "JailLike",
    "Plan",
    "Step",
    "TeardownOutcome",
    "build",
    "chao_probe",
    "clean_dead_runs",
    "describe_runs",
    "finish_teardown",
    "freebsd_sysctl",
    "host_ifname",
    "jail_name",
    "new_run_dir",
    "parse_ether",
    "placeholders",
    "plan",
    "probe_argv",
    "probe_here",
    "probe_main",
    "probe_peer",
    "reap_returned_epairs",
    "record_capture",
    "run_teardown",
    "save_state",
    "substitute",
    "unavailable_reason",
]
