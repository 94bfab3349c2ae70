"""hosts.env edited in place: one host's SSH port changed in every group, nothing else.

The reader is python-dotenv's parser (:func:`config.parse`). This writer walks the same
bindings (each ``Binding.original`` is the exact text of one binding, with the blank and
comment lines before it) and rewrites only the host entries inside the value of the group
bindings the reader uses. The key, ``export``, quotes, spacing, inline comments, line endings
and every other line keep their bytes. :func:`with_port` is pure; :func:`record_port` writes
its result atomically (temp file + rename, mode kept).

Assumptions: the text is what :func:`config.parse` accepts (anything else is a ConfigError,
never another exception); a group key written twice counts once, in its last binding, as the
reader does, so only that binding changes and an earlier, shadowed one keeps its bytes.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import stat
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from dotenv.parser import parse_stream

from . import config
from .errors import ConfigError

_RECORD_LOCK = threading.Lock()

# A binding as python-dotenv 1.x reads it (dotenv/parser.py): blank lines, optional export,
# key (single-quoted or bare), '=' with blanks around it; the value follows, matched apart.
_HEAD = re.compile(r"\s*(?:export[^\S\r\n]+)?(?:'[^']+'|[^'=#\s][^=#\s]*)[^\S\r\n]*=[^\S\r\n]*")
_QUOTED = {'"': re.compile(r'"((?:\\"|[^"])*)"'), "'": re.compile(r"'((?:\\'|[^'])*)'")}
_UNQUOTED = re.compile(r"[^\r\n]*")
_INLINE_COMMENT = re.compile(r"\s+#.*")
# The characters of a raw value, an escape sequence counting as one (what dotenv decodes).
_UNITS = {
    '"': re.compile(r"""\\[\\'"abfnrtv]|.""", re.DOTALL),
    "'": re.compile(r"\\[\\']|.", re.DOTALL),
    "": re.compile(r".", re.DOTALL),
}


def _value_span(original: str) -> tuple[int, int, str]:
    """(start, end, quote) of the raw value inside one binding's text; quote is '"', "'" or ''."""
    head = _HEAD.match(original)
    if head is None:
        raise ValueError("no KEY= at the start")
    start = head.end()
    quote = original[start:start + 1]
    if quote in _QUOTED:
        m = _QUOTED[quote].match(original, start)
        if m is None:
            raise ValueError("unclosed quote")
        return m.start(1), m.end(1), quote
    part = _UNQUOTED.match(original, start).group()
    return start, start + len(_INLINE_COMMENT.sub("", part).rstrip()), ""


def _decode(unit: str) -> str:
    return codecs.decode(unit, "unicode-escape") if len(unit) == 2 else unit


def _entry_with_port(entry: str, port: int) -> str:
    """``[user@]host[:port]`` with ``port``: the user and the host as written, IPv6 in brackets."""
    user, at, rest = entry.partition("@") if "@" in entry else ("", "", entry)
    if rest.startswith("["):
        host = rest[:rest.index("]") + 1]
    elif rest.count(":") == 1:
        host = rest.split(":")[0]
    else:
        host = f"[{rest}]" if ":" in rest else rest
    return f"{user}{at}{host}:{port}"


def _value_with_port(raw: str, quote: str, host: str, port: int) -> str:
    """A group's raw value with each entry for ``host`` on ``port``; separators, blanks and
    escapes between entries kept. Commas are never part of an escape, so each comma-separated
    piece decodes on its own exactly as the whole value does."""
    pieces = []
    for piece in raw.split(","):
        units = _UNITS[quote].findall(piece)
        solid = [i for i, u in enumerate(units) if not _decode(u).isspace()]
        if solid:
            lo, hi = solid[0], solid[-1] + 1
            entry = "".join(_decode(u) for u in units[lo:hi])
            spec = config.parse_host(entry, user="root", port=0)
            if spec.host == host and spec.port != port:
                piece = "".join(units[:lo]) + _entry_with_port(entry, port) + "".join(units[hi:])
        pieces.append(piece)
    return ",".join(pieces)


def with_port(text: str, host: str, port: int, *, source: str = "hosts.env") -> str:
    """hosts.env text with every group entry for ``host`` on ``port``; all other bytes kept.

    Raises ConfigError when :func:`config.parse` refuses ``text``, and only then.
    """
    before = config.parse(text, environ={}, source=source)
    bindings = list(parse_stream(io.StringIO(text)))
    live = {b.key: i for i, b in enumerate(bindings) if b.key in config.GROUPS}  # the last one wins
    out = [b.original.string for b in bindings]
    for key, i in live.items():
        original = out[i]
        try:
            start, end, quote = _value_span(original)
        except ValueError as exc:  # only if dotenv's grammar drifted from the one above
            raise ConfigError(f"{source} line {bindings[i].original.line}: cannot locate {key}'s value "
                              f"({exc}); set {host}'s port to {port} by hand") from None
        out[i] = original[:start] + _value_with_port(original[start:end], quote, host, port) + original[end:]
    new = "".join(out)
    _check(before, new, host, port, source)
    return new


def _check(before: config.Settings, new: str, host: str, port: int, source: str) -> None:
    """Refuse to hand back text that reads as anything but ``before`` with ``host`` on ``port``."""
    expected = {g: tuple(replace(s, port=port) if s.host == host else s for s in specs)
                for g, specs in before.groups.items()}
    try:
        after = config.parse(new, environ={}, source=source)
    except ConfigError as exc:
        after, why = None, str(exc)
    else:
        why = "it would read differently"
    if after is None or after.groups != expected or after.values != before.values:
        raise ConfigError(f"{source}: cannot record port {port} for {host} ({why}); set it by hand")


def record_port(path: str, host: str, port: int) -> bool:
    """Rewrite the hosts file so later runs reach ``host`` on ``port``: False when nothing
    changes (or there is no such file). Atomic (temp file + rename), mode kept; a symlink
    is followed, so the file it points at is the one rewritten."""
    p = Path(os.path.realpath(path))
    if not p.is_file():
        return False
    with _RECORD_LOCK:
        text = p.read_bytes().decode("utf-8", "surrogateescape")  # CRLF and odd bytes kept as they are
        new = with_port(text, host, port, source=str(path))
        if new == text:
            return False
        _replace(p, new.encode("utf-8", "surrogateescape"))
    return True


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
