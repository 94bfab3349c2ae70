"""Pure helpers for registry logins: whether a stored login is current, and the login command.

The password only ever travels on stdin (``--password-stdin``); whether a node's stored
login is current is decided here by comparing the stored ``auth`` with the expected one,
so a second run sends nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json

from .facts import SERVICE_SPECS_CMD, Fact
from .shell import join, quote


def expected_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def login_current(config_json: str | None, registry: str, user: str, password: str) -> bool:
    """True when ~/.docker/config.json already holds exactly this user/password for ``registry``."""
    if not config_json:
        return False
    try:
        auths = json.loads(config_json).get("auths", {})
    except (json.JSONDecodeError, AttributeError):
        return False
    for key in (registry, f"https://{registry}", f"http://{registry}"):
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth") == expected_auth(user, password):
            return True
    return False


def docker_config_fact(user: str) -> Fact:
    """Content of ``user``'s ~/.docker/config.json ('' when absent; None when the user does not exist)."""
    home = f"$(getent passwd {quote(user)} | cut -d: -f6)"
    return Fact(f"dockercfg:{user}", f"getent passwd {quote(user)} >/dev/null || exit 9; "
                                     f"cat \"{home}/.docker/config.json\" 2>/dev/null || true",
                lambda t, rc: None if rc == 9 else t)


def login_cmd(registry: str, user: str, *, as_user: str = "root") -> str:
    """``docker login`` reading the password from stdin, run as ``as_user`` (e.g. gitlab-runner)."""
    cmd = join(["docker", "login", "--username", user, "--password-stdin", registry])
    if as_user == "root":
        return cmd + " >/dev/null"
    return join(["su", "-s", "/bin/sh", "-l", as_user, "-c", cmd]) + " >/dev/null"


def ca_path(registry: str) -> str:
    """Where Docker looks for a private registry's CA."""
    return f"/etc/docker/certs.d/{registry}/ca.crt"


# --- services' stored registry auth ------------------------------------------------------
# Swarm keeps the credentials a service was last updated with (--with-registry-auth) but
# never shows them. refresh-auth (and stack.deploy) stamp a label with a salted hash of the credentials
# sent, so a rerun knows whether the service already holds the current ones.

AUTH_LABEL = "swarmbook.registry-auth"


@functools.lru_cache(maxsize=256)
def auth_mark(registry: str, user: str, password: str, service: str) -> str:
    """Salted PBKDF2 of the credentials. Whoever reads service labels has the Docker API, and
    with it root on a manager whose config.json holds the password: the hash hides it from
    logs and screenshots, not from root. 20k iterations keep stack.deploy quick."""
    salt = f"swarmbook:{registry}:{user}:{service}".encode()
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 20_000)[:12].hex()


def parse_services(text: str) -> dict[str, dict[str, str]]:
    """name -> {'image': ..., 'mark': ...} of every service (image without the digest)."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            spec = json.loads(line)
            image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
            out[spec["Name"]] = {"image": image.split("@", 1)[0],
                                 "mark": (spec.get("Labels") or {}).get(AUTH_LABEL, "")}
    return out


SERVICES = Fact("services", SERVICE_SPECS_CMD, lambda t, rc: parse_services(t))


def uses_registry(image: str, registry: str) -> bool:
    return image.startswith(registry + "/")


def refresh_cmd(service: str, mark: str) -> str:
    return join(refresh_argv(service, mark))


def refresh_argv(service: str, mark: str) -> list[str]:
    return ["docker", "service", "update", "--detach=false", "--quiet", "--with-registry-auth",
            "--label-add", f"{AUTH_LABEL}={mark}", service]
