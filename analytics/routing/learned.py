"""The learned router measured honestly: `selection.learning` models trained only from outcomes the
product would have been told, then used through `engine.rank` as `admit()` uses them.

Cross-fit: for each seed the prompts are split in two halves. The fitting half is replayed in a
random order through the product's policy at its configured setting (the knob at 0, exploration at
COSTSWITCH_EXPLORATION_RATE, the same `exploration_draw`/`EXPLORATION_MARGIN` rule as admission):
after each decision only the chosen model's outcome is reported and that model's OutcomeModel is
updated (immediately: the periodic task's one-minute cadence at one request a minute). The trained
models then route the other half, never learned from, over the whole knob range; both ways, for
every seed.

Online: all prompts in a random order, the models retrained every CADENCE outcomes (as the periodic
task would), each prompt routed by the models as they were when it arrived; measured after the
warm-up.

The knob sweep over the held-out prompts is read from each prompt's critical setting (the offset at
which the weak model starts to meet the requirement: requirement - weak quality - learned shift, the
shift from `engine.learned_shifts`), which is what `rank` decides for this two-model pair; a sample
of prompts x settings is replayed through `rank` itself and the agreement is reported.
"""

import functools
import random
from collections.abc import Sequence

import numpy as np

from analytics.routing import metrics
from analytics.routing.metrics import Outcomes
from analytics.routing.replay import STRONG_ID, WEAK_ID, Prepared, decide, decide_ranking, priced
from analytics.routing.replay import pair as _registry_pair
from selection import learning
from selection.admission import EXPLORATION_MARGIN
from selection.engine import learned_shifts, quality_requirement

CADENCE = 100
CHECKS = 400


@functools.lru_cache(maxsize=256)
def pair(offset: int):
    """The two-model registry at a knob setting (reading the catalog once per setting)."""
    return tuple(_registry_pair(offset))


def text_features(prompts: Sequence[str]) -> list[np.ndarray]:
    """Hashed once per prompt, exactly as admission hashes a one-message request."""
    return [
        np.asarray(learning.features(learning.request_text([{"role": "user", "content": p}])), dtype=np.int64)
        for p in prompts
    ]


def _target(value: float, rating: bool) -> float:
    """The outcome a caller would report: success/failure, or a 1-5 rating from a 1-10 judge score."""
    if not rating:
        return float(value)
    return learning.rating_target(min(max(round(1 + (value - 1) * 4 / 9), 1), 5))


def _policy(item: Prepared, models, estimate: dict, rng: random.Random, exploration: float) -> str:
    """The model the product picks at its configured setting, with exploration as admission does it."""
    ranking = decide_ranking(item, models, learned=estimate)
    chosen = ranking.chosen
    if exploration > 0 and rng.random() < exploration:
        near = [
            s
            for s in ranking.ranked
            if s.cost < chosen.cost
            and not s.meets_requirement
            and s.effective_quality >= ranking.requirement - EXPLORATION_MARGIN
        ]
        if near:
            return min(near, key=lambda s: (s.cost, s.id)).id
    return chosen.id


def _critical(item: Prepared, models, estimate: dict) -> float:
    """How far the knob must go up before the weak model meets this prompt's requirement: higher
    means sent to the strong model longer (the router's score for the curve)."""
    task = item.analysis.task_type
    requirement = quality_requirement(None, item.analysis.complexity)
    weak = next(m for m in models if m.id == WEAK_ID)
    shift = learned_shifts(priced(item, models), task, estimate).get(WEAK_ID, 0) if estimate else 0
    return float(requirement - weak.quality_for(task) - shift)


def train(
    prepared: Sequence[Prepared],
    feats: Sequence[np.ndarray],
    outcomes: Outcomes,
    order: Sequence[int],
    *,
    exploration: float,
    rating: bool,
    seed: int,
) -> dict[str, learning.OutcomeModel]:
    """Replay `order` through the product's policy, learning only the chosen model's outcome."""
    models = pair(0)
    learned = {STRONG_ID: learning.OutcomeModel(), WEAK_ID: learning.OutcomeModel()}
    rng = random.Random(seed)
    for index in order:
        estimate = learning.estimates(learned, feats[index])
        chosen = _policy(prepared[index], models, estimate, rng, exploration)
        value = outcomes.strong[index] if chosen == STRONG_ID else outcomes.weak[index]
        learned[chosen].update(feats[index], _target(value, rating))
    return learned


def _scores(prepared, feats, learned, index) -> np.ndarray:
    models = pair(0)
    return np.array([_critical(prepared[i], models, learning.estimates(learned, feats[i])) for i in index])


def _check(prepared, feats, learned, index, scores, rng: np.random.Generator) -> tuple[int, int]:
    """Replay a sample of prompts x settings through `rank`: does the score say what rank decides?"""
    picks = rng.choice(len(index), size=min(CHECKS, len(index)), replace=False)
    agree = 0
    for k in picks:
        i = index[k]
        offset = int(rng.integers(-40, 60))
        chosen = decide(prepared[i], pair(offset), learned=learning.estimates(learned, feats[i]))
        agree += (chosen == STRONG_ID) == (scores[k] > offset)
    return agree, len(picks)


def _interval(values: Sequence[float | None]) -> dict | None:
    array = np.array([v for v in values if v is not None], dtype=float)
    if not len(array):
        return None
    return {
        "mean": float(array.mean()),
        "low": float(np.percentile(array, 2.5)),
        "high": float(np.percentile(array, 97.5)),
        "n": len(array),
    }


def _summaries(rows: list[dict]) -> dict:
    keys = ("apgr", "cpt50", "cpt80", "at97_strong_share", "at95_strong_share", "below_random")
    return {key: _interval([row[key] for row in rows]) for key in keys}


def _row(outcomes: Outcomes, scores: np.ndarray) -> dict:
    points = metrics.with_ends(metrics.score_curve(outcomes, scores, "learned"), outcomes)
    summary = metrics.summary(points, outcomes)
    at97, at95 = summary.get("at97"), summary.get("at95")
    return {
        "apgr": summary["apgr"],
        "cpt50": summary.get("cpt50"),
        "cpt80": summary.get("cpt80"),
        "at97_strong_share": at97["strong_share"] if at97 else None,
        "at95_strong_share": at95["strong_share"] if at95 else None,
        "below_random": metrics.below_random(points, outcomes),
    }


def crossfit(
    prepared: Sequence[Prepared],
    feats: Sequence[np.ndarray],
    outcomes: Outcomes,
    *,
    seeds: int,
    exploration: float,
    rating: bool = False,
) -> dict:
    """2-fold x `seeds`: learn from one half as production would, route the other half."""
    rows, agree, checked, weak_samples = [], 0, 0, []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(outcomes.size)
        halves = (order[: outcomes.size // 2], order[outcomes.size // 2 :])
        for fold, (fit, test) in enumerate((halves, halves[::-1])):
            learned = train(
                prepared,
                feats,
                outcomes,
                list(fit),
                exploration=exploration,
                rating=rating,
                seed=seed * 2 + fold,
            )
            weak_samples.append(learned[WEAK_ID].samples / len(fit))
            scores = _scores(prepared, feats, learned, test)
            rows.append(_row(outcomes.subset(test), scores))
            a, n = _check(prepared, feats, learned, test, scores, np.random.default_rng(seed))
            agree, checked = agree + a, checked + n
    return {
        "seeds": seeds,
        "exploration": exploration,
        "weak_share_learned": _interval(weak_samples),
        "rank_agreement": agree / checked if checked else None,
        **_summaries(rows),
    }


def online(
    prepared: Sequence[Prepared],
    feats: Sequence[np.ndarray],
    outcomes: Outcomes,
    *,
    seeds: int,
    exploration: float,
    warmup: float,
    rating: bool = False,
    cadence: int = CADENCE,
) -> dict:
    """Learn as it goes (weights refreshed every `cadence` outcomes); each prompt after the warm-up
    is scored by the models as they were when it arrived."""
    rows = []
    models = pair(0)
    for seed in range(seeds):
        order = list(range(len(prepared)))
        random.Random(seed).shuffle(order)
        start = int(len(order) * warmup)
        live = {STRONG_ID: learning.OutcomeModel(), WEAK_ID: learning.OutcomeModel()}
        serving = _copy(live)
        rng = random.Random(10_000 + seed)
        scores = np.zeros(len(order) - start)
        for position, index in enumerate(order):
            estimate = learning.estimates(serving, feats[index])
            if position >= start:
                scores[position - start] = _critical(prepared[index], models, estimate)
            chosen = _policy(prepared[index], models, estimate, rng, exploration)
            value = outcomes.strong[index] if chosen == STRONG_ID else outcomes.weak[index]
            live[chosen].update(feats[index], _target(value, rating))
            if (position + 1) % cadence == 0:
                serving = _copy(live)
        rows.append(_row(outcomes.subset(np.array(order[start:])), scores))
    return {
        "seeds": seeds,
        "exploration": exploration,
        "warmup_share": warmup,
        "cadence": cadence,
        **_summaries(rows),
    }


def _copy(models: dict[str, learning.OutcomeModel]) -> dict[str, learning.OutcomeModel]:
    return {
        key: learning.OutcomeModel(m.weights.copy(), m.bias, m.samples, m.successes)
        for key, m in models.items()
    }
