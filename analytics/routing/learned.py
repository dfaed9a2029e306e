"""The learned router measured honestly: `selection.learning` models trained only from outcomes the
product would have been told, then used through `engine.rank` as `admit()` uses them.

Cross-fit: for each seed the prompts are split in two halves. The fitting half is replayed in a
random order through the product's policy at its configured setting (the knob at 0, exploration at
COSTSWITCH_EXPLORATION_RATE, the same `exploration_draw`/`EXPLORATION_MARGIN` rule as admission):
after each decision only the chosen model's outcome is reported. The models are rebuilt from the
reported outcomes by `selection.outcome_learning.rebuild`, the function the periodic task runs (the
newest COSTSWITCH_LEARNING_WINDOW outcomes per model, COSTSWITCH_LEARNING_PASSES passes), on a
schedule of periodic runs (`rebuild_due`) and once at the end. The final models then route the other
half, never learned from, over the whole knob range; both ways, for every seed.

Online: all prompts in a random order on the same schedule, each prompt routed by the models as
they were when it arrived; measured after the warm-up.

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
from selection.outcome_learning import rebuild

# While outcomes are replayed the models are rebuilt after FIRST_REBUILD outcomes, then each time
# the count has grown by as many again, at most by REBUILD_EVERY (a periodic run's worth of
# traffic): early rebuilds matter most, and rebuilding all of MMLU every 100 outcomes would cost
# minutes of evaluation.
FIRST_REBUILD = 100
REBUILD_EVERY = 1000
CHECKS = 400
# Strong shares at which the mean PGR curve over folds/seeds is reported (and plotted).
CURVE_SHARES = np.linspace(0, 1, 21)


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
    """The model the product picks at its configured setting, with exploration as admission's
    `_explore` does it (near misses, or any miss while the cheaper model has no estimate yet)."""
    ranking = decide_ranking(item, models, learned=estimate)
    chosen = ranking.chosen
    if exploration > 0 and rng.random() < exploration:
        near = [
            s
            for s in ranking.ranked
            if s.cost < chosen.cost
            and not s.meets_requirement
            and (s.learned is None or s.effective_quality >= ranking.requirement - EXPLORATION_MARGIN)
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


def rebuild_due(position: int, first: int | None = None, every: int | None = None) -> int:
    """After `position` outcomes (a rebuild just ran there, or 0), the count at which the next runs."""
    first, every = first or FIRST_REBUILD, every or REBUILD_EVERY
    return first if position < first else position + min(position, every)


def _replay(
    prepared: Sequence[Prepared],
    feats: Sequence[np.ndarray],
    outcomes: Outcomes,
    order: Sequence[int],
    *,
    exploration: float,
    rating: bool,
    seed: int,
    first_rebuild: int | None = None,
    rebuild_every: int | None = None,
    scores: np.ndarray | None = None,
    score_from: int = 0,
) -> dict[str, learning.OutcomeModel]:
    """Replay `order` through the product's policy, reporting only the chosen model's outcome and
    rebuilding the models on the schedule; with `scores`, each prompt from position `score_from` on
    is scored by the models serving when it arrived. Returns the models rebuilt from everything."""
    models = pair(0)
    reported: dict[str, list] = {STRONG_ID: [], WEAK_ID: []}
    serving = {key: learning.OutcomeModel() for key in reported}
    rng = random.Random(seed)
    due = rebuild_due(0, first_rebuild, rebuild_every)
    for position, index in enumerate(order, 1):
        estimate = learning.estimates(serving, feats[index])
        if scores is not None and position > score_from:
            scores[position - 1 - score_from] = _critical(prepared[index], models, estimate)
        chosen = _policy(prepared[index], models, estimate, rng, exploration)
        value = outcomes.strong[index] if chosen == STRONG_ID else outcomes.weak[index]
        reported[chosen].append((feats[index], _target(value, rating)))
        if position == due:
            serving = _rebuilt(reported)
            due = rebuild_due(position, first_rebuild, rebuild_every)
    return _rebuilt(reported)


def train(
    prepared: Sequence[Prepared],
    feats: Sequence[np.ndarray],
    outcomes: Outcomes,
    order: Sequence[int],
    *,
    exploration: float,
    rating: bool,
    seed: int,
    first_rebuild: int | None = None,
    rebuild_every: int | None = None,
) -> dict[str, learning.OutcomeModel]:
    """Replay `order` through the product's policy, learning only the chosen model's outcome; the
    models as the periodic task would have rebuilt them after the last outcome."""
    return _replay(
        prepared,
        feats,
        outcomes,
        order,
        exploration=exploration,
        rating=rating,
        seed=seed,
        first_rebuild=first_rebuild,
        rebuild_every=rebuild_every,
    )


def _rebuilt(reported: dict[str, list]) -> dict[str, learning.OutcomeModel]:
    return {key: rebuild(rows) for key, rows in reported.items()}


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
    curves = np.array([row["pgr_at"] for row in rows])
    curve = [
        {"strong_share": float(share), "pgr": _interval(curves[:, k])} for k, share in enumerate(CURVE_SHARES)
    ]
    return {**{key: _interval([row[key] for row in rows]) for key in keys}, "curve": curve}


def _row(outcomes: Outcomes, scores: np.ndarray) -> dict:
    points = metrics.with_ends(metrics.score_curve(outcomes, scores, "learned"), outcomes)
    summary = metrics.summary(points, outcomes)
    at97, at95 = summary.get("at97"), summary.get("at95")
    weak, strong = outcomes.weak_quality, outcomes.strong_quality
    return {
        # PGR read off the curve (straight lines between points) at the plotted strong shares.
        "pgr_at": np.interp(
            CURVE_SHARES,
            [p.strong_share for p in points],
            [metrics.pgr(p.quality, weak, strong) for p in points],
        ),
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
    first_rebuild: int | None = None,
    rebuild_every: int | None = None,
) -> dict:
    """Learn as it goes (models rebuilt on the periodic schedule); each prompt after the warm-up is
    scored by the models as they were when it arrived."""
    rows = []
    for seed in range(seeds):
        order = list(range(len(prepared)))
        random.Random(seed).shuffle(order)
        start = int(len(order) * warmup)
        scores = np.zeros(len(order) - start)
        _replay(
            prepared,
            feats,
            outcomes,
            order,
            exploration=exploration,
            rating=rating,
            seed=10_000 + seed,
            first_rebuild=first_rebuild,
            rebuild_every=rebuild_every,
            scores=scores,
            score_from=start,
        )
        rows.append(_row(outcomes.subset(np.array(order[start:])), scores))
    return {
        "seeds": seeds,
        "exploration": exploration,
        "warmup_share": warmup,
        "first_rebuild": first_rebuild or FIRST_REBUILD,
        "rebuild_every": rebuild_every or REBUILD_EVERY,
        **_summaries(rows),
    }
