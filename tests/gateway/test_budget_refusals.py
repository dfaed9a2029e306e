"""Budget refusals on the gateway path: OpenAI-shaped errors with the override link; no provider
is called and nothing stays held."""

from decimal import Decimal

import openai
import pytest

from budgets.choices import ScopeType
from budgets.principals import principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import BudgetFactory
from tests.gateway.ledger import assert_ledger_exact

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "user", "content": "Say hello."}]


def test_a_request_the_budget_cannot_cover_is_a_402_with_the_override_link(sdk, upstream, world, budget):
    budget.limit = Decimal("0.000001")
    budget.save()

    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="big", messages=HELLO, max_tokens=1000)

    error = caught.value.body
    assert caught.value.status_code == 402
    assert error["type"] == "insufficient_quota"
    assert error["code"] == "budget_exceeded"
    assert error["override_url"].endswith("/api/v1/overrides")
    assert error["override_url"] in error["message"]
    assert error["decision_id"]
    assert upstream.requests == []
    assert not world.org.usage.exists()
    assert_ledger_exact(world.org)


def test_a_blocked_budget_is_a_402_naming_the_budget(sdk, upstream, world, budget):
    blocked = BudgetFactory(organization=world.org, scope_type=ScopeType.ORGANIZATION, limit=Decimal("1"))
    usage_record_many(
        principal=principal_for_user(world.fiona),
        reports=[UsageReport(request_id="earlier", cost=Decimal("1"), model="small")],
    )

    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="small", messages=HELLO)

    assert caught.value.status_code == 402
    assert caught.value.body["code"] == "budget_blocked"
    assert caught.value.body["budget_id"] == blocked.pk
    assert caught.value.body["override_url"].endswith("/api/v1/overrides")
    assert upstream.requests == []
    assert world.org.usage.count() == 1
    assert_ledger_exact(world.org)
