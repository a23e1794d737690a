"""Servers and clients that drive the codecs and engines over sockets.

Every server implements :class:`rawstack.peers.base.Server` and runs on one
:class:`rawstack.peers.loop.Loop`, so ``rawstack serve-all`` puts all four in one process.
"""
