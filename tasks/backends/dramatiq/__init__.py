"""Dramatiq as a job backend: `broker` (brokers, messages, settings), `backend` (publish
a plain message, purge, the worker command), and the worker side, which only a worker
process imports: `actor` (the actor body) and `worker` (the CLI's broker callable);
`python -m tasks.backends.dramatiq` is Dramatiq's CLI tied to its parent's life.
"""

from tasks.backends.dramatiq.backend import DramatiqBackend

__all__ = ["DramatiqBackend"]
