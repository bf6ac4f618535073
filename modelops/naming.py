"""Names derived from free text: Kubernetes objects, label values, local serving records, and
MLflow metric keys.

Every object or file that belongs to one model is named here, so the deployment flow, the
teardown flow and ``modelops stop`` always agree on what a model's server is called; and every
metric key made from a feature or label name is made here, so the monitoring check and the
model server's telemetry name the same column alike.
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


# What MLflow accepts in a metric key on every platform (it refuses ':' on Windows). ``\w`` is
# MLflow's own class: letters and digits of any script, so "東京" and "大阪" keep apart.
_METRIC_KEY_UNSAFE = re.compile(r"[^\w\-. /]")


def metric_key(text: str) -> str:
    """A valid MLflow metric key from free text, such as a feature or a class label.

    Characters MLflow refuses become ``_``; so does a path segment MLflow refuses (empty,
    ``.`` or ``..``: it reads keys as paths and refuses one that normalises to another). At
    most 200 characters, which leaves a prefix (``psi.``, ``labels.candidate.``) room under
    MLflow's 250.
    """
    segments = _METRIC_KEY_UNSAFE.sub("_", text).split("/")
    key = "/".join(s if s.strip(".") else "_" * max(len(s), 1) for s in segments)[:200]
    head, slash, last = key.rpartition("/")
    if slash and not last:  # the cut ended on a slash
        return head
    if not last.strip("."):  # the cut left a segment of dots
        return head + slash + "_" * len(last)
    return key


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9-_.]) from free text."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")[:63].rstrip("-_.")
    return value if _LABEL_VALUE.match(value) else ""


def model_stem(model_name: str, room: int = 63) -> str:
    """A DNS-1123 label unique to the exact model name, at most ``room`` characters.

    A name that is already a valid label is kept as it is. Any other gets a short hash of
    the exact name, so names that sanitise alike stay apart ("churn model" and "churn-model",
    "Churn" and "churn"), and a name with no ASCII letters or digits ("東京") still has one.
    """
    if is_dns_label(model_name) and len(model_name) <= room:
        return model_name
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-") or "model"
    return f"{base[: room - len(digest) - 1].rstrip('-')}-{digest}"


def serving_name(model_name: str) -> str:
    """The Deployment and Service name of a model's server (stable across its versions)."""
    return model_stem(model_name, room=63 - len("-serving")) + "-serving"


def job_name(model_name: str, suffix: str) -> str:
    """The name of a batch-scoring Job of the model, ``<model>-score-<suffix>``."""
    tail = "-score-" + (re.sub(r"[^a-z0-9]+", "-", suffix.lower()).strip("-")[:12] or "run")
    return model_stem(model_name, room=63 - len(tail)) + tail


def local_server_key(model_name: str) -> str:
    """The file-name stem of a model's local serving record."""
    return model_stem(model_name)


_ALIAS = re.compile(r"^[\w\-]{1,255}$")
_RESERVED_VERSION_ALIAS = re.compile(r"^v\d+$", re.IGNORECASE)


def check_model_name(name: str) -> str:
    """Refuse a registered-model name this project could not work with, before any work.

    MLflow refuses ``/`` and ``:``; ``models:/name@alias`` URIs cannot hold ``@``; the
    registry's search filters have no escape for a name holding both quote characters.
    Anything else is fine: spaces, dots, unicode (``東京``), one kind of quote (``o'brien``).

    Raises:
        ConfigurationError: the name is empty, too long, or holds a character it cannot.
    """
    problem = None
    if not name or not name.strip():
        problem = "it is empty"
    elif name != name.strip():
        problem = "it starts or ends with white space"
    elif len(name) > 256:
        problem = f"it is {len(name)} characters long (at most 256)"
    elif any(c in name for c in "/:@"):
        problem = "it holds '/', ':' or '@' (models:/<name>/<version> URIs could not name it)"
    elif "'" in name and '"' in name:
        problem = "it holds both ' and \" (MLflow's registry search cannot quote it)"
    elif name in (".", ".."):
        problem = "it is a path component"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "it holds a control character"
    if problem:
        raise ConfigurationError(
            f"Invalid model name {name!r}: {problem}. Use letters, digits, spaces, '-', '_' "
            f"or '.', e.g. 'churn-model'."
        )
    return name


def check_alias(alias: str, *, lifecycle: bool = False) -> str:
    """Refuse an alias MLflow would refuse, or one only a flow may set.

    ``production`` and ``previous-production`` are moved by promotion and rollback only (with
    their checks, lock and audit trail), so a training run may not set them; ``latest`` and
    ``v<N>`` are reserved by MLflow.

    Raises:
        ConfigurationError: the alias is invalid or reserved.
    """
    from modelops.registry.aliases import PREVIOUS_PRODUCTION, PRODUCTION

    if not _ALIAS.match(alias or ""):
        raise ConfigurationError(
            f"Invalid alias {alias!r}: use 1-255 letters, digits, '_' or '-' (e.g. 'staging')."
        )
    if alias.lower() == "latest" or _RESERVED_VERSION_ALIAS.match(alias):
        raise ConfigurationError(f"Alias {alias!r} is reserved by MLflow; choose another name.")
    if not lifecycle and alias in (PRODUCTION, PREVIOUS_PRODUCTION):
        raise ConfigurationError(
            f"A training run cannot set {alias!r}: production is reached only through the "
            f"promotion flow (staging first, champion/challenger, audit trail). Stage the "
            f"version and promote it (modelops promote)."
        )
    return alias
