"""harness: network namespaces, veth pairs and rawstack peers for pytest."""

__version__ = "0.1.0"
