"""Dramatiq actors of the job lifecycle. Importing this package installs the Redis broker.

Run a worker with ``genhook worker`` (or ``dramatiq backend.actors``).
"""

from backend.broker import install_broker
from backend.logging_setup import quiet_libraries
from backend.settings import get_settings

quiet_libraries()
broker = install_broker(get_settings().require_redis_url())

from backend.actors import lifecycle  # noqa: E402,F401  (declares the actors on the broker)
