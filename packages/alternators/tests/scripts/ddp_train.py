"""``alternators train`` as one torchrun worker that records what it wrote.

    torchrun --standalone --nproc-per-node 2 ddp_train.py RECORD_DIR [train options...]

Runs the real command line (``alternators train`` with the options given) and writes
``RECORD_DIR/written-by-rank<R>.json``: how many checkpoints this rank saved and whether its
run logger was enabled (the test checks that only rank 0 writes).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from alternators.cli import cli
from physml_core import training


def main() -> None:
    record, args = Path(sys.argv[1]), sys.argv[2:]
    writes: dict[str, Any] = {"checkpoints": 0, "logging": False}
    real_save, real_logger = training.save_checkpoint, training.RunLogger

    def counting_save(*a: Any, **kw: Any) -> Any:
        writes["checkpoints"] += 1
        return real_save(*a, **kw)

    def watched_logger(*a: Any, **kw: Any) -> Any:
        writes["logging"] = writes["logging"] or bool(kw.get("enabled", True))
        return real_logger(*a, **kw)

    training.save_checkpoint, training.RunLogger = counting_save, watched_logger
    cli.main(args=["train", *args], standalone_mode=False)
    rank = int(os.environ.get("RANK", "0"))
    (record / f"written-by-rank{rank}.json").write_text(json.dumps(writes))


if __name__ == "__main__":
    main()
