import django_filters
from djangorestframework_camel_case.settings import api_settings
from djangorestframework_camel_case.util import underscoreize


class CamelCaseFilterSet(django_filters.FilterSet):
    """Query parameters are camelCase like the JSON bodies (`?scopeType=team`); without this they
    would be silently ignored and the whole list returned. snake_case names keep working."""

    def __init__(self, data=None, *args, **kwargs):
        if data is not None:
            data = underscoreize(data, **api_settings.JSON_UNDERSCOREIZE)
        super().__init__(data, *args, **kwargs)


_TRUE = ("true", "True", "1")
_FALSE = ("false", "False", "0")


class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """`true` or `false` (or True/False, 1/0), anything else a 400. BooleanFilter reads other values
    (`?active=yes`) as "not given" and lists everything, which hides the typo."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [(value, value) for value in _TRUE + _FALSE])
        kwargs.setdefault("coerce", lambda value: value in _TRUE)
        super().__init__(*args, **kwargs)
