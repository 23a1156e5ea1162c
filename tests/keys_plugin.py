"""Loaded with `-p tests.keys_plugin` before Django settings: fresh random keys per run.

No key is ever committed; a run that sets its own (e.g. the rotation test's
subprocesses) keeps it.
"""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("CRYPTOGRAPHY_KEY", secrets.token_urlsafe(32))
