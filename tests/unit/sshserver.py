"""A tiny SSH server on 127.0.0.1 (paramiko's server side) that records what a client did:
whether it authenticated, opened a channel, which command it sent and what came on stdin.
Its host keys can be swapped between connects, as a host that was replaced (or an impostor)."""

from __future__ import annotations

import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paramiko


def keygen(path: Path, keytype: str = "ed25519") -> Path:
    """A new key pair made by OpenSSH's ssh-keygen (no passphrase); returns the private key."""
    subprocess.run(["ssh-keygen", "-q", "-t", keytype, "-N", "", "-C", "test", "-f", str(path)], check=True)
    return path


def load(path: Path) -> paramiko.PKey:
    return paramiko.PKey.from_path(str(path))


@dataclass
class Seen:
    auths: int = 0  # authentication attempts (any method)
    channels: int = 0  # session channels opened
    commands: list[str] = field(default_factory=list)
    stdin: list[bytes] = field(default_factory=list)


class _Server(paramiko.ServerInterface):
    def __init__(self, seen: Seen, lock: threading.Lock):
        self.seen, self.lock, self.chan_event = seen, lock, threading.Event()

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        with self.lock:
            self.seen.auths += 1
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        with self.lock:
            self.seen.channels += 1
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        with self.lock:
            self.seen.commands.append(command.decode())
        threading.Thread(target=_answer, args=(channel, self.seen, self.lock), daemon=True).start()
        return True


def _answer(channel, seen: Seen, lock: threading.Lock) -> None:
    data = b""
    while chunk := channel.recv(65536):
        data += chunk
    with lock:
        seen.stdin.append(data)
    channel.sendall(b"ran\n")
    channel.send_exit_status(0)
    channel.close()


class SSHServer:
    """``with SSHServer([key, ...]) as srv``: listens on ADDR:srv.port (a loopback address) until
    the block ends."""

    def __init__(self, host_keys: list[paramiko.PKey], addr: str = "127.0.0.1"):
        self.host_keys = list(host_keys)
        self.seen = Seen()
        self._lock = threading.Lock()
        assert addr.startswith("127."), "loopback only"
        self.addr = addr
        self._sock = socket.create_server((addr, 0))
        self.port = self._sock.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._channels: list[paramiko.Channel] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "SSHServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sock.close()
        for t in self._transports:
            t.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            for k in self.host_keys:
                t.add_server_key(k)
            self._transports.append(t)
            try:
                t.start_server(server=_Server(self.seen, self._lock))
            except (paramiko.SSHException, EOFError, OSError):
                continue
            threading.Thread(target=self._accept, args=(t,), daemon=True).start()

    def _accept(self, t: paramiko.Transport) -> None:
        while t.is_active():
            chan = t.accept(1)
            if chan is not None:
                self._channels.append(chan)  # a channel nobody holds is closed when collected
