"""MySQL on the shared network (the runbook's `docker run --name mysql --network default-network`).

Runs on the first manager (one database, not one per node). Assumes Docker and the
attachable shared network (net.create); other containers on it reach it as `mysql`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

C = lazy("swarmbook.containercmd")
containers = lazy("swarmbook.containers")
F = lazy("swarmbook.facts")
mysqlcmd = lazy("swarmbook.mysqlcmd")


def _validate(settings, timeout=180):
    if not settings["MYSQL_ROOT_PASSWORD"]:
        refuse(f"MYSQL_ROOT_PASSWORD is empty (set it in the environment or {settings.source})")
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@cluster_task(group="managers", validate=_validate, help={
    "timeout": "seconds to wait until MySQL answers a query (default 180)",
})
def up(run: Run, specs: list[HostSpec], timeout=180):
    """Run MySQL on the shared network, data in MYSQL_DATA, root password from MYSQL_ROOT_PASSWORD; query it."""
    s = run.settings
    c = mysqlcmd.container(s)
    pw = s["MYSQL_ROOT_PASSWORD"]

    def body(h: Host) -> None:
        f = h.probe(F.command_exists("docker"), C.network_fact(c.network), C.state_fact(mysqlcmd.NAME),
                    F.file_state(mysqlcmd.ENV_FILE, "env"))
        if not f["has:docker"]:
            h.needs("mysql", "docker is not installed (run docker.install first)")
        if not f[f"network:{c.network}"]:
            h.needs("mysql", f"network {c.network} is missing (run net.create first)")
        containers.ensure(h, c, f[f"container:{mysqlcmd.NAME}"], secrets={"MYSQL_ROOT_PASSWORD": pw.reveal()},
                          env_state=f["env"])
        if h.check:
            return
        result: dict = {}

        def answers() -> bool:
            res = h.try_run(mysqlcmd.VERSION_QUERY, stdin=pw.reveal() + "\n")
            result["res"] = res
            return res.rc == 0

        try:
            h.wait("MySQL to answer", answers, timeout=int(timeout), interval=2)
        except StepFailed:
            res = result.get("res")
            raise StepFailed(f"MySQL does not answer a query as root after {timeout}s: "
                             f"{(res.stderr.strip().splitlines() or ['?'])[-1] if res else '?'} "
                             "(a data folder made with another root password keeps that password)") from None
        h.ok("MySQL answers", f"SELECT VERSION() = {result['res'].stdout.strip()}")

    run.one(specs[0], body)


ns = Collection("mysql", up)
