"""Per-prompt difficulty learned from reported outcomes: hashed text features and a small
logistic model per (organization, model) predicting P(success | request text).

Pure (no database, no Django): the admission path predicts with it; the periodic training task
(selection.outcome_learning) and the offline routing evaluation (analytics.routing) both build it
with the same `fit` (through `outcome_learning.rebuild`), so what the evaluation measures is what
production learns.

Features are word unigrams and bigrams of the request's user text, hashed with zlib.crc32 into
DIMENSION buckets (stable across processes and releases, unlike Python's salted `hash`), each worth
1/sqrt(n) so long prompts do not swamp the bias. A prediction is one gather and a sum over ~100
floats: a few microseconds.
"""

import itertools
import math
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# Hash buckets: 2^18 float32 weights = 1 MiB per model in memory, a few KiB stored (zlib of a sparse
# vector). Fewer buckets collide MMLU-sized vocabularies noticeably.
DIMENSION = 1 << 18
# Only the start of a long request is read: difficulty shows early, and hashing stays bounded.
MAX_WORDS = 400
# Per-outcome step of the first pass: features are scaled by 1/sqrt(n), so one step moves the logit
# by about LEARNING_RATE x error whatever the prompt's length. Chosen by cross-fit (docs/routing.md):
# 0.1 learned too slowly from one pass, 0.5 and 2 did worse than 1 over three passes; L2 1e-5..1e-4
# made no difference.
LEARNING_RATE = 1.0
L2 = 1e-6
# Default passes over the window when a model is rebuilt (`fit`); production reads
# COSTSWITCH_LEARNING_PASSES.
PASSES = 3
# The learned quality shift is relative to what the model usually achieves; with fewer outcomes than
# this the prediction is not used (see `estimates`) and the model is explored (admission `_explore`).
# Chosen by cross-fit (docs/routing.md): 30 against 50 and 100, with cold-start exploration.
MIN_SAMPLES = 30
_TOKEN = re.compile(r"[a-z0-9]+")
_FORMAT = b"CSOM1"  # serialisation header: CostSwitch Outcome Model, version 1
_HEADER = struct.Struct("<5sidd")


def request_text(messages: Iterable[Mapping]) -> str:
    """The text a difficulty estimate reads: the user turns only (system prompts are the caller's
    boilerplate, assistant turns are answers), text parts of multi-part content included."""
    parts: list[str] = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text"
            )
    return "\n".join(parts)


def features(text: str) -> list[int]:
    """Sorted distinct bucket ids of the text's word unigrams and bigrams (deterministic)."""
    words = _TOKEN.findall(text.lower())[:MAX_WORDS]
    crc = zlib.crc32
    buckets = {crc(word.encode()) % DIMENSION for word in words}
    buckets.update(crc(f"{a} {b}".encode()) % DIMENSION for a, b in itertools.pairwise(words))
    return sorted(buckets)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass
class OutcomeModel:
    """Logistic regression on hashed features: P(success) for one model of one organization, built
    by `fit` from a window of its reported outcomes.

    `samples` and `successes` (the sum of targets) give the model's usual success rate, the
    baseline a per-prompt prediction is compared with."""

    weights: np.ndarray = field(default_factory=lambda: np.zeros(DIMENSION, dtype=np.float32))
    bias: float = 0.0
    samples: int = 0
    successes: float = 0.0

    @property
    def baseline(self) -> float:
        """The usual success rate (Laplace-smoothed)."""
        return (self.successes + 1.0) / (self.samples + 2.0)

    def predict(self, buckets: Sequence[int] | np.ndarray) -> float:
        """P(success) for a request with these features."""
        if len(buckets) == 0:
            return _sigmoid(self.bias)
        index = np.asarray(buckets, dtype=np.int64)
        scale = 1.0 / math.sqrt(len(index))
        return _sigmoid(float(self.weights[index].sum()) * scale + self.bias)

    def to_bytes(self) -> bytes:
        """Compact, versioned: a header and the zlib-compressed float32 weights."""
        header = _HEADER.pack(_FORMAT, self.samples, self.successes, self.bias)
        return header + zlib.compress(self.weights.astype(np.float32).tobytes(), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> "OutcomeModel":
        magic, samples, successes, bias = _HEADER.unpack_from(data)
        if magic != _FORMAT:
            raise ValueError("not a serialised OutcomeModel")
        weights = np.frombuffer(zlib.decompress(data[_HEADER.size :]), dtype=np.float32).copy()
        if weights.shape != (DIMENSION,):
            raise ValueError(f"expected {DIMENSION} weights, got {weights.shape[0]}")
        return cls(weights=weights, bias=bias, samples=samples, successes=successes)


def fit(
    window: Sequence[tuple[Sequence[int] | np.ndarray, float]],
    *,
    passes: int = PASSES,
    learning_rate: float = LEARNING_RATE,
    l2: float = L2,
) -> OutcomeModel:
    """A fresh model from a window of (features, target) outcomes, oldest first: `passes` SGD passes
    in that order, the step shrinking each pass (learning_rate / pass number) so later passes refine
    rather than chase the last outcomes. Deterministic: the same window gives the same weights,
    so rebuilding is idempotent. `samples`/`successes` count each outcome once (the baseline is the
    window's success rate)."""
    model = OutcomeModel()
    rows = [
        (
            np.asarray(b, dtype=np.int64),
            1.0 / math.sqrt(len(b)) if len(b) else 0.0,
            min(max(float(t), 0.0), 1.0),
        )
        for b, t in window
    ]
    weights = model.weights
    bias = 0.0
    for number in range(1, max(passes, 1) + 1):
        rate = learning_rate / number
        for index, scale, target in rows:
            current = weights[index]
            gradient = _sigmoid(float(current.sum()) * scale + bias) - target
            weights[index] = current - rate * (gradient * scale + l2 * current)
            bias -= rate * gradient
    model.bias = bias
    model.samples = len(rows)
    model.successes = sum(target for _, _, target in rows)
    return model


def rating_target(rating: float) -> float:
    """A 1-5 rating (or a mean of ratings) as 0..1: 1 -> 0, 5 -> 1. History scores read it too."""
    return (min(max(rating, 1), 5) - 1) / 4


def estimates(
    models: Mapping[str, OutcomeModel], buckets: Sequence[int], *, min_samples: int = MIN_SAMPLES
) -> dict[str, float]:
    """Per model with enough outcomes: how much more likely than usual it is to succeed on this
    request (predicted P(success) minus its baseline), the per-request signal `engine.rank` takes."""
    if len(buckets) == 0:
        return {}
    index = np.asarray(buckets, dtype=np.int64)
    return {
        model_id: model.predict(index) - model.baseline
        for model_id, model in models.items()
        if model.samples >= min_samples
    }


def target_for(outcome: str, rating: int | None) -> float | None:
    """The training target of one reported outcome: success 1, failure 0, else the rating; a
    success/failure and a rating together are averaged. None: nothing to learn from."""
    signals = []
    if outcome == "success":
        signals.append(1.0)
    elif outcome == "failure":
        signals.append(0.0)
    if rating is not None:
        signals.append(rating_target(rating))
    return sum(signals) / len(signals) if signals else None


def exploration_draw(request_id: str) -> float:
    """A uniform 0..1 number fixed by the request id: the same request explores (or not) on every
    retry and every process, and the decision log can be replayed."""
    digest = zlib.crc32(f"explore:{request_id}".encode())
    return digest / 0xFFFFFFFF
