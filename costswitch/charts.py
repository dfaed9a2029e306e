"""Server-rendered SVG charts: geometry computed here, drawn by templates/includes/*.html.

No JavaScript and nothing from a CDN: a chart is plain SVG the page already holds, so it reads the
same with scripts off and refreshes with the HTMX partial around it. Money stays Decimal up to the
pixel coordinates (floats only for drawing)."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from costswitch.money import ZERO


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    y: int
    width: float  # in percent of the plot width


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    height: int
    total: Decimal

    ROW = 26


def bar_chart(rows: list[tuple[str, Decimal]]) -> BarChart:
    """Horizontal bars, longest first as given; widths relative to the largest value."""
    top = max((value for _, value in rows), default=ZERO)
    bars = [
        Bar(label, value, i * BarChart.ROW, float(value / top * 100) if top > 0 else 0.0)
        for i, (label, value) in enumerate(rows)
    ]
    return BarChart(bars=bars, height=max(len(bars), 1) * BarChart.ROW, total=sum((v for _, v in rows), ZERO))


@dataclass(frozen=True)
class DayBar:
    day: date
    amount: Decimal
    x: float
    y: float
    width: float
    height: float


@dataclass
class DailyChart:
    """Daily spend bars, the cumulative line, the limit line and the forecast to the period's end."""

    width: int = 720
    height: int = 240
    pad_left: int = 56
    pad_bottom: int = 24
    days: list[DayBar] = field(default_factory=list)
    cumulative_points: str = ""
    forecast_points: str = ""
    limit_y: float = 0.0
    top: Decimal = ZERO
    ticks: list[tuple[float, str]] = field(default_factory=list)


def daily_chart(
    spend_by_day: list[tuple[date, Decimal]], *, total_days: int, limit: Decimal, projected_total: Decimal
) -> DailyChart:
    """`spend_by_day` covers every day of the period so far (zeros included), in order; the x axis
    spans `total_days`. The y axis is cumulative money so that the limit is one horizontal line;
    bars show each day's own spend, the dotted line continues the burn rate to the period's end."""
    chart = DailyChart()
    n = max(total_days, len(spend_by_day), 1)
    plot_w = chart.width - chart.pad_left - 8
    plot_h = chart.height - chart.pad_bottom - 8
    cumulative, running = [], ZERO
    for _, amount in spend_by_day:
        running += amount
        cumulative.append(running)
    top = max([limit, projected_total, running, Decimal("0.01")])
    chart.top = top

    def y_of(value: Decimal) -> float:
        return round(8 + plot_h - float(value / top) * plot_h, 2)

    step = plot_w / n
    points = []
    for i, (day, amount) in enumerate(spend_by_day):
        x = chart.pad_left + i * step
        y = y_of(amount)
        chart.days.append(
            DayBar(day, amount, round(x + 1, 2), y, round(max(step - 2, 1), 2), round(8 + plot_h - y, 2))
        )
        points.append(f"{round(x + step / 2, 2)},{y_of(cumulative[i])}")
    chart.cumulative_points = " ".join(points)
    chart.limit_y = y_of(limit)
    if points:
        chart.forecast_points = f"{points[-1]} {chart.pad_left + plot_w},{y_of(projected_total)}"
    chart.ticks = [(y_of(top * k / 4), f"{(top * k / 4).quantize(Decimal('0.01'))}") for k in range(5)]
    return chart
