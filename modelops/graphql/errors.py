"""The operator API's error answers: a code a client can act on, and the core's errors mapped to
those codes in one place."""

from __future__ import annotations

from enum import Enum

from graphql import GraphQLError

from modelops.errors import (
    ConfigurationError,
    ModelNotFound,
    PromotionRefused,
    RegistryError,
    is_transient,
)
from modelops.naming import check_model_name


class Code(Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    UNAVAILABLE = "SERVICE_UNAVAILABLE"  # MLflow or Prefect did not answer: try again later
    INTERNAL = "INTERNAL_SERVER_ERROR"  # a fault of ours: the server log has the traceback


# What a client did or may retry: logged as one line, never as a traceback.
EXPECTED = frozenset(c.value for c in Code if c is not Code.INTERNAL)

# MLflow's own error codes for a request it refused as malformed, or for something absent.
_MLFLOW_BAD_INPUT = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"})
_MLFLOW_MISSING = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})


def fail(code: Code, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code.value})


def checked_name(name: str) -> str:
    """A model name from a request, refused up front (BAD_USER_INPUT) when it cannot be one."""
    try:
        return check_model_name(name)
    except ConfigurationError as exc:
        raise fail(Code.BAD_USER_INPUT, str(exc)) from exc


def translate(exc: Exception) -> GraphQLError:
    """The answer for an error raised below the API: every answer carries a code."""
    if isinstance(exc, GraphQLError):
        return exc
    if isinstance(exc, ModelNotFound):
        return fail(Code.NOT_FOUND, str(exc))
    if isinstance(exc, ConfigurationError | PromotionRefused):
        return fail(Code.BAD_USER_INPUT, str(exc))
    if isinstance(exc, RegistryError):
        return fail(Code.CONFLICT, str(exc))
    mlflow_code = getattr(exc, "error_code", None)
    if mlflow_code in _MLFLOW_BAD_INPUT:
        return fail(Code.BAD_USER_INPUT, getattr(exc, "message", None) or str(exc))
    if mlflow_code in _MLFLOW_MISSING:
        return fail(Code.NOT_FOUND, getattr(exc, "message", None) or str(exc))
    if is_transient(exc):
        return fail(Code.UNAVAILABLE, f"{type(exc).__name__}: {exc}. Try again shortly.")
    return fail(Code.INTERNAL, f"{type(exc).__name__}: {exc}")
