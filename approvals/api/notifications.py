"""Notifications over HTTP: the caller's in-app inbox, and who is notified about a budget."""

from urllib.parse import urlsplit

import django_filters
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import notifications as services
from approvals.models import InboxEntry, NotificationChannel, NotificationEvent, NotificationSubscription
from budgets.principals import principal_from_request
from costswitch.api.filters import CamelCaseFilterSet, StrictBooleanFilter
from costswitch.api.routers import OptionalSlashRouter
from costswitch.api.serializers import StrictFieldsMixin, validated
from costswitch.webhooks import verify_delivery, webhook_store


class InboxEntrySerializer(serializers.ModelSerializer):
    notification_id = serializers.IntegerField()
    event = serializers.CharField(source="notification.event")
    subject = serializers.CharField(source="notification.subject")
    body = serializers.CharField(source="notification.body")
    data = serializers.JSONField(source="notification.data")
    budget_id = serializers.IntegerField(source="notification.budget_id")
    budget_name = serializers.CharField(source="notification.budget.name")
    read = serializers.SerializerMethodField()

    class Meta:
        model = InboxEntry
        fields = [
            "id",
            "notification_id",
            "event",
            "subject",
            "body",
            "data",
            "budget_id",
            "budget_name",
            "created_at",
            "read",
            "read_at",
        ]

    def get_read(self, entry: InboxEntry) -> bool:
        return entry.read_at is not None


class InboxFilterSet(CamelCaseFilterSet):
    unread = StrictBooleanFilter(field_name="read_at", lookup_expr="isnull")
    event = django_filters.ChoiceFilter(field_name="notification__event", choices=NotificationEvent.choices)
    budget = django_filters.NumberFilter(field_name="notification__budget_id")

    class Meta:
        model = InboxEntry
        fields = ["unread", "event", "budget"]


class NotificationInboxViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's in-app notifications, newest first; `?unread=true` for the unread ones."""

    queryset = InboxEntry.objects.none()
    lookup_value_regex = r"\d+"
    serializer_class = InboxEntrySerializer
    filterset_class = InboxFilterSet

    def get_queryset(self):
        return services.inbox_for_principal(principal_from_request(self.request))

    @extend_schema(request=None, responses=InboxEntrySerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        entry = services.inbox_mark_read(principal=principal_from_request(request), entry_id=int(pk))
        return Response(InboxEntrySerializer(self.get_queryset().get(pk=entry.pk)).data)


class SubscriptionInputSerializer(StrictFieldsMixin, serializers.Serializer):
    channel = serializers.ChoiceField(choices=NotificationChannel.choices)
    user_id = serializers.IntegerField(required=False, min_value=1)
    url = serializers.URLField(required=False, max_length=2000)
    secret = serializers.CharField(required=False, max_length=200, min_length=16, write_only=True)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=NotificationEvent.choices), required=False, max_length=20
    )

    def validate(self, attrs):
        channel = attrs["channel"]
        if channel == NotificationChannel.WEBHOOK:
            if "url" not in attrs:
                raise serializers.ValidationError({"url": ["Required for a webhook."]})
            if "user_id" in attrs:
                raise serializers.ValidationError({"user_id": ["A webhook has a URL, not a user."]})
            if urlsplit(attrs["url"]).scheme not in ("http", "https"):
                raise serializers.ValidationError({"url": ["Must be an http or https URL."]})
        else:
            if "user_id" not in attrs:
                raise serializers.ValidationError({"user_id": [f"Required for {channel}."]})
            for field in ("url", "secret"):
                if field in attrs:
                    raise serializers.ValidationError({field: ["Only webhooks have one."]})
        return attrs


class SubscriptionsInputSerializer(StrictFieldsMixin, serializers.Serializer):
    subscriptions = SubscriptionInputSerializer(many=True, max_length=100)


class SubscriptionOutputSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(allow_null=True)
    username = serializers.CharField(source="user.username", allow_null=True, default=None)
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = NotificationSubscription
        fields = ["id", "channel", "user_id", "username", "url", "has_secret", "events", "created_at"]

    def get_has_secret(self, subscription: NotificationSubscription) -> bool:
        return bool(subscription.secret)


class RecipientSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(source="pk")
    username = serializers.CharField()
    email = serializers.EmailField()


class BudgetNotificationsSerializer(serializers.Serializer):
    budget_id = serializers.IntegerField()
    using_defaults = serializers.BooleanField()
    subscriptions = SubscriptionOutputSerializer(many=True)
    default_recipients = RecipientSerializer(many=True)


class BudgetNotificationsView(APIView):
    """Who is notified about a budget, on which channels, of which events (its owners only). PUT
    replaces the list; an empty list goes back to the defaults: the budget's owners, in-app and by
    email. A webhook's secret is never shown again; leave it out of a PUT to keep it."""

    def _answer(self, budget, subscriptions) -> Response:
        body = {
            "budget_id": budget.pk,
            "using_defaults": not subscriptions,
            "subscriptions": subscriptions,
            "default_recipients": services.default_recipients(budget),
        }
        return Response(BudgetNotificationsSerializer(body).data)

    @extend_schema(responses=BudgetNotificationsSerializer, operation_id="budgets_notifications_get")
    def get(self, request, budget_id: int):
        budget, subscriptions = services.subscriptions_get(
            principal=principal_from_request(request), budget_id=budget_id
        )
        return self._answer(budget, subscriptions)

    @extend_schema(
        request=SubscriptionsInputSerializer,
        responses=BudgetNotificationsSerializer,
        operation_id="budgets_notifications_update",
    )
    def put(self, request, budget_id: int):
        data = validated(SubscriptionsInputSerializer, request.data)
        specs = [
            services.SubscriptionSpec(
                channel=item["channel"],
                user_id=item.get("user_id"),
                url=item.get("url", ""),
                secret=item.get("secret"),
                events=tuple(item.get("events", ())),
            )
            for item in data["subscriptions"]
        ]
        principal = principal_from_request(request)
        subscriptions = services.subscriptions_replace(principal=principal, budget_id=budget_id, specs=specs)
        budget, _ = services.subscriptions_get(principal=principal, budget_id=budget_id)
        return self._answer(budget, subscriptions)


class BudgetAlertWebhook(APIView):
    """`POST /api/v1/webhooks/budget-alert`: an alert about a budget from an external system, signed
    like every inbound webhook (costswitch.webhooks). Checked, stored raw and acknowledged (202); the
    worker raises the alert and notifies the budget's owners (event `external_alert`)."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=None, responses={202: dict}, operation_id="webhooks_budget_alert")
    def post(self, request):
        delivery = verify_delivery(request)
        services.external_alert_parse(delivery.payload)
        receipt = webhook_store(endpoint=services.EXTERNAL_ALERT_ENDPOINT, delivery=delivery)
        return Response(
            {
                "event_id": receipt.webhook.event_id,
                "status": "duplicate" if receipt.duplicate else receipt.webhook.status,
            },
            status=status.HTTP_202_ACCEPTED,
        )


router = OptionalSlashRouter()
router.register("notifications", NotificationInboxViewSet, basename="notification")

urlpatterns = [
    path(
        "budgets/<int:budget_id>/notifications",
        BudgetNotificationsView.as_view(),
        name="budget-notifications",
    ),
    path("webhooks/budget-alert", BudgetAlertWebhook.as_view(), name="webhook-budget-alert"),
    *router.urls,
]
