"""The dashboard: the budget tree with each budget's bar and forecast, open alerts, and this
period's spend by model and by team. The numbers refresh by HTMX polling of one partial."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from budgets import reports
from budgets.views import page, web_view
from costswitch import charts


def _numbers(request: HttpRequest) -> dict:
    principal = request.principal
    since = reports.period_start(principal)
    return {
        "tree": reports.budget_tree(principal),
        "alerts": reports.active_alerts(principal),
        "since": since,
        "by_model": charts.bar_chart(reports.spend_by(principal, dimension="model", since=since)),
        "by_team": charts.bar_chart(reports.spend_by(principal, dimension="team", since=since)),
    }


@web_view
def dashboard(request: HttpRequest) -> HttpResponse:
    return page(request, "analytics/dashboard.html", _numbers(request))


@web_view
def dashboard_numbers(request: HttpRequest) -> HttpResponse:
    """The polled partial: the same template the page includes."""
    return render(request, "analytics/_numbers.html", _numbers(request))
