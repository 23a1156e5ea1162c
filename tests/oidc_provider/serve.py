"""Start the test provider: `python -m tests.oidc_provider.serve SPEC_JSON DB_PATH [PORT]`.

Migrates its own SQLite database, creates the users and applications of the spec, binds
127.0.0.1 on PORT (default: a free one) and prints `READY <port>` once it accepts
connections. The tests start it; `tests/oidc_provider/README.md` shows a manual trial.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    spec_path, db_path = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    os.environ["OIDC_PROVIDER_SPEC"] = spec_path
    os.environ["OIDC_PROVIDER_DB"] = db_path
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0, interactive=False)
    with open(spec_path) as f:
        spec = json.load(f)
    for username, user in spec["users"].items():
        User.objects.create_user(username, email=user.get("email", ""), password=user["password"])
    for app in spec["applications"]:
        Application.objects.create(
            name=app["name"],
            client_id=app["client_id"],
            client_secret=app["client_secret"],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=app["redirect_uri"],
            algorithm=Application.RS256_ALGORITHM,
            skip_authorization=True,
        )

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", port), QuietHandler, ipv6=False)
    server.set_app(WSGIHandler())
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
