"""`manage.py verify_audit`: an intact chain is OK; editing or deleting one row with raw SQL is
detected and the broken entry named; concurrent writers on PostgreSQL never fork the chain."""

import threading
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from approvals.audit import record, verify_chain
from approvals.models import AuditEntry
from budgets.models import Team
from tests.budgets.factories import team_budget

TABLE = AuditEntry._meta.db_table


def verify() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


def broken() -> str:
    with pytest.raises(CommandError) as error:
        verify()
    assert error.value.returncode == 2
    return str(error.value)


def raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=TABLE), params)


@pytest.fixture
def chain(world) -> list[AuditEntry]:
    for n in range(3):
        team_budget(world.alpha, name=f"Budget {n}")
    return list(AuditEntry.objects.order_by("sequence"))


def test_an_intact_chain_verifies(chain):
    head = chain[-1]
    assert verify() == f"OK: {len(chain)} entries, head #{head.sequence} {head.hash}\n"
    assert [entry.prev_hash for entry in chain[1:]] == [entry.hash for entry in chain[:-1]]


def test_an_empty_log_verifies(db):
    assert verify() == "OK: 0 entries\n"


def test_editing_one_row_in_the_database_is_detected_and_named(chain):
    victim = chain[len(chain) // 2]
    raw("UPDATE {table} SET after = %s WHERE id = %s", ['{"limit": "1000000"}', victim.pk])

    message = broken()

    assert f"id={victim.pk} sequence={victim.sequence}" in message
    assert "content hash mismatch" in message


def test_a_row_rewritten_with_a_fresh_hash_breaks_the_next_link(chain):
    victim, following = chain[2], chain[3]
    victim.reason = "nothing to see"
    forged = victim.compute_hash()
    raw("UPDATE {table} SET reason = %s, hash = %s WHERE id = %s", [victim.reason, forged, victim.pk])

    message = broken()

    assert f"id={following.pk} sequence={following.sequence}" in message
    assert "prev_hash mismatch" in message


def test_deleting_a_row_is_detected(chain):
    victim, following = chain[1], chain[2]
    raw("DELETE FROM {table} WHERE id = %s", [victim.pk])

    message = broken()

    assert f"sequence={following.sequence}" in message
    assert f"gap: expected sequence {victim.sequence}" in message


def test_the_chain_keeps_growing_after_a_verification(chain, world):
    record(action="team.review", obj=world.alpha)
    report = verify_chain()
    assert report.ok and report.entries == len(chain) + 1


def test_values_of_every_kind_keep_their_hash_through_the_database(world):
    record(
        action="team.review",
        obj=world.alpha,
        before={
            "amount": Decimal("1.500000000"),
            "ratio": 1e20,
            "when": datetime(2025, 1, 2, 3, 4, 5, 6, UTC),
        },
        after={"nested": {"b": [1, 2.5, None], "a": True}, "text": "Zürich \u2013 \U0001f600", 7: (1, 2)},
        reason="every kind",
    )
    entry = AuditEntry.objects.get(reason="every kind")
    assert entry.before == {"amount": "1.5", "ratio": "1e+20", "when": "2025-01-02T03:04:05.000006+00:00"}
    assert entry.after["7"] == [1, 2]
    assert verify_chain().ok


WRITERS = 8
ENTRIES_PER_WRITER = 25


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)")
def test_concurrent_writers_never_fork_the_chain(world):
    before = AuditEntry.objects.count()
    team_ids = list(Team.objects.values_list("pk", flat=True))
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            team = Team.objects.get(pk=team_ids[index % len(team_ids)])
            start.wait()
            for n in range(ENTRIES_PER_WRITER):
                with transaction.atomic():
                    record(action="team.review", obj=team, reason=f"writer {index} #{n}")
        except BaseException as error:  # reported below, with the thread's traceback
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    report = verify_chain()
    assert report.ok, report.problem
    assert report.entries == before + WRITERS * ENTRIES_PER_WRITER
    sequences = list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))
