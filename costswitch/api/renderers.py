from decimal import Decimal

import simplejson
from djangorestframework_camel_case.render import CamelCaseJSONRenderer
from djangorestframework_camel_case.settings import api_settings
from djangorestframework_camel_case.util import camelize

from costswitch.money import display_decimal


def _display(value):
    if isinstance(value, Decimal):
        return display_decimal(value)
    if isinstance(value, dict):
        return {key: _display(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_display(item) for item in value]
    return value


class CamelCaseDecimalJSONRenderer(CamelCaseJSONRenderer):
    """camelCase JSON out; Decimal is written as an exact JSON number (DRF's encoder would use float)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        data = _display(camelize(data, **api_settings.JSON_UNDERSCOREIZE))
        return simplejson.dumps(
            data, use_decimal=True, default=self.encoder_class().default, ensure_ascii=False
        ).encode()
