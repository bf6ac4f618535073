"""URIs as they may be shown: the user-info (a user name and password in
``scheme://user:pass@host``) split off or masked. A leaf: the error messages and the settings
both use it."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """A URI without its user-info, and the user name and password it held (if any)."""
    parts = urlsplit(uri)
    if not parts.scheme or "@" not in parts.netloc:
        return uri, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    clean = urlunsplit(parts._replace(netloc=host))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return clean, user, password


def redact(uri: str | None) -> str | None:
    """``uri`` as it may be shown (logs, artifacts, printed hints): no user name or password."""
    if not uri:
        return uri
    clean, user, password = split_credentials(uri)
    if user is None and password is None:
        return uri
    scheme, rest = clean.split("://", 1)
    return f"{scheme}://***@{rest}"
