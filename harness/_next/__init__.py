"""Mechanisms that wait for the harness's backend rooms before they move in (not public API)."""
