"""Settings for the benchmark's processes: the portal's, with the filesystem broker moved
to the benchmark's temporary folder (BENCH_BROKER_DIR) so it never touches var/."""

import os
from pathlib import Path

# Executed rather than imported: importing assyst.settings first imports the assyst
# package, whose Celery app reads these very settings while they are still loading.
_source = Path(__file__).resolve().parent.parent / "assyst" / "settings.py"
_namespace = {"__file__": str(_source), "__name__": "assyst_settings_for_bench"}
exec(compile(_source.read_text(), str(_source), "exec"), _namespace)
globals().update({k: v for k, v in _namespace.items() if k.isupper()})

if os.environ.get("BENCH_BROKER_DIR"):
    CELERY_BROKER_DIR = Path(os.environ["BENCH_BROKER_DIR"])
