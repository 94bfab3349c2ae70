"""`inv` in a checkout: the namespace of swarmbook.tasks (Invoke puts this folder first on
sys.path, so the checkout's swarmbook is the one loaded)."""

from swarmbook.tasks import ns  # noqa: F401
