"""Run the fault-injection test's commit in a process that dies (os._exit) at one operation.

Usage: python crash_commit.py DATA_DIR N before|after  (exit 17: died at operation N; 0: the
commit finished before N operations were reached).
"""

from __future__ import annotations

import sys
from pathlib import Path

from storage import Collection
from tests.storage.faults import FaultPlan, injected
from tests.storage.test_fault_injection import batch


def main() -> None:
    data, at, when = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    collection = Collection.open(data, "c")
    with collection.writer() as writer, injected(FaultPlan(at, when, crash=True)):
        writer.commit(*batch())
    collection.close()


if __name__ == "__main__":
    main()
