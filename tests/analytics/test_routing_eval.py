"""The routing evaluation on RouteLLM's public data (skipped, saying where to put it, when absent):
a subsample through the real selection path, so it takes seconds; `make eval-routing` runs it all."""

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from analytics.routing import replay
from analytics.routing.data import DEFAULT_DATA_DIR, RoutingDataMissing, load, missing_message
from analytics.routing.evaluate import _History, evaluate, online_replay
from analytics.routing.metrics import Outcomes

needs_data = pytest.mark.skipif(
    not (DEFAULT_DATA_DIR / "routellm-repo").is_dir(), reason=missing_message(DEFAULT_DATA_DIR)
)


def test_without_the_data_the_command_says_where_to_put_it(tmp_path):
    with pytest.raises(CommandError, match=r"Routing data not found at .*Put RouteLLM's released"):
        call_command(
            "routing_eval", data=str(tmp_path / "nowhere"), benchmark="mmlu", out=str(tmp_path / "r.json")
        )
    assert not (tmp_path / "r.json").exists()
    with pytest.raises(RoutingDataMissing):
        load(tmp_path, "gsm8k")


def test_history_learns_through_the_products_score():
    history = _History()
    for _ in range(10):
        history.report("math", "weak", success=False, rating=None)
    history.report("math", "strong", success=True, rating=None)
    # history_score: (0 + 1) / (10 + 2) shrunk halfway towards 0.5 at 10 samples.
    assert history.scores["math"]["weak"] == pytest.approx(0.5 + (1 / 12 - 0.5) * 0.5, abs=1e-4)
    assert 0.5 < history.scores["math"]["strong"] < 0.55
    history.report("chat", "weak", success=None, rating=5)
    assert history.scores["chat"]["weak"] > 0.5


def test_the_sweep_spans_all_strong_to_all_weak_through_the_engine():
    items = replay.prepare(["What is 2 + 2?", "Prove that there are infinitely many primes, step by step."])
    settings = replay.offsets()
    first = [replay.decide(item, replay.pair(settings[0])) for item in items]
    last = [replay.decide(item, replay.pair(settings[-1])) for item in items]
    assert first == ["strong", "strong"]
    assert last == ["weak", "weak"]


@needs_data
def test_decontaminated_counts_match_the_published_ones():
    counts = {name: len(load(DEFAULT_DATA_DIR, name)) for name in ("mmlu", "gsm8k", "mt-bench")}
    assert counts == {"mmlu": 14037, "gsm8k": 1307, "mt-bench": 72}
    mt_bench = load(DEFAULT_DATA_DIR, "mt-bench")
    assert np.mean([i.strong for i in mt_bench]) == pytest.approx(9.21, abs=0.01)
    assert np.mean([i.weak for i in mt_bench]) == pytest.approx(8.28, abs=0.01)


@needs_data
def test_a_subsample_runs_end_to_end_with_sane_metrics():
    items = load(DEFAULT_DATA_DIR, "gsm8k")[:150]
    result = evaluate("gsm8k", items, seeds=2, online_settings=3)
    found = result["metrics"]
    assert found["random"]["apgr"] == pytest.approx(0.5)
    assert found["oracle"]["apgr"] >= max(found["product"]["apgr"], found["length"]["apgr"])
    shares = [p["strong_share"] for p in result["curves"]["product"]]
    assert min(shares) == 0.0 and max(shares) == 1.0
    assert 0 <= result["crossfit"]["product"]["at97"]["strong_share"]["mean"] <= 1
    assert len(result["online"]["curve"]) == 3
    online = result["online"]
    assert online["decisions"] == 2 * 3 * 150
    assert 0 <= online["decisions_changed_by_history"] <= online["decisions"]
    assert (
        result["online"]["apgr"]["low"]
        <= result["online"]["apgr"]["mean"]
        <= result["online"]["apgr"]["high"]
    )


@needs_data
def test_the_command_writes_json_table_plot_and_docs(tmp_path, capsys):
    out = tmp_path / "bench" / "routing" / "results.json"
    docs = tmp_path / "docs" / "routing.md"
    call_command("routing_eval", benchmark="mt-bench", out=str(out), docs=str(docs), seeds=2, no_online=True)
    results = json.loads(out.read_text())["results"]
    assert [r["benchmark"] for r in results] == ["mt-bench"]
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "| mt-bench | product |" in out.with_suffix(".md").read_text()
    page = docs.read_text()
    assert "![PGR curves](../bench/routing/results.png)" in page
    assert "| mt-bench | oracle |" in page


def test_online_replay_stops_routing_to_a_weak_model_that_keeps_failing():
    """Synthetic outcomes: the weak model fails every prompt, the strong one answers all. At the
    lowest setting where the weak model meets the requirement, its reported failures lower its
    effective quality until the strong model takes over, so history changes decisions."""
    prepared = replay.prepare(["What is 2 + 2?"] * 80)
    quality = replay.configured_quality()
    setting = next(
        s for s in replay.offsets(quality) if replay.decide(prepared[0], replay.pair(s, quality)) == "weak"
    )
    offline = np.array([[False] * len(prepared)])
    outcomes = Outcomes(
        strong=np.ones(len(prepared)),
        weak=np.zeros(len(prepared)),
        strong_cost=np.full(len(prepared), 1.0),
        weak_cost=np.full(len(prepared), 0.01),
    )
    offline[0] = [replay.decide(item, replay.pair(setting, quality)) == "strong" for item in prepared]
    assert not offline.any()
    online = online_replay(prepared, outcomes, [setting], quality, offline=offline, seeds=1)
    assert 0 < online["decisions_changed_by_history"] < len(prepared)
    # After the warm-up, the history has moved the prompts to the strong model.
    assert online["curve"][0]["strong_share"]["mean"] == 1.0
