"""The admin key: ``Authorization: Bearer KEY`` checked in constant time, the refusal of a
request without it (401 with ``WWW-Authenticate``, 403), the route class that answers a refusal,
and the larger request body an upload showing the key may send."""

import hmac

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import Scope

from kbcore.settings import Settings
from web.errors import JSONErrorRoute, error_response


class AdminKey:
    """Checks ``Authorization: Bearer KEY`` against ``settings.admin_key`` in constant time."""

    def __init__(self, settings: Settings) -> None:
        key = settings.admin_key
        self._key = key.get_secret_value().encode("utf-8") if key is not None else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def status(self, authorization: str | None) -> int:
        """0 when ``authorization`` carries the key, else the refusal's status: 403 when no key
        is configured or another key is given, 401 when none is."""
        if self._key is None:
            return 403
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return 401
        # Bytes, not str: compare_digest refuses non-ASCII str; Starlette decodes headers as latin-1.
        return 0 if hmac.compare_digest(presented.strip().encode("latin-1", "replace"), self._key) else 403

    def allows(self, scope: Scope) -> bool:
        return self.status(Headers(scope=scope).get("authorization")) == 0


def refusal(status: int) -> JSONResponse:
    """The answer to a request without the key; it never repeats what was sent."""
    if status == 401:
        response = error_response(401, "需要管理密钥（this endpoint needs Authorization: Bearer <admin key>）")
        response.headers["WWW-Authenticate"] = 'Bearer realm="kbqa-admin"'
        return response
    return error_response(403, "管理密钥不正确，或未启用管理功能（wrong admin key, or KB_ADMIN_KEY is not set）")


class Refused(Exception):
    """Raised by the key check; not an HTTPException, so JSONErrorRoute lets it through to
    ``AdminRoute``, which answers it with ``refusal``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status_code = status


def upload_limit(settings: Settings, key: AdminKey):
    """For BodyLimitMiddleware: ``max_upload_bytes`` for ``POST /api/documents`` showing the
    key; every other request (an upload without the key included) keeps ``max_body_bytes``."""

    def larger(scope: Scope) -> int | None:
        if scope.get("method") == "POST" and scope.get("path") == "/api/documents" and key.allows(scope):
            return max(settings.max_upload_bytes, settings.max_body_bytes)
        return None

    return larger


class AdminRoute(JSONErrorRoute):
    """JSONErrorRoute, plus the key's refusals (401 with WWW-Authenticate, 403)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            try:
                return await handler(request)
            except Refused as exc:
                return refusal(exc.status_code)

        return route
