"""Per-token rate limit in the shared cache (Redis in production), so every web node
counts against the same budget: a fixed one-minute window, `add` + atomic `incr`."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from governance.api.models import ApiToken

WINDOW_SECONDS = 60


def limit_for(token: ApiToken) -> int:
    return token.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE


class TokenRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"api:rate:{token.pk}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
            count = 1
        self._wait = WINDOW_SECONDS - (now % WINDOW_SECONDS)
        request.rate_limit = (limit_for(token), count, window)
        return count <= limit_for(token)

    def wait(self) -> float:
        return max(1.0, self._wait)


def first_refusal_in_window(token: ApiToken, window: int) -> bool:
    """True once per token and window: only the first refused call is audited."""
    return cache.add(f"api:rate-audited:{token.pk}:{window}", 1, timeout=WINDOW_SECONDS * 2)
