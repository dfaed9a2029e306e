"""The OpenAI-compatible gateway: admit -> forward (with failover) -> settle, for one chat request.

Money rules, in order of the flow:
- `admit()` chooses the model and holds its maximum cost (input + max output tokens) on the caller's
  budgets; a refusal never reaches a provider.
- Failover reuses that one reservation. The decision's fallback chain only lists models whose
  estimated cost is at most the chosen model's (`selection.admission._fallback_chain`), so the hold
  covers whichever model ends up serving; a model dearer than the hold is skipped, never called.
- Whatever happens after admission, the reservation is settled (with the provider's `usage`, or an
  estimate of what was produced) or released (nothing was produced): never left pending.
- An answer is settled once its last byte is sent (the server closes the response), so the caller
  never waits for the ledger write; until then its hold, at least the real cost, covers it. Only
  answers that report a conversation's running total are settled before they are sent.
"""

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import httpx

from budgets.principals import Principal
from budgets.services.ledger import UsageReport, reservation_release, reservation_settle
from costswitch.errors import DomainError
from costswitch.money import display_decimal
from models_registry.pricing import request_cost
from models_registry.tokens import count_text_tokens
from selection.admission import Admission, AdmissionRequest, admit
from selection.choices import Priority
from selection.engine import Candidate
from selection.estimates import ChatRequest
from selection.gateway import conversations
from selection.gateway.errors import GatewayError
from selection.gateway.upstream import (
    RETRYABLE_STATUSES,
    Upstream,
    UpstreamUnavailable,
    http_client,
    request_timeout,
    upstream_for,
)
from selection.models import Decision

logger = logging.getLogger(__name__)

GATEWAY_PATH = "/v1/chat/completions"
PRIORITY_HEADER = "X-Costswitch-Priority"
# Response headers.
MODEL_HEADER = "x-costswitch-model"
COST_HEADER = "x-costswitch-cost"
DECISION_HEADER = "x-costswitch-decision-id"
BUDGET_STATUS_HEADER = "x-costswitch-budget-status"
CONVERSATION_COST_HEADER = "x-costswitch-conversation-cost"
RESERVED_HEADER = "x-costswitch-reserved"
# Upstream headers worth passing back to the client.
PASSED_HEADERS = ("x-request-id", "openai-processing-ms", "openai-organization", "openai-version")


@dataclass(frozen=True)
class GatewayRequest:
    """A validated client request: the body to forward and what costswitch reads from it."""

    body: dict
    chat: ChatRequest
    stream: bool
    include_usage: bool
    priority: str
    conversation_id: str
    conversation_cap: Decimal | None
    metadata: dict
    end_user: str


@dataclass
class GatewayResult:
    """What the view sends: a finished JSON body, or a stream that settles as it ends.
    `after_sending`: the settlement of a finished body, for the server to run once the body is
    sent (the caller does not wait for the ledger write; the hold covers the call meanwhile)."""

    status: int
    headers: dict[str, str]
    content: bytes = b""
    stream: "SettlingStream | None" = None
    after_sending: Callable[[], None] | None = None


def parse_chat_request(raw: bytes, headers: Mapping[str, str]) -> GatewayRequest:
    """Validate what costswitch must read (model, messages, limits, stream); every other field is
    forwarded to the provider untouched."""
    try:
        body = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GatewayError(f"The body is not valid JSON: {exc}.", code="malformed_json") from None
    if not isinstance(body, dict):
        raise GatewayError("The body must be a JSON object.", code="malformed_json")
    model = body.get("model", "auto")
    if not isinstance(model, str) or not model:
        raise GatewayError('model must be a model id or "auto".', code="invalid_model", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError("messages must be a non-empty list.", code="invalid_messages", param="messages")
    for index, message in enumerate(messages):
        _check_message(message, index)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise GatewayError(
            "max_tokens must be a positive integer.", code="invalid_max_tokens", param="max_tokens"
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise GatewayError("stream must be a boolean.", code="invalid_stream", param="stream")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise GatewayError("tools must be a list.", code="invalid_tools", param="tools")
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise GatewayError(
            "response_format must be an object.", code="invalid_response_format", param="response_format"
        )
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise GatewayError("metadata must be an object.", code="invalid_metadata", param="metadata")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise GatewayError(
            "stream_options must be an object.", code="invalid_stream_options", param="stream_options"
        )
    priority = headers.get(PRIORITY_HEADER, Priority.NORMAL)
    if priority not in Priority.values:
        raise GatewayError(
            f"{PRIORITY_HEADER} must be one of {', '.join(Priority.values)}.", code="invalid_priority"
        )
    user = body.get("user")
    return GatewayRequest(
        body=body,
        chat=ChatRequest(
            messages=messages,
            model=model,
            max_tokens=max_tokens,
            tools=tools,
            response_format=response_format,
        ),
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        priority=priority,
        conversation_id=conversations.conversation_id_of(headers, body),
        conversation_cap=conversations.conversation_cap(headers),
        metadata=metadata,
        end_user=user if isinstance(user, str) else "",
    )


def _check_message(message: Any, index: int) -> None:
    param = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise GatewayError(f"{param} must be an object with a role.", code="invalid_messages", param=param)
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise GatewayError(
            f"{param}.content must be a string or a list of parts.", code="invalid_messages", param=param
        )
    if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
        raise GatewayError(f"{param}.content parts must be objects.", code="invalid_messages", param=param)


def chat_completion(*, principal: Principal, request: GatewayRequest) -> GatewayResult:
    """Admit, forward (failing over along the decision's chain) and settle one chat request."""
    admission = _admit(principal, request)
    flow = _Flow(principal=principal, request=request, admission=admission)
    handed_off = False
    try:
        result = flow.forward()
        handed_off = True
        return result
    finally:
        if not handed_off:
            flow.release()


def _admit(principal: Principal, request: GatewayRequest) -> Admission:
    admission_request = AdmissionRequest(
        chat=request.chat,
        path=GATEWAY_PATH,
        priority=request.priority,
        metadata=request.metadata,
    )
    cap = request.conversation_cap
    if not request.conversation_id or cap is None:
        return admit(principal=principal, request=admission_request)
    organization = principal.organization
    with conversations.conversation_lock(organization, request.conversation_id):
        # Cheap refusal first: a conversation already at its cap reaches no model.
        committed = conversations.conversation_committed(organization, request.conversation_id)
        conversations.check_room(committed, Decimal(0), cap, request.conversation_id)
        admission = admit(principal=principal, request=admission_request)
        reservation = admission.reservation
        try:
            conversations.check_room(committed, reservation.amount, cap, request.conversation_id)
        except DomainError:
            reservation_release(principal=principal, reservation_id=reservation.pk)
            _note(admission.decision, {"source": "gateway", "effect": "refused: conversation budget"})
            raise
        conversations.tag_reservation(reservation, request.conversation_id)
    return admission


def _note(decision: Decision, *changes: dict) -> None:
    """Add what the gateway did (failover, refusal) to the decision the explainer shows."""
    decision.changes = [*decision.changes, *changes]
    Decision.objects.filter(pk=decision.pk).update(changes=decision.changes)


@dataclass
class _Flow:
    principal: Principal
    request: GatewayRequest
    admission: Admission
    attempts: list[dict] = field(default_factory=list)
    finished: bool = False

    @property
    def reservation(self):
        return self.admission.reservation

    def route(self) -> Iterator[Candidate]:
        """The chosen model, then its fallbacks that the reservation covers."""
        yield self.admission.chosen
        for candidate in self.admission.fallback_chain:
            if candidate.cost <= self.reservation.amount:
                yield candidate

    def forward(self) -> GatewayResult:
        for candidate in self.route():
            response = None
            try:
                upstream = upstream_for(candidate.id, self.admission.registry_version)
                response = _send(upstream, self._body_for(upstream))
                if not self.request.stream:
                    response.read()  # the whole answer, within the read timeout
            except (UpstreamUnavailable, httpx.TransportError) as exc:
                if response is not None:
                    response.close()
                self._failed(candidate, _describe(exc))
                continue
            if response.status_code in RETRYABLE_STATUSES:
                response.close()
                self._failed(candidate, f"HTTP {response.status_code}")
                continue
            self._record_failover(served=candidate.id)
            if response.status_code >= 400:
                return self._provider_refusal(candidate, response)
            if self.request.stream:
                return self._stream(candidate, response)
            return self._complete(candidate, response)
        self._record_failover(served=None)
        tried = "; ".join(f"{a['model']}: {a['error']}" for a in self.attempts)
        raise GatewayError(
            f"No provider could serve this request ({tried}). Nothing was charged.",
            status=502,
            code="upstream_unavailable",
        )

    def _body_for(self, upstream: Upstream) -> dict:
        body = {**self.request.body, "model": upstream.api_model_name}
        if self.request.stream:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return body

    def _failed(self, candidate: Candidate, error: str) -> None:
        logger.warning("gateway: %s failed (%s), trying the next model", candidate.id, error)
        self.attempts.append({"model": candidate.id, "error": error})

    def _record_failover(self, *, served: str | None) -> None:
        if not self.attempts:
            return
        effect = f"failover to {served}" if served else "every model failed; reservation released"
        _note(self.admission.decision, {"source": "gateway", "effect": effect, "attempts": self.attempts})

    def headers(self, candidate: Candidate) -> dict[str, str]:
        decision = self.admission.decision
        return {
            MODEL_HEADER: candidate.id,
            DECISION_HEADER: str(decision.pk),
            BUDGET_STATUS_HEADER: str(decision.budget.get("aggregate_status") or "normal"),
            RESERVED_HEADER: str(display_decimal(self.reservation.amount)),
        }

    def _provider_refusal(self, candidate: Candidate, response: httpx.Response) -> GatewayResult:
        """A provider's own 4xx (bad parameter, content policy): the caller sees it as is; nothing
        was produced, so nothing is charged."""
        try:
            content = response.read()
        finally:
            response.close()
        self.release()
        headers = self.headers(candidate)
        headers["Content-Type"] = response.headers.get("content-type", "application/json")
        return GatewayResult(status=response.status_code, headers=headers, content=content)

    def _complete(self, candidate: Candidate, response: httpx.Response) -> GatewayResult:
        try:
            content = response.read()
        finally:
            response.close()
        try:
            data = json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = {}
        message = {}
        if isinstance(data, dict) and data.get("choices"):
            first = data["choices"][0] or {}
            message = (first.get("message") or {}) if isinstance(first, dict) else {}
        tool_calls = [
            {"id": call.get("id"), "name": (call.get("function") or {}).get("name")}
            for call in message.get("tool_calls") or []
            if isinstance(call, dict)
        ]
        report = self.usage_report(
            candidate,
            usage=data.get("usage") if isinstance(data, dict) else None,
            text=_message_text(message),
            tool_calls=tool_calls,
            extra={"stream": False},
        )
        headers = self.headers(candidate)
        headers[COST_HEADER] = str(display_decimal(report.cost))
        headers["Content-Type"] = response.headers.get("content-type", "application/json")
        for name in PASSED_HEADERS:
            if name in response.headers:
                headers["x-upstream-request-id" if name == "x-request-id" else name] = response.headers[name]
        result = GatewayResult(status=response.status_code, headers=headers, content=content)
        if not self.request.conversation_id:
            result.after_sending = partial(self.book_after_sending, report)
            return result
        # The conversation's total in the header includes this call: book it before answering.
        self.book(report)
        spent = conversations.conversation_cost(self.principal.organization, self.request.conversation_id)
        headers[CONVERSATION_COST_HEADER] = str(display_decimal(spent))
        return result

    def _stream(self, candidate: Candidate, response: httpx.Response) -> GatewayResult:
        headers = self.headers(candidate)
        headers.update(
            {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        return GatewayResult(status=200, headers=headers, stream=SettlingStream(self, candidate, response))

    def usage_report(
        self,
        candidate: Candidate,
        *,
        usage: Any,
        text: str,
        tool_calls: list[dict],
        extra: dict,
    ) -> UsageReport:
        """The provider's usage at the model's list price; without usage (a provider that sends
        none, a stream cut short), the prompt as counted at admission and the output text
        produced so far."""
        counted = _usage_counts(usage)
        if counted is not None:
            input_tokens, output_tokens, cached = counted
            source = "provider"
        else:
            input_tokens = candidate.input_tokens
            output_tokens = count_text_tokens(text, tokenizer=candidate.model.tokenizer) if text else 0
            cached = 0
            source = "estimated"
        cost = request_cost(
            candidate.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
        ).total
        metadata = {
            "gateway": True,
            "decision_id": self.admission.decision.pk,
            "usage_source": source,
            **extra,
        }
        if tool_calls:
            metadata["tool_calls"] = tool_calls
        if self.attempts:
            metadata["failover"] = self.attempts
        if self.request.end_user:
            metadata["end_user"] = self.request.end_user
        return UsageReport(
            request_id=self.reservation.request_id,
            cost=cost,
            model=candidate.id,
            provider=candidate.model.provider,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
            conversation_id=self.request.conversation_id,
            metadata=metadata,
        )

    def book(self, report: UsageReport) -> None:
        """Settle the reservation with `report`: the charge replaces the hold."""
        reservation_settle(principal=self.principal, reservation_id=self.reservation.pk, report=report)
        self.finished = True

    def book_after_sending(self, report: UsageReport) -> None:
        """`book`, run by the server after the answer went out: a failure can no longer reach the
        caller, so it is logged with the charge (the hold stays until the expiry sweep)."""
        try:
            self.book(report)
        except Exception:
            logger.exception(
                "gateway: settling reservation %s (request %s, cost %s) after sending failed",
                self.reservation.pk,
                report.request_id,
                report.cost,
            )

    def release(self) -> None:
        if not self.finished:
            self.finished = True
            reservation_release(principal=self.principal, reservation_id=self.reservation.pk)


def _send(upstream: Upstream, body: dict) -> httpx.Response:
    """Send the request and return once the status and headers are in (the body is read by the
    caller: whole, or as a stream)."""
    client = http_client()
    request = client.build_request(
        "POST",
        upstream.url,
        headers=upstream.headers(),
        content=json.dumps(body, separators=(",", ":")).encode(),
        timeout=request_timeout(),
    )
    return client.send(request, stream=True)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return f"connection error ({type(exc).__name__})"
    return str(exc)


def _usage_counts(usage: Any) -> tuple[int, int, int] | None:
    """(input, output, cached input) tokens from an OpenAI `usage` object, None if unusable."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (prompt, completion)):
        return None
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    cached = cached if isinstance(cached, int) and not isinstance(cached, bool) and cached >= 0 else 0
    return prompt, completion, min(cached, prompt)


def _message_text(message: dict) -> str:
    parts = []
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    for call in message.get("tool_calls") or []:
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        parts.append(str(function.get("name") or ""))
        parts.append(str(function.get("arguments") or ""))
    return "".join(parts)


class SettlingStream:
    """The provider's SSE stream, passed through event by event, that settles the reservation when
    it ends: from the final usage chunk, or, when the client went away (the server then closes
    this iterator) or the provider broke off, from the text streamed so far."""

    def __init__(self, flow: _Flow, candidate: Candidate, response: httpx.Response):
        self.flow = flow
        self.candidate = candidate
        self.response = response
        self.text: list[str] = []
        self.tool_calls: dict[int, dict] = {}
        self.usage: Any = None
        self.chunks = 0
        self.outcome = "client_disconnected"  # until the stream proves otherwise
        self._events = self._generate()

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def _generate(self) -> Iterator[bytes]:
        event: list[str] = []
        try:
            for line in self.response.iter_lines():
                if line:
                    event.append(line)
                    continue
                if not event:
                    continue
                payload = self._read(event)
                event = []
                if payload is _DONE:
                    self.outcome = "completed"
                    cost = self._report().cost
                    # An SSE comment: SDKs skip it, curl users see the charge (booked once it is sent).
                    yield f": x-costswitch-cost {display_decimal(cost)}\n\ndata: [DONE]\n\n".encode()
                    return
                if payload is not None:
                    self.chunks += 1
                    yield payload
        except httpx.HTTPError as exc:
            logger.warning("gateway: stream from %s broke off: %s", self.candidate.id, _describe(exc))
            self.outcome = "upstream_failed"
        else:
            self.outcome = "upstream_ended"  # no [DONE]: settle on what arrived
        finally:
            self._finish()

    def _read(self, lines: list[str]):
        """The bytes to send for one event (None to hold back a usage chunk the client did not ask
        for), or _DONE; the text, tool calls and usage it carries are noted on the way."""
        raw = "\n".join(lines) + "\n\n"
        data = "".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
        if data == "[DONE]":
            return _DONE
        try:
            chunk = json.loads(data) if data else None
        except json.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            return raw.encode()
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = (choice or {}).get("delta") or {}
            if isinstance(delta.get("content"), str):
                self.text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                entry = self.tool_calls.setdefault(
                    call.get("index", 0), {"id": None, "name": "", "arguments": ""}
                )
                function = call.get("function") or {}
                entry["id"] = call.get("id") or entry["id"]
                entry["name"] += function.get("name") or ""
                entry["arguments"] += function.get("arguments") or ""
        if not chunk.get("choices") and chunk.get("usage") and not self.flow.request.include_usage:
            return None
        return raw.encode()

    def _report(self) -> UsageReport:
        calls = [self.tool_calls[index] for index in sorted(self.tool_calls)]
        text = "".join(self.text) + "".join(c["name"] + c["arguments"] for c in calls)
        return self.flow.usage_report(
            self.candidate,
            usage=self.usage if self.outcome == "completed" or self.usage else None,
            text=text,
            tool_calls=[{"id": c["id"], "name": c["name"]} for c in calls],
            extra={"stream": self.outcome, "streamed_chunks": self.chunks},
        )

    def close(self) -> None:
        """Called by the server when the response ends or the client disconnects (then the
        generator stops at the event it was sending): always leaves the reservation settled."""
        self._events.close()
        self._finish()

    def _finish(self) -> None:
        self.response.close()
        if not self.flow.finished:
            self.flow.book_after_sending(self._report())


_DONE = object()
