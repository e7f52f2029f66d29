"""SerialTransport over socket:// (how QEMU's serial is reached), against the in-memory
device behind a local TCP server."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from mcuflow.link import DeviceClient, LinkError, LocalResult, SerialTransport
from mcuflow.link.sim import SimDevice


def serve_once(dev: SimDevice, close_after_bye: bool = True):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def loop():
        conn, _ = srv.accept()
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                reply = dev.feed(data)
                if reply:
                    conn.sendall(reply)
                if dev.exited and close_after_bye:
                    return  # like QEMU after a semihosting exit: reply sent, socket closed at once

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return srv, t


def head(x):
    return LocalResult(0, int(x[0]) % 10, 123, 456)


def test_socket_session_and_bye_reply_survives_the_close():
    dev = SimDevice(head, bytes(32))
    srv, t = serve_once(dev)
    port = srv.getsockname()[1]
    with SerialTransport(f"socket://127.0.0.1:{port}", connect_timeout=2.0) as tr:
        client = DeviceClient(tr, timeout=2.0)
        assert client.hello().board == "sim"
        x = np.full(784, 3, np.int8)
        assert client.infer(x).label == 3
        assert client.bye() is True  # the reply arrived before the EOF and was not lost
        with pytest.raises(LinkError, match="closed the connection"):
            tr.read(1.0)
    t.join(5)
    srv.close()


def test_connect_timeout_and_refused_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(LinkError, match=f"cannot open port socket://127.0.0.1:{port}"):
        SerialTransport(f"socket://127.0.0.1:{port}", connect_timeout=0.2)
