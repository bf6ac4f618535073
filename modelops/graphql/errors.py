"""The operator API's error answers: a code a client can act on, and the core's errors mapped to
those codes in one place."""

from __future__ import annotations

from enum import Enum

from graphql import GraphQLError

from modelops.errors import ConfigurationError, ModelNotFound, PromotionRefused, RegistryError


class Code(Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"


def fail(code: Code, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code.value})


def translate(exc: Exception) -> GraphQLError:
    """The answer for an error raised by the core (anything unforeseen keeps its type name)."""
    if isinstance(exc, GraphQLError):
        return exc
    if isinstance(exc, ModelNotFound):
        return fail(Code.NOT_FOUND, str(exc))
    if isinstance(exc, ConfigurationError):
        return fail(Code.BAD_USER_INPUT, str(exc))
    if isinstance(exc, PromotionRefused):
        return fail(Code.BAD_USER_INPUT, str(exc))
    if isinstance(exc, RegistryError):
        return fail(Code.CONFLICT, str(exc))
    return GraphQLError(f"{type(exc).__name__}: {exc}")
