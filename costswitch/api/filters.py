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
