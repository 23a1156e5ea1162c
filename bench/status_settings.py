"""Settings for the status page benchmark's processes (bench/status_bench.py): the
portal's production settings, with everything the run writes moved out of the way of
other users of the same machine and services:

* STATIC_ROOT in the benchmark's temporary folder (BENCH_STATIC_ROOT);
* the cache under a private key prefix in Redis (BENCH_CACHE_PREFIX), so the run never
  sees or bumps another process's status version, and the benchmark can delete exactly
  its own keys afterwards; without REDIS_URL, a file cache in the temporary folder
  (BENCH_CACHE_DIR) instead of var/cache.
"""

import os
from pathlib import Path

from bench.settings import *  # noqa: F403

if os.environ.get("BENCH_STATIC_ROOT"):
    STATIC_ROOT = Path(os.environ["BENCH_STATIC_ROOT"])

if REDIS_URL and os.environ.get("BENCH_CACHE_PREFIX"):  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = os.environ["BENCH_CACHE_PREFIX"]  # noqa: F405
elif not REDIS_URL and os.environ.get("BENCH_CACHE_DIR"):  # noqa: F405
    CACHES["default"]["LOCATION"] = os.environ["BENCH_CACHE_DIR"]  # noqa: F405
