"""Access to the Kubernetes cluster for the flows: in-cluster config, a kubeconfig, or a
prefect-kubernetes credentials block (Prefect glue: a block lives in the Prefect server)."""

from __future__ import annotations

from prefect import get_run_logger

from modelops.k8s import cluster as k8s_cluster


def connect(credentials_block: str | None = None) -> k8s_cluster.Cluster:
    """The cluster: in-cluster config, a kubeconfig, or a prefect-kubernetes credentials block."""
    kubeconfig = None
    if credentials_block:
        from prefect_kubernetes.credentials import KubernetesCredentials

        creds = KubernetesCredentials.load(credentials_block)
        if creds.cluster_config is not None:
            kubeconfig = creds.cluster_config.config
    cluster = k8s_cluster.connect(kubeconfig=kubeconfig)
    get_run_logger().info("Kubernetes access: %s", cluster.source)
    return cluster
