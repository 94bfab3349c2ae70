"""fab looks for a collection named `fabfile`: it is the same namespace `inv` loads (swarmbook.tasks)."""

from swarmbook.tasks import ns  # noqa: F401
