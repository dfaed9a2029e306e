"""Rendering of the evaluation: JSON (everything), a markdown table (headline metrics against the
baselines and the issue's targets) and a PNG of the PGR curves."""

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from django.conf import settings as django_settings

from analytics.routing.learned import FIRST_REBUILD, REBUILD_EVERY
from selection.engine import HISTORY_QUALITY_SPAN, LEARNED_QUALITY_SPAN
from selection.learning import MIN_SAMPLES

ROUTERS = ("product", "length", "random", "oracle")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _share(operating: dict | None) -> str:
    if operating is None:
        return "never"
    return f"{_pct(operating['strong_share'])} ({_pct(operating['cost_vs_strong'])} cost)"


def _interval(found: dict, scale: float = 100) -> str:
    return f"{found['mean'] * scale:.1f}% [{found['low'] * scale:.1f}, {found['high'] * scale:.1f}]"


def table(results: Sequence[dict]) -> str:
    """Markdown: one row per benchmark and router, then the cross-fit and online rows, then targets."""
    lines = [
        "| benchmark | router | APGR | CPT(50%) | CPT(80%) | strong share (cost) at 95% | at 97% |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for router in ROUTERS:
            m = result["metrics"][router]
            lines.append(
                f"| {result['benchmark']} | {router} | {_num(m['apgr'])} | {_pct(m['cpt50'])} | "
                f"{_pct(m['cpt80'])} | {_share(m['at95'])} | {_share(m['at97'])} |"
            )
    lines += [
        "",
        "Operating points chosen on one half, measured on the other (2-fold, 20 seeds; mean [95% interval]):",
        "",
        "| benchmark | router | target | strong share | quality vs strong | cost vs strong |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for router, found in result["crossfit"].items():
            for target, rows in found.items():
                lines.append(
                    f"| {result['benchmark']} | {router} | {target[2:]}% | "
                    f"{_interval(rows['strong_share'])} | {_interval(rows['quality_vs_strong'])} | "
                    f"{_interval(rows['cost_vs_strong'])} |"
                )
    lines += learned_table(results)
    lines += [
        "",
        "| benchmark | prompts | weak | strong | product as configured (strong share) "
        "| online APGR after warm-up | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        online = result.get("online")
        online_text = "not run"
        if online:
            online_text = (
                f"{online['apgr']['mean']:.3f} [{online['apgr']['low']:.3f}, {online['apgr']['high']:.3f}]"
            )
            control = online.get("apgr_without_history")
            if control:
                online_text += f" (no history: {control['mean']:.3f})"
            online_text += (
                f"; {online['decisions_changed_by_history']} of {online['decisions']} decisions changed"
            )

        lines.append(
            f"| {result['benchmark']} | {result['prompts']} | {_num(result['weak_quality'])} | "
            f"{_num(result['strong_quality'])} | {_pct(result['configured']['strong_share'])} | "
            f"{online_text} | "
            f"{_targets_text(result)} | {_met_text(result)} |"
        )
    return "\n".join(lines) + "\n"


def _ci(found: dict | None, scale: float = 1, digits: int = 3) -> str:
    if not found:
        return "n/a"
    mean, low, high = (found[key] * scale for key in ("mean", "low", "high"))
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def learned_table(results: Sequence[dict]) -> list[str]:
    """The learned router (selection.learning): cross-fit (learn from one half as production would,
    route the other) and online (learn as it goes), mean [95% interval] over 2 x seeds folds."""
    rows = [r for r in results if r.get("learned")]
    if not rows:
        return []
    lines = [
        "",
        "Learned router (per-prompt outcome models, `selection/learning.py`), trained only from the outcome "
        "of the model the product chose (exploration included); mean [95% interval]:",
        "",
        "| benchmark | mode | seeds | APGR | CPT(50%) | CPT(80%) | strong share at 97% | below random by | "
        "weak outcomes learned | rank agreement |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in rows:
        for mode in ("crossfit", "online"):
            found = result["learned"][mode]
            weak = found.get("weak_share_learned")
            agreement = found.get("rank_agreement")
            lines.append(
                f"| {result['benchmark']} | {mode} | {found['seeds']} | {_ci(found['apgr'])} | "
                f"{_ci(found['cpt50'], 100, 1)} | {_ci(found['cpt80'], 100, 1)} | "
                f"{_ci(found['at97_strong_share'], 100, 1)} | {_ci(found['below_random'])} | "
                f"{_ci(weak, 100, 1) + '% of prompts' if weak else 'n/a'} | "
                f"{f'{agreement:.1%}' if agreement is not None else 'n/a'} |"
            )
    return lines


def target_gaps(result: dict) -> dict[str, float]:
    """By how much each target is missed (positive) or beaten (negative or zero)."""
    targets, m = result["targets"], result["metrics"]["product"]
    gaps = {}
    if "apgr" in targets:
        gaps["apgr"] = targets["apgr"] - m["apgr"]
    if "at97_strong_share" in targets:
        at97 = m["at97"]
        gaps["at97_strong_share"] = (at97["strong_share"] if at97 else 1.0) - targets["at97_strong_share"]
    gaps["below_random"] = result["below_random"]["product"]
    gaps["vs_length_apgr"] = result["metrics"]["length"]["apgr"] - m["apgr"]
    return gaps


def _targets_text(result: dict) -> str:
    targets = result["targets"]
    parts = [f"APGR >= {targets['apgr']}"] if "apgr" in targets else []
    if "at97_strong_share" in targets:
        parts.append(f"<= {_pct(targets['at97_strong_share'])} strong at 97%")
    return "; ".join([*parts, "never below random", "beats length"])


def _met_text(result: dict) -> str:
    gaps = target_gaps(result)
    return "; ".join(
        f"{name}: {'yes' if gap <= 1e-9 else f'no (by {gap:.3f})'}" for name, gap in gaps.items()
    )


def plot(results: Sequence[dict], path: Path) -> None:
    """PGR against strong share, one panel per benchmark, every router."""
    figure, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.2), squeeze=False)
    for axis, result in zip(axes[0], results, strict=True):
        weak, strong = result["weak_quality"], result["strong_quality"]
        for router in ROUTERS:
            points = result["curves"][router]
            axis.plot(
                [p["strong_share"] for p in points],
                [(p["quality"] - weak) / (strong - weak) for p in points],
                label=f"{router} (APGR {result['metrics'][router]['apgr']:.2f})",
                linestyle="--" if router in ("random", "oracle") else "-",
            )
        learned = (result.get("learned") or {}).get("crossfit")
        if learned and learned.get("curve"):
            shares = [row["strong_share"] for row in learned["curve"]]
            axis.plot(
                shares,
                [row["pgr"]["mean"] for row in learned["curve"]],
                color="black",
                linewidth=2,
                label=f"learned, cross-fit (APGR {learned['apgr']['mean']:.2f})",
            )
            axis.fill_between(
                shares,
                [row["pgr"]["low"] for row in learned["curve"]],
                [row["pgr"]["high"] for row in learned["curve"]],
                color="black",
                alpha=0.12,
                linewidth=0,
            )
        online = result.get("online")
        if online:
            axis.errorbar(
                [row["strong_share"]["mean"] for row in online["curve"]],
                [row["pgr"]["mean"] for row in online["curve"]],
                yerr=[
                    [row["pgr"]["mean"] - row["pgr"]["low"] for row in online["curve"]],
                    [row["pgr"]["high"] - row["pgr"]["mean"] for row in online["curve"]],
                ],
                fmt="o",
                markersize=3,
                label=f"product, online (APGR {online['apgr']['mean']:.2f})",
            )
        axis.set_title(f"{result['benchmark']} ({result['prompts']} prompts)")
        axis.set_xlabel("share of calls to the strong model")
        axis.set_ylabel("performance gap recovered")
        axis.set_xlim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: Sequence[dict], out: Path, docs: Path | None = None) -> dict[str, Path]:
    """The JSON at `out`, the table and plot beside it, and (if asked) the docs page."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": list(results)}, indent=1) + "\n", encoding="utf-8")
    markdown = out.with_suffix(".md")
    markdown.write_text(table(results), encoding="utf-8")
    image = out.with_suffix(".png")
    plot(results, image)
    written = {"json": out, "markdown": markdown, "plot": image}
    if docs is not None:
        docs.parent.mkdir(parents=True, exist_ok=True)
        relative = Path("..") / image.resolve().relative_to(docs.resolve().parent.parent)
        docs.write_text(docs_page(results, relative), encoding="utf-8")
        written["docs"] = docs
    return written


def docs_page(results: Sequence[dict], image: Path) -> str:
    return (
        "# Routing quality on public data\n\n"
        "Generated by `make eval-routing` (`manage.py routing_eval --benchmark all`); do not edit.\n\n"
        "Data: RouteLLM's released per-prompt outcomes (Apache-2.0; gpt-4-1106-preview as the strong model,\n"
        "Mixtral-8x7B-Instruct as the weak one) for MMLU, GSM8K and MT-Bench, decontaminated as in the\n"
        "RouteLLM paper. Each prompt goes through the product's own decision core (`analyze_request` on the\n"
        "prompt text only, `quality_requirement`, `engine.rank`) with a two-model registry at $24.7 vs\n"
        "$0.24 per 1M tokens; the quality scores per task type are the catalog's GPT-4 Turbo and\n"
        "GPT-3.5 Turbo profiles. The knob swept is an offset on both models' configured scores: the weak\n"
        "model is chosen "
        "while the requirement derived from the prompt's complexity (55 + 35 x complexity) is within its\n"
        "score, so the offset moves the complexity threshold from all-strong to all-weak.\n\n"
        "Metrics as RouteLLM defines them: PGR = (quality - weak) / (strong - weak); APGR = trapezoid area\n"
        "under PGR against the strong share; CPT(x) = strong share needed for PGR x. Baselines: random\n"
        "(expected value), prompt length (longer prompts to the strong model), oracle (knows both\n"
        "outcomes). "
        "Operating points at 95%/97% of the strong model's quality are also chosen on one half of the\n"
        "prompts "
        "and measured on the other (2-fold cross-fit, 20 seeds). Online: prompts in random order, only the\n"
        "chosen model's outcome reported back (success/failure, or a 1-5 rating from the judge score) and\n"
        "scored by `selection.selectors.history_score`, which moves each model's effective quality for\n"
        "the requirement check per task type; measured after a 20% warm-up, 20 seeds.\n\n"
        "Learned router (`selection/learning.py`, the code admission runs): a logistic model per LLM\n"
        "predicting P(success | prompt text) from hashed word unigrams and bigrams, rebuilt from that\n"
        f"LLM's newest {django_settings.COSTSWITCH_LEARNING_WINDOW} reported outcomes with "
        f"{django_settings.COSTSWITCH_LEARNING_PASSES} passes\n"
        "(`selection.outcome_learning.rebuild`, what the periodic task runs; used only once a model has\n"
        f"{MIN_SAMPLES} outcomes). `engine.rank` moves the cheaper model's effective quality by\n"
        f"LEARNED_QUALITY_SPAN ({LEARNED_QUALITY_SPAN}) x (its predicted success minus its usual rate, "
        "relative to the strong\n"
        "model's), so prompts it is expected to fail go to the strong model. Cross-fit: the models learn\n"
        "from one half, replayed in random order through the product's policy at its configured setting\n"
        "with exploration (COSTSWITCH_EXPLORATION_RATE), only the chosen model's outcome reported, the\n"
        f"models rebuilt as the periodic task would (after {FIRST_REBUILD} outcomes, then each time the "
        f"count has\ndoubled, at most every {REBUILD_EVERY}) and once at the end; they then route the "
        "other half over the whole\n"
        "knob range (the black line and its 95% band in the plot); 2 folds x the seeds shown. Online: all\n"
        "prompts in random order on the same rebuild schedule, measured after the 20% warm-up. Rank\n"
        "agreement: the share of sampled prompts x settings where the curve's per-prompt threshold says\n"
        "what `engine.rank` itself decides; the rest are settings so strict that neither model meets the\n"
        "requirement, where `rank` falls back to the best effective quality and a large learned shift\n"
        "can make that the weak model, while the curve counts the prompt as sent to the strong one.\n\n"
        f"![PGR curves]({image.as_posix()})\n\n" + table(results) + _findings(results)
    )


def _findings(results: Sequence[dict]) -> str:
    """What the numbers say about the targets, computed from this run."""
    lines = ["", "## Against the targets", ""]
    for result in results:
        gaps = {name: gap for name, gap in target_gaps(result).items() if gap > 1e-9}
        missed = ", ".join(f"{name} by {gap:.3f}" for name, gap in gaps.items()) or "none"
        lines.append(f"- {result['benchmark']}: targets missed: {missed}.")
    online = [r["online"] for r in results if r.get("online")]
    if online:
        changed = sum(o["decisions_changed_by_history"] for o in online)
        total = sum(o["decisions"] for o in online)
        lines.append(
            f"- Online learning changed {changed} of {total} decisions. Reported outcomes move a model's "
            "effective quality for the requirement check (configured score + "
            f"{HISTORY_QUALITY_SPAN} x (history score - 0.5), "
            "the history score shrunk towards 0.5 by sample count; selection/engine.py "
            "`effective_quality`), so a cheap model that keeps succeeding on a task type starts to meet "
            "requirements there and one that keeps failing stops. APGR after the warm-up, with history "
            "against the same settings without it: "
            + "; ".join(
                f"{r['benchmark']} {r['online']['apgr']['mean']:.3f} vs "
                f"{r['online']['apgr_without_history']['mean']:.3f}"
                for r in results
                if r.get("online") and r["online"].get("apgr_without_history")
            )
            + ". With only the chosen model's outcome reported, a task type learns only about the model "
            "it routes to, and the weak model is mostly tried on the prompts judged easy, so its observed "
            "success rate is flattering; the shift is per task type, not per prompt, so it rebalances "
            "thresholds between detected task types rather than telling hard prompts from easy ones."
        )
    for result in results:
        found = (result.get("learned") or {}).get("crossfit")
        if not found or not found.get("apgr"):
            continue
        target = result.get("targets", {}).get("apgr")
        apgr = found["apgr"]
        verdict = (
            f"target {target:.2f} {'met' if apgr['low'] >= target else 'missed'} "
            f"(by {target - apgr['mean']:+.3f} on the mean)"
            if target is not None
            else ""
        )
        fitting = result["prompts"] // 2
        weak_seen = (found.get("weak_share_learned") or {}).get("mean", 0) * fitting
        starved = (
            f" With {fitting} prompts in a fitting half the weak model is reported on about "
            f"{weak_seen:.0f} times, under the {MIN_SAMPLES} outcomes the product needs before it uses a "
            "learned estimate for it, so this is mostly the product's curve unchanged."
            if weak_seen < MIN_SAMPLES
            else ""
        )
        length = result["metrics"]["length"]["apgr"]
        versus = (
            f"; against the length baseline ({length:.3f}) {apgr['mean'] - length:+.3f} on the mean"
            f", under random by at most {found['below_random']['mean']:.3f} on average"
        )
        lines.append(
            f"- Learned router, {result['benchmark']}: cross-fit APGR {_ci(apgr)}, {verdict}{versus}; "
            f"the weak model's outcome was reported for {_ci(found.get('weak_share_learned'), 100, 1)}% "
            "of the fitting half (only the chosen model's outcome is reported: the configured policy "
            "starts with most prompts on the strong model, exploration tries the cheaper model where it "
            f"nearly meets the requirement, or anywhere until it has {MIN_SAMPLES} outcomes, and the "
            f"learned estimate then sends it the prompts it expects to pass).{starved}"
        )
    lines.append(
        "- The complexity score reads the shape of a prompt (length, requirements, demanding terms), "
        "which says little about whether a multiple-choice or grade-school maths question is hard for "
        "the weak model; per-task-type score gaps from the catalog also set different thresholds per "
        "detected task type, the likely cause of the dips under random."
    )
    return "\n".join(lines) + "\n"
