"""A deterministic lead-scoring data set with realistic noise (logistic regression ~0.8 AUC)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

LEAD_FEATURES = {
    "completeness": {"kind": "numeric", "min": 0.0, "max": 1.0},
    "email_confidence": {"kind": "numeric", "min": 0.0, "max": 1.0},
    # Many leads come without a phone number: the score is missing, not zero.
    "phone_confidence": {"kind": "numeric", "min": 0.0, "max": 1.0, "nullable": True},
    "source_priority": {"kind": "numeric", "min": 1, "max": 5},
    "intent_signal_score": {"kind": "numeric", "min": 0.0, "max": 100.0},
}
LEAD_TARGET = "won"


def make_leads(n_rows: int = 5000, seed: int = 7) -> pd.DataFrame:
    """Generate ``n_rows`` leads; the same arguments always give the same table.

    Args:
        n_rows: number of rows.
        seed: random seed.

    Returns:
        A DataFrame with the five lead features and the binary target ``won``.
    """
    import numpy as np
    import pandas as pd

    if n_rows < 1:
        raise ValueError("n_rows must be at least 1")
    rng = np.random.default_rng(seed)
    completeness = rng.beta(5, 2, n_rows)
    email_confidence = np.clip(rng.beta(4, 2, n_rows) * 0.6 + completeness * 0.4, 0, 1)
    phone_confidence = rng.beta(2, 3, n_rows)
    phone_missing = rng.random(n_rows) < 0.08
    source_priority = rng.choice([1, 2, 3, 4, 5], size=n_rows, p=[0.1, 0.2, 0.35, 0.25, 0.1])
    intent = np.clip(rng.gamma(2.0, 12.0, n_rows), 0, 100)

    # A latent propensity that the features only partly explain, plus label noise (leads that
    # convert or vanish for reasons no CRM field records): that is what keeps AUC near 0.8.
    logit = (
        -6.3
        + 3.0 * completeness
        + 2.4 * email_confidence
        + np.where(phone_missing, -0.5, 1.8 * phone_confidence)
        + 0.45 * (source_priority - 3)
        + 0.065 * intent
        + rng.normal(0, 0.6, n_rows)
    )
    won = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return pd.DataFrame(
        {
            "completeness": completeness.round(4),
            "email_confidence": email_confidence.round(4),
            "phone_confidence": np.where(phone_missing, np.nan, phone_confidence.round(4)),
            "source_priority": source_priority.astype("int64"),
            "intent_signal_score": intent.round(2),
            "won": won,
        }
    )


def write_leads(path: str | Path, n_rows: int = 5000, seed: int = 7) -> Path:
    """Write the sample as CSV or Parquet (by suffix) plus its ``.schema.json`` sidecar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = make_leads(n_rows, seed)
    if path.suffix in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    schema = {"target": LEAD_TARGET, "features": LEAD_FEATURES}
    sidecar = path.with_name(path.name.split(".")[0] + ".schema.json")
    sidecar.write_text(json.dumps(schema, indent=2) + "\n")
    return path
