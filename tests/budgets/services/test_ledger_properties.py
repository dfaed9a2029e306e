"""Stateful property test of the spend ledger: random sequences of authorize, settle (and retries),
release, expire and direct usage on a small budget chain, checked against a model after every step.

Each example runs in its own savepoint (rolled back in teardown) under a frozen clock, inside one
Django TestCase transaction, so examples never see each other's rows.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine
from django.db import transaction
from django.db.models import Count, Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from budgets.choices import ReservationState, Role
from budgets.models import BudgetPeriod, Reservation, ReservationHold, UsageCharge, UsageRecord
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.services.ledger import (
    UsageReport,
    reservation_authorize,
    reservation_release,
    reservation_settle,
    reservations_expire,
    usage_record_many,
)
from budgets.services.periods import period_get_or_open
from costswitch.errors import BudgetExceeded, Conflict
from costswitch.money import MONEY_QUANTUM, ZERO
from tests.budgets.factories import (
    BudgetFactory,
    MembershipFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
    make_api_key,
    team_budget,
    user_budget,
)

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LIMITS = st.integers(min_value=1, max_value=10).map(Decimal)
AMOUNTS = st.decimals(min_value=0, max_value=12, places=9, allow_nan=False, allow_infinity=False)
COSTS = st.decimals(min_value=0, max_value=5, places=9, allow_nan=False, allow_infinity=False)
# Whose chain each principal spends from: bob (member of alpha, own budget), alpha's team key, carol
# (member of beta, which has no budget).
CHAINS = {"bob": ("org", "team", "user"), "key": ("org", "team"), "carol": ("org",)}
PENDING, SETTLED = ReservationState.PENDING, ReservationState.SETTLED


@dataclass
class Held:
    """The model of one reservation."""

    pk: int
    who: str
    request_id: str
    amount: Decimal
    expires_at: datetime
    state: str = PENDING
    report: UsageReport | None = None


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.savepoint = transaction.atomic()
        self.savepoint.__enter__()
        self.clock = time_machine.travel(START, tick=False)
        self.coordinates = self.clock.start()
        self.now = START
        self.counter = 0
        self.held: list[Held] = []
        # request id -> (principal name, the report that created its usage record)
        self.charged: dict[str, tuple[str, UsageReport]] = {}
        self.spent = {key: ZERO for key in ("org", "team", "user")}
        self.reserved = {key: ZERO for key in ("org", "team", "user")}
        # Only reserved traffic with settles <= hold on pending reservations keeps every budget in bounds.
        self.may_overspend = False

    def teardown(self):
        self.clock.stop()
        transaction.set_rollback(True)
        self.savepoint.__exit__(None, None, None)

    @initialize(limits=st.fixed_dictionaries({"org": LIMITS, "team": LIMITS, "user": LIMITS}))
    def create_world(self, limits):
        self.org = OrganizationFactory()
        alpha = TeamFactory(organization=self.org)
        beta = TeamFactory(organization=self.org)
        bob = UserFactory(organization=self.org)
        carol = UserFactory(organization=self.org)
        MembershipFactory(user=bob, team=alpha, role=Role.MEMBER)
        MembershipFactory(user=carol, team=beta, role=Role.MEMBER)
        key, _ = make_api_key(team=alpha)
        self.principals = {
            "bob": principal_for_user(bob),
            "key": principal_for_api_key(key),
            "carol": principal_for_user(carol),
        }
        self.limits = limits
        self.budgets = {
            "org": BudgetFactory(organization=self.org, limit=limits["org"]),
            "team": team_budget(alpha, limit=limits["team"]),
            "user": user_budget(bob, limit=limits["user"]),
        }
        # Open the periods up front, so that a refused authorization has truly nothing to write.
        for budget in self.budgets.values():
            period_get_or_open(budget=budget, moment=START)

    # -- helpers -------------------------------------------------------------------------------

    def next_request_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def room(self, who: str) -> Decimal:
        return min(self.limits[k] - self.spent[k] - self.reserved[k] for k in CHAINS[who])

    def book(self, who: str, *, spent: Decimal = ZERO, reserved: Decimal = ZERO) -> None:
        for key in CHAINS[who]:
            self.spent[key] += spent
            self.reserved[key] += reserved

    def snapshot(self):
        return (
            list(
                BudgetPeriod.objects.filter(budget__organization=self.org)
                .order_by("pk")
                .values_list("pk", "spent", "reserved")
            ),
            list(
                Reservation.objects.filter(organization=self.org)
                .order_by("pk")
                .values_list("pk", "state", "amount")
            ),
            ReservationHold.objects.filter(reservation__organization=self.org).count(),
            list(
                UsageRecord.objects.filter(organization=self.org)
                .order_by("pk")
                .values_list("pk", "request_id", "cost")
            ),
            UsageCharge.objects.filter(usage__organization=self.org).count(),
        )

    def in_state(self, *states) -> list[Held]:
        return [held for held in self.held if held.state in states]

    def expire_due(self, moment: datetime, expired: int) -> None:
        due = [held for held in self.in_state(PENDING) if held.expires_at <= moment]
        assert expired == len(due)
        for held in due:
            held.state = ReservationState.EXPIRED
            self.book(held.who, reserved=-held.amount)

    # -- rules ---------------------------------------------------------------------------------

    @rule(
        who=st.sampled_from(sorted(CHAINS)),
        amount=AMOUNTS,
        edge=st.sampled_from(["random", "exact room", "one quantum over"]),
        ttl=st.integers(min_value=1, max_value=120),
    )
    def authorize(self, who, amount, edge, ttl):
        if edge == "exact room":
            amount = max(self.room(who), ZERO)
        elif edge == "one quantum over":
            amount = max(self.room(who), ZERO) + MONEY_QUANTUM
        fits = all(self.spent[k] + self.reserved[k] + amount <= self.limits[k] for k in CHAINS[who])
        request_id = self.next_request_id("r")
        before = self.snapshot()
        try:
            result = reservation_authorize(
                principal=self.principals[who],
                request_id=request_id,
                amount=amount,
                model="m",
                ttl_seconds=ttl,
            )
        except BudgetExceeded:
            assert not fits, f"refused {amount} with room {self.room(who)}"
            assert self.snapshot() == before, "a refused authorization changed the ledger"
            return
        assert fits, f"authorized {amount} with room {self.room(who)}"
        assert not result.replayed
        reservation = result.reservation
        assert reservation.holds.count() == len(CHAINS[who])
        self.held.append(Held(reservation.pk, who, request_id, amount, self.now + timedelta(seconds=ttl)))
        self.book(who, reserved=amount)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), same_amount=st.booleans())
    def authorize_retry(self, data, same_amount):
        held = data.draw(st.sampled_from(self.held), label="reservation")
        before = self.snapshot()
        amount = held.amount if same_amount else held.amount + MONEY_QUANTUM
        try:
            result = reservation_authorize(
                principal=self.principals[held.who], request_id=held.request_id, amount=amount, model="m"
            )
        except Conflict:
            assert not same_amount
        else:
            assert same_amount
            assert result.replayed and result.reservation.pk == held.pk
        assert self.snapshot() == before, "a retried authorization changed the ledger"

    @precondition(lambda self: any(request_id.startswith("u") for request_id in self.charged))
    @rule(data=st.data())
    def authorize_a_request_already_charged(self, data):
        request_id = data.draw(st.sampled_from(sorted(r for r in self.charged if r.startswith("u"))))
        who, _ = self.charged[request_id]
        before = self.snapshot()
        try:
            reservation_authorize(principal=self.principals[who], request_id=request_id, amount=ZERO)
        except Conflict:
            pass
        else:
            raise AssertionError(f"authorized {request_id!r}, which is already charged")
        assert self.snapshot() == before

    @precondition(lambda self: [held for held in self.held if held.state != SETTLED])
    @rule(data=st.data(), over_hold=st.booleans())
    def settle(self, data, over_hold):
        held = data.draw(st.sampled_from(self.in_state(PENDING, "released", "expired")), label="reservation")
        if over_hold:
            cost = held.amount + data.draw(
                st.decimals(min_value=MONEY_QUANTUM, max_value=3, places=9), label="overrun"
            )
        else:
            cost = data.draw(st.decimals(min_value=0, max_value=held.amount, places=9), label="cost")
        # The usage record takes the reservation's request id, whatever the report says.
        report = UsageReport(request_id="ignored", cost=cost, model="m", input_tokens=7)
        result = reservation_settle(
            principal=self.principals[held.who], reservation_id=held.pk, report=report
        )
        assert not result.replayed
        assert result.usage.request_id == held.request_id
        assert result.usage.cost == cost
        released = held.amount if held.state == PENDING else ZERO
        if over_hold or held.state != PENDING:
            # Over the hold, or after the hold was dropped (others may have taken the room meanwhile).
            self.may_overspend = True
        self.book(held.who, spent=cost, reserved=-released)
        held.state = SETTLED
        held.report = report
        self.charged[held.request_id] = (held.who, report)

    @precondition(lambda self: [held for held in self.held if held.state == SETTLED])
    @rule(data=st.data(), same_report=st.booleans())
    def settle_retry(self, data, same_report):
        held = data.draw(st.sampled_from(self.in_state(SETTLED)), label="reservation")
        report = held.report
        if not same_report:
            report = UsageReport(request_id=held.request_id, cost=report.cost + MONEY_QUANTUM, model="m")
        before = self.snapshot()
        try:
            result = reservation_settle(
                principal=self.principals[held.who], reservation_id=held.pk, report=report
            )
        except Conflict:
            assert not same_report
        else:
            assert same_report
            assert result.replayed and result.usage.cost == held.report.cost
        assert self.snapshot() == before, "a retried settle changed the ledger"

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data):
        held = data.draw(st.sampled_from(self.held), label="reservation")
        before = self.snapshot()
        try:
            reservation_release(principal=self.principals[held.who], reservation_id=held.pk)
        except Conflict:
            assert held.state == SETTLED
            assert self.snapshot() == before
            return
        assert held.state != SETTLED
        if held.state == PENDING:
            held.state = ReservationState.RELEASED
            self.book(held.who, reserved=-held.amount)
        else:
            assert self.snapshot() == before, "releasing a finished reservation changed the ledger"

    @rule(seconds=st.integers(min_value=0, max_value=150))
    def expire_after_clock_moves(self, seconds):
        self.coordinates.shift(timedelta(seconds=seconds))
        self.now += timedelta(seconds=seconds)
        self.expire_due(self.now, reservations_expire())

    @rule(seconds=st.integers(min_value=0, max_value=150))
    def expire_at_a_later_moment(self, seconds):
        moment = self.now + timedelta(seconds=seconds)
        self.expire_due(moment, reservations_expire(now=moment))

    @rule(who=st.sampled_from(sorted(CHAINS)), data=st.data())
    def direct_usage(self, who, data):
        mine = sorted(request_id for request_id, (owner, _) in self.charged.items() if owner == who)
        item = st.one_of(
            COSTS.map(lambda cost: ("new", cost)),
            *([st.sampled_from(mine).map(lambda request_id: ("retry", request_id))] if mine else []),
        )
        reports, fresh = [], {}
        for kind, value in data.draw(st.lists(item, min_size=1, max_size=3), label="items"):
            if kind == "new":
                report = UsageReport(request_id=self.next_request_id("u"), cost=value, model="m")
                fresh[report.request_id] = report
            else:
                report = self.charged[value][1]
                # A settled reservation's record carries the reservation's request id.
                report = UsageReport(
                    request_id=value, cost=report.cost, model="m", input_tokens=report.input_tokens
                )
            reports.append(report)
        if reports and data.draw(st.booleans(), label="repeat one item in the batch"):
            reports.append(reports[0])
        result = usage_record_many(principal=self.principals[who], reports=reports)
        assert (result.created, result.replayed) == (len(fresh), len(reports) - len(fresh))
        assert [record.request_id for record in result.records] == [r.request_id for r in reports]
        for report in fresh.values():
            self.charged[report.request_id] = (who, report)
            self.book(who, spent=report.cost)
            self.may_overspend = True

    @precondition(lambda self: self.charged)
    @rule(data=st.data())
    def direct_usage_conflicting_retry(self, data):
        request_id = data.draw(st.sampled_from(sorted(self.charged)), label="request id")
        who, report = self.charged[request_id]
        before = self.snapshot()
        changed = UsageReport(request_id=request_id, cost=report.cost + MONEY_QUANTUM, model="m")
        try:
            usage_record_many(
                principal=self.principals[who],
                reports=[UsageReport(request_id=self.next_request_id("u"), cost=Decimal(1)), changed],
            )
        except Conflict:
            pass
        else:
            raise AssertionError("a retry with a different cost was accepted")
        assert self.snapshot() == before, "a refused batch changed the ledger"

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def period_caches_equal_the_ledger(self):
        for period in BudgetPeriod.objects.filter(budget__organization=self.org):
            charged = period.charges.aggregate(total=Sum("amount"))["total"] or ZERO
            held = (
                period.holds.filter(reservation__state=PENDING).aggregate(total=Sum("amount"))["total"]
                or ZERO
            )
            assert period.spent == charged, f"period {period.pk}: spent {period.spent} != charges {charged}"
            assert period.reserved == held, f"period {period.pk}: reserved {period.reserved} != holds {held}"
            assert period.reserved >= 0

    @invariant()
    def periods_equal_the_model(self):
        for key, budget in self.budgets.items():
            (period,) = BudgetPeriod.objects.filter(budget=budget)
            assert (key, period.spent, period.reserved) == (key, self.spent[key], self.reserved[key])
            if not self.may_overspend:
                assert period.spent + period.reserved <= period.limit, f"{key} budget over its limit"

    @invariant()
    def reservations_equal_the_model(self):
        states = dict(Reservation.objects.filter(organization=self.org).values_list("pk", "state"))
        assert states == {held.pk: held.state for held in self.held}

    @invariant()
    def one_usage_record_per_request(self):
        counts = dict(
            UsageRecord.objects.filter(organization=self.org)
            .values("request_id")
            .annotate(n=Count("pk"))
            .values_list("request_id", "n")
        )
        assert counts == dict.fromkeys(self.charged, 1)


class LedgerPropertiesTest(TestCase):
    def test_ledger_state_machine(self):
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=40,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
