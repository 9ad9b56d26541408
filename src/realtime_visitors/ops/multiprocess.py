"""prometheus_client's multiprocess mode, for `serve`: every worker, and the `serve`
process itself (the embedded store's supervisor counts its restarts there), writes its
metrics to files in one private directory; /metrics, in whichever worker answers it,
reads and sums them all.

Nothing here imports prometheus_client: it picks its mode once, when first imported,
from PROMETHEUS_MULTIPROC_DIR, which `shared_directory()` sets first.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


class TooLate(RuntimeError):
    """prometheus_client was imported before its directory was set."""


@contextmanager
def shared_directory() -> Iterator[Path]:
    """A new private directory in PROMETHEUS_MULTIPROC_DIR while `serve` runs, removed
    after. Always a new one: the files of an earlier run would add their counts to
    this run's, and two `serve` on one machine must not share theirs."""
    if "prometheus_client" in sys.modules:
        raise TooLate("prometheus_client is already imported: its mode is chosen")
    path = Path(tempfile.mkdtemp(prefix="rtv-metrics-"))  # mode 0700: this user's only
    before = os.environ.get(ENV)
    os.environ[ENV] = str(path)  # uvicorn's workers inherit it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process, which reuses the number
        return True
    return True
