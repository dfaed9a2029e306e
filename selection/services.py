"""Writes of the selection app: publishing steering rule sets."""

from django.db import transaction
from django.db.models import Max

from budgets.models import Organization, User
from costswitch.cache import cache_set
from models_registry.models import ModelProfile
from selection.models import RuleSetVersion
from selection.rules import parse_rules
from selection.selectors import rules_version_key


def rule_set_publish(
    *, organization: Organization, source: str, created_by: User | None = None, note: str = ""
) -> RuleSetVersion:
    """Validate and publish a new version of the organization's rules; it is in force in every
    process from the next request. Raises RulesInvalid (nothing is stored) when the YAML is wrong."""
    rules = parse_rules(source, known_models=set(ModelProfile.objects.values_list("pk", flat=True)))
    with transaction.atomic():
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        latest = (
            RuleSetVersion.objects.filter(organization=organization).aggregate(v=Max("version"))["v"] or 0
        )
        version = RuleSetVersion.objects.create(
            organization=organization,
            version=latest + 1,
            source=source,
            rule_count=len(rules.rules),
            note=note,
            created_by=created_by,
        )
        transaction.on_commit(
            lambda: cache_set(rules_version_key(organization.pk), version.pk, timeout=None, keep=True)
        )
    return version
