"""External reconciliation: a provider's usage export against the ledger.

Matching (README "Reconciliation"):
- a line with a request id is our usage record with that request id;
- a line for one request at one moment without an id is the closest unmatched record of the same
  model within `POINT_WINDOW` of it whose tokens agree (`tokens_agree`);
- a bucket line (model, [start, end)) is every record of that model in the window, adjustments
  included, and compares their total.
Model names are compared through the registry (an id, its provider model name, or the name with a
date suffix removed: `gpt-4o-2024-08-06` is `gpt-4o` when the registry knows no snapshot).
Costs agree within `costs_agree` (1 micro-dollar or 0.1 %). Lines without money (usage exports) are
priced at the registry's list prices.

Outcomes: `missing_here` (the provider billed usage the ledger lacks: recorded as a compensating
entry, charged to the team/user its project, key or workspace maps to in ExternalAccount, else to
the organization), `cost_differs` (the difference, positive or negative, charged to the periods
the original was charged to), `missing_there` (a record of the provider's models in the covered
time that no line accounts for: recorded, not adjusted).

Idempotent, line by line: every line is compared in its own transaction, and a difference is
identified by a fingerprint of the line and both amounts, unique per organization; the
compensating entry's request id derives from it. A repeated import finds the ledger already equal
to the provider and writes nothing; a batch killed half-way and run again ends as a clean run would.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from analytics.models import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    ExternalAccount,
    ReconciliationRun,
    RunKind,
    RunStatus,
    SyncBatch,
    SyncSource,
    SyncStatus,
)
from analytics.reconciliation.formats import ExternalLine, ParsedExport, line_fingerprint, parse_export
from budgets.choices import UsageSource
from budgets.models import Organization, Team, UsageCharge, UsageRecord, User
from budgets.services.adjustments import Adjustment, chain_period_ids, usage_adjust
from costswitch.api.parsers import parse_json
from costswitch.errors import ValidationFailed
from costswitch.models import InboundWebhook
from costswitch.money import ZERO, quantize_money
from models_registry.models import ModelProfile
from models_registry.pricing import request_cost

logger = logging.getLogger(__name__)

COST_TOLERANCE_ABS = Decimal("0.000001")
COST_TOLERANCE_REL = Decimal("0.001")
TOKEN_TOLERANCE_ABS = 10
TOKEN_TOLERANCE_REL = Decimal("0.01")
POINT_WINDOW = timedelta(minutes=2)
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


def costs_agree(ours: Decimal, theirs: Decimal) -> bool:
    """Equal within 1 micro-dollar or 0.1 % of the larger amount (providers round their figures)."""
    allowed = max(COST_TOLERANCE_ABS, COST_TOLERANCE_REL * max(abs(ours), abs(theirs)))
    return abs(theirs - ours) <= allowed


def tokens_agree(ours: int, theirs: int | None) -> bool:
    """Equal within 10 tokens or 1 % (tokenizers and cache accounting differ slightly)."""
    if theirs is None:
        return True
    return abs(theirs - ours) <= max(TOKEN_TOLERANCE_ABS, TOKEN_TOLERANCE_REL * max(ours, theirs))


# --- Sync batches: store raw, then process ---------------------------------------------------------


def sync_batch_create(
    *,
    organization: Organization,
    provider: str,
    source: str,
    content: str | bytes | dict | list,
    format: str = "",
    filename: str = "",
    inbound_webhook: InboundWebhook | None = None,
    enqueue: bool = True,
) -> SyncBatch:
    """Check that `content` is an export, then store it raw with a pending run; the worker
    processes it once this commits (`enqueue`). A file with no usable line is refused whole."""
    parsed = parse_export(provider=provider, content=content, format=format)
    if not parsed.lines and parsed.errors:
        raise ValidationFailed(
            f"No usable line in the export: {parsed.errors[0]['error']}",
            code="no_usable_lines",
            details={"errors": parsed.errors[:20]},
        )
    if isinstance(content, bytes):
        content = content.decode("utf-8-sig")
    raw = "" if inbound_webhook is not None else content if isinstance(content, str) else _dump(content)
    with transaction.atomic():
        run = ReconciliationRun.objects.create(
            organization=organization, kind=RunKind.EXTERNAL, source=provider, status=RunStatus.PENDING
        )
        batch = SyncBatch.objects.create(
            organization=organization,
            provider=provider,
            source=source,
            format=parsed.format,
            inbound_webhook=inbound_webhook,
            filename=filename[:255],
            raw=raw,
            run=run,
        )
        if enqueue:
            transaction.on_commit(lambda: sync_batch_enqueue(batch_id=batch.pk))
    logger.info(
        "stored %s %s export: %d line(s), %d unusable",
        provider,
        parsed.format,
        len(parsed.lines),
        len(parsed.errors),
        extra={"batch_id": batch.pk, "run_id": run.pk},
    )
    return batch


def sync_batch_enqueue(*, batch_id: int) -> None:
    from analytics.tasks import process_sync_batch

    try:
        process_sync_batch.delay(batch_id)
    except Exception:
        # Stored; the hourly reconciliation task sends unprocessed batches to the worker again.
        logger.warning("could not enqueue sync batch %s", batch_id, exc_info=True)


def batch_parsed(batch: SyncBatch) -> ParsedExport:
    """The export of a batch, read again from what was stored raw."""
    if batch.inbound_webhook_id is not None:
        payload = parse_json(batch.inbound_webhook.body.encode())
        content, fmt = cost_data_content(payload)
    else:
        content, fmt = batch.raw, "csv" if batch.format == "csv" else ""
    return parse_export(provider=batch.provider, content=content, format=fmt)


def sync_batch_process(*, batch_id: int) -> SyncBatch:
    """Reconcile a stored batch against the ledger. Safe to run twice or concurrently and to be
    killed half-way: every line is compared in its own transaction and every difference is written
    once (unique fingerprints), so running it again finishes what is left."""
    batch = SyncBatch.objects.select_related("run", "organization", "inbound_webhook").get(pk=batch_id)
    if batch.status != SyncStatus.RECEIVED:
        return batch
    run = batch.run
    ReconciliationRun.objects.filter(pk=run.pk, started_at__isnull=True).update(started_at=timezone.now())
    ReconciliationRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    parsed = batch_parsed(batch)
    context = _Context.build(batch.organization, batch.provider, run)
    for line in parsed.lines:
        with transaction.atomic():
            reconcile_line(context, line)
    _record_missing_there(context, parsed.lines)
    _finish(batch, run, parsed, context)
    return batch


def sync_batches_requeue_stuck(*, older_than: timedelta = timedelta(minutes=30)) -> int:
    """Batches still unprocessed a while after they were stored go to the worker again."""
    cutoff = timezone.now() - older_than
    stuck = list(
        SyncBatch.objects.filter(status=SyncStatus.RECEIVED, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:1000]
    )
    for batch_id in stuck:
        sync_batch_enqueue(batch_id=batch_id)
    return len(stuck)


# --- Matching ------------------------------------------------------------------------------------


@dataclass
class _Context:
    organization: Organization
    provider: str
    run: ReconciliationRun
    canonical: dict[str, str]
    names: dict[str, set[str]]
    profiles: dict[str, ModelProfile]
    provider_models: set[str]
    accounts: dict[str, tuple[int | None, int | None]]
    claimed: set[int] = field(default_factory=set)
    errors: list[dict] = field(default_factory=list)

    @classmethod
    def build(cls, organization: Organization, provider: str, run: ReconciliationRun) -> "_Context":
        profiles = {p.pk: p for p in ModelProfile.objects.select_related("provider")}
        canonical: dict[str, str] = {}
        for profile in profiles.values():
            canonical[profile.pk] = profile.pk
            if profile.provider_model_name:
                canonical.setdefault(profile.provider_model_name, profile.pk)
        names: dict[str, set[str]] = {}
        for name, model_id in canonical.items():
            names.setdefault(model_id, {model_id}).add(name)
        accounts = {
            account.external_id: (account.team_id, account.user_id)
            for account in ExternalAccount.objects.filter(organization=organization, provider=provider)
        }
        return cls(
            organization=organization,
            provider=provider,
            run=run,
            canonical=canonical,
            names=names,
            profiles=profiles,
            provider_models={pk for pk, p in profiles.items() if p.provider.name == provider},
            accounts=accounts,
        )

    def canon(self, model: str) -> str:
        if model in self.canonical:
            return self.canonical[model]
        stripped = _DATE_SUFFIX.sub("", model)
        return self.canonical.get(stripped, stripped)

    def names_for(self, model: str) -> set[str]:
        canon = self.canon(model)
        return self.names.get(canon, {canon}) | {model}

    def theirs(self, line: ExternalLine) -> Decimal | None:
        """The provider's amount: the export's, or the line's tokens at the registry's list price."""
        if line.cost is not None:
            return quantize_money(line.cost)
        profile = self.profiles.get(self.canon(line.model))
        if profile is None or (line.input_tokens is None and line.output_tokens is None):
            return None
        input_tokens = line.input_tokens or 0
        return request_cost(
            profile,
            input_tokens=input_tokens,
            output_tokens=line.output_tokens or 0,
            cached_input_tokens=min(line.cached_input_tokens, input_tokens),
        ).total

    def attribution(self, line: ExternalLine) -> tuple[Team | None, User | None]:
        """The team/user the line's project, key or workspace maps to, if they all agree."""
        mapped = {self.accounts.get(account) for account in line.accounts}
        if len(mapped) != 1 or None in mapped:
            return None, None
        team_id, user_id = mapped.pop()
        team = Team.objects.filter(pk=team_id, organization=self.organization).first() if team_id else None
        user = User.objects.filter(pk=user_id, organization=self.organization).first() if user_id else None
        return team, user

    def owns(self, record: UsageRecord) -> bool:
        """Whether a ledger record is usage of this export's provider."""
        if record.provider:
            return record.provider.lower() == self.provider
        return self.canon(record.model) in self.provider_models


def reconcile_line(context: _Context, line: ExternalLine) -> None:
    """Compare one provider line with the ledger and record (and adjust) what differs."""
    theirs = context.theirs(line)
    if theirs is None:
        context.errors.append(
            {"line": line.key, "error": f"No price for {line.model!r}: the registry does not know it."}
        )
        return
    if line.request_id or line.is_point:
        _reconcile_request(context, line, theirs)
    else:
        _reconcile_window(context, line, theirs)


def _reconcile_request(context: _Context, line: ExternalLine, theirs: Decimal) -> None:
    records = UsageRecord.objects.filter(organization=context.organization).exclude(
        source=UsageSource.ADJUSTMENT
    )
    if line.request_id:
        record = records.filter(request_id=line.request_id).first()
    else:
        record = _closest(context, line, records)
    if record is not None:
        context.claimed.add(record.pk)
    earlier = list(
        UsageRecord.objects.filter(
            pk__in=Discrepancy.objects.filter(
                organization=context.organization, external_key=_external_key(context, line)
            ).values("adjustment_id")
        )
    )
    ours = (record.cost if record is not None else ZERO) + sum((a.cost for a in earlier), ZERO)
    if costs_agree(ours, theirs):
        return
    if record is None and not earlier:
        _missing_here(context, line, theirs)
        return
    anchor = record or earlier[0]
    period_ids = list(UsageCharge.objects.filter(usage=anchor).values_list("period_id", flat=True))
    _cost_differs(
        context,
        line,
        ours,
        theirs,
        usage=record,
        team_id=anchor.team_id,
        user_id=anchor.user_id,
        period_ids=period_ids,
        occurred_at=anchor.occurred_at,
    )


def _closest(context: _Context, line: ExternalLine, records) -> UsageRecord | None:
    """The unmatched record of the line's model nearest in time whose tokens agree."""
    nearby = records.filter(
        model__in=context.names_for(line.model),
        occurred_at__gte=line.starts_at - POINT_WINDOW,
        occurred_at__lte=line.starts_at + POINT_WINDOW,
    ).order_by("occurred_at", "pk")
    fitting = [
        r
        for r in nearby
        if r.pk not in context.claimed and tokens_agree(r.input_tokens + r.output_tokens, line.tokens)
    ]
    if not fitting:
        return None
    return min(
        fitting,
        key=lambda r: (
            abs((r.input_tokens + r.output_tokens) - (line.tokens or 0)),
            abs(r.occurred_at - line.starts_at),
        ),
    )


def _reconcile_window(context: _Context, line: ExternalLine, theirs: Decimal) -> None:
    candidates = list(
        UsageRecord.objects.filter(
            organization=context.organization,
            model__in=context.names_for(line.model),
            occurred_at__gte=line.starts_at,
            occurred_at__lt=line.ends_at,
        ).only("pk", "cost", "input_tokens", "output_tokens", "team_id", "user_id", "source")
    )
    context.claimed.update(c.pk for c in candidates if c.source != UsageSource.ADJUSTMENT)
    ours = sum((c.cost for c in candidates), ZERO)
    if costs_agree(ours, theirs):
        return
    if not candidates:
        _missing_here(context, line, theirs)
        return
    # The difference goes where every matched record was charged (with records of several teams:
    # the organization's periods), attributed to their common team and user, if any.
    ids = [c.pk for c in candidates]
    period_ids = list(
        UsageCharge.objects.filter(usage_id__in=ids)
        .values("period_id")
        .annotate(n=Count("usage_id", distinct=True))
        .filter(n=len(ids))
        .values_list("period_id", flat=True)
    )
    owners = {(c.team_id, c.user_id) for c in candidates}
    team_id, user_id = owners.pop() if len(owners) == 1 else (None, None)
    _cost_differs(
        context,
        line,
        ours,
        theirs,
        usage=None,
        team_id=team_id,
        user_id=user_id,
        period_ids=period_ids,
        occurred_at=line.starts_at,
        details={"ourTokens": sum(c.input_tokens + c.output_tokens for c in candidates), "records": len(ids)},
    )


def _external_key(context: _Context, line: ExternalLine) -> str:
    return f"{context.provider}:{line.key}"[:300]


def _missing_here(context: _Context, line: ExternalLine, theirs: Decimal) -> None:
    team, user = context.attribution(line)
    fingerprint = line_fingerprint(DiscrepancyKind.MISSING_HERE, _external_key(context, line), theirs)
    period_ids = chain_period_ids(
        organization=context.organization, team=team, user=user, moment=line.starts_at
    )
    adjustment = Adjustment(
        request_id=_request_id(fingerprint),
        cost=theirs,
        occurred_at=line.starts_at,
        model=context.canon(line.model),
        provider=context.provider,
        input_tokens=line.input_tokens or 0,
        output_tokens=line.output_tokens or 0,
        cached_input_tokens=min(line.cached_input_tokens, line.input_tokens or 0),
        metadata=_metadata(context, line, DiscrepancyKind.MISSING_HERE),
    )
    result = usage_adjust(
        organization=context.organization, adjustment=adjustment, period_ids=period_ids, team=team, user=user
    )
    _record(
        context,
        line,
        DiscrepancyKind.MISSING_HERE,
        fingerprint,
        ours=ZERO,
        theirs=theirs,
        adjustment=result.usage,
        details={"tokens": line.tokens, "requests": line.requests},
    )


def _cost_differs(
    context: _Context,
    line: ExternalLine,
    ours: Decimal,
    theirs: Decimal,
    *,
    usage: UsageRecord | None,
    team_id: int | None,
    user_id: int | None,
    period_ids: list[int],
    occurred_at: datetime,
    details: dict | None = None,
) -> None:
    fingerprint = line_fingerprint(DiscrepancyKind.COST_DIFFERS, _external_key(context, line), theirs, ours)
    adjustment = Adjustment(
        request_id=_request_id(fingerprint),
        cost=theirs - ours,
        occurred_at=occurred_at,
        model=context.canon(line.model),
        provider=context.provider,
        metadata=_metadata(context, line, DiscrepancyKind.COST_DIFFERS),
    )
    result = usage_adjust(
        organization=context.organization,
        adjustment=adjustment,
        period_ids=period_ids,
        team=Team.objects.filter(pk=team_id).first() if team_id else None,
        user=User.objects.filter(pk=user_id).first() if user_id else None,
    )
    _record(
        context,
        line,
        DiscrepancyKind.COST_DIFFERS,
        fingerprint,
        ours=ours,
        theirs=theirs,
        usage=usage,
        adjustment=result.usage,
        details={"tokens": line.tokens, **(details or {})},
    )


def _record(
    context: _Context,
    line: ExternalLine,
    kind: str,
    fingerprint: str,
    *,
    ours: Decimal,
    theirs: Decimal,
    usage: UsageRecord | None = None,
    adjustment: UsageRecord | None = None,
    details: dict | None = None,
) -> None:
    """Insert the discrepancy once: a second run (or a concurrent one) finds it already there."""
    now = timezone.now()
    try:
        with transaction.atomic():
            Discrepancy.objects.create(
                organization=context.organization,
                run=context.run,
                kind=kind,
                status=DiscrepancyStatus.RESOLVED if adjustment is not None else DiscrepancyStatus.OPEN,
                fingerprint=fingerprint,
                external_key=_external_key(context, line),
                request_id=line.request_id,
                model=line.model,
                window_start=line.starts_at,
                window_end=line.ends_at,
                usage=usage,
                ours=ours,
                theirs=theirs,
                difference=theirs - ours,
                adjustment=adjustment,
                details={k: v for k, v in (details or {}).items() if v is not None},
                resolved_at=now if adjustment is not None else None,
                resolution=f"compensating entry {adjustment.request_id}" if adjustment is not None else "",
            )
    except IntegrityError:
        return


def _request_id(fingerprint: str) -> str:
    return f"recon-{fingerprint[:40]}"


def _metadata(context: _Context, line: ExternalLine, kind: str) -> dict:
    return {
        "reconciliation": {
            "run": context.run.pk,
            "kind": kind,
            "externalKey": _external_key(context, line),
            "provider": context.provider,
        }
    }


def _record_missing_there(context: _Context, lines: list[ExternalLine]) -> None:
    """Records of the provider's models in the time the export covers that no line accounted for."""
    if not lines:
        return
    start = min(line.starts_at - (POINT_WINDOW if line.is_point else timedelta(0)) for line in lines)
    end = max(
        line.ends_at
        + (POINT_WINDOW if line.is_point else timedelta(0))
        + (timedelta(microseconds=1) if line.starts_at == line.ends_at else timedelta(0))
        for line in lines
    )
    covered = (
        UsageRecord.objects.filter(
            organization=context.organization, occurred_at__gte=start, occurred_at__lt=end
        )
        .exclude(source=UsageSource.ADJUSTMENT)
        .order_by("pk")
    )
    unmatched = [
        r for r in covered.iterator(chunk_size=2000) if r.pk not in context.claimed and context.owns(r)
    ]
    for record in unmatched:
        fingerprint = line_fingerprint(DiscrepancyKind.MISSING_THERE, record.pk)
        try:
            with transaction.atomic():
                Discrepancy.objects.create(
                    organization=context.organization,
                    run=context.run,
                    kind=DiscrepancyKind.MISSING_THERE,
                    fingerprint=fingerprint,
                    external_key=f"{context.provider}:usage:{record.pk}",
                    request_id=record.request_id,
                    model=record.model,
                    window_start=record.occurred_at,
                    window_end=record.occurred_at,
                    usage=record,
                    ours=record.cost,
                    theirs=ZERO,
                    difference=-record.cost,
                )
        except IntegrityError:
            continue


def _finish(batch: SyncBatch, run: ReconciliationRun, parsed: ParsedExport, context: _Context) -> None:
    """Counts and totals from what the run recorded, so a run that was interrupted and resumed
    reports the same as one that ran straight through."""
    found = run.discrepancies.values("kind").annotate(n=Count("pk"), diff=Sum("difference"))
    by_kind = {row["kind"]: row for row in found}
    adjusted = run.discrepancies.filter(adjustment__isnull=False).aggregate(
        n=Count("pk"), total=Sum("adjustment__cost")
    )
    priced = [context.theirs(line) for line in parsed.lines]
    theirs_total = sum((amount for amount in priced if amount is not None), ZERO)
    missing_here = by_kind.get(DiscrepancyKind.MISSING_HERE, {}).get("n", 0)
    unpriced = sum(1 for amount in priced if amount is None)
    changed = sum(
        (
            by_kind.get(kind, {}).get("diff") or ZERO
            for kind in (DiscrepancyKind.MISSING_HERE, DiscrepancyKind.COST_DIFFERS)
        ),
        ZERO,
    )
    now = timezone.now()
    with transaction.atomic():
        run = ReconciliationRun.objects.select_for_update().get(pk=run.pk)
        run.lines_seen = len(parsed.lines)
        run.lines_matched = len(parsed.lines) - missing_here - unpriced
        run.discrepancy_count = sum(row["n"] for row in by_kind.values())
        run.adjusted_count = adjusted["n"] or 0
        run.adjusted_total = adjusted["total"] or ZERO
        run.theirs_total = theirs_total
        run.ours_total = theirs_total - changed
        run.status = RunStatus.SUCCEEDED
        run.finished_at = now
        run.save()
        batch.rows_seen = len(parsed.lines) + len(parsed.errors)
        batch.rows_matched = run.lines_matched
        batch.rows_imported = missing_here
        batch.errors = (parsed.errors + context.errors)[:500]
        batch.status = SyncStatus.PROCESSED
        batch.processed_at = now
        batch.save(
            update_fields=["rows_seen", "rows_matched", "rows_imported", "errors", "status", "processed_at"]
        )
    logger.info(
        "reconciled %s batch %s: %d line(s), %d discrepancies, %d adjusted (%s)",
        batch.provider,
        batch.pk,
        run.lines_seen,
        run.discrepancy_count,
        run.adjusted_count,
        run.adjusted_total,
        extra={"batch_id": batch.pk, "run_id": run.pk},
    )


def sync_batch_fail(*, batch_id: int, error: str) -> None:
    """A batch that cannot be processed at all (its stored content no longer parses)."""
    with transaction.atomic():
        batch = SyncBatch.objects.select_for_update().get(pk=batch_id)
        batch.status = SyncStatus.FAILED
        batch.errors = [*batch.errors, {"line": None, "error": error}]
        batch.processed_at = timezone.now()
        batch.save(update_fields=["status", "errors", "processed_at"])
        ReconciliationRun.objects.filter(pk=batch.run_id).update(
            status=RunStatus.FAILED, error=error, finished_at=timezone.now()
        )


# --- The cost-data webhook -----------------------------------------------------------------------


def cost_data_content(payload: dict) -> tuple[object, str]:
    """The export inside a cost-data delivery: `items` (costswitch lines), `report` (a provider's
    JSON report) or `csv` (the text of a CSV export)."""
    present = [name for name in ("items", "report", "csv") if payload.get(name) is not None]
    if len(present) != 1:
        raise ValidationFailed(
            "A cost-data event carries exactly one of items, report or csv.",
            code="cost_data_invalid",
            details={"fields": present},
        )
    name = present[0]
    if name == "csv":
        if not isinstance(payload["csv"], str):
            raise ValidationFailed("csv must be the text of a CSV export.", code="cost_data_invalid")
        return payload["csv"], "csv"
    return payload[name], "json"


def cost_data_organization(payload: dict) -> Organization:
    slug = payload.get("organization")
    if not isinstance(slug, str) or not slug:
        raise ValidationFailed(
            "organization (the slug of the organization the usage belongs to) is required.",
            code="cost_data_invalid",
            details={"organization": ["Required."]},
        )
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None:
        raise ValidationFailed(f"Unknown organization {slug!r}.", code="unknown_organization")
    return organization


def cost_data_check(payload: dict) -> None:
    """Refuse a malformed cost-data event before it is stored (the sender gets the reason)."""
    cost_data_organization(payload)
    content, fmt = cost_data_content(payload)
    parsed = parse_export(provider=str(payload.get("provider") or ""), content=content, format=fmt)
    if not parsed.lines:
        reason = parsed.errors[0]["error"] if parsed.errors else "the export is empty"
        raise ValidationFailed(
            f"No usable line in the export: {reason}",
            code="no_usable_lines",
            details={"errors": parsed.errors[:20]},
        )


def cost_data_process(webhook: InboundWebhook) -> dict:
    """Webhook processor for `cost-data`: turn the stored delivery into a sync batch (once: the
    batch is one-to-one with the delivery) that the worker reconciles."""
    existing = SyncBatch.objects.filter(inbound_webhook=webhook).first()
    if existing is None:
        payload = parse_json(webhook.body.encode())
        content, fmt = cost_data_content(payload)
        existing = sync_batch_create(
            organization=cost_data_organization(payload),
            provider=str(payload.get("provider") or ""),
            source=SyncSource.WEBHOOK,
            content=content,
            format=fmt,
            inbound_webhook=webhook,
        )
    return {"batch_id": existing.pk, "run_id": existing.run_id}


def _dump(content) -> str:
    import simplejson

    return simplejson.dumps(content, use_decimal=True)
