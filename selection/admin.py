"""Django admin for steering rules (versioned: saving publishes a new version) and decisions
(read-only: they are the record of what the engine did)."""

from django import forms
from django.contrib import admin

from costswitch.admin import ReadOnlyAdminMixin
from models_registry.models import ModelProfile
from selection.models import Decision, LearnedOutcomeModel, OutcomeLearningState, RuleSetVersion
from selection.rules import RulesInvalid, parse_rules
from selection.services import rule_set_publish


class RuleSetVersionForm(forms.ModelForm):
    class Meta:
        model = RuleSetVersion
        fields = ["organization", "source", "note"]
        widgets = {
            "source": forms.Textarea(attrs={"rows": 30, "cols": 100, "style": "font-family: monospace"})
        }

    def clean_source(self) -> str:
        source = self.cleaned_data["source"]
        try:
            parse_rules(source, known_models=set(ModelProfile.objects.values_list("pk", flat=True)))
        except RulesInvalid as invalid:
            raise forms.ValidationError(
                [
                    f"line {p.line}: {p.field or 'top level'}: {p.message}"
                    if p.line
                    else f"{p.field}: {p.message}"
                    for p in invalid.problems
                ]
            ) from None
        return source


@admin.register(RuleSetVersion)
class RuleSetVersionAdmin(admin.ModelAdmin):
    """Add a version to change an organization's rules (start from the newest with "Save as new"
    on its page); published versions are never edited, so every decision names the rules it used."""

    form = RuleSetVersionForm
    list_display = ["organization", "version", "rule_count", "note", "created_by", "created_at"]
    list_filter = ["organization"]
    readonly_fields = ["version", "rule_count", "created_by", "created_at"]
    save_as = True

    def has_change_permission(self, request, obj=None) -> bool:
        # The change page shows the version (read-only) so it can be copied with "Save as new".
        return obj is None or request.method == "GET"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        published = rule_set_publish(
            organization=form.cleaned_data["organization"],
            source=form.cleaned_data["source"],
            created_by=request.user,
            note=form.cleaned_data.get("note", ""),
        )
        obj.pk = published.pk
        obj.version = published.version


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "organization",
        "team",
        "outcome",
        "requested_model",
        "selected_model",
        "task_type",
        "estimated_cost",
        "refusal_code",
        "rule_name",
    ]
    list_filter = ["outcome", "task_type", "strategy", "refusal_code", "organization"]
    search_fields = ["request_id", "selected_model", "requested_model"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "team"]


@admin.register(LearnedOutcomeModel)
class LearnedOutcomeModelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What each organization has learned per model from reported outcomes (weights not shown)."""

    list_display = ["organization", "model", "samples", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["model"]
    exclude = ["weights"]


@admin.register(OutcomeLearningState)
class OutcomeLearningStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["organization", "learned", "version", "watermark", "updated_at"]
