"""The Kafka clients' selector: the standard lookups, without formatting a socket into every miss."""

from __future__ import annotations

import selectors
import socket

import pytest

pytest.importorskip("kafka")

from actorflow.adapters.kafka._client import _ClosingSelector


def test_a_miss_raises_key_error_without_the_sockets_repr(monkeypatch):
    """kafka-python misses on purpose before each registration: the miss must not cost a repr."""

    def no_repr(self: socket.socket) -> str:
        raise AssertionError("repr(socket) was computed")

    selector = _ClosingSelector()
    a, b = socket.socketpair()
    try:
        monkeypatch.setattr(socket.socket, "__repr__", no_repr)
        with pytest.raises(KeyError):
            selector.get_key(a)
        monkeypatch.undo()
        selector.register(a, selectors.EVENT_READ, "data")
        assert selector.get_key(a).data == "data"
        a.close()
        assert selector.get_key(a).data == "data"  # found by an exhaustive search, as the base does
    finally:
        selector.close()
        a.close()
        b.close()
    with pytest.raises(RuntimeError, match="closed"):
        selector.get_key(b)
