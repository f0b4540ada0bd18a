"""Line charts as inline SVG (no plotting library): one training-loss curve per chart.

Axes start at 0; the x axis ends at the last update, the y axis at a round number above the largest
loss (`nice_ceiling`), so charts of different runs read alike.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

WIDTH, HEIGHT = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 28, 40  # margins around the plot area, px
_STEPS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_ceiling(value: float) -> float:
    """The smallest number of the form step * 10^k (step in 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8) >= value > 0."""
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"need a positive finite value, got {value}")
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in _STEPS if step * power >= value * (1 - 1e-12))


def chart_points(points: Sequence[tuple[float, float]], x_max: float, y_max: float) -> list[tuple[float, float]]:
    """Data points mapped to SVG coordinates of the plot area (y grows downwards), rounded to 0.1 px."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    return [(round(LEFT + plot_w * x / x_max, 1), round(TOP + plot_h * (1 - y / y_max), 1)) for x, y in points]


def line_chart_svg(points: Sequence[tuple[float, float]], title: str, x_label: str, y_label: str,
                   colour: str = "#1f77b4") -> str:
    """An SVG line chart of (x, y) points with x, y >= 0; ValueError for no points."""
    finite = [(x, y) for x, y in points if math.isfinite(y)]
    if not finite:
        raise ValueError(f"chart {title!r}: no finite points")
    x_max = max(x for x, _ in finite) or 1.0
    y_max = nice_ceiling(max(max(y for _, y in finite), 1e-9))
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    polyline = " ".join(f"{x:g},{y:g}" for x, y in chart_points(finite, x_max, y_max))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
             f'<text x="{WIDTH / 2:g}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for fraction in (0.0, 0.5, 1.0):  # y ticks with light grid lines, x ticks at the ends and the middle
        (_, y), = chart_points([(0.0, y_max * fraction)], x_max, y_max)
        (x, _), = chart_points([(x_max * fraction, 0.0)], x_max, y_max)
        parts += [f'<line x1="{LEFT}" y1="{y:g}" x2="{right}" y2="{y:g}" stroke="#ddd"/>',
                  f'<text x="{LEFT - 4}" y="{y + 4:g}" text-anchor="end">{y_max * fraction:g}</text>',
                  f'<text x="{x:g}" y="{bottom + 14}" text-anchor="middle">{round(x_max * fraction)}</text>']
    parts += [f'<path d="M{LEFT},{TOP} V{bottom} H{right}" fill="none" stroke="#444"/>',
              f'<text x="{(LEFT + right) / 2:g}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>',
              f'<text x="12" y="{(TOP + bottom) / 2:g}" text-anchor="middle" '
              f'transform="rotate(-90 12 {(TOP + bottom) / 2:g})">{escape(y_label)}</text>',
              f'<polyline points="{polyline}" fill="none" stroke="{colour}" stroke-width="2"/>',
              "</svg>"]
    return "\n".join(parts)
