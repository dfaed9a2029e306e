"""RouteLLM's router metrics (arXiv 2406.18665, section 5) on a quality-vs-strong-share curve.

A curve is a list of operating points (share of prompts sent to the strong model, mean quality,
mean cost). PGR (performance gap recovered) is (quality - weak) / (strong - weak); APGR is the
trapezoid area under PGR against the strong share, from (0, always-weak) to (1, always-strong);
CPT(x) is the smallest strong share whose PGR reaches x. Between two measured points the curve is
the straight line a router gets by mixing the two settings at random, so CPT and the operating points
at 95%/97% of the strong model's quality are read on that line.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Point:
    strong_share: float
    quality: float
    cost: float  # mean cost per prompt, USD (a float: a plotted, averaged measure, not money owed)
    setting: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Outcomes:
    """Per-prompt outcomes and costs of the two models, as arrays."""

    strong: np.ndarray
    weak: np.ndarray
    strong_cost: np.ndarray
    weak_cost: np.ndarray

    @property
    def size(self) -> int:
        return len(self.strong)

    def subset(self, index: np.ndarray) -> "Outcomes":
        return Outcomes(self.strong[index], self.weak[index], self.strong_cost[index], self.weak_cost[index])

    @property
    def strong_quality(self) -> float:
        return float(self.strong.mean())

    @property
    def weak_quality(self) -> float:
        return float(self.weak.mean())


def point(outcomes: Outcomes, to_strong: np.ndarray, setting: str = "") -> Point:
    """The operating point of one routing: `to_strong[i]` says prompt i went to the strong model."""
    to_strong = np.asarray(to_strong, dtype=bool)
    quality = np.where(to_strong, outcomes.strong, outcomes.weak).mean()
    cost = np.where(to_strong, outcomes.strong_cost, outcomes.weak_cost).mean()
    return Point(float(to_strong.mean()), float(quality), float(cost), setting)


def pgr(quality: float, weak: float, strong: float) -> float:
    """Share of the weak-to-strong gap recovered (1 when the two are equal and quality reaches them)."""
    gap = strong - weak
    if gap == 0:
        return 1.0 if quality >= strong else 0.0
    return (quality - weak) / gap


def with_ends(points: Sequence[Point], outcomes: Outcomes) -> list[Point]:
    """The points sorted by strong share, with always-weak and always-strong added at the ends."""
    ends = [
        point(outcomes, np.zeros(outcomes.size, dtype=bool), "always-weak"),
        point(outcomes, np.ones(outcomes.size, dtype=bool), "always-strong"),
    ]
    return sorted([*points, *ends], key=lambda p: (p.strong_share, p.quality))


def apgr(points: Sequence[Point], weak: float, strong: float) -> float:
    """Trapezoid area under PGR against strong share, on points that already span 0..1."""
    ordered = sorted(points, key=lambda p: (p.strong_share, p.quality))
    x = np.array([p.strong_share for p in ordered])
    y = np.array([pgr(p.quality, weak, strong) for p in ordered])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def share_for_pgr(points: Sequence[Point], target: float, weak: float, strong: float) -> dict | None:
    """The first place on the curve (by strong share) where PGR reaches `target`: the share and the
    cost there, interpolated on the segment that crosses it. None if the curve never gets there."""
    ordered = sorted(points, key=lambda p: (p.strong_share, p.quality))
    previous = None
    for current in ordered:
        y1 = pgr(current.quality, weak, strong)
        if y1 >= target - 1e-12:
            if previous is None or pgr(previous.quality, weak, strong) >= target:
                return {"strong_share": current.strong_share, "cost": current.cost}
            y0 = pgr(previous.quality, weak, strong)
            t = (target - y0) / (y1 - y0)
            return {
                "strong_share": previous.strong_share + t * (current.strong_share - previous.strong_share),
                "cost": previous.cost + t * (current.cost - previous.cost),
            }
        previous = current
    return None


def cpt(points: Sequence[Point], target: float, weak: float, strong: float) -> float | None:
    """Call-performance threshold: the strong share needed for PGR `target` (0.5 for CPT(50%))."""
    found = share_for_pgr(points, target, weak, strong)
    return None if found is None else found["strong_share"]


def at_quality(points: Sequence[Point], fraction: float, weak: float, strong: float) -> dict | None:
    """Strong share and cost needed to reach `fraction` of the strong model's quality."""
    wanted = fraction * strong
    if weak >= wanted:
        lowest = min(points, key=lambda p: p.strong_share)
        return {"strong_share": lowest.strong_share, "cost": lowest.cost}
    return share_for_pgr(points, pgr(wanted, weak, strong), weak, strong)


def random_curve(outcomes: Outcomes, steps: int = 10) -> list[Point]:
    """The random router's expected value: share s of prompts, drawn at random, go to the strong model."""
    strong, weak = outcomes.strong_quality, outcomes.weak_quality
    strong_cost, weak_cost = float(outcomes.strong_cost.mean()), float(outcomes.weak_cost.mean())
    return [
        Point(s, weak + s * (strong - weak), weak_cost + s * (strong_cost - weak_cost), f"p={s:g}")
        for s in (i / steps for i in range(steps + 1))
    ]


def score_curve(outcomes: Outcomes, scores: np.ndarray, name: str = "", max_points: int = 200) -> list[Point]:
    """Route the prompts with the highest `scores` to the strong model, for every cut between
    distinct scores (tied prompts move together). At most `max_points` cuts, evenly spread."""
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    # cut k sends order[:k] to the strong model; valid cuts are where the score changes.
    cuts = [0, *(k for k in range(1, len(ranked)) if ranked[k] != ranked[k - 1]), len(ranked)]
    if len(cuts) > max_points:
        picks = np.unique(np.linspace(0, len(cuts) - 1, max_points).round().astype(int))
        cuts = [cuts[i] for i in picks]
    gain = (outcomes.strong - outcomes.weak)[order]
    cost_gain = (outcomes.strong_cost - outcomes.weak_cost)[order]
    quality = outcomes.weak_quality + np.concatenate([[0.0], np.cumsum(gain)]) / outcomes.size
    cost = float(outcomes.weak_cost.mean()) + np.concatenate([[0.0], np.cumsum(cost_gain)]) / outcomes.size
    return [Point(k / outcomes.size, float(quality[k]), float(cost[k]), f"{name}top{k}") for k in cuts]


def oracle_scores(outcomes: Outcomes) -> np.ndarray:
    """The oracle knows both answers: it sends first the prompts where the strong model gains most."""
    return outcomes.strong - outcomes.weak


def summary(points: Sequence[Point], outcomes: Outcomes) -> dict:
    """Every headline metric of one curve (points that span 0..1)."""
    weak, strong = outcomes.weak_quality, outcomes.strong_quality
    strong_cost = float(outcomes.strong_cost.mean())

    def operating(fraction: float) -> dict | None:
        found = at_quality(points, fraction, weak, strong)
        if found is None:
            return None
        return {**found, "cost_vs_strong": found["cost"] / strong_cost if strong_cost else None}

    return {
        "apgr": apgr(points, weak, strong),
        "cpt50": cpt(points, 0.5, weak, strong),
        "cpt80": cpt(points, 0.8, weak, strong),
        "at95": operating(0.95),
        "at97": operating(0.97),
    }


def below_random(points: Sequence[Point], outcomes: Outcomes, tolerance: float = 0.0) -> float:
    """The largest amount by which the curve's PGR falls under the random router's (0 if never)."""
    weak, strong = outcomes.weak_quality, outcomes.strong_quality
    return max(0.0, *(p.strong_share - pgr(p.quality, weak, strong) - tolerance for p in points))
