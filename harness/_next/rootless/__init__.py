"""Rootless runs: one user namespace per run, in which the harness is root.

:mod:`.userns` enters (or joins) the namespaces and explains a kernel's refusal in one line;
:mod:`.pidinit` ties every process of the run to its owner through a pid namespace.
"""
