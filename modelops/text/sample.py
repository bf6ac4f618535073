"""A small labelled sample of customer messages by emotion, written for this project."""

from __future__ import annotations

import random
from pathlib import Path

SAMPLE_TEXTS = Path(__file__).resolve().parents[1] / "sample_data" / "emotions.csv"
LABELS = ["joy", "anger", "sadness", "fear", "surprise", "neutral"]
_PHRASES = {
    "joy": [
        "I love how quickly {x} was sorted out",
        "thank you so much, {x} works perfectly",
        "great news about {x}, the team is delighted",
        "really happy with {x} today",
        "{x} made my week, brilliant work",
    ],
    "anger": [
        "this is unacceptable, {x} failed again",
        "I am furious that {x} was ignored",
        "{x} is broken and nobody answers",
        "stop sending me invoices for {x}",
        "worst experience ever with {x}",
    ],
    "sadness": [
        "sadly we have to cancel {x}",
        "I am disappointed that {x} did not work out",
        "it is a shame {x} is being discontinued",
        "we miss the old {x}",
        "unfortunately {x} let us down",
    ],
    "fear": [
        "I am worried that {x} will leak our data",
        "what happens if {x} goes down during payroll",
        "we are nervous about migrating {x}",
        "is {x} safe to use after the breach",
        "I am afraid {x} will lose our records",
    ],
    "surprise": [
        "wow, I did not expect {x} to arrive so soon",
        "{x} is already live? unexpected",
        "surprisingly {x} is cheaper than last year",
        "I had no idea {x} could do that",
        "what a surprise to see {x} in the release",
    ],
    "neutral": [
        "please send the documentation for {x}",
        "what is the renewal date for {x}",
        "can you confirm the address on {x}",
        "we would like a quote for {x}",
        "how do I export data from {x}",
    ],
}
_THINGS = [
    "the order",
    "my account",
    "the integration",
    "the new dashboard",
    "the contract",
    "the delivery",
    "the API",
    "the report",
    "the billing portal",
    "the mobile app",
]


def write_emotions(path: str | Path, per_label: int = 60, seed: int = 3) -> Path:
    """Write ``per_label`` messages per emotion (CSV columns ``text``, ``label``)."""
    import pandas as pd

    rng = random.Random(seed)
    rows = []
    for label in LABELS:
        for _ in range(per_label):
            rows.append(
                {"text": rng.choice(_PHRASES[label]).format(x=rng.choice(_THINGS)), "label": label}
            )
    rng.shuffle(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
