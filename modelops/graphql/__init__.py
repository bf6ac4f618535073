"""The operator API: GraphQL (Strawberry) over the registry and the flows, with JWT roles."""
