"""Charts drawn on the server as SVG (pygal), shown as images: a page gets pictures, not a
charting script, and an SVG inside an <img> runs no script (pygal's own is inert there), so
the pages' Content-Security-Policy stays without inline scripts."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import pygal
from pygal.style import Style

# Calm colours on white, like the rest of the console.
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#222222",
    foreground_strong="#222222",
    foreground_subtle="#919191",
    colors=("#0088cc", "#009900", "#e45735", "#f1592a", "#8b5cf6"),
    font_family="'Noto Sans CJK SC', 'WenQuanYi Micro Hei', 'PingFang SC', Arial, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=13,
    title_font_size=15,
)


# What every chart shares: the style, no script, a size on the scale of the page.
COMMON: dict[str, Any] = {
    "style": STYLE,
    "js": [],
    "width": 480,
    "min_scale": 2,
    "max_scale": 5,
    "disable_xml_declaration": True,
}


def bars(title: Any, months: Sequence[dict[str, Any]], series: Sequence[tuple[str, Any]]) -> str:
    """A bar chart of `series` (figure, label) over the scorecards `months`, as a data URI."""
    chart = pygal.Bar(
        **COMMON,
        height=320,
        title=str(title),
        legend_at_bottom=True,
        legend_at_bottom_columns=len(series),
        print_values=False,
        show_y_guides=True,
        show_minor_y_labels=False,
        y_labels_major_count=5,
    )
    chart.x_labels = [row["month"] for row in months]
    for figure, label in series:
        chart.add(str(label), [row["figures"].get(figure) or 0 for row in months])
    return _data_uri(chart.render())


def compared(title: Any, names: Sequence[str], values: Sequence[float]) -> str:
    """One figure of several city partners side by side, as a data URI, top to bottom in
    the order given (the page's table order)."""
    chart = pygal.HorizontalBar(
        **COMMON,
        height=max(200, 60 + 36 * len(names)),
        title=str(title),
        show_legend=False,
        print_values=True,
        show_y_guides=False,
        value_formatter=_grouped,
    )
    # pygal draws a horizontal chart's first label at the bottom.
    chart.x_labels = list(reversed(names))
    chart.add(str(title), list(reversed(values)))
    return _data_uri(chart.render())


def _grouped(value: float) -> str:
    """18,400 rather than 18400, as the tables beside the charts print figures."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
