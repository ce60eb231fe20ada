"""``make bench``: the codec on one core, then end to end through S3."""

from __future__ import annotations

import subprocess
import sys

for module in ("bench.bench_codec", "bench.e2e"):
    print(f"\n== {module}", flush=True)
    subprocess.run([sys.executable, "-m", module], check=True)
