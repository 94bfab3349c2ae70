"""Images and packages for the platform services of issue 5, built once and pushed to the lab.

No public registry or packages.gitlab.com is reachable here, so the lab provides:
- real Debian builds: ``library/postgres:15`` (postgresql, honours POSTGRES_USER/DB/PASSWORD),
  ``library/mariadb:10.11`` (mariadb-server, honours MYSQL_ROOT_PASSWORD) and
  ``library/nginx:latest`` (nginx in the foreground on :80, with tar and sha256sum);
- clearly named stand-ins ``swarmbook-standin/{gitlab-ce,portainer,kong,kong-dashboard}``
  (see standin/standin.py and standin/kong-dashboard.js for what each does and does not do);
- a signed apt repository with a stand-in ``gitlab-runner`` package, laid out like
  packages.gitlab.com and served over HTTP on the lab gateway (:5080).

All but nginx sit on one ``platform-base`` image (debian seed + apt packages), saved as a tarball
in the cache dir, so a new machine or a pruned engine reloads it instead of rebuilding; nginx and
the dashboard's nodejs are apt layers of their own (about 8 s each, kept by the engine's cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import image, layout, sh
from .layout import LabError, Paths

HERE = Path(__file__).resolve().parent / "standin"
BASE_PACKAGES = ("postgresql", "mariadb-server", "python3", "ca-certificates", "procps")
APT_PORT = 5080
RUNNER_VERSION = "0.0.0-swarmbook-standin"
STANDIN = "swarmbook-standin"


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _file(name: str) -> str:
    return (HERE / name).read_text()


# -- pure: build contexts --------------------------------------------------------------------

def apt_install(packages: tuple[str, ...], also_remove: str = "") -> str:
    """A Dockerfile RUN line: Debian packages without recommends, no service started, lists dropped."""
    return f"""\
RUN set -eux; export DEBIAN_FRONTEND=noninteractive; \\
    printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \\
    apt-get update -q; apt-get install -y -q --no-install-recommends {' '.join(packages)}; \\
    apt-get clean; rm -rf /var/lib/apt/lists/* {also_remove + ' ' if also_remove else ''}/usr/sbin/policy-rc.d
"""


def base_dockerfile() -> str:
    return f"FROM {image.SEED_DEBIAN}\n" + apt_install(BASE_PACKAGES, "/var/lib/mysql/* /var/lib/postgresql/*")


def base_ref() -> str:
    return f"swarmbook-lab-seed/platform-base:{_hash(base_dockerfile())}"


def contexts() -> dict[str, dict[str, str]]:
    """registry repo:tag -> docker build context (file name -> text)."""
    base = base_ref()
    standin_py = _file("standin.py")

    def py_image(cmd: str, extra: str = "") -> dict[str, str]:
        return {"Dockerfile": f"FROM {base}\nCOPY standin.py /usr/local/bin/standin.py\n{extra}"
                              f"LABEL swarmbook.standin=true\nCMD {cmd}\n", "standin.py": standin_py}

    kong_extra = ("RUN ln -s /usr/local/bin/standin.py /usr/local/bin/kong\n"
                  "ENV KONG_STANDIN_MIGRATIONS=000_base\n")
    return {
        "library/postgres:15": {
            "Dockerfile": f"FROM {base}\nCOPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
                          "ENV PGDATA=/var/lib/postgresql/data\nEXPOSE 5432\n"
                          'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]\n',
            "entrypoint.sh": _file("postgres-entrypoint.sh")},
        # real nginx (Debian's package) shaped like the official image; also the runbook's helper
        # image for tar/sha256sum (both in every Debian)
        "library/nginx:latest": {
            "Dockerfile": f"FROM {image.SEED_DEBIAN}\n{apt_install(('nginx',))}"
                          "RUN ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log\n"
                          'EXPOSE 80\nSTOPSIGNAL SIGQUIT\nCMD ["nginx", "-g", "daemon off;"]\n'},
        "library/mariadb:10.11": {
            "Dockerfile": f"FROM {base}\nCOPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh\nEXPOSE 3306\n"
                          'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]\n',
            "entrypoint.sh": _file("mariadb-entrypoint.sh")},
        f"{STANDIN}/gitlab-ce:latest": {
            **py_image('["/usr/local/bin/standin.py", "gitlab"]',
                       "COPY gitlab-ctl gitlab-backup /usr/bin/\nEXPOSE 80 443 22\n"
                       # like the real image, docker itself reports health (the real one runs gitlab-healthcheck)
                       "HEALTHCHECK --interval=2s --timeout=3s CMD python3 -c \"import urllib.request; "
                       "urllib.request.urlopen('http://127.0.0.1/-/health', timeout=2)\"\n"),
            "gitlab-ctl": _file("gitlab-ctl"), "gitlab-backup": _file("gitlab-backup")},
        f"{STANDIN}/kong:latest": py_image('["kong", "start"]', kong_extra),
        # the same stand-in one version later: one more migration, so `up`/`finish` have work
        f"{STANDIN}/kong:next": py_image('["kong", "start"]',
                                         kong_extra + "ENV KONG_STANDIN_MIGRATIONS=\"000_base 001_next\"\n"),
        # node from Debian (~8 s, its layer cached before the COPYs), the CLI where the real image
        # has it, the same ENTRYPOINT/WORKDIR: kongcmd's `node -e` wrapper runs here as on the real one
        f"{STANDIN}/kong-dashboard:latest": {
            "Dockerfile": f"FROM {base}\n{apt_install(('nodejs',))}"
                          "COPY kong-dashboard.js /app/bin/kong-dashboard.js\n"
                          "COPY entrypoint.sh /app/docker/entrypoint.sh\nWORKDIR /app\n"
                          'LABEL swarmbook.standin=true\nEXPOSE 8080\nENTRYPOINT ["./docker/entrypoint.sh"]\n',
            "kong-dashboard.js": _file("kong-dashboard.js"),
            "entrypoint.sh": _file("kong-dashboard-entrypoint.sh")},
        f"{STANDIN}/portainer:latest": {
            "Dockerfile": f"FROM {image.SEED_BUSYBOX}\nCOPY entrypoint.sh /entrypoint.sh\n"
                          'LABEL swarmbook.standin=true\nEXPOSE 9000\nVOLUME /data\nCMD ["/entrypoint.sh"]\n',
            "entrypoint.sh": _file("portainer-entrypoint.sh")},
    }


def recipe(repo_tag: str) -> str:
    return _hash(contexts()[repo_tag])


def local_ref(repo_tag: str) -> str:
    return "swarmbook-lab-seed/" + repo_tag.replace("/", "-")


def runner_control(version: str = RUNNER_VERSION) -> str:
    return (f"Package: gitlab-runner\nVersion: {version}\nArchitecture: all\n"
            "Maintainer: swarmbook lab <lab@swarmbook.invalid>\nDepends: git, curl, ca-certificates\n"
            "Description: STAND-IN of GitLab Runner for the swarmbook lab\n"
            " Registers into config.toml like the real one; talks to no GitLab and runs no jobs.\n")


RUNNER_POSTINST = """\
#!/bin/sh
set -e
getent group gitlab-runner >/dev/null || groupadd --system gitlab-runner
getent passwd gitlab-runner >/dev/null || useradd --system --gid gitlab-runner --create-home \\
    --home-dir /home/gitlab-runner --shell /bin/bash gitlab-runner
mkdir -p /etc/gitlab-runner
[ -f /etc/gitlab-runner/config.toml ] || printf 'concurrent = 1\\ncheck_interval = 0\\n' > /etc/gitlab-runner/config.toml
chmod 600 /etc/gitlab-runner/config.toml
"""


# -- actions ---------------------------------------------------------------------------------

def _build(ref: str, ctx: dict[str, str], label: str) -> None:
    with tempfile.TemporaryDirectory(prefix="swarmbook-lab-platform-") as d:
        for name, text in ctx.items():
            Path(d, name).write_text(text)
            if name.endswith((".sh", ".js")) or name in ("gitlab-ctl", "gitlab-backup", "standin.py"):
                Path(d, name).chmod(0o755)
        sh.run(["docker", "build", "-q", "--label", f"{layout.LABEL}.recipe={label}", "-t", ref, d],
               env={"DOCKER_BUILDKIT": "0"}, timeout=1800)


def ensure_base() -> list[str]:
    """platform-base: from the engine, else from the cache tarball, else built (and cached)."""
    ref = base_ref()
    if image.image_exists(ref):
        return []
    tar = layout.cache_dir() / f"platform-base-{ref.rsplit(':', 1)[1]}.tar"
    if tar.exists():
        sh.run(["docker", "load", "-q", "-i", str(tar)], timeout=900)
        return [f"loaded {ref} from {tar.name}"]
    image.ensure_seed_images()
    t0 = time.monotonic()
    sh.log(f"building {ref} (apt-get of {', '.join(BASE_PACKAGES)}; once per machine)")
    _build(ref, {"Dockerfile": base_dockerfile()}, ref)
    partial = tar.with_suffix(".partial")
    sh.run(["docker", "save", "-o", str(partial), ref], timeout=900)
    os.replace(partial, tar)
    sh.log(f"built {ref} in {time.monotonic() - t0:.0f}s, cached as {tar.name}")
    return [f"built {ref}"]


def ensure_images() -> list[str]:
    """Every platform image in the outer engine at its current recipe."""
    done = ensure_base()
    for repo_tag, ctx in contexts().items():
        ref, want = local_ref(repo_tag), recipe(repo_tag)
        if image.image_label(ref, f"{layout.LABEL}.recipe") != want:
            if ctx["Dockerfile"].startswith(f"FROM {image.SEED_DEBIAN}\n"):  # not only platform-base's
                done += image.ensure_seed_images()
            _build(ref, ctx, want)
            done.append(f"built {ref}")
    return done


def ensure_pushed(p: Paths, password: str, endpoint: str, env: dict[str, str], login) -> list[str]:
    """Push each platform image the registry lacks (or holds at an older recipe)."""
    from . import registry

    record = p.state / "platform-pushed.json"
    pushed = json.loads(record.read_text()) if record.exists() else {}
    todo = [rt for rt in contexts() if pushed.get(rt) != recipe(rt) or not registry.has_tag(p, password, rt)]
    if not todo:
        return []
    done = ensure_images()
    login()

    def record_push(rt: str) -> None:
        pushed[rt] = recipe(rt)
        record.write_text(json.dumps(pushed, indent=1, sort_keys=True))

    return done + registry.push_all([(local_ref(rt), rt) for rt in todo], endpoint, env, on_pushed=record_push)


# -- the stand-in gitlab-runner apt repository -------------------------------------------------

def repo_dir(p: Paths) -> Path:
    return p.state / "apt"


def repo_url() -> str:
    """What RUNNER_REPO_URL is in the lab (as packages.gitlab.com/runner/gitlab-runner)."""
    return f"http://{layout.REGISTRY_HOST}:{APT_PORT}/runner/gitlab-runner"


def _repo_recipe() -> str:
    return _hash(runner_control(), RUNNER_POSTINST, _file("gitlab-runner"), layout.RELEASES, "pool/main")


def ensure_runner_repo(p: Paths) -> list[str]:
    """Build the signed repo (once per recipe) and serve it on gateway:5080."""
    done = []
    root = repo_dir(p)
    stamp = root / ".recipe"
    if not stamp.exists() or stamp.read_text() != _repo_recipe():
        _make_repo(p, root)
        stamp.write_text(_repo_recipe())
        done.append("gitlab-runner stand-in apt repository")
    if server_pid(p) is None:
        _start_server(p, root)
        done.append(f"apt repository :{APT_PORT} started")
    return done


def _make_repo(p: Paths, root: Path) -> None:
    gnupg = p.state / "gnupg"
    gnupg.mkdir(mode=0o700, exist_ok=True)
    genv = {"GNUPGHOME": str(gnupg)}
    if not sh.ok(["gpg", "--batch", "--list-secret-keys", "lab@swarmbook.invalid"], env=genv):
        sh.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                "swarmbook lab apt <lab@swarmbook.invalid>", "ed25519", "sign", "never"], env=genv)
    shutil.rmtree(root, ignore_errors=True)
    base = root / "runner/gitlab-runner"
    pool = base / "debian/pool/main/g/gitlab-runner"  # one package, listed by every release's dist
    pool.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as d:
        pkg = Path(d, "pkg")
        (pkg / "DEBIAN").mkdir(parents=True)
        (pkg / "usr/bin").mkdir(parents=True)
        (pkg / "DEBIAN/control").write_text(runner_control())
        (pkg / "DEBIAN/postinst").write_text(RUNNER_POSTINST)
        (pkg / "DEBIAN/postinst").chmod(0o755)
        (pkg / "usr/bin/gitlab-runner").write_text(_file("gitlab-runner"))
        (pkg / "usr/bin/gitlab-runner").chmod(0o755)
        deb = pool / f"gitlab-runner_{RUNNER_VERSION}_all.deb"
        sh.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(pkg), str(deb)])
    data = deb.read_bytes()
    rel = deb.relative_to(base / "debian")
    packages = (runner_control().rstrip("\n") + f"\nFilename: {rel}\nSize: {len(data)}\n"
                f"SHA256: {hashlib.sha256(data).hexdigest()}\n\n")
    for codename in layout.RELEASES:  # the lab's host releases (bookworm, trixie)
        dist = base / f"debian/dists/{codename}"
        for arch in ("amd64", "arm64"):
            (dist / f"main/binary-{arch}").mkdir(parents=True)
            (dist / f"main/binary-{arch}/Packages").write_text(packages)
        sums = "".join(f" {hashlib.sha256(packages.encode()).hexdigest()} {len(packages.encode())} "
                       f"main/binary-{arch}/Packages\n" for arch in ("amd64", "arm64"))
        (dist / "Release").write_text(f"Origin: swarmbook lab\nLabel: gitlab-runner stand-in\nSuite: {codename}\n"
                                      f"Codename: {codename}\nArchitectures: amd64 arm64\nComponents: main\n"
                                      f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\n"
                                      f"SHA256:\n{sums}")
        sh.run(["gpg", "--batch", "--yes", "--clearsign", "-o", str(dist / "InRelease"), str(dist / "Release")],
               env=genv)
    key = sh.run(["gpg", "--batch", "--armor", "--export", "lab@swarmbook.invalid"], env=genv).stdout
    (base / "gpgkey").write_text(key)
    _stop_gpg_agent(p)  # gpg started one for the signing; the lab needs no daemon of it


def _stop_gpg_agent(p: Paths) -> None:
    """gpg starts an agent per GNUPGHOME that outlives it; stop this lab's (no-op when none)."""
    gnupg = p.state / "gnupg"
    if gnupg.is_dir():
        sh.run(["gpgconf", "--kill", "gpg-agent"], env={"GNUPGHOME": str(gnupg)}, check=False)


def _pid_file(p: Paths) -> Path:
    return p.state / f"apt-{APT_PORT}.pid"


def server_pid(p: Paths) -> int | None:
    try:
        pid = int(_pid_file(p).read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(repo_dir(p)).encode() in argv else None


def _start_server(p: Paths, root: Path) -> None:
    argv = ["setsid", "-f", "sh", "-c", 'echo $$ >"$0"; exec "$@"', str(_pid_file(p)),
            sys.executable, "-m", "http.server", "--bind", layout.gateway(), "--directory", str(root),
            str(APT_PORT)]
    with open(p.state / f"apt-{APT_PORT}.log", "ab") as logf:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, check=True)
    for _ in range(50):
        if server_pid(p):
            return
        time.sleep(0.1)
    raise LabError(f"apt repository server did not start; see {p.state / f'apt-{APT_PORT}.log'}")


def stop_runner_repo(p: Paths) -> bool:
    """Stop the apt server (True when it ran) and any gpg agent a signing left behind."""
    _stop_gpg_agent(p)
    pid = server_pid(p)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
    _pid_file(p).unlink(missing_ok=True)
    return pid is not None


def services_env(secret: str) -> dict[str, str]:
    """Platform keys of the lab's hosts.env (issue 5): lab images, the apt repo, lab secrets."""
    return {
        "GITLAB_IMAGE": f"{STANDIN}/gitlab-ce:latest",
        "GITLAB_HOSTNAME": "gitlab.lab",
        "GITLAB_SMTP_PASSWORD": secret + "-smtp",
        "RUNNER_REPO_URL": repo_url(),
        "PORTAINER_IMAGE": f"{STANDIN}/portainer:latest",
        "KONG_IMAGE": f"{STANDIN}/kong:latest",
        "KONG_DASHBOARD_IMAGE": f"{STANDIN}/kong-dashboard:latest",
        "KONG_DB_IMAGE": "postgres:15",
        "KONG_PG_PASSWORD": secret + "-pg",
        "KONG_DASHBOARD_USERS": f"admin={secret}-dash",
        "MYSQL_IMAGE": "mariadb:10.11",
        "MYSQL_ROOT_PASSWORD": secret + "-my",
    }
