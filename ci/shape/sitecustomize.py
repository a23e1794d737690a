"""Makes this interpreter look like CPython on FreeBSD or macOS to the code it runs.

Loaded only by ``ci/shaped.py``, which puts ``ci/shape`` first on ``PYTHONPATH``, so every
Python process of the run (pytest, its xdist workers, the ``rawstack`` commands tests start)
starts shaped the same way. Three environment variables say how:

* ``RAWSTACK_SHAPE_PLATFORM``: the ``sys.platform`` to report (``freebsd14``, ``darwin``).
  Only ``sys.platform`` changes; ``os.uname()`` and ``platform.system()`` still describe the
  Linux kernel underneath, because the code asks those about the kernel it talks to.
* ``RAWSTACK_SHAPE_ABSENT``: comma-separated top-level modules that the target does not
  install (``pyroute2``: pyproject installs it on Linux only). Importing one raises
  ``ModuleNotFoundError``, as it does there.
* ``RAWSTACK_SHAPE_NATIVE``: comma-separated top-level modules that pick their C-library
  bindings by ``sys.platform`` while they load (scapy binds FreeBSD's ``sysctl(3)`` when it
  reads ``freebsd``). They load seeing the real ``sys.platform``: what they bind is this
  kernel's C library, which a shape cannot change.

The site's own ``sitecustomize`` (Debian ships one) still runs afterwards.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Sequence
from types import ModuleType

_HERE = os.path.dirname(os.path.abspath(__file__))


class AbsentModules:
    """A meta path finder that makes ``names`` (and their submodules) not installed."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> None:
        # Returning None would let the next finder find it; raising is what "not installed"
        # looks like to `import x` (importlib.util.find_spec raises too, instead of None).
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


class _NativeLoader(importlib.abc.Loader):
    """Runs a module's code with the real ``sys.platform``, then puts the shape back."""

    def __init__(self, inner: importlib.abc.Loader, real: str) -> None:
        self.inner = inner
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        shaped, sys.platform = sys.platform, self.real
        try:
            self.inner.exec_module(module)
        finally:
            sys.platform = shaped


class NativeModules:
    """A meta path finder that loads ``names`` (and submodules) with the real platform."""

    def __init__(self, names: Sequence[str], real: str) -> None:
        self.names = frozenset(names)
        self.real = real

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _NativeLoader(spec.loader, self.real)
                return spec
        return None


def _chain_site_sitecustomize() -> None:
    """Run the sitecustomize that this one shadows, if there is one."""
    path = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def _shape() -> None:
    absent = [n for n in os.environ.get("RAWSTACK_SHAPE_ABSENT", "").split(",") if n]
    if absent:
        for name in absent:
            sys.modules.pop(name, None)
        sys.meta_path.insert(0, AbsentModules(absent))
    platform = os.environ.get("RAWSTACK_SHAPE_PLATFORM")
    native = [n for n in os.environ.get("RAWSTACK_SHAPE_NATIVE", "").split(",") if n]
    if platform and native:
        sys.meta_path.insert(0, NativeModules(native, sys.platform))
    if platform:
        # sysconfig names its build-time data module after sys.platform: load it while
        # that is still true (it describes this interpreter's build, not the target's).
        sysconfig.get_config_vars()
        # ctypes.util picks how to find libraries by sys.platform at import (darwin: the
        # stdlib's ctypes.macholib, which Debian's python3 does not ship): it finds this
        # interpreter's C library, which a shape cannot change either.
        import ctypes.util  # noqa: F401
        sys.platform = platform


_shape()
_chain_site_sitecustomize()
