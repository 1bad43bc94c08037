"""The Python original's own client library (PyPI jwthenticator 1.6.3) against a server.

Usage: python compat_client.py SERVER_URL

Drives the original's `InternalClient`, `Client` and `server_utils.authenticate` decorator (on an
aiohttp app this script serves on a free loopback port) against the server at SERVER_URL, exactly
as deployments of the original use them. Every check prints one line; the script exits 0 only
when all of them pass. The original's marshmallow schemas reject unknown and missing response
fields, so every successful call also proves the response shape.
"""

import asyncio
import json
import sys
import traceback
import uuid
from typing import Any, Awaitable, Callable, Dict, List

import jwt as pyjwt
from aiohttp import ClientSession, web

from jwthenticator import exceptions, schemas
from jwthenticator.client import Client, InternalClient
from jwthenticator.server_utils import authenticate

Check = Callable[["Context"], Awaitable[None]]
CHECKS: List[Check] = []


def check(func: Check) -> Check:
    CHECKS.append(func)
    return func


class Context:
    """The server under test and the decorator-protected app in front of nothing else."""

    def __init__(self, server_url: str, protected_url: str, seen: List[Dict[str, Any]]) -> None:
        self.server_url = server_url
        self.protected_url = protected_url
        self.seen = seen

    def fresh_identity(self) -> "tuple[uuid.UUID, str]":
        return uuid.uuid4(), f"device-key-{uuid.uuid4()}"

    async def registered_identity(self) -> "tuple[uuid.UUID, str]":
        identifier, key = self.fresh_identity()
        await InternalClient(self.server_url, identifier).register_key(key)
        return identifier, key

    async def post_json(self, path: str, body: Any) -> "tuple[int, Any]":
        async with ClientSession() as session:
            async with session.post(self.server_url.rstrip("/") + path, json=body) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text)
                except ValueError:
                    return response.status, text

    async def get_protected(self, headers: Dict[str, str]) -> int:
        async with ClientSession() as session:
            async with session.get(self.protected_url, headers=headers) as response:
                await response.read()
                return response.status


async def start_protected_app(server_url: str, seen: List[Dict[str, Any]]) -> "tuple[web.AppRunner, str]":
    """An aiohttp service protected by the original's decorator, on a free loopback port."""

    @authenticate(server_url)
    async def protected(request: web.Request) -> web.Response:
        seen.append({"method": request.method, "body": await request.text()})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/protected", protected)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/protected"


def claims_of(jwt: str) -> Dict[str, Any]:
    return pyjwt.decode(jwt, options={"verify_signature": False})


@check
async def internal_client_registers_keys_and_reports_them(ctx: Context) -> None:
    identifier, key = ctx.fresh_identity()
    client = InternalClient(ctx.server_url, identifier)
    assert await client.is_key_registered(key) is False
    # Raises RegisterKeyError unless 201 and a BoolResponse with result true.
    await client.register_key(key)
    assert await client.is_key_registered(key) is True
    # Registering the same key again is accepted (it extends the key's expiry).
    await client.register_key(key)
    assert await client.is_key_registered(key) is True


@check
async def key_only_client_authenticates(ctx: Context) -> None:
    identifier, key = await ctx.registered_identity()
    client = Client(ctx.server_url, identifier, key=key)
    await client.authenticate()
    assert client.jwt and client.refresh_token
    assert not client.is_jwt_expired
    claims = claims_of(client.jwt)
    assert claims["identifier"] == str(identifier), claims
    uuid.UUID(claims["token_id"])
    assert claims["exp"] > claims["iat"], claims
    header = pyjwt.get_unverified_header(client.jwt)
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["kid"], header


@check
async def key_only_client_get_with_auth_reaches_the_protected_service(ctx: Context) -> None:
    identifier, key = await ctx.registered_identity()
    client = Client(ctx.server_url, identifier, key=key)
    before = len(ctx.seen)
    response = await client.get_with_auth(ctx.protected_url)
    assert response.status == 200, response.status
    assert ctx.seen[before:] == [{"method": "GET", "body": ""}], ctx.seen[before:]
    assert client.refresh_token is not None


@check
async def refresh_token_only_client_refreshes_and_posts_with_auth(ctx: Context) -> None:
    identifier, key = await ctx.registered_identity()
    seed = Client(ctx.server_url, identifier, key=key)
    await seed.authenticate()
    refresh_token = seed.refresh_token

    client = Client(ctx.server_url, identifier, refresh_token=refresh_token)
    await client.refresh(auth_on_fail=False)
    assert client.jwt and claims_of(client.jwt)["identifier"] == str(identifier)
    # /refresh answers "refresh_token": null; the client keeps the one it has.
    assert client.refresh_token == refresh_token

    fresh = Client(ctx.server_url, identifier, refresh_token=refresh_token)
    before = len(ctx.seen)
    response = await fresh.post_with_auth(ctx.protected_url, json={"reading": 42})
    assert response.status == 200, response.status
    assert ctx.seen[before:] == [{"method": "POST", "body": '{"reading": 42}'}], ctx.seen[before:]


@check
async def jwt_only_client_calls_the_protected_service(ctx: Context) -> None:
    identifier, key = await ctx.registered_identity()
    seed = Client(ctx.server_url, identifier, key=key)
    await seed.authenticate()

    client = Client(ctx.server_url, identifier, jwt=seed.jwt)
    response = await client.get_with_auth(ctx.protected_url)
    assert response.status == 200, response.status
    assert client.jwt == seed.jwt and client.refresh_token is None


@check
async def client_with_a_rejected_jwt_reauthenticates_and_retries(ctx: Context) -> None:
    identifier, key = await ctx.registered_identity()
    seed = Client(ctx.server_url, identifier, key=key)
    await seed.authenticate()
    head, payload, signature = seed.jwt.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"

    client = Client(ctx.server_url, identifier, jwt=tampered, key=key)
    response = await client.get_with_auth(ctx.protected_url)
    # The decorator got 401 from /validate, the client authenticated with its key and retried.
    assert response.status == 200, response.status
    assert client.jwt != tampered


@check
async def unknown_key_raises_authentication_error(ctx: Context) -> None:
    identifier, key = ctx.fresh_identity()
    client = Client(ctx.server_url, identifier, key=key)
    try:
        await client.authenticate()
    except exceptions.AuthenticationError:
        pass
    else:
        raise AssertionError("authenticate() with an unknown key did not raise AuthenticationError")
    # The client forgets its key only when the answer was 401 (not 400 or 500).
    assert client._key is None  # pylint: disable=protected-access

    other = Client(ctx.server_url, identifier, key=key)
    try:
        await other.get_with_auth(ctx.protected_url)
    except exceptions.AuthenticationError:
        pass
    else:
        raise AssertionError("get_with_auth() with an unknown key did not raise AuthenticationError")


@check
async def unknown_refresh_token_raises_refresh_error(ctx: Context) -> None:
    identifier, key = await ctx.registered_identity()
    client = Client(ctx.server_url, identifier, refresh_token="not-a-refresh-token")
    try:
        await client.refresh(auth_on_fail=False)
    except exceptions.RefreshError:
        pass
    else:
        raise AssertionError("refresh(auth_on_fail=False) did not raise RefreshError")
    # The client forgets the refresh token only when the answer was 401.
    assert client.refresh_token is None

    # With auth_on_fail (the default) and no key, the original client raises TypeError.
    keyless = Client(ctx.server_url, identifier, refresh_token="not-a-refresh-token")
    try:
        await keyless.refresh()
    except TypeError as err:
        assert "Missing key" in str(err), err
    else:
        raise AssertionError("refresh() without a key did not raise TypeError")

    # With a key, a rejected refresh token falls back to authenticating.
    with_key = Client(ctx.server_url, identifier, refresh_token="not-a-refresh-token", key=key)
    await with_key.refresh()
    assert with_key.jwt and with_key.refresh_token not in (None, "not-a-refresh-token")


@check
async def decorator_answers_403_400_401_200_like_the_original(ctx: Context) -> None:
    identifier, key = await ctx.registered_identity()
    seed = Client(ctx.server_url, identifier, key=key)
    await seed.authenticate()
    assert await ctx.get_protected({}) == 403
    assert await ctx.get_protected({"Authorization": "Basic dXNlcjpwYXNz"}) == 400
    assert await ctx.get_protected({"Authorization": "Bearer not.a.jwt"}) == 401
    assert await ctx.get_protected({"Authorization": f"Bearer {seed.jwt}"}) == 200


@check
async def responses_load_into_the_originals_schemas(ctx: Context) -> None:
    identifier, key = ctx.fresh_identity()
    bool_schema = schemas.BoolResponse.Schema()
    token_schema = schemas.TokenResponse.Schema()

    status, body = await ctx.post_json("/register_key", {"key": key, "identifier": str(identifier)})
    assert status == 201 and bool_schema.load(body).result is True, (status, body)
    status, body = await ctx.post_json("/is_key_registered", {"key": key})
    assert status == 200 and bool_schema.load(body).result is True, (status, body)
    status, body = await ctx.post_json("/authenticate", {"key": key, "identifier": str(identifier)})
    assert status == 200 and set(body) == {"jwt", "refresh_token"}, (status, body)
    tokens = token_schema.load(body)
    status, body = await ctx.post_json(
        "/refresh", {"refresh_token": tokens.refresh_token, "identifier": str(identifier)}
    )
    assert status == 200 and set(body) == {"jwt", "refresh_token"}, (status, body)
    assert token_schema.load(body).refresh_token is None
    status, body = await ctx.post_json("/validate", {"jwt": tokens.jwt})
    assert status == 200 and bool_schema.load(body).result is True, (status, body)
    async with ClientSession() as session:
        for path in ("/", "/health"):
            async with session.get(ctx.server_url.rstrip("/") + path) as response:
                body = await response.json()
                assert response.status == 200 and bool_schema.load(body).result is True, (path, body)
        async with session.get(ctx.server_url.rstrip("/") + "/validate_request",
                               headers={"Authorization": f"Bearer {tokens.jwt}"}) as response:
            assert response.status == 200, response.status


@check
async def invalid_input_gets_4xx_never_500(ctx: Context) -> None:
    identifier, _ = ctx.fresh_identity()
    for path, body, expected in [
        ("/validate", {"jwt": "not.a.jwt"}, 401),
        ("/validate", {"jwt": ""}, 401),
        ("/validate", {}, 400),
        ("/authenticate", {"key": "k", "identifier": "not-a-uuid"}, 400),
        ("/authenticate", {"key": "never-registered", "identifier": str(identifier)}, 401),
        ("/refresh", {"refresh_token": "x", "identifier": str(identifier)}, 401),
        ("/register_key", {"key": "k"}, 400),
        ("/is_key_registered", {}, 400),
    ]:
        status, answer = await ctx.post_json(path, body)
        assert status == expected, (path, body, status, answer)


async def main(server_url: str) -> int:
    seen: List[Dict[str, Any]] = []
    runner, protected_url = await start_protected_app(server_url, seen)
    ctx = Context(server_url, protected_url, seen)
    failures = 0
    try:
        for func in CHECKS:
            try:
                await asyncio.wait_for(func(ctx), timeout=60)
                print(f"PASS {func.__name__}", flush=True)
            except Exception:  # pylint: disable=broad-except
                failures += 1
                print(f"FAIL {func.__name__}", flush=True)
                traceback.print_exc(file=sys.stdout)
    finally:
        await runner.cleanup()
    print(f"{len(CHECKS) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
