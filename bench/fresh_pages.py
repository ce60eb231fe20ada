"""What writing into memory the host took back costs: page-cache writes after pauses.

    .venv/bin/python -m bench.fresh_pages [--dir DIR] [--pauses 0,0,5,0,20,0]

Writes 600 files of a storage node's piece size (1.41 MB) into ``DIR`` (a temporary
directory on the disk by default), deletes them, and does it again after each pause,
printing the CPU seconds per GB of each round. On a VM whose kernel reports free
pages to the host (virtio-balloon), pages freed for longer than the reporting delay
(``/sys/module/page_reporting/parameters/min_free_ms``; about 2 s by default) are
handed back; a later write into them faults in the host, which the guest sees as a
slow copy. A round right after another reuses the pages just freed. Measures, never
asserts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

PIECE = 1_409_067  # 129 stripes of 10,923 bytes: an 8 MiB part's piece at 6-of-10
FILES = 600


def write_round(directory: Path, data: bytes) -> float:
    """CPU seconds per GB to create, write and close ``FILES`` files; then remove them."""
    start = time.process_time()
    for i in range(FILES):
        fd = os.open(directory / f"piece-{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    spent = time.process_time() - start
    for i in range(FILES):
        (directory / f"piece-{i}").unlink()
    return spent / (FILES * len(data) / 1e9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", type=Path, help="where to write (default: a temporary directory)")
    p.add_argument("--pauses", default="0,0,5,0,20,0", help="seconds idle before each round")
    args = p.parse_args()
    data = os.urandom(PIECE)
    delay = Path("/sys/module/page_reporting/parameters/min_free_ms")
    print(
        f"free page reporting: {'min_free_ms ' + delay.read_text().strip() if delay.exists() else 'not found'}"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for pause in (float(x) for x in args.pauses.split(",")):
            time.sleep(pause)
            print(
                f"after {pause:4.0f} s idle: {write_round(Path(tmp), data):.2f} CPU-s per GB written"
            )


if __name__ == "__main__":
    main()
