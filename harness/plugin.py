"""The pytest plugin (being written: see docs/architecture.md)."""
