"""Steering rules: parsing, validation with line-precise problems, and matching. Pure Python, no database."""

import pickle
import string
import timeit
from decimal import Decimal
from textwrap import dedent

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selection.rules import (
    MAX_INPUT_BYTES,
    MAX_RULES,
    DenyAction,
    RouteToAction,
    RuleContext,
    RuleProblem,
    RuleSet,
    RulesInvalid,
    SelectModelAction,
    parse_rules,
)

SEED = """\
rules:
  - name: cost-aware-selection
    priority: 100
    when:
      - type: request
        path: /v1/chat/completions
    then:
      - type: select-model
        budget_scope: team
        quality_requirement: high
        fallback_chain: true
        cost_limit: 0.50
"""

DENY = [{"type": "deny", "reason": "test"}]


class _NoAliasDumper(yaml.SafeDumper):
    """safe_dump writes shared objects (like DENY) as anchors and aliases, which rules refuse."""

    def ignore_aliases(self, data):
        return True


def _yaml(*rules: dict) -> str:
    return yaml.dump({"rules": list(rules)}, Dumper=_NoAliasDumper, sort_keys=False)


def _rule(name: str = "r", *, when: list | None = None, then: list | None = None, **extra) -> dict:
    return {"name": name, **extra, "when": when or [], "then": then or DENY}


def _problems(text: str, **kwargs) -> list[RuleProblem]:
    with pytest.raises(RulesInvalid) as caught:
        parse_rules(text, **kwargs)
    return list(caught.value.problems)


# --- The seed example ----------------------------------------------------------------------------


def test_it_parses_the_seed_example():
    rules = parse_rules(SEED)

    (rule,) = rules.rules
    assert (rule.name, rule.priority, rule.line, rule.enabled) == ("cost-aware-selection", 100, 2, True)
    assert rule.select == SelectModelAction(
        budget_scope="team", quality_requirement="high", fallback_chain=True, cost_limit=Decimal("0.50")
    )
    assert rule.route_to is None and rule.deny is None


def test_the_seed_example_matches_chat_completions_only():
    rules = parse_rules(SEED)

    assert rules.first_match(RuleContext(path="/v1/chat/completions")).name == "cost-aware-selection"
    assert rules.first_match(RuleContext(path="/v1/embeddings")) is None
    assert rules.first_match(RuleContext(path="/v1/chat/completions/extra")) is None


def test_cost_limit_is_an_exact_decimal():
    text = _yaml(_rule(then=[{"type": "select-model", "cost_limit": 0.1}]))

    assert parse_rules(text).rules[0].select.cost_limit == Decimal("0.1")


# --- Conditions ----------------------------------------------------------------------------------

CONDITION_CASES = [
    # (condition, context that matches, context that does not)
    ({"type": "request", "path": "/v1/chat/*"}, {"path": "/v1/chat/completions"}, {"path": "/v1/embeddings"}),
    (
        {"type": "request", "path": ["/v1/embeddings", "/v1/chat/*"]},
        {"path": "/v1/embeddings"},
        {"path": "/v2/embeddings"},
    ),
    ({"type": "request", "path": "/v1/chat/*"}, {"path": "/v1/chat/x"}, {"path": "/V1/CHAT/x"}),
    ({"type": "request", "model": "gpt-4o*"}, {"requested_model": "gpt-4o-mini"}, {"requested_model": "o3"}),
    ({"type": "request", "model": "auto"}, {"requested_model": None}, {"requested_model": "gpt-4o"}),
    ({"type": "request", "priority": ["high", "critical"]}, {"priority": "critical"}, {"priority": "normal"}),
    ({"type": "request", "priority": "low"}, {"priority": "low"}, {"priority": "high"}),
    ({"type": "task", "task_type": "code"}, {"task_type": "code"}, {"task_type": "chat"}),
    ({"type": "task", "task_type": ["math", "reasoning"]}, {"task_type": "reasoning"}, {"task_type": "code"}),
    ({"type": "task", "complexity_min": 0.5}, {"complexity": 0.5}, {"complexity": 0.49}),
    ({"type": "task", "complexity_max": 0.8}, {"complexity": 0.8}, {"complexity": 0.81}),
    ({"type": "tokens", "min": 100}, {"input_tokens": 100}, {"input_tokens": 99}),
    ({"type": "tokens", "min": 100, "max": 1000}, {"input_tokens": 1000}, {"input_tokens": 1001}),
    ({"type": "budget", "status": ["critical", "exhausted"]}, {"budget_status": "critical"}, {}),
    (
        {"type": "budget", "percent_used_min": 85},
        {"percent_used": Decimal(85)},
        {"percent_used": Decimal("84.99")},
    ),
    (
        {"type": "budget", "percent_used_max": 50.5},
        {"percent_used": Decimal("50.5")},
        {"percent_used": Decimal("50.51")},
    ),
    ({"type": "scope", "team": "alpha"}, {"team": "alpha"}, {"team": None}),
    (
        {"type": "scope", "team": ["alpha", "beta"], "user": "alice"},
        {"team": "beta", "user": "alice"},
        {"team": "beta", "user": "bob"},
    ),
    ({"type": "scope", "api_key": "ci-bot"}, {"api_key": "ci-bot"}, {"api_key": "laptop"}),
    (
        {"type": "metadata", "tags": ["batch", "internal"]},
        {"tags": frozenset({"batch", "internal", "nightly"})},
        {"tags": frozenset({"batch"})},
    ),
    (
        {"type": "metadata", "match": {"env": "prod*"}},
        {"metadata": {"env": "production"}},
        {"metadata": {"env": "staging"}},
    ),
    ({"type": "metadata", "match": {"env": "*"}}, {"metadata": {"env": ""}}, {"metadata": {}}),
    ({"type": "metadata", "match": {"tier": "2"}}, {"metadata": {"tier": 2}}, {"metadata": {"tier": 3}}),
]


@pytest.mark.parametrize(("condition", "matching", "other"), CONDITION_CASES)
def test_each_condition_matches_only_what_it_describes(condition, matching, other):
    (rule,) = parse_rules(_yaml(_rule(when=[condition]))).rules

    assert rule.matches(RuleContext(**matching))
    assert not rule.matches(RuleContext(**other))


def test_a_rule_without_conditions_always_matches():
    (rule,) = parse_rules(_yaml(_rule())).rules

    assert rule.conditions == ()
    assert rule.matches(RuleContext())


def test_all_conditions_of_a_rule_must_hold():
    when = [{"type": "task", "task_type": "code"}, {"type": "tokens", "max": 500}]
    (rule,) = parse_rules(_yaml(_rule(when=when))).rules

    assert rule.matches(RuleContext(task_type="code", input_tokens=500))
    assert not rule.matches(RuleContext(task_type="code", input_tokens=501))
    assert not rule.matches(RuleContext(task_type="chat", input_tokens=10))


# --- Order and enabled ---------------------------------------------------------------------------


def test_higher_priority_is_evaluated_first_and_ties_keep_file_order():
    text = _yaml(
        _rule("low", priority=10),
        _rule("high-first", priority=100),
        _rule("high-second", priority=100),
        _rule("default"),
        _rule("negative", priority=-5),
    )

    rules = parse_rules(text)

    assert [rule.name for rule in rules.rules] == ["high-first", "high-second", "low", "default", "negative"]
    assert rules.first_match(RuleContext()).name == "high-first"


def test_a_disabled_rule_never_matches():
    text = _yaml(_rule("off", priority=100, enabled=False), _rule("on"))

    rules = parse_rules(text)

    assert not rules.rules[0].matches(RuleContext())
    assert rules.first_match(RuleContext()).name == "on"


def test_the_empty_rule_set_matches_nothing():
    assert RuleSet.EMPTY.first_match(RuleContext()) is None
    assert parse_rules("rules: []\nversion: 1\n") == RuleSet.EMPTY


# --- Actions -------------------------------------------------------------------------------------


def test_actions_are_parsed_with_their_defaults():
    text = _yaml(
        _rule("select", then=[{"type": "select-model", "strategy": "balanced"}]),
        _rule("route", then=[{"type": "route-to", "model": "gpt-4o-mini"}]),
        _rule("deny", then=[{"type": "deny", "reason": "Not on weekends"}]),
    )

    select, route, deny = parse_rules(text).rules

    assert select.select == SelectModelAction(
        budget_scope="tightest",
        quality_requirement=None,
        fallback_chain=True,
        cost_limit=None,
        strategy="balanced",
        allowed_models=(),
        allowed_providers=(),
    )
    assert route.route_to == RouteToAction(model="gpt-4o-mini", fallback_chain=True)
    assert deny.deny == DenyAction(reason="Not on weekends", code="denied_by_rule")


def test_a_rule_may_route_and_constrain_selection_together():
    then = [
        {"type": "route-to", "model": "gpt-4o", "fallback_chain": False},
        {"type": "select-model", "quality_requirement": 80, "allowed_providers": ["openai"]},
    ]

    (rule,) = parse_rules(_yaml(_rule(then=then))).rules

    assert rule.route_to == RouteToAction(model="gpt-4o", fallback_chain=False)
    assert rule.select.quality_requirement == 80


def test_deny_takes_a_custom_code():
    (rule,) = parse_rules(
        _yaml(_rule(then=[{"type": "deny", "reason": "x", "code": "weekend_freeze"}]))
    ).rules

    assert rule.deny.code == "weekend_freeze"


@pytest.mark.parametrize(
    ("models", "providers", "model_id", "provider", "allowed"),
    [
        ((), (), "anything", "any", True),
        (("gpt-4o*", "claude-*"), (), "gpt-4o-mini", "openai", True),
        (("gpt-4o*", "claude-*"), (), "claude-3-5-haiku", "anthropic", True),
        (("gpt-4o*",), (), "o3", "openai", False),
        (("gpt-4o*",), (), "GPT-4O", "openai", False),
        ((), ("openai", "groq"), "llama-3", "groq", True),
        ((), ("openai",), "claude-3-opus", "anthropic", False),
        (("llama-*",), ("groq",), "llama-3", "groq", True),
        (("llama-*",), ("groq",), "llama-3", "together", False),
        (("llama-*",), ("groq",), "mixtral", "groq", False),
    ],
)
def test_select_model_allows_models_and_providers(models, providers, model_id, provider, allowed):
    action = SelectModelAction(allowed_models=models, allowed_providers=providers)

    assert action.allows(model_id, provider) is allowed


def test_a_route_to_model_is_checked_against_known_models():
    text = _yaml(_rule(then=[{"type": "route-to", "model": "gpt-4o"}]))

    assert parse_rules(text, known_models={"gpt-4o", "o3"}).rules[0].route_to.model == "gpt-4o"
    assert _problems(text, known_models={"o3"}) == [
        RuleProblem(6, "rules[0].then[0].model", "unknown model 'gpt-4o'")
    ]


# --- Rejections ----------------------------------------------------------------------------------


def _text(body: str) -> str:
    return dedent(body).lstrip("\n")


REJECTIONS = [
    pytest.param(
        """
        rules:
          - name: a
            then: [
        """,
        4,
        "",
        "invalid YAML",
        id="yaml-syntax-error",
    ),
    pytest.param("- a\n- b\n", 1, "", "top level must be a mapping", id="top-level-list"),
    pytest.param("just words\n", 1, "", "top level must be a mapping", id="top-level-scalar"),
    pytest.param("version: 1\n", 1, "rules", "is required", id="missing-rules"),
    pytest.param("rules: {}\n", 1, "rules", "must be a list, got a mapping", id="rules-not-a-list"),
    pytest.param(
        """
        version: 1
        rules: []
        rulez: []
        """,
        3,
        "rulez",
        "unknown key 'rulez'; allowed: version, rules",
        id="unknown-top-level-key",
    ),
    pytest.param(
        """
        rules:
          - name: a
            colour: red
            then: [{type: deny, reason: x}]
        """,
        3,
        "rules[0].colour",
        "unknown key 'colour'; allowed: name, priority, description, enabled, when, then",
        id="unknown-rule-key",
    ),
    pytest.param(
        """
        rules:
          - then: [{type: deny, reason: x}]
        """,
        2,
        "rules[0].name",
        "is required",
        id="missing-name",
    ),
    pytest.param(
        """
        rules:
          - name: has spaces
            then: [{type: deny, reason: x}]
        """,
        2,
        "rules[0].name",
        "must be a name of 1-100 letters",
        id="bad-name",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: weather
                sunny: true
            then: [{type: deny, reason: x}]
        """,
        4,
        "rules[0].when[0].type",
        "unknown condition type 'weather'; allowed: request, task, tokens, budget, scope, metadata",
        id="unknown-condition-type",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: request
                path: /v1/*
                verb: POST
            then: [{type: deny, reason: x}]
        """,
        6,
        "rules[0].when[0].verb",
        "unknown key 'verb'; allowed: type, path, model, priority",
        id="unknown-condition-field",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: tokens
            then: [{type: deny, reason: x}]
        """,
        4,
        "rules[0].when[0]",
        "a 'tokens' condition needs at least one of: min, max",
        id="condition-without-fields",
    ),
    pytest.param(
        """
        rules:
          - name: a
            priority: true
            then: [{type: deny, reason: x}]
        """,
        3,
        "rules[0].priority",
        "must be an integer from -1000000 to 1000000, got true",
        id="bool-priority",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                cost_limit: -1
        """,
        5,
        "rules[0].then[0].cost_limit",
        "must be a positive number, got -1",
        id="negative-cost-limit",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                cost_limit: 0
        """,
        5,
        "rules[0].then[0].cost_limit",
        "must be a positive number, got 0",
        id="zero-cost-limit",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                cost_limit: abc
        """,
        5,
        "rules[0].then[0].cost_limit",
        "must be a positive number, got 'abc'",
        id="text-cost-limit",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                cost_limit: .nan
        """,
        5,
        "rules[0].then[0].cost_limit",
        "must be a positive number, got nan",
        id="nan-cost-limit",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                cost_limit: .inf
        """,
        5,
        "rules[0].then[0].cost_limit",
        "must be a positive number, got inf",
        id="infinite-cost-limit",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                cost_limit: true
        """,
        5,
        "rules[0].then[0].cost_limit",
        "must be a positive number, got true",
        id="bool-cost-limit",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                quality_requirement: 101
        """,
        5,
        "rules[0].then[0].quality_requirement",
        "must be one of low, medium, high, max or an integer from 0 to 100, got 101",
        id="quality-101",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                quality_requirement: ultra
        """,
        5,
        "rules[0].then[0].quality_requirement",
        "must be one of low, medium, high, max or an integer from 0 to 100, got 'ultra'",
        id="quality-ultra",
    ),
    pytest.param(
        """
        rules:
          - name: same
            then: [{type: deny, reason: x}]
          - name: same
            then: [{type: deny, reason: y}]
        """,
        4,
        "rules[1].name",
        "duplicate rule name 'same' (first on line 2)",
        id="duplicate-rule-names",
    ),
    pytest.param(
        """
        rules: [{name: same, then: [{type: deny, reason: x}]}, {name: same, then: [{type: deny, reason: y}]}]
        """,
        1,
        "rules[1].name",
        "duplicate rule name 'same' (first on line 1)",
        id="duplicate-rule-names-on-one-line",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then: [{type: deny, reason: x}]
            name: b
        """,
        4,
        "rules[0].name",
        "duplicate key 'name' (first on line 2)",
        id="duplicate-yaml-keys",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then: []
        """,
        3,
        "rules[0].then",
        "must have at least one action",
        id="empty-then",
    ),
    pytest.param(
        """
        rules:
          - name: a
        """,
        2,
        "rules[0].then",
        "is required",
        id="missing-then",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                strategy: balanced
              - type: deny
                reason: nope
        """,
        6,
        "rules[0].then[1]",
        "deny cannot be combined with other actions",
        id="deny-with-another-action",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: select-model
                strategy: balanced
              - type: select-model
                cost_limit: 1
        """,
        6,
        "rules[0].then[1]",
        "duplicate action 'select-model'",
        id="two-select-model-actions",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: teleport
        """,
        4,
        "rules[0].then[0].type",
        "unknown action type 'teleport'; allowed: select-model, route-to, deny",
        id="unknown-action-type",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: route-to
        """,
        4,
        "rules[0].then[0]",
        "a 'route-to' action needs at least one of: model, fallback_chain",
        id="route-to-without-fields",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: route-to
                fallback_chain: false
        """,
        4,
        "rules[0].then[0].model",
        "is required",
        id="route-to-without-model",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: deny
                reason: x
                code: Not-Snake
        """,
        6,
        "rules[0].then[0].code",
        "must be a lowercase snake_case code",
        id="deny-code-not-snake-case",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: tokens
                min: 500
                max: 100
            then: [{type: deny, reason: x}]
        """,
        5,
        "rules[0].when[0].min",
        "must not be greater than max (100)",
        id="tokens-min-above-max",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: tokens
                min: -1
            then: [{type: deny, reason: x}]
        """,
        5,
        "rules[0].when[0].min",
        "must be a non-negative integer, got -1",
        id="negative-tokens",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: task
                task_type: [code, poetry]
            then: [{type: deny, reason: x}]
        """,
        5,
        "rules[0].when[0].task_type[1]",
        "must be one of chat, code, math, reasoning, summarization, extraction, translation, creative, "
        "got 'poetry'",
        id="unknown-task-type",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: task
                complexity_max: 1.5
            then: [{type: deny, reason: x}]
        """,
        5,
        "rules[0].when[0].complexity_max",
        "must be a number from 0 to 1, got 1.5",
        id="complexity-out-of-range",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: budget
                status: broke
            then: [{type: deny, reason: x}]
        """,
        5,
        "rules[0].when[0].status",
        "must be one of normal, warning, critical, exhausted, got 'broke'",
        id="unknown-budget-status",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: scope
                team: 42
            then: [{type: deny, reason: x}]
        """,
        5,
        "rules[0].when[0].team",
        "got 42 (quote it to make it a string)",
        id="unquoted-number-as-team",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: request
                path: []
            then: [{type: deny, reason: x}]
        """,
        5,
        "rules[0].when[0].path",
        "must not be an empty list",
        id="empty-glob-list",
    ),
    pytest.param(
        """
        rules:
          - name: a
            when:
              - type: metadata
                match: {env: [prod]}
            then: [{type: deny, reason: x}]
        """,
        5,
        "rules[0].when[0].match.env",
        "must be a non-empty string",
        id="metadata-glob-not-a-string",
    ),
    pytest.param(
        """
        rules:
          - &first
            name: a
            then: [{type: deny, reason: x}]
          - *first
        """,
        5,
        "rules[1]",
        "YAML aliases are not allowed (*first)",
        id="alias",
    ),
    pytest.param(
        """
        rules:
          - name: a
            then:
              - type: deny
                reason: !!python/name:os.system x
        """,
        5,
        "rules[0].then[0].reason",
        "unsupported YAML tag",
        id="python-tag",
    ),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), REJECTIONS)
def test_it_rejects_with_the_line_and_field_of_the_problem(text, line, field, message):
    problems = _problems(_text(text))

    assert len(problems) == 1, problems
    (problem,) = problems
    assert (problem.line, problem.field) == (line, field)
    assert message in problem.message


def test_it_reports_every_problem_in_the_file():
    text = _text(
        """
        rules:
          - name: a
            priority: high
            when:
              - type: tokens
                min: many
            then:
              - type: select-model
                cost_limit: -2
          - name: a
            then: []
          - name: b
            then: [{type: deny, reason: x}]
            then: [{type: deny, reason: y}]
        """
    )

    problems = _problems(text)

    assert [(problem.line, problem.field) for problem in problems] == [
        (3, "rules[0].priority"),
        (6, "rules[0].when[0].min"),
        (9, "rules[0].then[0].cost_limit"),
        (10, "rules[1].name"),
        (11, "rules[1].then"),
        (14, "rules[2].then"),
    ]


def test_the_error_summarises_the_first_problem_and_the_count():
    with pytest.raises(RulesInvalid) as caught:
        parse_rules("rules:\n  - name: a\n    priority: true\n    then: []\n")

    error = caught.value
    assert (error.status, error.code) == (400, "invalid_rules")
    assert error.message == (
        "The rules are invalid: line 3, rules[0].priority: "
        "must be an integer from -1000000 to 1000000, got true (and 1 more)"
    )
    assert error.details["problems"] == [
        {
            "line": 3,
            "field": "rules[0].priority",
            "message": "must be an integer from -1000000 to 1000000, got true",
        },
        {"line": 4, "field": "rules[0].then", "message": "must have at least one action"},
    ]


def test_it_rejects_too_many_rules():
    text = _yaml(*[_rule(f"rule-{index}") for index in range(MAX_RULES + 1)])

    assert _problems(text) == [
        RuleProblem(2, "rules", f"too many rules: {MAX_RULES + 1}; at most {MAX_RULES}")
    ]


def test_it_rejects_a_file_that_is_too_large():
    text = "rules: []\n" + "#" * MAX_INPUT_BYTES

    (problem,) = _problems(text)

    assert problem.line is None
    assert problem.message == "the rules file is larger than 256 KiB (262144 bytes)"


def test_multibyte_characters_count_as_bytes_towards_the_size_limit():
    text = "rules: []\n#" + "é" * (MAX_INPUT_BYTES // 2)

    (problem,) = _problems(text)

    assert problem.line is None


def test_it_rejects_characters_yaml_does_not_allow():
    (problem,) = _problems("rules: []\nversion: 1\x07\n")

    assert problem.line == 2
    assert problem.message.startswith("invalid YAML")


def test_a_rule_set_survives_pickling_for_caches():
    rules = parse_rules(SEED)

    restored = pickle.loads(pickle.dumps(rules))

    assert restored == rules
    assert restored.first_match(RuleContext(path="/v1/chat/completions")).name == "cost-aware-selection"


def test_it_rejects_an_empty_file():
    (problem,) = _problems("# nothing here\n")

    assert "empty" in problem.message


def test_a_billion_laughs_is_refused_without_expanding():
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    text = "\n".join([*lines, "rules: *a9", ""])

    problems = _problems(text)

    assert RuleProblem(11, "rules", "YAML aliases are not allowed (*a9); write the value out") in problems


def test_deep_nesting_is_refused_without_recursing():
    (problem,) = _problems("rules: " + "[" * 5000 + "]" * 5000)

    assert problem.line == 1
    assert "nested deeper" in problem.message


# --- Properties and speed ------------------------------------------------------------------------

WORD = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)


@st.composite
def _condition_with_context(draw, kind: str) -> tuple[dict, dict]:
    """A valid condition of `kind` and RuleContext fields that satisfy it."""
    if kind == "request":
        segment = draw(WORD)
        exact = draw(st.booleans())
        path = f"/v1/{segment}/x"
        model = draw(st.one_of(st.none(), WORD))
        priority = draw(st.sampled_from(["low", "normal", "high", "critical"]))
        condition = {"type": "request", "path": path if exact else f"/v1/{segment}/*"}
        if draw(st.booleans()):
            condition["model"] = [model or "auto", "never-*"]
        condition["priority"] = priority
        return condition, {"path": path, "requested_model": model, "priority": priority}
    if kind == "task":
        task_type = draw(st.sampled_from(["chat", "code", "math", "reasoning", "creative"]))
        low = draw(st.floats(0, 1))
        high = draw(st.floats(low, 1))
        condition = {"type": "task", "task_type": [task_type], "complexity_min": low, "complexity_max": high}
        return condition, {"task_type": task_type, "complexity": draw(st.sampled_from([low, high]))}
    if kind == "tokens":
        low = draw(st.integers(0, 10**6))
        high = draw(st.integers(low, 2 * 10**6))
        return {"type": "tokens", "min": low, "max": high}, {"input_tokens": draw(st.integers(low, high))}
    if kind == "budget":
        status = draw(st.sampled_from(["normal", "warning", "critical", "exhausted"]))
        low = draw(st.floats(0, 1000))
        high = draw(st.floats(low, 1000))
        condition = {"type": "budget", "status": status, "percent_used_min": low, "percent_used_max": high}
        return condition, {"budget_status": status, "percent_used": Decimal(str(high))}
    if kind == "scope":
        team, user, key = draw(WORD), draw(WORD), draw(WORD)
        condition = {"type": "scope", "team": [team, "other"], "user": user, "api_key": key}
        return condition, {"team": team, "user": user, "api_key": key}
    tags = draw(st.lists(WORD, min_size=1, max_size=3))
    key, value = draw(WORD), draw(WORD)
    condition = {"type": "metadata", "tags": tags, "match": {key: value[:1] + "*"}}
    return condition, {"tags": frozenset([*tags, "extra"]), "metadata": {key: value}}


@st.composite
def _rule_with_context(draw) -> tuple[dict, RuleContext]:
    kinds = draw(
        st.lists(st.sampled_from(["request", "task", "tokens", "budget", "scope", "metadata"]), unique=True)
    )
    conditions, context = [], {}
    for kind in kinds:
        condition, fields = draw(_condition_with_context(kind))
        conditions.append(condition)
        context.update(fields)
    rule = _rule(draw(WORD), when=conditions, priority=draw(st.integers(-1000, 1000)))
    return rule, RuleContext(**context)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rule_with_context())
def test_a_generated_valid_rule_parses_and_matches_the_context_built_for_it(rule_and_context):
    rule, context = rule_and_context

    rules = parse_rules(_yaml(rule))

    assert rules.first_match(context) is rules.rules[0]


def test_matching_fifty_rules_takes_microseconds():
    """Generous bound: it only catches re-parsing or re-compiling at match time (milliseconds)."""
    conditions = [
        {"type": "request", "path": ["/v1/chat/*", "/v1/completions"], "model": "gpt-*"},
        {"type": "task", "task_type": ["code", "math"], "complexity_min": 0.2},
        {"type": "budget", "status": ["warning", "critical"], "percent_used_min": 70},
        {"type": "metadata", "tags": ["batch"], "match": {"env": "prod*"}},
    ]
    rules = parse_rules(_yaml(*[_rule(f"rule-{index}", when=conditions) for index in range(50)]))
    context = RuleContext(
        path="/v1/chat/completions",
        requested_model="gpt-4o",
        task_type="code",
        complexity=0.5,
        budget_status="warning",
        percent_used=Decimal("72.5"),
        tags=frozenset({"interactive"}),
        metadata={"env": "production"},
    )

    seconds = min(timeit.repeat(lambda: rules.first_match(context), number=200, repeat=3)) / 200

    assert rules.first_match(context) is None
    assert seconds < 500e-6
