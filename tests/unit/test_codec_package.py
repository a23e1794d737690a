"""rawstack.codec as a package: no sockets, one error type, a complete public surface."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rawstack import codec
from rawstack.codec import DecodeError

CODEC_DIR = Path(codec.__file__).parent
FORBIDDEN = {"socket", "_socket", "socketserver", "selectors", "asyncio", "ssl"}


def _imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_under_codec_imports_socket() -> None:
    sources = sorted(CODEC_DIR.rglob("*.py"))
    assert len(sources) >= 8
    offenders = {
        str(path.relative_to(CODEC_DIR)): sorted(_imported_modules(path.read_text()) & FORBIDDEN)
        for path in sources
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_the_scan_would_catch_an_import() -> None:
    assert _imported_modules("import socket as s\nfrom ssl import wrap_socket\n") == {
        "socket",
        "ssl",
    }


def test_importing_codec_pulls_in_no_socket_module() -> None:
    code = "import sys, rawstack.codec; print(sorted(m for m in sys.modules if 'socket' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_all_names_exist_and_are_unique() -> None:
    assert len(codec.__all__) == len(set(codec.__all__))
    missing = [name for name in codec.__all__ if not hasattr(codec, name)]
    assert missing == []


def test_contract_names_from_architecture_md() -> None:
    contract = (
        "checksum_add checksum_finish internet_checksum Ethernet mac_to_bytes mac_to_str "
        "ETH_P_IP ETH_P_8021Q ETH_P_CHAO BROADCAST_MAC IPv4 PROTO_ICMP PROTO_TCP PROTO_UDP "
        "PROTO_RAW pseudo_header IcmpEcho IcmpError IcmpMessage decode_icmp Udp Tcp Chao "
        "CHAO_REQUEST CHAO_REPLY MAGIC DecodeError"
    )
    assert set(contract.split()) - set(codec.__all__) == set()
    assert codec.ETH_P_CHAO == 0x88B5
    assert codec.MAGIC == b"CHAO"
    assert (codec.CHAO_REQUEST, codec.CHAO_REPLY) == (1, 2)


def test_decode_error_message_and_fields() -> None:
    err = DecodeError("ipv4", 2, "total length 60 exceeds buffer of 40 bytes")
    assert str(err) == "ipv4: total length 60 exceeds buffer of 40 bytes at offset 2"
    assert (err.layer, err.offset, err.reason) == ("ipv4", 2, err.reason)


def test_decode_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(DecodeError("chao", 0, "bad magic")))
    assert isinstance(err, DecodeError)
    assert str(err) == "chao: bad magic at offset 0"


@pytest.mark.parametrize(
    "decoder",
    [
        codec.IPv4.decode,
        codec.Ethernet.decode,
        codec.Chao.decode,
        codec.Udp.decode,
        codec.Tcp.decode,
        codec.decode_icmp,
        codec.IcmpEcho.decode,
        codec.IcmpError.decode,
        codec.IcmpMessage.decode,
    ],
)
@pytest.mark.parametrize("bad", ["4500", 17, None, [0x45]])
def test_non_bytes_input_is_api_misuse(decoder: Callable[[object], object], bad: object) -> None:
    with pytest.raises(TypeError, match="expected bytes"):
        decoder(bad)


REQUEST_1 = b"CHAO\x01\x01\x00\x01\x00\x00"


@pytest.mark.parametrize("buf", [bytearray(REQUEST_1), memoryview(REQUEST_1)])
def test_bytes_like_input_is_accepted(buf: bytes) -> None:
    assert codec.Chao.decode(buf) == codec.Chao(codec.CHAO_REQUEST, 1)


def test_header_table_rejects_unknown_fields_and_unpackable_values() -> None:
    from rawstack.codec._header import HeaderTable

    table = HeaderTable("demo", (("a", "B", 0), ("b", "H", 7)))
    assert (table.size, table.offsets) == (3, {"a": 0, "b": 1})
    assert table.pack(a=1) == b"\x01\x00\x07"
    assert table.unpack(b"\x00\x01\x00\x02", 1) == {"a": 1, "b": 2}
    with pytest.raises(TypeError, match="unknown header fields"):
        table.pack(c=1)
    with pytest.raises(ValueError, match="demo: cannot pack header"):
        table.pack(a=256)
    with pytest.raises(DecodeError, match="needs 3 bytes, got 0 at offset 5"):
        table.unpack(b"\x00\x01", 5)
