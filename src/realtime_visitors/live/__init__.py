"""Live counts shared inside one process: public reads and streams, at most one Redis
call per second per website, path and window, however many readers."""

from .addresses import AddressLimit
from .counts import Closed, Counts, State, Subscriber, Topic, Unavailable

__all__ = ["AddressLimit", "Closed", "Counts", "State", "Subscriber", "Topic", "Unavailable"]
