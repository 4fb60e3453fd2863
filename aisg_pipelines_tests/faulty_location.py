"""The real code location with one injected transient LanceDB error source, for
test_operations_e2e.py: while the file named by AISG_TEST_FAULTS holds a number n > 0,
the orphan scan raises a LanceDB-style I/O error and decrements n. Everything else is the
production definitions, unchanged.
"""

import os
from pathlib import Path

from aisg_pipelines.definitions import build_defs
from aisg_pipelines.governance import orphans

_real_detect = orphans.detect_orphans


def _flaky_detect(*args, **kwargs):
    path = Path(os.environ["AISG_TEST_FAULTS"])
    n = int(path.read_text() or 0) if path.exists() else 0
    if n > 0:
        path.write_text(str(n - 1))
        raise RuntimeError("lance error: LanceError(IO): Generic LocalFileSystem error: connection reset by peer (injected)")
    return _real_detect(*args, **kwargs)


orphans.detect_orphans = _flaky_detect

defs = build_defs()
