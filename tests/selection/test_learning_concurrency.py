"""Training runs that overlap (beat firing while a redelivered task still runs, or two workers)
learn every outcome exactly once: the organization's learning state row is locked while training
and the watermark moves with the weights."""

import multiprocessing
import traceback

import pytest
from django.db import connection, connections

from selection.models import LearnedOutcomeModel, OutcomeLearningState
from selection.outcome_learning import outcome_models_train
from tests.conftest import client_with_key
from tests.selection.test_learning_outcomes import _traffic, pair  # noqa: F401 (fixture)

PROCESSES = 4
OUTCOMES = 30

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]


def _train(results) -> None:
    try:
        summary = outcome_models_train()
        results.put(sum(result["learned"] for result in summary.values()))
    except Exception:
        results.put("error: " + traceback.format_exc())
    finally:
        connection.close()


def test_overlapping_runs_learn_each_outcome_once(world, team_key, pair, settings):  # noqa: F811
    settings.COSTSWITCH_LEARNING_LAG_SECONDS = 0
    settings.COSTSWITCH_EXPLORATION_RATE = 0
    _traffic(client_with_key(team_key[1]), OUTCOMES)

    connections.close_all()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_train, args=(results,)) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    learned = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    assert all(isinstance(n, int) for n in learned), learned
    assert sum(learned) == OUTCOMES and sorted(learned)[-1] == OUTCOMES
    state = OutcomeLearningState.objects.get(organization=world.org)
    assert (state.learned, state.version) == (OUTCOMES, 1)
    assert LearnedOutcomeModel.objects.get(organization=world.org, model="cheap").samples == OUTCOMES
