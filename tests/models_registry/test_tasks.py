from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from models_registry.choices import PriceSource
from models_registry.services import Prices, model_price_change
from models_registry.tasks import apply_due_price_changes
from tests.models_registry.factories import ModelProfileFactory

pytestmark = pytest.mark.django_db


def test_the_beat_task_applies_a_scheduled_price_once_its_time_has_come():
    model = ModelProfileFactory(input_price_per_million=Decimal("2"), output_price_per_million=Decimal("8"))
    start = timezone.now()
    change = model_price_change(
        model=model,
        prices=Prices(Decimal("1"), Decimal("4"), None),
        source=PriceSource.API,
        effective_at=start + timedelta(hours=1),
    )
    assert change.applied_at is None
    assert apply_due_price_changes.delay().get() == 0

    with time_machine.travel(start + timedelta(hours=1, seconds=1)):
        assert apply_due_price_changes.delay().get() == 1
        assert apply_due_price_changes.delay().get() == 0

    model.refresh_from_db()
    change.refresh_from_db()
    assert (model.input_price_per_million, model.output_price_per_million) == (Decimal("1"), Decimal("4"))
    assert model.cached_input_price_per_million is None
    assert change.applied_at is not None and change.old_input_price_per_million == Decimal("2")
