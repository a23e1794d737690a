"""Mechanisms waiting for the harness's new layout (issue 10); each moves to its room then."""
