"""The serving worker's pieces that need no server: the deadline setting and the close."""

from __future__ import annotations

import select
import socket
import threading

import pytest

from serving import workers
from tests.support.harness import wait_for

CORK_TIMER_S = 0.2  # Linux's TCP_CORK ceiling


def test_client_timeout_defaults_to_one_second(monkeypatch):
    monkeypatch.delenv("SERVING_CLIENT_TIMEOUT_S", raising=False)
    assert workers.client_timeout_s() == 1.0
    monkeypatch.setenv("SERVING_CLIENT_TIMEOUT_S", "0.25")
    assert workers.client_timeout_s() == 0.25


@pytest.mark.parametrize("raw", ["abc", "0", "-1"])
def test_client_timeout_rejects_nonsense(monkeypatch, raw):
    monkeypatch.setenv("SERVING_CLIENT_TIMEOUT_S", raw)
    with pytest.raises(ValueError, match="SERVING_CLIENT_TIMEOUT_S"):
        workers.client_timeout_s()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


class RecordingSocket:
    """A real socket that records how close_after_answer reads from it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recv_flags: list[int] = []

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.recv_flags.append(flags)
        return self.sock.recv(size, flags)

    def close(self) -> None:
        self.sock.close()


def test_close_after_answer_delivers_the_answer_without_waiting_for_the_client():
    client, server = tcp_pair()
    try:
        # The client sent more than the server read (the case a plain close turns into a
        # RST that can destroy the answer in flight), and it never closes its side.
        client.sendall(b"GET /recommend/1 HTTP/1.1\r\n\r\n" + b"x" * 3000)
        server.settimeout(None)  # blocking: a read that waits for the client's FIN would hang
        wait_for(lambda: _readable(server), 5, "the request bytes at the server")
        server.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n1,2,3")
        recorded = RecordingSocket(server)
        done = threading.Event()
        closer = threading.Thread(
            target=lambda: (workers.close_after_answer(recorded), done.set()), daemon=True
        )
        closer.start()
        # gunicorn's close_graceful waits for the FIN this client never sends; this must not.
        assert done.wait(30), "close_after_answer waited for a client that never closes"
        assert recorded.recv_flags and all(f & socket.MSG_DONTWAIT for f in recorded.recv_flags)
        assert server.fileno() == -1
        received = b""
        client.settimeout(5)
        while chunk := client.recv(4096):  # ConnectionResetError here would be the RST
            received += chunk
        assert received.endswith(b"\r\n\r\n1,2,3")
    finally:
        client.close()


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_close_after_answer_tolerates_a_client_that_is_gone():
    client, server = tcp_pair()
    client.close()
    done = threading.Event()

    def close() -> None:
        workers.close_after_answer(server)
        done.set()

    threading.Thread(target=close).start()
    assert done.wait(2)
    assert server.fileno() == -1


def test_a_corked_answer_leaves_at_close_not_after_the_cork_timer():
    client, server = tcp_pair()
    try:
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)  # as the worker does
        server.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        server.sendall(b"1,2,3")
        workers.close_after_answer(server)
        # Linux holds corked partial segments for up to 200 ms (TCP_CORK's timer); a flushing
        # close puts them in the client's queue at once. Waiting for readability for less than
        # the timer tells the two apart; a late check can only see the data, never miss it.
        assert select.select([client], [], [], CORK_TIMER_S * 0.75)[0], "the cork was not flushed"
        client.settimeout(5)
        received = b""
        while chunk := client.recv(4096):
            received += chunk
        assert received.endswith(b"\r\n\r\n1,2,3")
    finally:
        client.close()
