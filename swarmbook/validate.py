"""What a value must look like, by Docker's own rules, checked before any host is touched.

Each check returns the value or raises :class:`ConfigError` with one line that names what is
wrong (``what`` is the key or option and, for hosts.env, its line). Values echoed back are cut
short (:func:`show`); a secret's value is never echoed (callers pass it only to checks that do
not quote it). Pure: no I/O.

The rules and where Docker states them:
- swarm objects (services, stacks, overlay networks): swarmkit's ``validateAnnotations``:
  ``[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*``, at most 63 characters ("valid as a DNS name
  component"); a stack's services are ``STACK_SERVICE``, so that name must fit too.
- configs and secrets: ``[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?``, at most 64.
- containers and other local names: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``.
- image references (distribution's reference grammar): ``[registry[:port]/]path[:tag][@digest]``
  with lower-case path components, tags ``[\\w][\\w.-]{0,127}``.
"""

from __future__ import annotations

import ipaddress
import re

from .errors import ConfigError

SHOW_MAX = 60

_DNS_COMPONENT = re.compile(r"[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*")
_LOCAL_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


def show(value: object) -> str:
    """``repr`` of a value for an error line, cut to SHOW_MAX characters (a 1 MB value is not
    echoed back whole) with the length said."""
    text = str(value)
    if len(text) <= SHOW_MAX:
        return repr(text)
    return f"{text[:SHOW_MAX]!r}... ({len(text)} characters)"


def cut(text: str) -> str:
    """``text`` as it is when short, else as :func:`show` cuts it."""
    return text if len(text) <= SHOW_MAX else show(text)


def _bad(what: str, value: str, rule: str) -> ConfigError:
    return ConfigError(f"{what}: {show(value)} is not {rule}")


def swarm_name(value: str, what: str, *, max_len: int = 63) -> str:
    """A service, stack or swarm network name."""
    if not _DNS_COMPONENT.fullmatch(value):
        raise _bad(what, value, "a valid swarm name (letters, digits, - and _, starting and ending "
                                "with a letter or digit)")
    if len(value) > max_len:
        raise ConfigError(f"{what}: {show(value)} is longer than {max_len} characters")
    return value


def stack_name(value: str, what: str, service: str = "") -> str:
    """A stack name: a swarm name whose services ``NAME_SERVICE`` are swarm names too (it can
    never hold ``/`` or ``..``, so it stays inside STACKS_PATH)."""
    swarm_name(value, what)
    if service and len(f"{value}_{service}") > 63:
        raise ConfigError(f"{what}: {show(value)} makes the service name {value}_{service} longer than 63 characters")
    return value


def local_name(value: str, what: str) -> str:
    """A container, volume or cron job name (Docker's ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``)."""
    if not _LOCAL_NAME.fullmatch(value) or len(value) > 128:
        raise _bad(what, value, "a valid name (letters, digits, _ . -, starting with a letter or digit)")
    return value


def tag(value: str, what: str) -> str:
    if not _TAG.fullmatch(value):
        raise _bad(what, value, "a valid image tag (up to 128 of letters, digits, _ . -, not starting with . or -)")
    return value


def registry(value: str, what: str) -> str:
    """``host[:port]`` of a registry (no scheme, no path): what ``docker login`` and image names take."""
    if not value:
        return value
    host, port = value, None
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([^:/]+)(?::(\d{1,5}))?", value)
    if not m:
        raise _bad(what, value, "a registry host[:port] (no scheme, no path)")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if not is_host(host):
        raise _bad(what, value, "a registry host[:port] (no scheme, no path)")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ConfigError(f"{what}: port {show(port)} is not a number from 1 to 65535")
    return value


def image(value: str, what: str) -> str:
    """An image reference: ``[registry[:port]/]name[/name...][:tag][@sha256:...]``."""
    rest, digest = value, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise _bad(what, value, "an image reference (bad digest after @)")
    slash = rest.rfind("/")
    name, sep, tagged = rest[slash + 1:].partition(":")
    if sep and not _TAG.fullmatch(tagged):
        raise _bad(what, value, "an image reference (bad tag after :)")
    parts = rest[:slash + 1 + len(name)].split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry(parts[0], what)
        parts = parts[1:]
    if not all(_PATH_COMPONENT.fullmatch(p) for p in parts) or len(value) > 255:
        raise _bad(what, value, "an image reference such as registry:5000/team/app:1.2 "
                                "(lower-case name components)")
    return value


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def is_host(text: str) -> bool:
    """An IP address or a DNS host name."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(_HOSTNAME.fullmatch(text))


def user(value: str, what: str) -> str:
    """A login name as useradd takes it (no shell characters, no NUL)."""
    if not _USER.fullmatch(value):
        raise _bad(what, value, "a user name (lower-case letters, digits, _ . -; starting with a letter or _)")
    return value


def whole(value: object, what: str, *, minimum: int = 0) -> int:
    """An integer option or setting: a one-line error instead of Python's ValueError."""
    if isinstance(value, bool):
        raise _bad(what, str(value), "a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{1,9}\s*", value):
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        raise ConfigError(f"{what}: {show(value.strip())} is too large")
    else:
        raise _bad(what, str(value), "a whole number")
    if number < minimum:
        raise ConfigError(f"{what}: {number} is less than {minimum}")
    return number


def project(value: str, what: str) -> str:
    """PROJECT: the image's name under REGISTRY and the default stack name, so both rules."""
    if not _PATH_COMPONENT.fullmatch(value):
        raise _bad(what, value, "a lower-case image name (letters, digits, . _ - between them)")
    return stack_name(value, what)


def abspath(value: str, what: str) -> str:
    """A folder or file on the hosts: absolute, without ``..``."""
    if not value.startswith("/") or "/../" in f"{value}/" or re.search(r"[\s'\"\\$`;|&<>*?]", value):
        raise _bad(what, value, "an absolute path without .., spaces or shell characters")
    return value


def version(value: str, what: str) -> str:
    """An engine version or prefix (apt's or get.docker.com's): ``28.5``, ``5:28.5.2-1~debian.12``."""
    if not re.fullmatch(r"[0-9][0-9A-Za-z.:~+-]{0,63}", value):
        raise _bad(what, value, "a version such as 28.5 or 28.5.2")
    return value


def hostname(value: str, what: str) -> str:
    if not is_host(value):
        raise _bad(what, value, "a host name or IP address")
    return value


def ip(value: str, what: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise _bad(what, value, "an IP address") from None
    return value


def url(value: str, what: str) -> str:
    """An http(s) URL: a scheme, a host, no spaces or quotes (it ends up in files and commands)."""
    m = re.fullmatch(r"https?://(\[[0-9A-Fa-f:.]+\]|[^/:?#\s]+)(:\d{1,5})?([/?#][^\s'\"\\`]*)?", value)
    if not m or not (m.group(1).startswith("[") or is_host(m.group(1))):
        raise _bad(what, value, "an http(s)://host[:port][/path] URL")
    return value
