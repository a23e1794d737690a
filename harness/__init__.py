"""rawstack_harness: network namespaces, veth pairs and rawstack peers for pytest.

The typed surface a test sees: ``def test_x(netns_pair: Network)``, where ``netns_pair["a"]``
is a :class:`Node`. Both are Protocols every backend's handles satisfy
(:mod:`rawstack_harness.backends.base`); the errors are :mod:`rawstack_harness.errors`.
"""

from rawstack_harness.backends.base import Network, Node, Peer, Run
from rawstack_harness.errors import HarnessError

__all__ = ["HarnessError", "Network", "Node", "Peer", "Run", "__version__"]

__version__ = "0.1.0"
