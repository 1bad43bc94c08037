"""An independent verifier: PyJWT's PyJWKClient checks the server's tokens against its /jwks.

Usage: python jwks_verify.py SERVER_URL [AUDIENCE]

What an API gateway that verifies JWTs locally does (Kong, Envoy `jwt_authn`, Traefik plugins):
fetch the JWKS, pick the key by the token's `kid`, verify the signature, `exp` and `aud`. Uses
only the standard library and PyJWT (with `cryptography`), not the original's client, so nothing
of JWThenticator's own code takes part in the verification. Exits 0 when every check passes.
"""

import json
import sys
import time
import traceback
import urllib.request
import uuid
from typing import Any, Callable, Dict, List, Optional

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK, PyJWKClient

CHECKS: List[Callable[["Context"], None]] = []


def check(func: Callable[["Context"], None]) -> Callable[["Context"], None]:
    CHECKS.append(func)
    return func


def post(url: str, body: Dict[str, Any]) -> Dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


class Context:
    def __init__(self, server_url: str, audience: Optional[str]) -> None:
        self.server_url = server_url.rstrip("/")
        self.audience = audience
        self.identifier = str(uuid.uuid4())
        key = f"jwks-key-{uuid.uuid4()}"
        post(f"{self.server_url}/register_key", {"key": key, "identifier": self.identifier})
        self.token = post(
            f"{self.server_url}/authenticate", {"key": key, "identifier": self.identifier}
        )["jwt"]
        self.jwks_client = PyJWKClient(f"{self.server_url}/jwks", cache_keys=False, timeout=30)

    def decode(self, token: str) -> Dict[str, Any]:
        signing_key = self.jwks_client.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            signing_key.key,
            algorithms=[signing_key.algorithm_name],
            audience=self.audience,
            options={"require": ["exp", "iat"]},
        )


@check
def every_jwk_is_a_usable_rsa_signing_key(ctx: Context) -> None:
    with urllib.request.urlopen(f"{ctx.server_url}/jwks", timeout=30) as response:
        jwks = json.load(response)
    assert jwks["keys"], jwks
    for jwk in jwks["keys"]:
        assert jwk["kty"] == "RSA" and jwk["use"] == "sig" and jwk["kid"], jwk
        assert jwk["alg"] in {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, jwk
        PyJWK(jwk)


@check
def token_from_authenticate_verifies_against_the_jwks(ctx: Context) -> None:
    claims = ctx.decode(ctx.token)
    assert claims["identifier"] == ctx.identifier, claims
    uuid.UUID(claims["token_id"])
    assert claims["iat"] <= time.time() + 60 < claims["exp"], claims
    if ctx.audience is not None:
        assert ctx.audience in claims["aud"], claims


@check
def tampered_payload_fails_verification(ctx: Context) -> None:
    head, _, signature = ctx.token.split(".")
    claims = jwt.decode(ctx.token, options={"verify_signature": False})
    claims["identifier"] = str(uuid.uuid4())
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    try:
        ctx.decode(f"{head}.{forged_payload}.{signature}")
    except jwt.InvalidSignatureError:
        return
    raise AssertionError("a tampered token verified")


@check
def token_signed_by_another_key_fails_verification(ctx: Context) -> None:
    header = jwt.get_unverified_header(ctx.token)
    claims = jwt.decode(ctx.token, options={"verify_signature": False})
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, attacker, algorithm=header["alg"], headers={"kid": header["kid"]})
    try:
        ctx.decode(forged)
    except jwt.InvalidSignatureError:
        pass
    else:
        raise AssertionError("a token signed by another key verified")
    unknown_kid = jwt.encode(claims, attacker, algorithm=header["alg"], headers={"kid": "unknown"})
    try:
        ctx.decode(unknown_kid)
    except jwt.PyJWKClientError:
        pass
    else:
        raise AssertionError("a token with an unknown kid verified")


@check
def wrong_audience_is_refused_when_the_server_sets_one(ctx: Context) -> None:
    if ctx.audience is None:
        return
    signing_key = ctx.jwks_client.get_signing_key_from_jwt(ctx.token)
    try:
        jwt.decode(ctx.token, signing_key.key, algorithms=[signing_key.algorithm_name],
                   audience="some-other-service")
    except jwt.InvalidAudienceError:
        return
    raise AssertionError("a token verified for an audience it was not issued to")


def main(server_url: str, audience: Optional[str]) -> int:
    ctx = Context(server_url, audience)
    failures = 0
    for func in CHECKS:
        try:
            func(ctx)
            print(f"PASS {func.__name__}", flush=True)
        except Exception:  # pylint: disable=broad-except
            failures += 1
            print(f"FAIL {func.__name__}", flush=True)
            traceback.print_exc(file=sys.stdout)
    print(f"{len(CHECKS) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
