"""Steering rules in the admission flow: published versions, each action, and the rules command."""

import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from budgets.principals import principal_for_api_key
from costswitch.errors import PermissionDenied
from selection.admission import AdmissionRequest, NoEligibleModel, admit
from selection.estimates import ChatRequest
from selection.models import Decision, RuleSetVersion
from selection.rules import RulesInvalid
from selection.services import rule_set_publish

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]
CODE = [{"role": "user", "content": "Write a Python function that merges two sorted lists."}]


@pytest.fixture
def principal(world, team_key):
    return principal_for_api_key(team_key[0])


def _admit(principal, messages=HELLO, **kwargs):
    request = AdmissionRequest(chat=ChatRequest(messages=messages, max_tokens=500), **kwargs)
    return admit(principal=principal, request=request).decision


def _publish(world, yaml_text: str) -> RuleSetVersion:
    return rule_set_publish(organization=world.org, source=yaml_text)


DENY_LOW = """
rules:
  - name: no-background-on-weekends
    priority: 10
    when:
      - type: request
        priority: low
    then:
      - type: deny
        reason: Background jobs are paused.
        code: background_paused
"""


def test_a_deny_rule_refuses_with_its_code_and_records_the_rule(
    ladder, world, principal, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        version = _publish(world, DENY_LOW)
    with pytest.raises(PermissionDenied) as refused:
        _admit(principal, priority="low")
    assert refused.value.code == "background_paused"
    decision = Decision.objects.get(pk=refused.value.details["decision_id"])
    assert (decision.rule_name, decision.rule_set_id) == ("no-background-on-weekends", version.pk)
    assert _admit(principal, priority="normal").outcome == "admitted"


def test_route_to_sends_matching_requests_to_one_model(
    ladder, world, principal, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _publish(
            world,
            """
rules:
  - name: code-to-standard
    priority: 5
    when:
      - type: task
        task_type: code
    then:
      - type: route-to
        model: standard
""",
        )
    decision = _admit(principal, CODE, strategy="cost_optimized")
    assert (decision.selected_model, decision.rule_name) == ("standard", "code-to-standard")
    assert _admit(principal, HELLO, strategy="cost_optimized").rule_name == ""


def test_route_to_a_model_that_cannot_serve_is_refused(
    ladder, world, principal, django_capture_on_commit_callbacks
):
    ladder["weak"].is_active = False
    ladder["weak"].save()
    with django_capture_on_commit_callbacks(execute=True):
        _publish(
            world, "rules:\n  - name: all-weak\n    then:\n      - type: route-to\n        model: weak\n"
        )
    with pytest.raises(NoEligibleModel):
        _admit(principal)


def test_select_model_sets_strategy_quality_cost_limit_and_allow_lists(
    ladder, world, principal, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _publish(
            world,
            """
rules:
  - name: support-bot
    priority: 100
    when:
      - type: scope
        team: alpha
      - type: metadata
        tags: [support]
    then:
      - type: select-model
        strategy: quality_first
        quality_requirement: high
        cost_limit: 0.01
        allowed_models: ["st*", "good", "premium"]
""",
        )
    decision = _admit(principal, tags=("support",))
    assert decision.rule_name == "support-bot"
    assert decision.strategy == "quality_first" and decision.quality_requirement == 85
    assert decision.selected_model == "standard"
    codes = {r["model"]: r["code"] for r in decision.rejections}
    assert codes == {"premium": "over_cost_limit", "weak": "not_allowed_by_rule"}
    assert {"source": "rule", "rule": "support-bot", "effect": "strategy quality_first"} in decision.changes
    # Without the tag the rule does not match.
    assert _admit(principal, tags=()).rule_name == ""


def test_conditions_on_budget_percent_and_tokens(
    ladder, world, principal, django_capture_on_commit_callbacks
):
    from budgets.services.ledger import UsageReport, usage_record_many
    from tests.budgets.factories import team_budget

    team_budget(world.alpha, limit=Decimal("10"), thresholds=[])
    with django_capture_on_commit_callbacks(execute=True):
        _publish(
            world,
            """
rules:
  - name: thrifty-when-half-spent
    when:
      - type: budget
        percent_used_min: 50
      - type: tokens
        max: 1000
    then:
      - type: select-model
        strategy: cost_optimized
        quality_requirement: low
""",
        )
    assert _admit(principal).rule_name == ""
    usage_record_many(principal=principal, reports=[UsageReport(request_id="half", cost=Decimal("6"))])
    decision = _admit(principal)
    assert decision.rule_name == "thrifty-when-half-spent"
    assert decision.selected_model == "good"  # weak scores 55, below "low" (60)


def test_a_new_version_takes_effect_at_the_next_request(
    ladder, world, principal, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _publish(
            world, "rules:\n  - name: all-weak\n    then:\n      - type: route-to\n        model: weak\n"
        )
    assert _admit(principal).selected_model == "weak"
    with django_capture_on_commit_callbacks(execute=True):
        second = _publish(world, "rules: []\n")
    assert second.version == 2
    assert _admit(principal).rule_name == ""


def test_an_invalid_rule_set_is_not_published(ladder, world):
    with pytest.raises(RulesInvalid) as invalid:
        _publish(world, "rules:\n  - name: x\n    then:\n      - type: route-to\n        model: nope\n")
    assert invalid.value.details["problems"][0]["line"] == 5
    assert not RuleSetVersion.objects.exists()


def test_rules_of_one_organization_never_apply_to_another(
    ladder, world, principal, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rule_set_publish(organization=world.other_org, source=DENY_LOW)
    assert _admit(principal, priority="low").outcome == "admitted"


def test_rules_check_lists_the_rules_in_order(ladder, tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        DENY_LOW
        + "  - name: later\n    priority: 1\n    then:\n      - type: route-to\n        model: good\n"
    )
    call_command("rules", "check", str(rules))
    out = capsys.readouterr().out
    assert "OK: 2 rule(s)" in out
    assert out.index("no-background-on-weekends") < out.index("later")


def test_rules_check_names_line_and_field_of_every_problem(ladder, tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: a\n    priority: true\n"
        "    then:\n      - type: select-model\n        cost_limit: -1\n"
    )
    with pytest.raises(CommandError, match="2 problem"):
        call_command("rules", "check", str(rules))
    err = capsys.readouterr().err
    assert "line 3: rules[0].priority" in err
    assert "line 6: rules[0].then[0].cost_limit" in err


def test_rules_test_prints_the_decision_without_reserving(ladder, world, tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text(DENY_LOW)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"request": {"messages": HELLO, "maxTokens": 100}, "priority": "low"}))
    call_command("rules", "test", str(rules), str(request), "--org", "acme", "--team", "alpha")
    assert "REFUSED 403 background_paused" in capsys.readouterr().out
    request.write_text(json.dumps({"messages": HELLO, "max_tokens": 100}))
    call_command("rules", "test", str(rules), str(request), "--org", "acme", "--team", "alpha", "--json")
    body = json.loads(capsys.readouterr().out)
    assert body["selectedModel" if "selectedModel" in body else "selected_model"] in {
        "premium",
        "standard",
        "good",
        "weak",
    }
    assert not Decision.objects.exists()
