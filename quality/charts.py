"""Time-series charts as static SVG (matplotlib): dated x axes, formatted values, nothing fetched to view them."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from datetime import datetime


def time_series_svg(
    when: Sequence[datetime], values: Sequence[float], *, title: str, y_label: str, color: str = "#1f6feb",
    percent: bool = False, fill_below_zero: bool = False, width_in: float = 8.0, height_in: float = 2.6,
) -> str:
    """One line over time as an inline `<svg>`: dates on the x axis, thousands separators or percentages on y.

    Text stays text (`svg.fonttype = none`), so the page needs no embedded glyphs, the labels can be
    searched and read by a test, and the browser draws them in its own fonts.
    """
    import matplotlib
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    # a Figure of its own, not pyplot: no global figure manager or GUI backend to load (pyplot adds ~0.7 s)
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False, "svg.hashsalt": "quarry"}):
        figure = Figure(figsize=(width_in, height_in), layout="constrained")
        axes = figure.subplots()
        axes.plot(list(when), list(values), color=color, linewidth=1.3)
        if fill_below_zero:
            axes.fill_between(list(when), list(values), 0, color=color, alpha=0.15, linewidth=0)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1) if percent else FuncFormatter(_thousands))
        axes.set_title(title, loc="left", fontsize=11)
        axes.set_ylabel(y_label)
        axes.grid(True, axis="y", color="#e3e7ef", linewidth=0.8)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # inline: no XML declaration or DOCTYPE inside an HTML page
    # inside HTML the parser supplies the SVG and XLink namespaces; the page keeps no URL at all
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    return svg.replace("<svg ", f"<svg role='img' aria-label='{html.escape(title, quote=True)}' ", 1)


def _thousands(value: float, _position: int) -> str:
    """1,098,000 rather than 1.098e+06; two decimals only for small numbers."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
