"""The spend ledger: two-phase spend (authorize -> settle | release | expire) and direct usage.

Invariants every function here keeps, in one transaction each:
- a reservation is taken on every active budget period of the caller's chain (user, team,
  organization), all or nothing, only if `spent + reserved + amount <= limit` holds for each;
- `BudgetPeriod.spent` equals the sum of its `UsageCharge` rows and `reserved` the sum of the holds
  of its pending reservations;
- every write is idempotent by request id: a retry returns the first result and charges nothing.

Lock order is always: reservation row, then budget periods by ascending id. Two writers therefore
never wait on each other in a cycle, so there are no deadlocks across processes.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Value
from django.utils import timezone

from budgets.choices import ReservationState, UsageSource
from budgets.models import (
    Budget,
    BudgetPeriod,
    Organization,
    Reservation,
    ReservationHold,
    Team,
    Threshold,
    UsageCharge,
    UsageRecord,
    User,
)
from budgets.principals import Principal, attribution_for
from budgets.selectors import chain_budgets
from budgets.services.alerts import alerts_for_changes, with_next_threshold
from budgets.services.periods import period_get_or_open
from costswitch.errors import BudgetExceeded, Conflict, NotFound, ValidationFailed
from costswitch.money import ZERO, display_decimal
from costswitch.rows import Columns, fetch_rows, insert

# A report dated further ahead than this is a clock error, not a future charge.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# Concurrent batches sharing request ids: each conflict costs one more pass, which then replays them.
INSERT_ATTEMPTS = 5


@dataclass(frozen=True)
class UsageReport:
    """What a request really cost and what it is about (the ledger row, before it is written)."""

    request_id: str
    cost: Decimal
    model: str = ""
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    task_type: str = ""
    project: str = ""
    agent: str = ""
    conversation_id: str = ""
    tags: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    outcome: str = ""
    rating: int | None = None
    occurred_at: datetime | None = None
    team_id: int | None = None
    user_id: int | None = None

    def matches(self, record: UsageRecord) -> bool:
        """Whether a retry carries the same charge as the record already written."""
        return (
            record.cost == self.cost
            and record.input_tokens == self.input_tokens
            and record.output_tokens == self.output_tokens
            and (not self.model or record.model == self.model)
        )


@dataclass
class AuthorizeResult:
    reservation: Reservation
    replayed: bool


@dataclass
class SettleResult:
    usage: UsageRecord
    replayed: bool


@dataclass
class UsageResult:
    records: list[UsageRecord]
    created: int
    replayed: int


def _locked(periods: QuerySet[BudgetPeriod]) -> dict[int, BudgetPeriod]:
    """Lock period rows in ascending id order. NO KEY UPDATE is enough (only amounts change) and lets
    other transactions insert holds and charges that reference these rows meanwhile."""
    locked = with_next_threshold(periods.select_for_update(no_key=True, of=("self",))).order_by("pk")
    return {period.pk: period for period in locked}


# Every authorization and settlement locks its periods. The ORM takes three times longer to compile
# that statement than PostgreSQL takes to run it (README "Measured"), so on PostgreSQL it is written
# out: the statement `_locked` builds, `next_threshold` being `with_next_threshold`'s.
_PERIOD = Columns(BudgetPeriod, "period")
_LOCK_SQL = f"""
    SELECT {_PERIOD.sql}, (
        SELECT threshold.percent FROM {Threshold._meta.db_table} threshold
        WHERE threshold.budget_id = period.budget_id
            AND threshold.percent * period."limit" > (period.spent + period.reserved) * 100
        ORDER BY threshold.percent LIMIT 1
    ) AS next_threshold
    FROM {BudgetPeriod._meta.db_table} period
    WHERE {{rows}}
    ORDER BY period.id
    FOR NO KEY UPDATE OF period
"""
_LOCK_BY_ID_SQL = _LOCK_SQL.format(
    rows="""period.id = ANY(%(ids)s) AND (%(moment)s::timestamptz IS NULL
        OR (period.starts_at <= %(moment)s AND period.ends_at > %(moment)s))"""
)
_LOCK_IN_FORCE_SQL = _LOCK_SQL.format(
    rows="""period.budget_id = ANY(%(budgets)s)
        AND period.starts_at <= %(moment)s AND period.ends_at > %(moment)s"""
)
_LOCK_HELD_SQL = _LOCK_SQL.format(
    rows=f"""period.id IN (
        SELECT period_id FROM {ReservationHold._meta.db_table} WHERE reservation_id = %(id)s)"""
)


# The other statements every authorization and settlement makes, written out too (in SQL that
# SQLite runs as well): the ORM's building costs more than the statements themselves.
_RESERVATION = Columns(Reservation, "r")
_RESERVATION_SQL = (
    f"SELECT {_RESERVATION.sql} FROM {_RESERVATION.table} WHERE r.id = %s AND r.organization_id = %s"
)
_FINISH_SQL = f"UPDATE {Reservation._meta.db_table} SET state = %s, finished_at = %s WHERE id = %s"
_BOOK_SQL = f"""
    UPDATE {BudgetPeriod._meta.db_table} SET spent = spent + %s, reserved = reserved + %s
    WHERE id IN ({{ids}})
"""
# A hold or a charge: an amount on one period, for a reservation or a usage record.
_SHARES_SQL = {
    model: f"INSERT INTO {model._meta.db_table} ({owner}, period_id, amount) VALUES "
    for model, owner in ((ReservationHold, "reservation_id"), (UsageCharge, "usage_id"))
}


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _lock_periods(
    period_ids: Iterable[int], *, in_force_at: datetime | None = None
) -> dict[int, BudgetPeriod]:
    """Lock these periods (those in force at `in_force_at`, when given)."""
    ids = sorted(set(period_ids))
    if not _on_postgresql():
        periods = BudgetPeriod.objects.filter(pk__in=ids)
        return _locked(periods.filter(_in_force(in_force_at)) if in_force_at else periods)
    return _lock_rows(_LOCK_BY_ID_SQL, {"ids": ids, "moment": in_force_at})


def _lock_in_force(budgets: list[Budget], moment: datetime) -> dict[int, BudgetPeriod]:
    """Lock the budgets' periods in force at `moment`."""
    if not _on_postgresql():
        return _locked(BudgetPeriod.objects.filter(_in_force(moment), budget__in=budgets))
    return _lock_rows(_LOCK_IN_FORCE_SQL, {"budgets": sorted(b.pk for b in budgets), "moment": moment})


def _lock_held_periods(reservation: Reservation) -> dict[int, BudgetPeriod]:
    """Lock the periods `reservation` holds money on."""
    if not _on_postgresql():
        return _lock_periods(reservation.holds.values_list("period_id", flat=True))
    return _lock_rows(_LOCK_HELD_SQL, {"id": reservation.pk})


def _lock_rows(sql: str, params: dict) -> dict[int, BudgetPeriod]:
    locked = {}
    for row in fetch_rows(sql, params):
        period = _PERIOD.load(row)
        period.next_threshold = row[len(_PERIOD)]
        locked[period.pk] = period
    return locked


def _in_force(moment: datetime) -> Q:
    """Periods that contain `moment` ([start, end))."""
    return Q(starts_at__lte=moment, ends_at__gt=moment)


def _chain_with_open_periods(
    *, organization: Organization, team: Team | None, user: User | None, moment: datetime
) -> list[Budget]:
    """The chain's budgets, with their periods at `moment` opened. Call it before any lock is taken:
    a writer that inserted a period row and then waited for a row lock could deadlock with one
    that holds the row lock and waits for that insert. One query when every period is open."""
    in_force = BudgetPeriod.objects.filter(_in_force(moment), budget=OuterRef("pk"))
    budgets = list(
        chain_budgets(organization=organization, team=team, user=user).annotate(
            has_open_period=Exists(in_force)
        )
    )
    for budget in budgets:
        if not budget.has_open_period:
            period_get_or_open(budget=budget, moment=moment)
    return budgets


def _read_in_force(budgets: list[Budget], moment: datetime) -> bool:
    """Whether every budget carries the periods it was read with (`periods_in_force`, as
    `chain_status` loads them) and one of them is still in force at `moment`."""
    return all(
        any(period.starts_at <= moment < period.ends_at for period in getattr(budget, "periods_in_force", ()))
        for budget in budgets
    )


def _lock_chain_periods(budgets: list[Budget], moment: datetime) -> dict[int, BudgetPeriod]:
    """The chain's periods in force at `moment`, locked, each with its budget from `budgets` (the
    caller has them: no join). Periods already read with the budgets are locked by primary key."""
    by_id = {budget.pk: budget for budget in budgets}
    if _read_in_force(budgets, moment):
        ids = [period.pk for budget in budgets for period in budget.periods_in_force]
        locked = _lock_periods(ids, in_force_at=moment)
    else:
        locked = {}
    if {period.budget_id for period in locked.values()} != set(by_id):
        # Not read with the budgets, or replaced since (an edit of the budget's period).
        locked = _lock_in_force(budgets, moment)
    for period in locked.values():
        period.budget = by_id[period.budget_id]
    return locked


def reservation_authorize(
    *,
    principal: Principal,
    request_id: str,
    amount: Decimal,
    model: str = "",
    ttl_seconds: int | None = None,
    metadata: dict | None = None,
    team_id: int | None = None,
    user_id: int | None = None,
    chain: list[Budget] | None = None,
    new_request_id: bool = False,
) -> AuthorizeResult:
    """Hold `amount` (the request's maximum cost) on every budget of the caller's chain, or refuse
    with BudgetExceeded naming the first budget that has no room. A retry returns the same hold.
    `chain`: the attribution's budgets as `chain_status` just read them (with `periods_in_force`),
    which spares reading them again when all their periods are open. `new_request_id`: the caller
    made `request_id` just now, so no earlier hold or charge can carry it."""
    if amount < 0:
        raise ValidationFailed("amount must not be negative.", code="negative_amount")
    organization = principal.organization
    existing, charged = (None, False) if new_request_id else _request_id_use(organization, request_id)
    if existing is not None:
        return AuthorizeResult(_replayed_reservation(principal, existing, amount), replayed=True)
    if charged:
        raise Conflict(f"Request {request_id!r} is already charged.", code="request_already_charged")
    team, user = attribution_for(principal, team_id=team_id, user_id=user_id)
    now = timezone.now()
    if chain is not None and _read_in_force(chain, now):
        budgets = chain
    else:
        budgets = _chain_with_open_periods(organization=organization, team=team, user=user, moment=now)
    reservation = Reservation(
        organization=organization,
        team=team,
        user=user,
        api_key=principal.api_key,
        request_id=request_id,
        amount=amount,
        model=model,
        metadata=metadata or {},
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds or settings.COSTSWITCH_RESERVATION_TTL_SECONDS),
    )
    try:
        with transaction.atomic():
            _hold(reservation, budgets)
    except IntegrityError:
        # A concurrent retry with the same request id won the insert; answer as its replay.
        existing = Reservation.objects.filter(organization=organization, request_id=request_id).first()
        if existing is None:
            raise
        return AuthorizeResult(_replayed_reservation(principal, existing, amount), replayed=True)
    return AuthorizeResult(reservation, replayed=False)


def _request_id_use(organization: Organization, request_id: str) -> tuple[Reservation | None, bool]:
    """The reservation holding `request_id`, and whether a usage record carries it: one query
    (the common answer, a new request id, is "neither")."""
    # Unordered: SQLite refuses ORDER BY (the models' default) inside a UNION.
    held = Reservation.objects.filter(organization=organization, request_id=request_id).order_by()
    charged = UsageRecord.objects.filter(organization=organization, request_id=request_id).order_by()
    found = dict(
        held.values_list(Value("reservation"), "pk").union(
            charged.values_list(Value("usage"), "pk"), all=True
        )
    )
    reservation = Reservation.objects.get(pk=found["reservation"]) if "reservation" in found else None
    return reservation, "usage" in found


def _replayed_reservation(principal: Principal, existing: Reservation, amount: Decimal) -> Reservation:
    if not _may_touch(principal, existing):
        raise _request_id_taken(existing.request_id)
    if existing.amount != amount:
        raise Conflict(
            f"Request {existing.request_id!r} was already authorized for {existing.amount}, not {amount}.",
            code="idempotency_conflict",
        )
    return existing


def _hold(reservation: Reservation, budgets: list[Budget]) -> None:
    """Save `reservation` with a hold on each budget's current period, if every one has room."""
    amount = reservation.amount
    locked = _lock_chain_periods(budgets, reservation.created_at)
    for period in locked.values():
        if period.spent + period.reserved + amount > period.limit:
            available = max(period.limit - period.spent - period.reserved, ZERO)
            budget = period.budget
            raise BudgetExceeded(
                f"Budget {budget.name!r} has {display_decimal(available)} left in this period; "
                f"the request needs {display_decimal(amount)}.",
                details={"budget_id": budget.pk, "available": available, "requested": amount},
            )
    insert(reservation)
    _insert_shares(ReservationHold, reservation.pk, list(locked), amount)
    _book(list(locked), reserved=amount)
    alerts_for_changes((period, amount) for period in locked.values())


def _request_id_taken(request_id: str) -> Conflict:
    """Someone else's request id: refuse without revealing anything about their request."""
    return Conflict(f"Request id {request_id!r} is already in use.", code="idempotency_conflict")


def _may_touch(principal: Principal, reservation: Reservation | UsageRecord) -> bool:
    """The caller who holds a reservation, or anyone managing its team or user, may settle it (and
    replay its request id; the same goes for a usage record)."""
    if principal.org_wide:
        return True
    if principal.api_key is not None:
        return reservation.api_key_id == principal.api_key.pk
    if reservation.user_id == principal.user.pk and reservation.api_key_id is None:
        return True
    return reservation.team_id in principal.lead_team_ids


def reservation_settle(*, principal: Principal, reservation_id: int, report: UsageReport) -> SettleResult:
    """Write the real cost to the ledger and release the rest of the hold. Settling an expired or
    released reservation still records the spend (the call happened); settling twice charges once.
    The usage record carries the reservation's request id, whatever `report.request_id` says."""
    with transaction.atomic():
        reservation = _lock_reservation(principal, reservation_id)
        if reservation.state == ReservationState.SETTLED:
            usage = reservation.usage
            if not report.matches(usage):
                raise Conflict(
                    f"Reservation {reservation.pk} was already settled at {usage.cost}.",
                    code="idempotency_conflict",
                )
            return SettleResult(usage, replayed=True)
        report = replace(report, request_id=reservation.request_id)
        locked = _lock_held_periods(reservation)
        period_ids = list(locked)
        now = timezone.now()
        fields = _usage_fields(report, now)
        fields["model"] = report.model or reservation.model
        # A reservation taken by the selection engine knows the task type it detected.
        fields["task_type"] = report.task_type or str(reservation.metadata.get("task_type", ""))[:50]
        usage = UsageRecord(
            **fields,
            organization=reservation.organization,
            team_id=reservation.team_id,
            user_id=reservation.user_id,
            api_key_id=reservation.api_key_id,
            reservation=reservation,
            source=UsageSource.RESERVATION,
        )
        insert(usage)
        _insert_shares(UsageCharge, usage.pk, period_ids, report.cost)
        # Every hold of a reservation is its full amount, so one UPDATE books all periods.
        released = reservation.amount if reservation.state == ReservationState.PENDING else ZERO
        _book(period_ids, spent=report.cost, reserved=-released)
        alerts_for_changes((period, report.cost - released) for period in locked.values())
        _finish(reservation, ReservationState.SETTLED, now)
    return SettleResult(usage, replayed=False)


def _lock_reservation(principal: Principal, reservation_id: int) -> Reservation:
    """The reservation row, locked, if the caller may touch it (404 otherwise, revealing nothing)."""
    organization = principal.organization
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    rows = fetch_rows(_RESERVATION_SQL + lock, [reservation_id, organization.pk])
    reservation = _RESERVATION.load(rows[0]) if rows else None
    if reservation is None or not _may_touch(principal, reservation):
        raise NotFound(f"Reservation {reservation_id} not found.")
    reservation.organization = organization  # the row it was read by: no join needed
    return reservation


def _finish(reservation: Reservation, state: str, now: datetime) -> None:
    reservation.state = state
    reservation.finished_at = now
    _execute(_FINISH_SQL, [state, connection.ops.adapt_datetimefield_value(now), reservation.pk])


def _execute(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _book(period_ids: list[int], *, spent: Decimal = ZERO, reserved: Decimal = ZERO) -> None:
    """Add to the spent and reserved amounts of periods the caller has locked."""
    if period_ids:
        marks = ", ".join(["%s"] * len(period_ids))
        _execute(_BOOK_SQL.format(ids=marks), [spent, reserved, *period_ids])


def _insert_shares(
    model: type[ReservationHold | UsageCharge], owner_id: int, period_ids: list[int], amount: Decimal
) -> None:
    """One hold (or charge) of `amount` per period, for the reservation (or usage record) `owner_id`."""
    if period_ids:
        rows = ", ".join(["(%s, %s, %s)"] * len(period_ids))
        _execute(_SHARES_SQL[model] + rows, [value for pk in period_ids for value in (owner_id, pk, amount)])


def reservation_release(*, principal: Principal, reservation_id: int) -> Reservation:
    """Drop a hold the caller no longer needs (the call was not made). Idempotent."""
    with transaction.atomic():
        reservation = _lock_reservation(principal, reservation_id)
        if reservation.state == ReservationState.SETTLED:
            raise Conflict(f"Reservation {reservation.pk} is already settled.", code="already_settled")
        if reservation.state == ReservationState.PENDING:
            _drop_holds(reservation, ReservationState.RELEASED)
    return reservation


def _drop_holds(reservation: Reservation, final_state: str) -> None:
    _book(list(_lock_held_periods(reservation)), reserved=-reservation.amount)
    _finish(reservation, final_state, timezone.now())


def reservations_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Release pending reservations past their TTL. Safe to run concurrently: each row is taken
    with SKIP LOCKED, so two sweepers never release the same hold twice."""
    now = now or timezone.now()
    expired = 0
    due = Reservation.objects.filter(state=ReservationState.PENDING, expires_at__lte=now).order_by("pk")
    for pk in list(due.values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            reservation = (
                Reservation.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, state=ReservationState.PENDING)
                .first()
            )
            if reservation is None:
                continue
            _drop_holds(reservation, ReservationState.EXPIRED)
            expired += 1
    return expired


def _usage_fields(report: UsageReport, now: datetime) -> dict:
    return {
        "request_id": report.request_id,
        "model": report.model,
        "provider": report.provider,
        "input_tokens": report.input_tokens,
        "output_tokens": report.output_tokens,
        "cached_input_tokens": report.cached_input_tokens,
        "cost": report.cost,
        "currency": settings.COSTSWITCH_CURRENCY,
        "task_type": report.task_type,
        "project": report.project,
        "agent": report.agent,
        "conversation_id": report.conversation_id,
        "tags": report.tags,
        "metadata": report.metadata,
        "outcome": report.outcome,
        "rating": report.rating,
        "occurred_at": report.occurred_at or now,
    }


def usage_record_many(
    *, principal: Principal, reports: list[UsageReport], source: str = UsageSource.DIRECT
) -> UsageResult:
    """Record spend reported without a reservation (batch ingestion, webhooks): always written,
    even when it takes a budget over its limit (that shows as overspend). All or nothing; a
    request id seen before is answered with its first record and charged once."""
    now = timezone.now()
    for index, report in enumerate(reports):
        if report.cost < 0:
            raise ValidationFailed(f"items[{index}].cost must not be negative.", code="negative_amount")
        if report.occurred_at and report.occurred_at > now + MAX_CLOCK_SKEW:
            raise ValidationFailed(f"items[{index}].occurredAt is in the future.", code="future_timestamp")
    # Refuse a bad retry, and find what is new, before anything is written; then open the new
    # reports' periods before any lock is taken, as authorize does.
    known = _known_records(principal, reports)
    fresh = list({r.request_id: r for r in reports if r.request_id not in known}.values())
    chains = _chains_for(principal, fresh)
    period_ids = _periods_for(fresh, chains, now)
    for _ in range(INSERT_ATTEMPTS - 1):
        try:
            with transaction.atomic():
                return _record_many(principal, reports, chains, period_ids, source, now)
        except IntegrityError:
            continue  # another writer recorded one of these request ids meanwhile: the next pass replays it
    with transaction.atomic():
        return _record_many(principal, reports, chains, period_ids, source, now)


@dataclass
class _Chain:
    team: Team | None
    user: User | None
    budgets: list[Budget]


def _chains_for(principal: Principal, reports: list[UsageReport]) -> dict[tuple, _Chain]:
    """Attribution and budgets per (teamId, userId) named in the batch; a batch names few pairs."""
    chains: dict[tuple, _Chain] = {}
    for report in reports:
        pair = (report.team_id, report.user_id)
        if pair not in chains:
            team, user = attribution_for(principal, team_id=report.team_id, user_id=report.user_id)
            budgets = list(chain_budgets(organization=principal.organization, team=team, user=user))
            chains[pair] = _Chain(team, user, budgets)
    return chains


def _periods_for(
    reports: list[UsageReport], chains: dict[tuple, _Chain], now: datetime
) -> dict[str, list[int]]:
    """By request id, the budget periods a report is charged to: every budget of its chain in force then."""
    cache: dict[tuple, BudgetPeriod | None] = {}
    result = {}
    for report in reports:
        moment = report.occurred_at or now
        periods = (_cached_period(cache, b, moment) for b in chains[(report.team_id, report.user_id)].budgets)
        result[report.request_id] = [period.pk for period in periods if period is not None]
    return result


def _known_records(principal: Principal, reports: list[UsageReport]) -> dict[str, UsageRecord]:
    """Records already written for these request ids, after refusing any retry that does not match
    its first report (or a request id that belongs to someone else)."""
    existing = {
        record.request_id: record
        for record in UsageRecord.objects.filter(
            organization=principal.organization, request_id__in={report.request_id for report in reports}
        )
    }
    held = dict(
        Reservation.objects.filter(
            organization=principal.organization,
            request_id__in={report.request_id for report in reports} - set(existing),
        ).values_list("request_id", "pk")
    )
    first_in_batch: dict[str, UsageReport] = {}
    for report in reports:
        known = existing.get(report.request_id)
        earlier = first_in_batch.setdefault(report.request_id, report)
        if report.request_id in held:
            raise Conflict(
                f"Request {report.request_id!r} has reservation {held[report.request_id]}; settle that.",
                code="request_id_reserved",
            )
        if known is not None and not _may_touch(principal, known):
            raise _request_id_taken(report.request_id)
        if known is not None and not report.matches(known):
            raise Conflict(
                f"Request {report.request_id!r} was already reported with cost {known.cost}.",
                code="idempotency_conflict",
            )
        if earlier != report:
            raise Conflict(
                f"Request {report.request_id!r} appears twice in this batch with different contents.",
                code="idempotency_conflict",
            )
    return existing


def _record_many(
    principal: Principal,
    reports: list[UsageReport],
    chains: dict[tuple, _Chain],
    period_ids: dict[str, list[int]],
    source: str,
    now: datetime,
) -> UsageResult:
    organization = principal.organization
    existing = _known_records(principal, reports)
    results: list[UsageRecord | None] = []
    fresh: list[tuple[int, UsageReport, UsageRecord]] = []
    first_in_batch: dict[str, UsageReport] = {}
    charges: dict[int, list[UsageRecord]] = defaultdict(list)
    for report in reports:
        known = existing.get(report.request_id)
        earlier = first_in_batch.get(report.request_id)
        if known is not None or earlier is not None:
            results.append(known)
            continue
        first_in_batch[report.request_id] = report
        chain = chains[(report.team_id, report.user_id)]
        record = UsageRecord(
            **_usage_fields(report, now),
            organization=organization,
            team=chain.team,
            user=chain.user,
            api_key=principal.api_key,
            source=source,
        )
        fresh.append((len(results), report, record))
        results.append(record)
        for period_id in period_ids[report.request_id]:
            charges[period_id].append(record)

    locked = _lock_periods(charges.keys())
    # Inserting in request id order means two batches sharing ids wait on each other, never in a cycle.
    UsageRecord.objects.bulk_create(sorted((record for _, _, record in fresh), key=lambda r: r.request_id))
    UsageCharge.objects.bulk_create(
        UsageCharge(usage=record, period_id=period_id, amount=record.cost)
        for period_id, records in charges.items()
        for record in records
    )
    for period_id, records in charges.items():
        _book([period_id], spent=sum(r.cost for r in records))
    alerts_for_changes((locked[pk], sum(r.cost for r in records)) for pk, records in charges.items())
    # Duplicates inside the batch point at the record their first occurrence created.
    by_request = {record.request_id: record for _, _, record in fresh}
    final = [record or by_request[report.request_id] for record, report in zip(results, reports, strict=True)]
    return UsageResult(records=final, created=len(fresh), replayed=len(reports) - len(fresh))


def _cached_period(cache: dict, budget: Budget, moment: datetime) -> BudgetPeriod | None:
    for (budget_id, starts_at, ends_at), period in cache.items():
        if budget_id == budget.pk and starts_at <= moment < ends_at:
            return period
    period = period_get_or_open(budget=budget, moment=moment)
    if period is not None:
        cache[(budget.pk, period.starts_at, period.ends_at)] = period
    return period
