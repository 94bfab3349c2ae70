"""The hosts-file writer: read(write(file)) == read(file) with one host's port changed, and
every byte the change does not need kept. Examples first, then properties (hypothesis) over
generated hosts files that the reader accepts, and over fragment soup that it mostly refuses."""

from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmbook import config, envfile
from swarmbook.errors import ConfigError

# Deterministic and small: the same examples on every run and every CI box.
CI = settings(max_examples=100, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])


def groups_after(text: str) -> dict:
    return config.parse(text, environ={}).groups


def port_of(text: str, group: str, host: str) -> list[int]:
    return [s.port for s in groups_after(text)[group] if s.host == host]


# --- examples -----------------------------------------------------------------------------

README_GROUPS = (
    "MANAGERS=10.0.1.11,10.0.1.12,10.0.1.13   # swarm managers; the first one leads swarm.init\n"
    "WORKERS=10.0.1.21,deploy@10.0.1.22:2222  # swarm workers; per-host user and port allowed\n"
    "BUILD=10.0.1.31                          # builds and pushes the app image\n"
    "GITLAB=10.0.1.31                         # GitLab CE (its sshd moves to SSHD_PORT)\n"
    "RUNNERS=10.0.1.31                        # builder runner (tag builder)\n"
    "DEPLOY_RUNNERS=10.0.1.11                 # deploy runner on a manager (tag test / tags)\n"
    "KONG=10.0.1.11                           # the Kong gateway\n"
)


def test_readme_groups_keep_their_inline_comments_and_alignment():
    out = envfile.with_port(README_GROUPS, "10.0.1.31", 2222)
    assert out == README_GROUPS.replace("=10.0.1.31 ", "=10.0.1.31:2222 ")
    assert out.count(":2222 ") == 4  # BUILD, GITLAB, RUNNERS and the worker that already had it
    assert {g: port_of(out, g, "10.0.1.31") for g in ("BUILD", "GITLAB", "RUNNERS")} == \
        {"BUILD": [2222], "GITLAB": [2222], "RUNNERS": [2222]}


def test_every_entry_of_the_host_in_every_group_moves():
    text = "# keep me\nMANAGERS=a,ops@b\nGITLAB=ops@b:22\nWORKERS=[fd00::1]\n"
    assert envfile.with_port(text, "b", 2222) == "# keep me\nMANAGERS=a,ops@b:2222\nGITLAB=ops@b:2222\nWORKERS=[fd00::1]\n"
    assert envfile.with_port(text, "fd00::1", 23).endswith("WORKERS=[fd00::1]:23\n")


@pytest.mark.parametrize("before, after", [
    ('MANAGERS="a, ops@b"  # two\n', 'MANAGERS="a, ops@b:2222"  # two\n'),
    ("MANAGERS='b:22,a'# no blank before the comment\n", "MANAGERS='b:2222,a'# no blank before the comment\n"),
    ("export GITLAB=b\n", "export GITLAB=b:2222\n"),
    ("  export\tGITLAB = b  \n", "  export\tGITLAB = b:2222  \n"),
    ("'GITLAB'=b\n", "'GITLAB'=b:2222\n"),
    ("MANAGERS=a\r\nGITLAB=b\r\nSSH_USER=root\r\n", "MANAGERS=a\r\nGITLAB=b:2222\r\nSSH_USER=root\r\n"),
    ("GITLAB=b\rKONG=b", "GITLAB=b:2222\rKONG=b:2222"),
    ('MANAGERS="a,\n  b,\tb2:1\\t,\\nc"\n', 'MANAGERS="a,\n  b:2222,\tb2:1\\t,\\nc"\n'),
    ("MANAGERS=a,,b,\n", "MANAGERS=a,,b:2222,\n"),  # empty entries kept, not squeezed
    ("MANAGERS=a\nWORKERS=deploy@b:022,c: 22\n", "MANAGERS=a\nWORKERS=deploy@b:2222,c: 22\n"),
    ("MANAGERS=a\nWORKERS=b:2222, c\nGITLAB=b\n", "MANAGERS=a\nWORKERS=b:2222, c\nGITLAB=b:2222\n"),  # already on the port: as written
    ("# b is the leader: b:22\nMANAGERS=b # b:22 until moved\nNODE_LABELS=b:role=db\n",
     "# b is the leader: b:22\nMANAGERS=b:2222 # b:22 until moved\nNODE_LABELS=b:role=db\n"),
    ("MANAGERS=b2,10.0.1.3,b.lab\n", "MANAGERS=b2,10.0.1.3,b.lab\n"),  # no substring matches
])
def test_only_the_hosts_entries_change(before, after):
    assert envfile.with_port(before, "b", 2222) == after


@pytest.mark.parametrize("before, after", [
    ("MANAGERS=fd00::1\n", "MANAGERS=[fd00::1]:23\n"),
    ("MANAGERS=ops@[fd00::1]:22,a\nGITLAB=ops@[fd00::1]\n", "MANAGERS=ops@[fd00::1]:23,a\nGITLAB=ops@[fd00::1]:23\n"),
    ("MANAGERS=fd00::1:2,[fd00::1:3]:22\n", "MANAGERS=fd00::1:2,[fd00::1:3]:22\n"),
])
def test_ipv6_entries_get_brackets_when_they_get_a_port(before, after):
    assert envfile.with_port(before, "fd00::1", 23) == after


def test_a_file_without_the_host_comes_back_byte_for_byte():
    text = "\n  # comment\r\nMANAGERS = \"a\"  # x\r\n\n\nexport WORKERS='c'\nREGISTRY_USER=\"b # not a comment\""
    assert envfile.with_port(text, "b", 2222) == text


def test_duplicate_keys_change_only_the_binding_the_reader_uses():
    text = "MANAGERS=b\nMANAGERS=a,b\nWORKERS=not a host list, b!\nWORKERS=c\nGITLAB=b\n"
    out = envfile.with_port(text, "b", 2222)
    assert out == "MANAGERS=b\nMANAGERS=a,b:2222\nWORKERS=not a host list, b!\nWORKERS=c\nGITLAB=b:2222\n"
    assert port_of(out, "MANAGERS", "b") == [2222] and port_of(out, "GITLAB", "b") == [2222]


@pytest.mark.parametrize("text", [
    "MANAGERS=b\nNOT_A_KEY=1\n",
    'MANAGERS="b\n',
    "MANAGERS=b!!\n",
    "MANAGERS=b  #\nGITLAB\n",
    "MANAGERS=ops@b:99999\n",
    "MANAGERS=  # nothing but a comment is read as the value\n",
])
def test_text_the_reader_refuses_is_a_config_error(text):
    with pytest.raises(ConfigError):
        config.parse(text, environ={})
    with pytest.raises(ConfigError):
        envfile.with_port(text, "b", 2222)


# --- record_port: the file on disk --------------------------------------------------------

def test_record_port_rewrites_atomically_keeping_mode_and_crlf(tmp_path):
    p = tmp_path / "hosts.env"
    p.write_bytes(b"# prod\r\nGITLAB=10.0.1.31   # GitLab CE\r\nSSH_USER=root\r\n")
    p.chmod(0o640)
    inode = p.stat().st_ino
    assert envfile.record_port(str(p), "10.0.1.31", 2222) is True
    assert p.read_bytes() == b"# prod\r\nGITLAB=10.0.1.31:2222   # GitLab CE\r\nSSH_USER=root\r\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.stat().st_ino != inode  # a new file renamed in place
    assert os.listdir(tmp_path) == ["hosts.env"]  # no temp file left
    assert envfile.record_port(str(p), "10.0.1.31", 2222) is False  # already recorded
    assert envfile.record_port(str(tmp_path / "missing.env"), "10.0.1.31", 2222) is False


def test_record_port_follows_a_symlink_and_keeps_it(tmp_path):
    real = tmp_path / "prod.env"
    real.write_text("GITLAB=b\n")
    (tmp_path / "hosts.env").symlink_to(real)
    assert envfile.record_port(str(tmp_path / "hosts.env"), "b", 2222)
    assert (tmp_path / "hosts.env").is_symlink() and real.read_text() == "GITLAB=b:2222\n"


def test_record_port_leaves_a_refused_file_alone(tmp_path):
    p = tmp_path / "hosts.env"
    p.write_bytes(b"GITLAB=b\nBOGUS=1\n\xff\n")
    with pytest.raises(ConfigError, match="unknown key BOGUS"):
        envfile.record_port(str(p), "b", 2222)
    assert p.read_bytes() == b"GITLAB=b\nBOGUS=1\n\xff\n" and os.listdir(tmp_path) == ["hosts.env"]


def test_record_port_from_many_threads_loses_no_update(tmp_path):
    hosts = [f"h{i}" for i in range(12)]
    p = tmp_path / "hosts.env"
    p.write_text(f"MANAGERS={','.join(hosts)}\n")
    threads = [threading.Thread(target=envfile.record_port, args=(str(p), h, 2200 + i)) for i, h in enumerate(hosts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s.port for s in groups_after(p.read_text())["MANAGERS"]] == [2200 + i for i in range(12)]


# --- properties ---------------------------------------------------------------------------
# A model of a hosts file the reader accepts; rendering it with (host, port) gives the exact
# text the writer must produce, so the writer's output is checked byte for byte, not only
# by reading it back.

HOSTS = ("10.0.1.31", "10.0.1.3", "b", "b2", "gitlab.example.com", "fd00::1", "fd00::1:2")
HEX = re.compile(r"[0-9A-Fa-f:.]+")  # what the reader accepts in [brackets]


@dataclass(frozen=True)
class Entry:
    user: str
    host: str
    bracket: bool
    port: str | None

    def moves(self, host: str, port: int) -> bool:
        return self.host == host and (self.port is None or int(self.port) != port)

    def render(self, new_port: int | None = None) -> str:
        bracket = self.bracket or (new_port is not None and ":" in self.host)
        port = self.port if new_port is None else str(new_port)
        return self.user + (f"[{self.host}]" if bracket else self.host) + ("" if port is None else f":{port}")


@dataclass(frozen=True)
class GroupLine:
    head: str  # blanks, export, key, blanks, '=', blanks
    quote: str
    pieces: tuple[tuple[str, Entry | None, str], ...]  # blanks before, entry, blanks after
    tail: str  # blanks and an inline comment
    eol: str

    def render(self, host: str | None = None, port: int = 0) -> str:
        value = ",".join(a + (e.render(port if host and e.moves(host, port) else None) if e else "") + z
                         for a, e, z in self.pieces)
        return f"{self.head}{self.quote}{value}{self.quote}{self.tail}{self.eol}"


@dataclass(frozen=True)
class Line:
    text: str

    def render(self, host: str | None = None, port: int = 0) -> str:
        return self.text


EOL = st.sampled_from(["\n", "\r\n", "\r"])
BLANKS = {q: st.lists(st.sampled_from(b), max_size=2).map("".join) for q, b in
          {"": [" ", "\t"], "'": [" ", "\t", "\n", "\r\n"], '"': [" ", "\t", "\n", "\r\n", "\\t", "\\n"]}.items()}
COMMENT = st.sampled_from(["# c", "#", "# GitLab CE (its sshd moves to SSHD_PORT)", "# was b:22, 10.0.1.31:22",
                           "#x=1,b", "# 'quoted' \"text\" = ,"])
SETTINGS = st.sampled_from([
    "SSH_USER=root", "SSH_PORT = 2200  # not 22", "export REGISTRY_USER=\"demo # not a comment\"",
    "IMAGE_TAG='v1'  # tag", 'REGISTRY_PASSWORD="p\\"w=#x"', "NETWORK_NAME=net-10-0-1-31",
    'DOCKER_MIRRORS="https://m1, https://m2"', "SSHD_PORT=", "NODE_LABELS=b:role=db,10.0.1.31:disk=ssd",
    "KONG_DASHBOARD_USERS='a=b c=d'",
])


# The reader's rules for hosts (config._check_hosts): one login per host across the file, a
# host once per group, MANAGERS and WORKERS apart, WORKERS only beside a manager.
LOGIN = {"10.0.1.31": "", "10.0.1.3": "ops@", "b": "ops@", "b2": "", "gitlab.example.com": "deploy_1@",
         "fd00::1": "", "fd00::1:2": "ops@"}
POOL = {"MANAGERS": ("10.0.1.31", "b", "fd00::1"), "WORKERS": ("10.0.1.3", "b2", "gitlab.example.com", "fd00::1:2")}


@st.composite
def entries(draw, host):
    port = draw(st.none() | st.sampled_from(["22", "2222", "022", " 2200"]) | st.integers(1, 65535).map(str))
    may_bracket = bool(HEX.fullmatch(host))
    bracket = may_bracket and ((":" in host and port is not None) or draw(st.booleans()))
    return Entry(LOGIN[host], host, bracket, port)


@st.composite
def pieces_of(draw, quote, key):
    hosts = draw(st.lists(st.sampled_from(POOL.get(key, HOSTS)), unique=True, max_size=4,
                          min_size=1 if key == "MANAGERS" else 0))
    slots = [draw(entries(h)) for h in hosts] + [None] * draw(st.integers(0 if hosts else 1, 2))
    slots = draw(st.permutations(slots))
    return [(draw(BLANKS[quote]), e, draw(BLANKS[quote])) for e in slots]


@st.composite
def group_lines(draw, key):
    quote = draw(st.sampled_from(["", '"', "'"]))
    pieces = tuple(draw(pieces_of(quote, key)))
    value = ",".join(a + (e.render() if e else "") + z for a, e, z in pieces)
    comment = draw(st.none() | COMMENT)
    if quote:
        tail = draw(st.sampled_from(["", "  ", "\t"])) + (comment or "")
    elif comment and value.strip():  # an unquoted comment needs a blank before it and a value
        tail = draw(st.sampled_from([" ", "   ", "\t"])) + comment
    else:
        tail = draw(st.sampled_from(["", "  "]))
    key_text = draw(st.sampled_from([key, f"'{key}'"]))
    head = (draw(st.sampled_from(["", " ", "\t"])) + draw(st.sampled_from(["", "export ", "export\t"]))
            + key_text + draw(st.sampled_from(["", " "])) + "=" + draw(st.sampled_from(["", " ", "\t"])))
    return GroupLine(head, quote, pieces, tail, draw(EOL))


OTHER_LINES = (st.tuples(st.sampled_from(["", " ", "\t"]), EOL).map("".join)  # blank
               | st.tuples(st.sampled_from(["", "  "]), COMMENT, EOL).map("".join)
               | st.tuples(SETTINGS, EOL).map("".join)).map(Line)
# An earlier binding of a group key: the reader keeps only the last one, so anything goes.
DEAD_LINES = {key: st.tuples(st.just(f"{key}=x"), st.text(alphabet="ab 10.3:@,#!=", max_size=20), EOL)
              .map("".join).map(Line) for key in config.GROUPS}
GROUP_LINES = {key: group_lines(key) for key in config.GROUPS}


@st.composite
def hosts_files(draw):
    """(model lines, text) of a hosts file the reader accepts."""
    units = []
    keys = draw(st.lists(st.sampled_from(config.GROUPS), unique=True, min_size=1, max_size=4))
    if "WORKERS" in keys and "MANAGERS" not in keys:
        keys.append("MANAGERS")
    for key in keys:
        units.append(draw(st.lists(DEAD_LINES[key], max_size=1)) + [draw(GROUP_LINES[key])])
    units += [[line] for line in draw(st.lists(OTHER_LINES, max_size=6))]
    lines = [line for unit in draw(st.permutations(units)) for line in unit]
    if lines and draw(st.booleans()):  # the last line without its line ending
        last = lines[-1]
        lines[-1] = replace(last, eol="") if isinstance(last, GroupLine) else Line(last.text.rstrip("\r\n"))
    return lines, "".join(line.render() for line in lines)


def split_lines(text: str) -> list[str]:
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


@CI
@given(hosts_files(), st.data())
def test_write_then_read_is_read_with_one_port_changed(model, data):
    lines, text = model
    before = config.parse(text, environ={})  # the generator makes only files the reader accepts
    present = sorted({s.host for specs in before.groups.values() for s in specs})
    host = data.draw(st.sampled_from(present + ["b"]) if present else st.sampled_from(HOSTS), label="host")
    ports = sorted({s.port for specs in before.groups.values() for s in specs if s.host == host} | {2222})
    port = data.draw(st.sampled_from(ports) | st.integers(1, 65535), label="port")  # often one it has already
    out = envfile.with_port(text, host, port)
    after = config.parse(out, environ={})
    assert after.groups == {g: tuple(replace(s, port=port) if s.host == host else s for s in specs)
                            for g, specs in before.groups.items()}
    assert after.values == before.values
    old, new = split_lines(text), split_lines(out)
    assert len(old) == len(new)
    assert all(a == b or host in a for a, b in zip(old, new))  # a line not holding the host is kept
    assert out == "".join(line.render(host, port) for line in lines)  # and the rest byte for byte
    assert envfile.with_port(out, host, port) == out


FRAGMENTS = st.sampled_from([
    "MANAGERS=", "export ", "BOGUS=", "'", '"', "#", " ", "\t", "\n", "\r\n", "\r", ",", "=", "b", "10.0.1.31",
    ":2222", ":", "ops@", "@", "[fd00::1]", "fd00::1", "\\", "\\n", "\\\"", "x y", "0", "\x0b", "\u00a0", "\u2028"])


@st.composite
def mutated_files(draw):
    """A file the reader accepts with a few fragments dropped in anywhere: often still accepted."""
    text = draw(hosts_files())[1]
    for fragment in draw(st.lists(FRAGMENTS, min_size=1, max_size=3)):
        i = draw(st.integers(0, len(text)))
        text = text[:i] + fragment + text[i:]
    return text


@CI
@given(mutated_files(), st.sampled_from(HOSTS))
def test_any_text_is_rewritten_consistently_or_refused_with_a_config_error(text, host):
    try:
        before = config.parse(text, environ={})
    except ConfigError:
        with pytest.raises(ConfigError):
            envfile.with_port(text, host, 2222)
        return
    after = config.parse(envfile.with_port(text, host, 2222), environ={})
    assert after.groups == {g: tuple(replace(s, port=2222) if s.host == host else s for s in specs)
                            for g, specs in before.groups.items()}
