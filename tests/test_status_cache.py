"""The status page's in-memory layer (C14, README "Performance"): finished responses kept
per process under the version, never a visitor's, and a version kept current over Redis
pub/sub so a change made by another process appears at once."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse

from incidents.status import cache as status_cache
from incidents.status import middleware, views

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C14")]


@pytest.fixture(autouse=True)
def _fresh():
    status_cache.bump()
    middleware.store.clear()
    yield
    status_cache.bump()
    middleware.store.clear()


def _broken_view(*args, **kwargs):
    raise AssertionError("the view ran")


def test_a_held_response_is_served_without_the_view_or_the_database(client, monkeypatch, django_assert_num_queries):
    first = client.get("/status/")
    assert first.status_code == 200
    monkeypatch.setattr(views, "page_context", _broken_view)
    with django_assert_num_queries(0):
        again = client.get("/status/")
        not_modified = client.get("/status/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200 and again.content == first.content
    assert again["ETag"] == first["ETag"] and again["Content-Security-Policy"] == first["Content-Security-Policy"]
    assert not_modified.status_code == 304 and not_modified["ETag"] == first["ETag"]


def test_a_change_makes_the_view_run_again(client, monkeypatch):
    assert client.get("/status/").status_code == 200
    status_cache.bump()
    monkeypatch.setattr(views, "page_context", _broken_view)
    with pytest.raises(AssertionError, match="the view ran"):
        client.get("/status/")


def test_pages_with_a_csrf_token_or_errors_are_never_held(client):
    assert client.get("/status/subscribe/").status_code == 200
    assert client.get("/status/incidents/999999/").status_code == 404
    assert client.post("/status/", {}).status_code == 405
    assert middleware.store._items == {}
    client.get("/api/v2/status.json")
    client.get("/api/v2/status.json?nocache=1")
    client.get("/api/v2/status.json?nocache=2")
    assert [key[1] for key in middleware.store._items] == ["/api/v2/status.json"]


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.set_cookie("sessionid", "x"),
        lambda r: r.__setitem__("Vary", "Cookie"),
        lambda r: setattr(r, "status_code", 302),
        lambda r: delattr(r, "public_cacheable"),
    ],
)
def test_only_marked_anonymous_successes_are_storable(change):
    response = HttpResponse(b"ok")
    response.public_cacheable = True
    assert middleware._storable(response)
    change(response)
    assert not middleware._storable(response)


def test_the_store_is_bounded_by_bytes():
    store = middleware._Store(max_bytes=1000)
    for n in range(10):
        store.put(("h", f"/{n}", "e"), middleware._Held(200, {}, b"x" * 200, None))
    assert store._bytes <= 1000 and len(store._items) == 5
    assert store.get(("h", "/0", "e")) is None and store.get(("h", "/9", "e")) is not None
    store.put(("h", "/big", "e"), middleware._Held(200, {}, b"x" * 200, b"y" * 100))  # body + gzip > 1/4
    assert store.get(("h", "/big", "e")) is None


def test_clients_that_accept_gzip_get_the_held_page_compressed(client):
    import gzip

    plain = client.get("/status/")
    assert "Accept-Encoding" in plain["Vary"] and "Content-Encoding" not in plain
    packed = client.get("/status/", HTTP_ACCEPT_ENCODING="br, gzip;q=0.9")
    assert packed["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed["Vary"]
    assert gzip.decompress(packed.content) == plain.content
    assert len(packed.content) < len(plain.content) / 2
    assert int(packed["Content-Length"]) == len(packed.content)
    assert packed["ETag"] == plain["ETag"][:-1] + '-gzip"'
    assert client.get("/status/", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=packed["ETag"]).status_code == 304
    again = client.get("/status/", HTTP_ACCEPT_ENCODING="identity")
    assert "Content-Encoding" not in again and again.content == plain.content


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    """Wait for the watcher thread (a thread hand-off, not a clock: no frozen time here)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        done.wait(0.02)
    return predicate()


@pytest.fixture
def redis_url():
    if not settings.REDIS_URL:
        if os.environ.get("CI_REQUIRE_SERVICES"):
            pytest.fail("CI must run the pub/sub test against Redis")
        pytest.skip("needs Redis (REDIS_URL); runs in CI")
    return settings.REDIS_URL


def test_the_watcher_follows_changes_made_by_another_process(redis_url):
    import redis

    watcher = status_cache.VersionWatcher()
    assert _wait_for(lambda: watcher.get() is not None), "the watcher never subscribed"
    assert watcher.get() == status_cache.current_version()

    # Another web node or worker: writes the cache and publishes, without this process's help.
    other = redis.Redis.from_url(redis_url)
    new = ("othernode01", datetime(2030, 1, 1, tzinfo=UTC))
    cache.set(status_cache.VERSION_KEY, new, None)
    other.publish(status_cache.channel_name(), b"1")
    assert _wait_for(lambda: watcher.get() == new), "a published change did not reach the watcher"

    # Redis drops every subscriber: the watcher reconnects and re-reads what changed meanwhile.
    other.client_kill_filter(_type="pubsub")
    newer = ("othernode02", datetime(2030, 1, 2, tzinfo=UTC))
    cache.set(status_cache.VERSION_KEY, newer, None)
    assert _wait_for(lambda: watcher.get() == newer), "the watcher did not recover after a dropped connection"


def test_without_the_watcher_every_request_reads_the_shared_version(settings, client, monkeypatch):
    settings.STATUS_VERSION_WATCH = False
    monkeypatch.setattr(status_cache, "watcher", status_cache.VersionWatcher())
    assert status_cache.watcher.get() is None
    assert client.get("/api/v2/status.json").status_code == 200
    cache.set(status_cache.VERSION_KEY, ("elsewhere01", datetime(2031, 1, 1, tzinfo=UTC)), None)
    assert client.get("/api/v2/status.json")["ETag"] == f'"elsewhere01-{datetime.now(UTC):%Y%m%d}"'


def test_a_change_whose_message_was_lost_still_arrives_within_the_refresh(redis_url, monkeypatch):
    monkeypatch.setattr(status_cache, "REFRESH_SECONDS", 0.2)
    watcher = status_cache.VersionWatcher()
    assert _wait_for(lambda: watcher.get() is not None), "the watcher never subscribed"
    silent = ("nomessage01", datetime(2030, 2, 1, tzinfo=UTC))
    cache.set(status_cache.VERSION_KEY, silent, None)  # written, never published
    assert _wait_for(lambda: watcher.get() == silent, timeout=3.0)
