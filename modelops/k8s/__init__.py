"""Serving on Kubernetes: :mod:`~modelops.k8s.manifests` renders (pure),
:mod:`~modelops.k8s.cluster` talks to the API, :mod:`~modelops.k8s.rollout` waits and verifies."""
