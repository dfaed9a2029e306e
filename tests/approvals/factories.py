"""Factories of the approvals app. Override requests are made through `approvals.services` in the
tests (their state only moves through the state machine); these build what surrounds them."""

import factory

from approvals.models import ApprovalPolicy
from approvals.models.overrides import OverrideKind
from approvals.services import OverrideAsk
from tests.budgets.factories import OrganizationFactory


class ApprovalPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApprovalPolicy

    organization = factory.SubFactory(OrganizationFactory)
    two_approvers_above = None


def models_ask(
    *models: str, minutes: int = 60, reason: str = "launch demo needs the best model"
) -> OverrideAsk:
    return OverrideAsk(
        kind=OverrideKind.MODELS, reason=reason, duration_minutes=minutes, models=models or ("premium",)
    )


def extension_ask(amount, *, minutes: int = 60, reason: str = "quarter-end batch") -> OverrideAsk:
    return OverrideAsk(
        kind=OverrideKind.EXTENSION, reason=reason, duration_minutes=minutes, extra_amount=amount
    )
