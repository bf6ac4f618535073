"""The GraphQL schema: registry reads, and changes that go through the project's own core
(same policy, locks, transactions and audit trail as the flows) or its Prefect deployments."""

from __future__ import annotations

import strawberry

from modelops.graphql.mutations import Mutation
from modelops.graphql.queries import Query

schema = strawberry.Schema(query=Query, mutation=Mutation)
