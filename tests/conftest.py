"""Shared test setup; the netns fixtures come from the ``harness.plugin`` entry point."""

pytest_plugins = ["pytester"]
