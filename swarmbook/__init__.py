"""swarmbook: the Docker Swarm + GitLab CI runbook as idempotent Invoke/Fabric tasks.

Layers (see README "Architecture"):
- ``config``: hosts.env parsed once into typed, validated settings.
- ``shell``: the one way to quote a command and the one way to mark a secret.
- ``facts`` / ``files`` / ``oscmd`` / ``dockercmd``: pure command builders and output parsers.
- ``engine`` / ``report`` / ``session``: parallel fan-out over SSH, per-host change reporting.
- ``ops``: idempotent primitives (probe, then change only what differs) built on the engine.
"""

__version__ = "0.1.0"
