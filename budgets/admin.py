"""Django admin for scopes, budgets and (read-only) the spend ledger.

Money only moves through `budgets.services`: the ledger models (periods, reservations, holds, usage,
charges) are read-only here, API keys are minted by `api_key_create`, and budgets are created and
edited through `budget_create` / `budget_update` acting as a staff principal of the budget's
organization.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import ngettext

from budgets.choices import PeriodKind, ScopeType
from budgets.models import (
    Alert,
    ApiKey,
    Budget,
    BudgetPeriod,
    Membership,
    Organization,
    Reservation,
    ReservationHold,
    Team,
    Threshold,
    UsageCharge,
    UsageRecord,
    User,
)
from budgets.principals import Principal
from budgets.services.budgets import DEFAULT_THRESHOLD_SPECS, budget_create, budget_update
from budgets.services.keys import api_key_create, api_key_revoke
from budgets.services.periods import carry_over_check
from costswitch.admin import ReadOnlyAdminMixin
from costswitch.errors import ValidationFailed

# --- Scopes ---------------------------------------------------------------------------------------


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "log_prompts", "created_at"]
    list_filter = ["log_prompts"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "is_primary"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "organization", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "slug", "organization__name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


class UserMembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["team"]
    fields = ["team", "role", "is_primary"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Organization", {"fields": ["organization"]}))
    add_fieldsets = (
        *DjangoUserAdmin.add_fieldsets,
        ("Organization", {"classes": ["wide"], "fields": ["organization"]}),
    )
    list_display = ["username", "email", "first_name", "last_name", "organization", "is_staff", "is_active"]
    list_filter = ["organization", *DjangoUserAdmin.list_filter]
    list_select_related = ["organization"]
    search_fields = [*DjangoUserAdmin.search_fields, "organization__name"]
    inlines = [UserMembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "is_primary", "created_at"]
    list_filter = ["role", "is_primary", "team__organization", "team"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "user__email", "team__name"]
    autocomplete_fields = ["user", "team"]


# --- API keys -------------------------------------------------------------------------------------


class ApiKeyAddForm(forms.ModelForm):
    """Only what `api_key_create` takes; the prefix and hash come from the generated secret."""

    class Meta:
        model = ApiKey
        fields = [
            "name",
            "organization",
            "team",
            "user",
            "critical",
            "requests_per_minute",
            "tokens_per_minute",
        ]

    def clean(self):
        data = super().clean()
        organization, team, user = data.get("organization"), data.get("team"), data.get("user")
        if team is None and user is None:
            raise forms.ValidationError("Bind the key to a team (service account) or a user.")
        if organization is not None:
            if team is not None and team.organization_id != organization.pk:
                self.add_error("team", "This team belongs to another organization.")
            if user is not None and user.organization_id != organization.pk:
                self.add_error("user", "This user belongs to another organization.")
        return data


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "revoked"

    def lookups(self, request, model_admin):
        return [("no", "Active"), ("yes", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    add_form = ApiKeyAddForm
    list_display = [
        "name",
        "prefix",
        "organization",
        "team",
        "user",
        "critical",
        "requests_per_minute",
        "tokens_per_minute",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [RevokedFilter, "critical", "organization"]
    list_select_related = ["organization", "team", "user"]
    search_fields = ["name", "prefix", "team__name", "user__username"]
    autocomplete_fields = ["organization", "team", "user"]
    date_hierarchy = "created_at"
    actions = ["revoke_keys"]
    fields = [
        "name",
        "organization",
        "team",
        "user",
        "critical",
        "expires_at",
        "requests_per_minute",
        "tokens_per_minute",
        "prefix",
        "key_hash",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    # A key never changes hands: revoke it and mint a new one instead.
    readonly_fields = [
        "organization",
        "team",
        "user",
        "prefix",
        "key_hash",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return self.add_form._meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        # Usage rows point at keys; a key is revoked, never deleted.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        api_key, secret = api_key_create(
            organization=data["organization"],
            name=data["name"],
            team=data.get("team"),
            user=data.get("user"),
            critical=data.get("critical", False),
            requests_per_minute=data.get("requests_per_minute"),
            tokens_per_minute=data.get("tokens_per_minute"),
        )
        # The admin carries on (log entry, redirect) with the form's instance: make it the created row.
        obj.pk = api_key.pk
        obj.prefix, obj.key_hash, obj.created_at = api_key.prefix, api_key.key_hash, api_key.created_at
        obj._state.adding = False
        obj._state.db = api_key._state.db
        messages.success(
            request,
            f"API key {api_key.name!r} created. Copy its secret now, it is shown only this once: {secret}",
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(
            request, ngettext("Revoked %d key.", "Revoked %d keys.", count) % count, messages.SUCCESS
        )


# --- Budgets --------------------------------------------------------------------------------------


class ThresholdInline(admin.TabularInline):
    model = Threshold
    extra = 0
    fields = ["percent", "actions"]


class BudgetForm(forms.ModelForm):
    class Meta:
        model = Budget
        fields = [
            "organization",
            "scope_type",
            "team",
            "user",
            "name",
            "period",
            "limit",
            "currency",
            "starts_at",
            "ends_at",
            "restricted_models",
            "max_cost_per_request",
            "carry_over",
            "carry_over_cap",
            "is_active",
        ]

    def clean(self):
        data = super().clean()
        scope_type = data.get("scope_type", getattr(self.instance, "scope_type", None))
        if self.instance.pk is None and scope_type:
            team, user, organization = data.get("team"), data.get("user"), data.get("organization")
            if scope_type == ScopeType.TEAM and (team is None or user is not None):
                raise forms.ValidationError("A team budget names a team and no user.")
            if scope_type == ScopeType.USER and (user is None or team is not None):
                raise forms.ValidationError("A user budget names a user and no team.")
            if scope_type == ScopeType.ORGANIZATION and (team is not None or user is not None):
                raise forms.ValidationError("An organization budget names neither a team nor a user.")
            scope = team or user
            if organization is not None and scope is not None and scope.organization_id != organization.pk:
                raise forms.ValidationError(f"{scope} belongs to another organization.")
            if data.get("currency") and data["currency"] != settings.COSTSWITCH_CURRENCY:
                self.add_error(
                    "currency", f"This deployment keeps budgets in {settings.COSTSWITCH_CURRENCY}."
                )
            if data.get("period") == PeriodKind.CUSTOM and not data.get("ends_at"):
                self.add_error("ends_at", "A custom period needs an end.")
        starts_at = data.get("starts_at", self.instance.starts_at)
        ends_at = data.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "The end must be after the start.")
        if "carry_over" in data:
            try:
                carry_over_check(
                    period=data.get("period", self.instance.period),
                    carry_over=data["carry_over"],
                    carry_over_cap=data.get("carry_over_cap"),
                )
            except ValidationFailed as exc:
                cap_codes = {"negative_amount", "carry_over_cap_without_policy"}
                self.add_error("carry_over_cap" if exc.code in cap_codes else "carry_over", exc.message)
        return data


def _staff_principal(organization: Organization) -> Principal:
    """Staff act on a budget as an organization-wide manager of the budget's organization."""
    return Principal(organization=organization, org_wide=True)


# Fields the services accept when editing; everything else is fixed once the budget exists.
_EDITABLE_BUDGET_FIELDS = [
    "name",
    "limit",
    "ends_at",
    "restricted_models",
    "max_cost_per_request",
    "carry_over",
    "carry_over_cap",
    "is_active",
]


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    form = BudgetForm
    list_display = ["name", "scope", "period", "limit", "carry_over", "currency", "is_active", "created_at"]
    list_filter = ["is_active", "scope_type", "period", "organization"]
    list_select_related = ["organization", "team", "user"]
    search_fields = ["name", "organization__name", "team__name", "user__username"]
    autocomplete_fields = ["organization", "team", "user"]
    date_hierarchy = "created_at"
    inlines = [ThresholdInline]

    @admin.display(description="scope", ordering="scope_type")
    def scope(self, obj: Budget) -> str:
        return f"{obj.get_scope_type_display()}: {obj.scope_name}"

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["organization", "scope_type", "team", "user", "period", "currency", "starts_at"]

    def save_model(self, request, obj, form, change):
        principal = _staff_principal(obj.organization)
        # BudgetForm checks what the services check, so these do not refuse a validated form.
        if change:
            changes = {
                name: getattr(obj, name) for name in _EDITABLE_BUDGET_FIELDS if name in form.changed_data
            }
            budget_update(principal=principal, budget=obj, **changes)
            return
        budget = budget_create(
            principal=principal,
            name=obj.name,
            scope_type=obj.scope_type,
            scope_id=obj.scope_id,
            limit=obj.limit,
            period=obj.period,
            currency=obj.currency,
            starts_at=obj.starts_at,
            ends_at=obj.ends_at,
            thresholds=[],  # the inline (or the defaults, see save_related) provides them
            restricted_models=obj.restricted_models,
            max_cost_per_request=obj.max_cost_per_request,
            carry_over=obj.carry_over,
            carry_over_cap=obj.carry_over_cap,
        )
        # The admin carries on (inlines, log entry, redirect) with the form's instance.
        obj.pk = budget.pk
        obj._state.adding = False
        obj._state.db = budget._state.db
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        budget = form.instance
        if not change and not budget.thresholds.exists():
            for spec in DEFAULT_THRESHOLD_SPECS:  # one by one, so that each is audited
                Threshold.objects.create(budget=budget, percent=spec.percent, actions=list(spec.actions))
            self.message_user(request, "No thresholds given: the default graduated thresholds were added.")


# --- The ledger (read-only) -----------------------------------------------------------------------


@admin.register(BudgetPeriod)
class BudgetPeriodAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "budget",
        "starts_at",
        "ends_at",
        "limit",
        "spent",
        "reserved",
        "carried_over",
        "percent_committed",
        "closed_at",
    ]
    list_filter = ["budget__scope_type", "budget__period", "budget__organization"]
    list_select_related = ["budget"]
    search_fields = ["budget__name"]
    date_hierarchy = "starts_at"

    @admin.display(description="% committed")
    def percent_committed(self, obj: BudgetPeriod) -> str:
        if obj.limit <= 0:
            return "-"
        return f"{obj.committed * 100 / obj.limit:.1f}%"


class ReservationHoldInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ReservationHold
    fields = ["period", "amount"]
    readonly_fields = ["period", "amount"]
    extra = 0


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "request_id",
        "organization",
        "team",
        "user",
        "api_key",
        "amount",
        "model",
        "state",
        "created_at",
        "expires_at",
    ]
    list_filter = ["state", "organization", "team"]
    list_select_related = ["organization", "team", "user", "api_key"]
    search_fields = ["request_id", "model"]
    date_hierarchy = "created_at"
    inlines = [ReservationHoldInline]


class UsageChargeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = UsageCharge
    fields = ["period", "amount"]
    readonly_fields = ["period", "amount"]
    extra = 0


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "request_id",
        "occurred_at",
        "team",
        "user",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "cost",
        "task_type",
        "project",
        "source",
    ]
    list_filter = ["source", "provider", "task_type", "organization", "team"]
    list_select_related = ["organization", "team", "user"]
    search_fields = ["request_id", "model", "project", "agent", "conversation_id"]
    date_hierarchy = "occurred_at"
    # The ledger grows without bound: skip the second COUNT(*) over the whole table.
    show_full_result_count = False
    inlines = [UsageChargeInline]


@admin.register(UsageCharge)
class UsageChargeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["usage", "period", "amount"]
    list_filter = ["period__budget__scope_type", "period__budget__organization"]
    list_select_related = ["usage", "period__budget"]
    search_fields = ["usage__request_id", "period__budget__name"]
    show_full_result_count = False


# --- Alerts (read-only: raised by the ledger and the sweeps, acknowledged in the API) ------------


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "budget", "kind", "threshold", "percent_used", "acknowledged_at"]
    list_filter = ["kind", "organization"]
    search_fields = ["budget__name", "message"]
    date_hierarchy = "created_at"
    list_select_related = ["budget"]
