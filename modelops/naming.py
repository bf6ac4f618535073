"""Names derived from a model name: Kubernetes objects, label values, local serving records.

Every object or file that belongs to one model is named here, so the deployment flow, the
teardown flow and ``modelops stop`` always agree on what a model's server is called.
"""

from __future__ import annotations

import hashlib
import re

from modelops.errors import ConfigurationError

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_dns_label(text: str) -> bool:
    """Whether ``text`` is a valid DNS-1123 label (Kubernetes object and namespace names)."""
    return bool(text) and len(text) <= 63 and bool(_DNS1123_LABEL.match(text))


def dns_label(text: str, suffix: str = "") -> str:
    """A valid DNS-1123 label (<= 63 chars) derived from free text, e.g. a model name.

    Lower-cases, turns every run of other characters into ``-``, trims dashes, and when the
    result is too long keeps a prefix plus a short hash so distinct names stay distinct.

    Raises:
        ConfigurationError: nothing usable is left (e.g. the name has no letters or digits).
    """
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not base:
        raise ConfigurationError(
            f"Cannot derive a Kubernetes name from {text!r}: it needs letters or digits."
        )
    tail = f"-{suffix}" if suffix else ""
    if len(base) + len(tail) > 63:
        digest = hashlib.sha256(text.encode()).hexdigest()[:6]
        base = base[: 63 - len(tail) - 7].rstrip("-") + "-" + digest
    name = base + tail
    assert is_dns_label(name), name
    return name


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9-_.]) from free text."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")[:63].rstrip("-_.")
    return value if _LABEL_VALUE.match(value) else ""


def serving_name(model_name: str) -> str:
    """The Deployment and Service name of a model's server (stable across its versions)."""
    return dns_label(model_name, "serving")


def local_server_key(model_name: str) -> str:
    """The file-name stem of a model's local serving record."""
    return dns_label(model_name)
