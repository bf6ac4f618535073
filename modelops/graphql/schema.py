"""The GraphQL schema: registry reads, and changes that go through the project's own core
(same policy, locks, transactions and audit trail as the flows) or its Prefect deployments."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from modelops.graphql.errors import EXPECTED
from modelops.graphql.mutations import Mutation
from modelops.graphql.queries import Query

logger = logging.getLogger("modelops.api")


class Schema(strawberry.Schema):
    """The schema, logging as an operator needs: a refused or invalid request (it carries one of
    the expected codes) is one line; only a fault of ours gets Strawberry's traceback."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        unexpected = []
        for error in errors:
            code = (error.extensions or {}).get("code")
            if code in EXPECTED:
                logger.info(
                    "%s: %s (%s)", code, error.message, ".".join(map(str, error.path or []))
                )
            elif not error.path:
                # Before execution: a query that does not parse or validate, or variables that
                # do not coerce (an empty DateTime, say) — the client's mistake, not ours.
                logger.info("GRAPHQL_VALIDATION_FAILED: %s", error.message.splitlines()[0])
            else:
                unexpected.append(error)
        super().process_errors(unexpected, execution_context)


class ErrorCodes(SchemaExtension):
    """Every error answer carries ``extensions.code``, GraphQL's own too: a query that does not
    parse, validate or coerce its variables is GRAPHQL_VALIDATION_FAILED (the name Apollo's
    clients know); anything else without a code is ours: INTERNAL_SERVER_ERROR."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in (result.errors if result is not None else None) or []:
            if not (error.extensions or {}).get("code"):
                code = (
                    "GRAPHQL_VALIDATION_FAILED"
                    if error.original_error is None
                    else "INTERNAL_SERVER_ERROR"
                )
                error.extensions = {**(error.extensions or {}), "code": code}


schema = Schema(query=Query, mutation=Mutation, extensions=[ErrorCodes])
