"""OpenAI-compatible endpoints: `POST /v1/chat/completions`, `GET /v1/models`, and what a
conversation cost (`GET /v1/costswitch/conversations/{id}`). Errors use OpenAI's shape."""

from collections.abc import Callable
from decimal import Decimal

import simplejson
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from budgets.principals import principal_from_request
from budgets.selectors import usage_for_principal
from costswitch.money import display_decimal
from selection.gateway import conversations, services
from selection.gateway.errors import GatewayError, handle_exception
from selection.snapshot import registry_snapshot


class _AnyAccept(BaseContentNegotiation):
    """The gateway answers JSON or an event stream whatever Accept says (curl, SDKs alike)."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _GatewayView(APIView):
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AnyAccept

    def get_exception_handler(self):
        return handle_exception


class ChatCompletionsView(_GatewayView):
    """Chat completions through costswitch: the model is chosen (`"auto"`) or checked against rules
    and budgets, its cost held, the provider called (with failover), and the real usage charged."""

    @extend_schema(
        request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT}, operation_id="chat_completions"
    )
    def post(self, request):
        # The raw body, not request.data: the camelCase parser must not touch what is forwarded.
        gateway_request = services.parse_chat_request(request._request.body, request.headers)
        result = services.chat_completion(principal=principal_from_request(request), request=gateway_request)
        if result.stream is not None:
            response = StreamingHttpResponse(result.stream, status=result.status)
        else:
            response = _Answer(result.content, status=result.status, after_sending=result.after_sending)
        for name, value in result.headers.items():
            response[name] = value
        return response


class _Answer(HttpResponse):
    """A finished answer that runs `after_sending` (the ledger write) in close(), which the WSGI
    server calls once the last byte is out, or the client is gone: the caller does not wait for it."""

    def __init__(self, content: bytes, *, status: int, after_sending: Callable[[], None] | None):
        super().__init__(content, status=status)
        self.after_sending = after_sending

    def close(self) -> None:
        if self.after_sending is not None:
            after_sending, self.after_sending = self.after_sending, None
            after_sending()
        super().close()


class ModelListView(_GatewayView):
    """The models a request may name, in OpenAI's list format, plus "auto"."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="list_models")
    def get(self, request):
        principal_from_request(request)
        registry = registry_snapshot()
        data = [{"id": "auto", "object": "model", "created": 0, "owned_by": "costswitch"}]
        data += [
            {"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}
            for model in sorted(registry.models.values(), key=lambda m: m.id)
            if model.usable
        ]
        return JsonResponse({"object": "list", "data": data})


class ConversationCostView(_GatewayView):
    """What one conversation cost the caller's scope: total, per model and per tool."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="conversation_cost")
    def get(self, request, conversation_id: str):
        usage = usage_for_principal(principal_from_request(request))
        summary = conversations.conversation_summary(usage, conversation_id)
        if not summary["requests"]:
            raise GatewayError(
                f"No usage recorded for conversation {conversation_id!r}.", status=404, code="not_found"
            )
        body = simplejson.dumps(_plain(summary), use_decimal=True)
        return HttpResponse(body, content_type="application/json")


def _plain(value):
    """Amounts as JSON numbers at the ledger's precision (simplejson writes Decimals exactly)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return display_decimal(value) if isinstance(value, Decimal) else value
