"""Properties of the scoring engine (Hypothesis), over random registries and constraints.

The candidates of one example share their token counts (one tokenizer), as the engine's
monotonicity argument assumes; see selection/engine.py.
"""

from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from selection.choices import THRIFTIER, Strategy
from selection.engine import HISTORY_QUALITY_SPAN, Candidate, Constraints, PriceLine, hard_filter, rank
from selection.snapshot import ModelSnapshot

TASK = "chat"
INPUT_TOKENS, OUTPUT_TOKENS = 1_200, 800
PREMIUM = PriceLine(Decimal("3"), Decimal("15"))
CAPABILITIES = ["tools", "vision", "json"]

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("80"), places=2)


@st.composite
def models(draw, index: int) -> ModelSnapshot:
    input_price = draw(prices)
    return ModelSnapshot(
        id=f"m{index}",
        provider=draw(st.sampled_from(["a", "b", "c"])),
        provider_status=draw(st.sampled_from(["active", "active", "active", "degraded", "disabled"])),
        tokenizer="o200k_base",
        context_window=draw(st.sampled_from([1_000, 8_000, 128_000])),
        max_output_tokens=1_000,
        input_price_per_million=input_price,
        output_price_per_million=input_price * draw(st.sampled_from([1, 2, 4, 5])),
        cached_input_price_per_million=None,
        capabilities=frozenset(draw(st.lists(st.sampled_from(CAPABILITIES), unique=True))),
        quality={TASK: draw(st.integers(30, 99)), "code": draw(st.integers(30, 99))},
        mean_quality=draw(st.floats(30, 99)),
        typical_latency_ms=None,
        is_active=draw(st.booleans()) or draw(st.booleans()),
        fallbacks=(),
    )


@st.composite
def candidate_sets(draw) -> list[Candidate]:
    count = draw(st.integers(1, 12))
    result = []
    for index in range(count):
        model = draw(models(index))
        cost = (
            INPUT_TOKENS * model.input_price_per_million + OUTPUT_TOKENS * model.output_price_per_million
        ) / (Decimal(1_000_000))
        result.append(
            Candidate(model=model, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS, cost=cost)
        )
    return result


@st.composite
def constraint_sets(draw) -> Constraints:
    return Constraints(
        required_capabilities=frozenset(
            draw(st.lists(st.sampled_from(CAPABILITIES), unique=True, max_size=2))
        ),
        restricted_models=frozenset(
            draw(st.lists(st.sampled_from([f"m{i}" for i in range(12)]), max_size=3))
        ),
        exclude_premium=draw(st.booleans()),
        premium_line=PREMIUM,
        cost_ceiling=draw(
            st.none() | st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.2"), places=3)
        ),
        remaining=draw(st.none() | st.decimals(min_value=Decimal("0"), max_value=Decimal("0.3"), places=3)),
    )


strategies = st.sampled_from(list(Strategy))
requirements = st.integers(0, 100) | st.sampled_from(["max"])
histories = st.dictionaries(st.sampled_from([f"m{i}" for i in range(12)]), st.floats(0, 1), max_size=12)


def _rank(candidates, constraints, strategy, requirement, factor, history):
    return rank(
        candidates,
        task_type=TASK,
        requirement=requirement,
        strategy=strategy,
        budget_factor=factor,
        constraints=constraints,
        request_tokens=INPUT_TOKENS + OUTPUT_TOKENS,
        history=history,
    )


@settings(max_examples=150, deadline=None)
@given(candidate_sets(), constraint_sets(), strategies, requirements, st.floats(0, 1), histories)
def test_the_chosen_model_passes_every_hard_filter(
    candidates, constraints, strategy, requirement, factor, history
):
    ranking = _rank(candidates, constraints, strategy, requirement, factor, history)
    rejected = {r.model for r in ranking.rejections}
    for scored in ranking.ranked:
        assert hard_filter(scored.candidate, constraints) is None
        assert scored.id not in rejected
    assert len(ranking.ranked) + len(ranking.rejections) == len(candidates)
    if ranking.chosen is None:
        assert all(hard_filter(c, constraints) is not None for c in candidates)


@settings(max_examples=150, deadline=None)
@given(candidate_sets(), constraint_sets(), requirements, st.floats(0, 1), histories)
def test_cost_optimized_never_picks_a_dearer_model_than_one_meeting_the_same_requirement(
    candidates, constraints, requirement, factor, history
):
    ranking = _rank(candidates, constraints, Strategy.COST_OPTIMIZED, requirement, factor, history)
    assume(ranking.chosen is not None and ranking.requirement_met)
    # The requirement is judged on effective quality (configured, moved by the history): with
    # history present a model's configured score alone no longer says whether it qualifies.
    for scored in ranking.ranked:
        if scored.effective_quality >= ranking.requirement:
            assert ranking.chosen.cost <= scored.cost
    assert ranking.chosen.effective_quality >= ranking.requirement


@st.composite
def tighter(draw, constraints: Constraints) -> Constraints:
    """What more budget usage can do to the constraints: exclude premium models, lower the
    per-request ceiling, shrink the room left."""

    def lower(value):
        if value is None:
            return draw(st.none() | st.decimals(min_value=Decimal("0"), max_value=Decimal("0.3"), places=3))
        return value * Decimal(draw(st.sampled_from(["1", "0.9", "0.5", "0.1"])))

    return Constraints(
        required_capabilities=constraints.required_capabilities,
        restricted_models=constraints.restricted_models,
        exclude_premium=constraints.exclude_premium or draw(st.booleans()),
        premium_line=PREMIUM,
        cost_ceiling=lower(constraints.cost_ceiling),
        remaining=lower(constraints.remaining),
    )


@settings(max_examples=250, deadline=None)
@given(st.data(), candidate_sets(), constraint_sets(), strategies, requirements, histories)
def test_raising_budget_usage_never_makes_the_choice_dearer(
    data, candidates, constraints, strategy, requirement, history
):
    low_factor = data.draw(st.floats(0, 1))
    high_factor = data.draw(st.floats(low_factor, 1))
    # Crossing the prefer-cheaper threshold moves the strategy towards cost, never back.
    later_strategy = THRIFTIER[strategy] if data.draw(st.booleans()) else strategy
    later_constraints = data.draw(tighter(constraints))
    before = _rank(candidates, constraints, strategy, requirement, low_factor, history)
    after = _rank(candidates, later_constraints, later_strategy, requirement, high_factor, history)
    if before.chosen is not None and after.chosen is not None:
        assert after.chosen.cost <= before.chosen.cost


@settings(max_examples=150, deadline=None)
@given(candidate_sets(), constraint_sets(), strategies, requirements, st.floats(0, 1), histories)
def test_history_moves_effective_quality_by_at_most_half_the_span_and_not_at_all_without_it(
    candidates, constraints, strategy, requirement, factor, history
):
    with_history = _rank(candidates, constraints, strategy, requirement, factor, history)
    for scored in with_history.ranked:
        shift = scored.effective_quality - scored.quality
        assert abs(shift) <= HISTORY_QUALITY_SPAN / 2
        if scored.id not in history:
            assert shift == 0
        else:
            # Better outcomes never lower it, worse never raise it.
            assert (shift >= 0) == (history[scored.id] >= 0.5) or shift == 0
    if requirement != "max":
        without = _rank(candidates, constraints, strategy, requirement, factor, {})
        assert all(s.effective_quality == s.quality for s in without.ranked)
