"""Who is calling: bearer JWTs verified with PyJWT, roles from a claim, and what each role may do.

HS256 with ``MODELOPS_API_JWT_SECRET`` (one team), or RS256 against
``MODELOPS_API_JWT_PUBLIC_KEY`` (PEM text or a path) or ``MODELOPS_API_JWKS_URL`` (an identity
provider). Expiry is always checked, the audience when ``MODELOPS_API_JWT_AUDIENCE`` is set.
There is no anonymous mode: with no key configured the server does not start.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from modelops.errors import ConfigurationError

KEY_VARIABLES = ("MODELOPS_API_JWT_SECRET", "MODELOPS_API_JWT_PUBLIC_KEY", "MODELOPS_API_JWKS_URL")


class Role(StrEnum):
    VIEWER = "VIEWER"
    ML_ENGINEER = "ML_ENGINEER"
    OPERATOR = "OPERATOR"
    ADMIN = "ADMIN"


# What each mutation needs (queries need any valid token).
CHANGE_ROLES = frozenset({Role.ADMIN, Role.OPERATOR, Role.ML_ENGINEER})
PRODUCTION_ROLES = frozenset({Role.ADMIN, Role.OPERATOR})


class AuthError(Exception):
    """A request that cannot be authenticated (missing, malformed, expired, wrong audience)."""


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    subject: str
    roles: frozenset[Role]

    @property
    def actor(self) -> str:
        return f"api:{self.subject}"

    def may(self, allowed: frozenset[Role]) -> bool:
        return bool(self.roles & allowed)

    def describe(self) -> str:
        return f"{self.subject} ({', '.join(sorted(self.roles))})"


@dataclass
class AuthConfig:
    """How tokens are verified, from the environment."""

    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    audience: str | None = None
    roles_claim: str = "roles"

    @classmethod
    def from_env(cls) -> AuthConfig:
        """Read the ``MODELOPS_API_*`` variables.

        Raises:
            ConfigurationError: no key is configured (names the variables to set).
        """
        key = os.environ.get("MODELOPS_API_JWT_PUBLIC_KEY") or None
        if key and not key.lstrip().startswith("-----") and Path(key).is_file():
            key = Path(key).read_text()
        config = cls(
            secret=os.environ.get("MODELOPS_API_JWT_SECRET") or None,
            public_key=key,
            jwks_url=os.environ.get("MODELOPS_API_JWKS_URL") or None,
            audience=os.environ.get("MODELOPS_API_JWT_AUDIENCE") or None,
            roles_claim=os.environ.get("MODELOPS_API_ROLES_CLAIM") or "roles",
        )
        if not (config.secret or config.public_key or config.jwks_url):
            raise ConfigurationError(
                "The API needs a way to verify tokens and has no anonymous mode: set "
                "MODELOPS_API_JWT_SECRET (HS256, one team), or MODELOPS_API_JWT_PUBLIC_KEY / "
                "MODELOPS_API_JWKS_URL (RS256, an identity provider)."
            )
        return config

    def _key(self, token: str) -> tuple[Any, list[str]]:
        import jwt

        if self.jwks_url:
            return jwt.PyJWKClient(self.jwks_url, cache_keys=True).get_signing_key_from_jwt(
                token
            ).key, ["RS256"]
        if self.public_key:
            return self.public_key, ["RS256"]
        return self.secret, ["HS256"]

    def verify(self, header: str | None) -> Principal:
        """The caller behind an ``Authorization: Bearer <jwt>`` header.

        Raises:
            AuthError: no token, a bad signature, an expired token, a wrong audience.
        """
        import jwt

        if not header or not header.lower().startswith("bearer "):
            raise AuthError("Missing bearer token: send 'Authorization: Bearer <jwt>'.")
        token = header.split(" ", 1)[1].strip()
        try:
            key, algorithms = self._key(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("The token has expired: get a new one.") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"The token is not for this API (audience {self.audience!r}).") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthError(f"Invalid token: {exc}") from exc
        raw = claims.get(self.roles_claim) or []
        raw = [raw] if isinstance(raw, str) else list(raw)
        roles = frozenset(Role(r.upper()) for r in raw if str(r).upper() in Role.__members__)
        return Principal(str(claims["sub"]), roles or frozenset({Role.VIEWER}))


def make_token(
    subject: str,
    roles: list[str],
    ttl: int = 3600,
    secret: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token signed with ``MODELOPS_API_JWT_SECRET`` (for a person or a script).

    Raises:
        ConfigurationError: no secret, or an unknown role.
    """
    import jwt

    secret = secret or os.environ.get("MODELOPS_API_JWT_SECRET")
    if not secret:
        raise ConfigurationError("Set MODELOPS_API_JWT_SECRET to sign tokens with it.")
    unknown = [r for r in roles if r.upper() not in Role.__members__]
    if unknown:
        raise ConfigurationError(
            f"Unknown role(s): {', '.join(unknown)}. Roles: {', '.join(Role.__members__)}."
        )
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": [r.upper() for r in roles],
        "iat": now,
        "exp": now + ttl,
    }
    audience = audience or os.environ.get("MODELOPS_API_JWT_AUDIENCE")
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
