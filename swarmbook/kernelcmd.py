"""Pure builders for the runbook's kernel section: the TLinux kernel on RHEL/CentOS 7 (repository,
pinned packages, grub default, reboot) and the IPVS sysctls that ease swarm's ingress problem."""

from __future__ import annotations

import re

from .facts import Fact
from .shell import join

REPO = "/etc/yum.repos.d/CentOS-TLinux.repo"
SYSCTL_FILE = "/etc/sysctl.d/90-swarmbook-ipvs.conf"
IPVS_DIR = "/proc/sys/net/ipv4/vs"
IPVS_SYSCTLS = {"net.ipv4.vs.conn_reuse_mode": "0", "net.ipv4.vs.expire_nodest_conn": "1"}


def repo_text(baseurl: str) -> str:
    """The runbook's CentOS-TLinux.repo."""
    return ("[Tlinux]\nname=Tlinux for redhat/centos $releasever - $basearch\nfailovermethod=priority\n"
            "gpgcheck=0\ngpgkey=http://mirrors.tencentyun.com/epel/RPM-GPG-KEY-EPEL-7\nenabled=1\n"
            f"baseurl={baseurl}\n")


def supported(os_release: dict[str, str]) -> str:
    """'' on the RHEL/CentOS 7 family, else why kernel.tlinux refuses."""
    ids = {os_release.get("ID", "").lower(), *os_release.get("ID_LIKE", "").lower().split()}
    major = os_release.get("VERSION_ID", "").split(".")[0]
    if ids & {"rhel", "centos"} and major == "7":
        return ""
    name = os_release.get("PRETTY_NAME") or os_release.get("ID") or "this OS"
    return f"TLinux 2.4 kernels are for RHEL/CentOS 7 only; {name} is not (nothing changed)"


def installed_fact(packages: list[str]) -> Fact:
    """Which of the pinned name-version-release.arch packages are installed."""
    return Fact("pinned", join(["rpm", "-q", *packages]) + " 2>/dev/null | grep -v 'is not installed' || true",
                lambda t, rc: set(t.split()))


def kernel_version(packages: list[str]) -> str:
    """The kernel release the pinned ``kernel-*`` package installs (uname -r), e.g. 4.14.105-19.0013.tl2.x86_64."""
    for p in packages:
        m = re.fullmatch(r"kernel-(\d[^\s]*)", p)
        if m:
            return m.group(1)
    return ""


DEFAULT_KERNEL = Fact("default_kernel", "grubby --default-kernel", lambda t, rc: t.strip() if rc == 0 else "")
RUNNING_KERNEL = Fact("running_kernel", "uname -r", lambda t, rc: t.strip())


def install_cmd(packages: list[str]) -> str:
    return join(["yum", "-y", "install", *packages])


def set_default_cmd(version: str) -> str:
    """Make the new kernel grub's default (grubby finds its menu entry; then regenerate grub.cfg as the runbook does)."""
    return join(["grubby", "--set-default", f"/boot/vmlinuz-{version}"]) + \
        " && " + join(["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"]) + " >/dev/null"


REBOOT_CMD = "nohup sh -c 'sleep 2; systemctl reboot' >/dev/null 2>&1 &"

# A random id the kernel makes at every boot: a host is back from *its* reboot only when this
# differs from the one read before (an SSH answer alone may still come from the old boot).
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
BOOT_ID = Fact("boot_id", join(["cat", BOOT_ID_PATH]), lambda t, rc: t.strip() if rc == 0 else "")
BOOT_CMD = join(["cat", BOOT_ID_PATH]) + " && uname -r"


def parse_boot(text: str) -> tuple[str, str]:
    """(boot_id, kernel release) from :data:`BOOT_CMD`'s output; ('', '') when incomplete."""
    lines = text.split()
    return (lines[0], lines[1]) if len(lines) == 2 else ("", "")


def sysctl_text() -> str:
    return "# written by swarmbook kernel.ipvs-tune\n" + "".join(f"{k} = {v}\n" for k, v in IPVS_SYSCTLS.items())


IPVS_FACT = Fact("ipvs", join(["test", "-d", IPVS_DIR]), lambda t, rc: rc == 0)
SYSCTL_VALUES = Fact("ipvs_values", join(["sysctl", "-n", *IPVS_SYSCTLS]),
                     lambda t, rc: dict(zip(IPVS_SYSCTLS, t.split())) if rc == 0 else {})


def apply_cmd() -> str:
    return join(["sysctl", "-q", "-p", SYSCTL_FILE])
