"""Live evidence of every commitment (C02-C28), one function each, in a registry.

Importing this package registers every function; `REGISTRY` maps "C12" to its entry.
"""

from governance.trust.evidence import access, incidents, legal, platform, programme, retention  # noqa: F401
from governance.trust.evidence.base import FAILING, KEPT, NO_DATA, REGISTRY, Evidence, Period, Record

COMMITMENT_IDS = tuple(f"C{n:02d}" for n in range(2, 29))

__all__ = ["COMMITMENT_IDS", "FAILING", "KEPT", "NO_DATA", "REGISTRY", "Evidence", "Period", "Record"]
