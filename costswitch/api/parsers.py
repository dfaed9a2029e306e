from decimal import Decimal

import simplejson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from djangorestframework_camel_case.parser import CamelCaseJSONParser
from djangorestframework_camel_case.settings import api_settings
from djangorestframework_camel_case.util import underscoreize
from rest_framework.exceptions import ParseError


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


def parse_json(raw: bytes, encoding: str = "utf-8"):
    """JSON bytes -> snake_case data, fractions as Decimal, NaN/Infinity and absurd nesting refused.
    The one reading of JSON bodies: the API parser and signed webhooks both use it."""
    try:
        data = simplejson.loads(raw.decode(encoding), parse_float=Decimal, parse_constant=_reject_constant)
        return underscoreize(data, **api_settings.JSON_UNDERSCOREIZE)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"Malformed JSON: {exc}") from exc
    except RecursionError as exc:  # absurdly deep nesting: refuse it, never a 500
        raise ParseError("Malformed JSON: nested too deeply.") from exc


class CamelCaseDecimalJSONParser(CamelCaseJSONParser):
    """camelCase JSON in; numbers with a fraction become Decimal, never float, so money stays exact."""

    def parse(self, stream, media_type=None, parser_context=None):
        context = parser_context or {}
        raw = read_limited(stream, context.get("request"))
        return parse_json(raw, context.get("encoding", settings.DEFAULT_CHARSET))


def read_limited(stream, request=None) -> bytes:
    """The body, or RequestDataTooBig past DATA_UPLOAD_MAX_MEMORY_SIZE, as Django's `request.body`
    does: DRF hands parsers the raw stream, which skips that check."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream.read()
    length = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
    if length.isdigit() and int(length) > limit:  # refused before a byte of it is read
        raise RequestDataTooBig(f"Request body exceeded DATA_UPLOAD_MAX_MEMORY_SIZE ({limit} bytes).")
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise RequestDataTooBig(f"Request body exceeded DATA_UPLOAD_MAX_MEMORY_SIZE ({limit} bytes).")
    return raw
