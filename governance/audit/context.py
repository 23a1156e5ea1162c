"""Per-request context for audit events (the client IP), carried in a context variable."""

from __future__ import annotations

from contextvars import ContextVar

current_ip: ContextVar[str | None] = ContextVar("audit_current_ip", default=None)
