"""fab looks for a collection named `fabfile`: it is the same namespace `inv` loads from tasks/."""

from tasks import ns  # noqa: F401
