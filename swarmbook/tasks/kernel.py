"""Kernel tuning from the runbook ("to be verified, use with care"): the TLinux kernel on
RHEL/CentOS 7, and the IPVS sysctls behind swarm's ingress connection-reuse problem.

kernel.tlinux refuses on any other OS and changes nothing there; it reboots only with
--reboot, then waits until the host answers from a new boot (its /proc/sys/kernel/random/boot_id
differs from the one read before the reboot) and checks `uname -r`. kernel.ipvs-tune skips hosts without IPVS (no /proc/sys/net/ipv4/vs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.taskdef import host_task, refuse

if TYPE_CHECKING:
    from swarmbook.engine import Host

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import facts, kernelcmd, ops
else:
    facts = lazy("swarmbook.facts")
    kernelcmd = lazy("swarmbook.kernelcmd")
    ops = lazy("swarmbook.ops")


def _validate(settings, reboot=False, timeout=600):
    if not kernelcmd.kernel_version(list(settings["TLINUX_PACKAGES"])):
        refuse("TLINUX_PACKAGES names no kernel-<version> package")
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@host_task(group="all", validate=_validate, help={
    "reboot": "reboot into the new kernel when it is not running yet, and wait for the host's new boot",
    "timeout": "seconds to wait for the host to answer from a new boot (boot_id) after the reboot (default 600)",
})
def tlinux(h: Host, reboot=False, timeout=600):
    """Install the pinned TLinux kernel (RHEL/CentOS 7 only) and make it grub's default."""
    s = h.settings
    packages = list(s["TLINUX_PACKAGES"])
    version = kernelcmd.kernel_version(packages)
    f = h.probe(facts.OS_RELEASE)
    why = kernelcmd.supported(f["os"])
    if why:
        h.fail("refused", why)
    f = h.probe(facts.file_state(kernelcmd.REPO, "repo"), kernelcmd.installed_fact(packages), kernelcmd.DEFAULT_KERNEL, kernelcmd.RUNNING_KERNEL,
                kernelcmd.BOOT_ID)
    ops.put_file(h, kernelcmd.REPO, kernelcmd.repo_text(s["TLINUX_BASEURL"]), state=f["repo"], step=f"repository {kernelcmd.REPO}")
    missing = [p for p in packages if p not in f["pinned"]]
    if missing:
        h.change(f"install {' '.join(missing)}", kernelcmd.install_cmd(missing), timeout=1800)
    else:
        h.ok("pinned kernel packages", " ".join(packages))
    if f["default_kernel"] == f"/boot/vmlinuz-{version}":
        h.ok("grub default", version)
    else:
        h.change("grub default", kernelcmd.set_default_cmd(version), reason=f"{f['default_kernel'] or '?'} -> {version}")
    if f["running_kernel"] == version:
        h.ok("running kernel", version)
        return
    if not reboot:
        h.note(f"running {f['running_kernel']}; {version} starts at the next reboot (or rerun with --reboot)")
        return
    if not f["boot_id"]:
        h.fail("reboot", f"cannot read {kernelcmd.BOOT_ID_PATH}, so a new boot could not be told from the old one")
    h.change("reboot", kernelcmd.REBOOT_CMD, reason=f"into {version}")
    if h.check:
        return
    _wait_back(h, version, f["boot_id"], int(timeout))


def _wait_back(h: Host, version: str, old_boot: str, timeout: int) -> None:
    """Wait until the host answers SSH from a new boot (boot_id differs), then check uname -r."""
    seen: dict = {}

    def back() -> bool:
        try:
            h.reconnect()
            seen["boot"], seen["kernel"] = kernelcmd.parse_boot(h.run(kernelcmd.BOOT_CMD, timeout=10).stdout)
        except Exception:  # noqa: BLE001 - going down, or not up yet
            seen["boot"] = None
            return False
        return seen["boot"] not in ("", old_boot)

    try:
        h.wait("host to come back from a new boot", back, timeout=timeout, interval=5)
    except StepFailed:
        state = ("still answers from the boot before the reboot" if seen.get("boot") == old_boot
                 else "no SSH answer from a new boot")
        raise StepFailed(f"reboot: {h.name} {state} {timeout}s after the reboot command; check its console") from None
    if seen["kernel"] != version:
        h.fail("running kernel", f"{seen['kernel']} after the reboot, not {version} (check grub)")
    h.ok("running kernel", version)


@host_task(group="nodes", name="ipvs-tune", help={})
def ipvs_tune(h: Host):
    """Set the IPVS sysctls in the host's namespace where the kernel has IPVS (stack.deploy sets them per service)."""
    # net.ipv4.vs.* are per network namespace: this file sets the host's own (and what a kernel
    # copies into new namespaces, depending on its version); the service containers, where the
    # runbook sets them, get them from stack.deploy (STACK_IPVS_SYSCTLS).
    f = h.probe(kernelcmd.IPVS_FACT, facts.file_state(kernelcmd.SYSCTL_FILE, "file"), kernelcmd.SYSCTL_VALUES)
    if not f["ipvs"]:
        h.skip("ipvs sysctls", f"no {kernelcmd.IPVS_DIR}: IPVS is not loaded in this kernel (swarm's routing mesh "
                               "loads ip_vs when it is available); nothing to tune")
        return
    changed = ops.put_file(h, kernelcmd.SYSCTL_FILE, kernelcmd.sysctl_text(), state=f["file"], step=f"sysctls {kernelcmd.SYSCTL_FILE}")
    if changed or f["ipvs_values"] != kernelcmd.IPVS_SYSCTLS:
        h.change("apply ipvs sysctls", kernelcmd.apply_cmd(),
                 reason=", ".join(f"{k}={v}" for k, v in kernelcmd.IPVS_SYSCTLS.items()))
    else:
        h.ok("ipvs sysctls", "applied")


ns = Collection("kernel", tlinux, ipvs_tune)
