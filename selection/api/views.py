"""Cost estimates over HTTP (`POST /api/v1/cost/estimate`, alias `POST /api/v1/models/estimate`)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from budgets.principals import principal_from_request
from costswitch.api.serializers import validated
from selection.api.serializers import CostEstimateInputSerializer, estimate_body
from selection.estimates import ChatRequest, estimate_request


class CostEstimateView(APIView):
    """Price a request on its model and alternatives before sending it; nothing is reserved."""

    @extend_schema(request=CostEstimateInputSerializer, responses={200: dict})
    def post(self, request):
        data = validated(CostEstimateInputSerializer, request.data)
        chat = data["request"]
        result = estimate_request(
            principal=principal_from_request(request),
            request=ChatRequest(
                messages=chat["messages"],
                model=chat.get("model"),
                max_tokens=chat.get("max_tokens") or chat.get("max_completion_tokens"),
                tools=chat.get("tools"),
                task_type=chat.get("task_type"),
            ),
            alternatives=data["alternatives"],
        )
        return Response(estimate_body(result))
