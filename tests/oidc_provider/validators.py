"""Claims from the test spec, and deliberately wrong ID tokens for applications named so.

An application named `wrong-audience`, `wrong-issuer` or `foreign-key` gets an ID token
whose audience, issuer or signing key is wrong, all else real: the relying party must
refuse each of them. `userinfo-only` gets ID tokens without the email claims (as some
providers do), which the relying party then reads from the userinfo endpoint.
"""

from __future__ import annotations

import base64
import json
import os
from functools import cache

from jwcrypto import jwk, jwt
from oauth2_provider.oauth2_validators import OAuth2Validator


@cache
def spec() -> dict:
    with open(os.environ["OIDC_PROVIDER_SPEC"]) as f:
        return json.load(f)


@cache
def rogue_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="RSA", size=2048)


def _segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class TestProviderValidator(OAuth2Validator):
    def get_additional_claims(self, request):
        user = spec()["users"][request.user.username]
        return {k: user[k] for k in ("email", "email_verified", "given_name", "family_name") if k in user}

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        if request.client.name == "wrong-issuer":
            claims["iss"] = "http://127.0.0.1:9/elsewhere"
        if request.client.name == "userinfo-only":
            for name in ("email", "email_verified", "given_name", "family_name"):
                claims.pop(name, None)
        return claims, expiration_time

    def finalize_id_token(self, id_token, token, token_handler, request):
        if request.client.name == "wrong-audience":
            id_token["aud"] = "some-other-client"
        serialized = super().finalize_id_token(id_token, token, token_handler, request)
        if request.client.name == "foreign-key":
            # Same header (and key id), same claims, signed by a key the provider never published.
            forged = jwt.JWT(header=_segment(serialized, 0), claims=_segment(serialized, 1))
            forged.make_signed_token(rogue_key())
            serialized = forged.serialize()
        return serialized
