"""The lab tests' probe loop (tests/lab/probe.py) counts a reply cut mid-body as a failed request
(CI saw http.client.IncompleteRead kill the loop thread, and a migrate then read as 0 failed),
and a probe whose loop died raises instead of reporting what it had counted."""

import http.server
import socket
import threading

import pytest

from tests.lab import probe


class _Cut(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "22")
        self.end_headers()
        self.wfile.write(b"demo")  # 4 of 22 bytes, then the connection closes

    def log_message(self, *args):
        pass


@pytest.fixture
def cut_url():
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Cut)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()
    srv.server_close()


def _closed_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


def test_a_body_cut_short_is_a_failed_request_not_an_exception(cut_url):
    assert probe.get(cut_url) is False


def test_the_probe_counts_cut_replies_as_failures(cut_url):
    with probe.Probe({"n": cut_url}, interval=0.01, max_rounds=3) as p:
        p._thread.join(5)
    assert p.counts["n"].failed == 3 and p.counts["n"].ok == 0


def test_a_probe_whose_loop_died_raises(monkeypatch):
    def boom(url, timeout=5):
        raise ValueError("unexpected")
    monkeypatch.setattr(probe, "get", boom)
    with pytest.raises(RuntimeError, match="probe loop stopped"):
        with probe.Probe({"n": _closed_url()}, interval=0.01, max_rounds=3) as p:
            p._thread.join(5)


def test_a_refused_connection_is_a_failed_request():
    assert probe.get(_closed_url(), timeout=1) is False
