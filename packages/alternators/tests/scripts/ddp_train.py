"""``alternators train`` as one torchrun worker that records what it wrote.

    torchrun --standalone --nproc-per-node 2 ddp_train.py RECORD_DIR [train options...]

Runs the real command line (``alternators train`` with the options given) and writes
``RECORD_DIR/written-by-rank<R>.json``: how many checkpoints this rank saved and whether its
run logger was enabled (the test checks that only rank 0 writes).
"""

from __future__ import annotations

import sys
from pathlib import Path

from alternators.cli import cli
from physml_core.testing import record_writes


def main() -> None:
    record, args = Path(sys.argv[1]), sys.argv[2:]
    with record_writes(record):
        cli.main(args=["train", *args], standalone_mode=False)


if __name__ == "__main__":
    main()
