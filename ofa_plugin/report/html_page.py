"""The demo's report as one self-contained HTML file: metrics table, training curves, test images with
the model's captions, answers and boxes, and the images generated for test captions (pictures inlined as
PNG data URIs, charts as SVG)."""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Sequence

from PIL import Image

from ofa_plugin.metrics.toy_image_check import ToyCheck

from .examples import CaptionExample, GeneratedImagesExample, GroundingExample, VqaExample
from .metrics_table import HEADER, MetricRow
from .pictures import enlarged, png_data_uri, with_boxes

# Colours no toy-world shape or background has, so the boxes stand out.
PREDICTED_COLOUR = "#ff00ff"
GOLD_COLOUR = "#00e5ff"
BOX_LEGEND = "Cyan: the annotated box; magenta: the model's box."
GENERATED_SIZE = 128  # px on the page of a generated image (the toy ones are 64 px: twice their size)
CHECK_LEGEND = "Green frame: the image passes the colour check; red: it does not."

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table.metrics { border-collapse: collapse; } .metrics td, .metrics th { border: 1px solid #ccc; padding: 4px 10px; }
.metrics td.num { text-align: right; font-family: monospace; }
.charts, .cards { display: flex; flex-wrap: wrap; gap: 16px; }
.card { width: 250px; border: 1px solid #ddd; border-radius: 6px; padding: 6px; font-size: 13px; }
.card img { display: block; margin: 0 auto 6px; image-rendering: pixelated; }
.good { color: #1a7f37; } .bad { color: #c62828; } .label { color: #666; }
.card.generated { width: 300px; } .generated img { display: inline-block; margin: 2px; border: 3px solid; }
img.good { border-color: #1a7f37; } img.bad { border-color: #c62828; }
"""


@dataclass
class Section:
    """A heading, a sentence on how to read it, and the cards (HTML) of its test examples."""

    title: str
    note: str
    cards: list[str] = field(default_factory=list)


def _line(label: str, text: str, css: str) -> str:
    """A labelled line of a card; texts are escaped here."""
    return f'<div><span class="label">{escape(label)}</span> <span class="{css}">{escape(text)}</span></div>'


def _card(picture_uri: str, lines: Sequence[tuple[str, str, str]]) -> str:
    """A picture with (label, text, css class) lines below it."""
    body = "".join(_line(*line) for line in lines)
    return f'<div class="card"><img src="{picture_uri}" alt="test image">{body}</div>'


def caption_card(example: CaptionExample) -> str:
    """Image, the model's caption (green if it equals a reference), the references."""
    css = "good" if example.caption in example.references else ""
    lines = [("model:", example.caption, css)] + [("ref:", reference, "") for reference in example.references]
    return _card(png_data_uri(enlarged(example.image)[0]), lines)


def vqa_card(example: VqaExample) -> str:
    """Image, question, the model's answer with its VQA score, the reference answers with confidences."""
    gold = ", ".join(f"{answer} ({confidence:g})" for answer, confidence in example.answers.items())
    css = "good" if example.score > 0 else "bad"
    lines = [("Q:", example.question, ""), ("model:", f"{example.answer} (score {example.score:g})", css),
             ("answers:", gold, "")]
    return _card(png_data_uri(enlarged(example.image)[0]), lines)


def grounding_card(example: GroundingExample) -> str:
    """Image with the gold box and the model's box drawn (`BOX_LEGEND`), the expression, the IoU."""
    picture = with_boxes(example.image, [(example.gold_box, GOLD_COLOUR), (example.box, PREDICTED_COLOUR)])
    box = ", ".join(f"{c:.0f}" for c in example.box)
    lines = [("expression:", example.expression, ""), ("model box:", box, ""),
             ("IoU:", f"{example.iou:.2f} ({'hit' if example.hit else 'miss'})", "good" if example.hit else "bad")]
    return _card(png_data_uri(picture), lines)


def image_gen_card(example: GeneratedImagesExample) -> str:
    """The caption, its generated images framed by the colour check (`CHECK_LEGEND`), how many pass."""
    pictures = "".join(_checked_picture(image, check) for image, check in zip(example.images, example.checks))
    passes = f"{example.colour_passes} of {len(example.checks)} pass"
    css = "good" if example.colour_passes else "bad"
    return (f'<div class="card generated">{_line("caption:", example.caption, "")}{pictures}'
            f'{_line("colour check:", passes, css)}</div>')


def _checked_picture(image: Image.Image, check: ToyCheck) -> str:
    """A generated image, enlarged, framed green or red by its colour check; what the check saw (e.g.
    "seen: a red circle on blue") as its tooltip."""
    reading = check.reading
    seen = f"a {reading.colour} {reading.shape}" if reading.colour else "no object"
    css = "good" if check.colour_ok else "bad"
    return (f'<img src="{png_data_uri(enlarged(image, GENERATED_SIZE)[0])}" class="{css}" alt="generated image" '
            f'title="seen: {escape(seen)} on {escape(reading.background)}">')


def metrics_html(rows: Sequence[MetricRow]) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in HEADER)
    body = "".join(
        f"<tr><td>{escape(row.task)}</td><td>{escape(row.metric)}</td><td class=\"num\">{row.model:.3f}</td>"
        f"<td class=\"num\" title=\"{escape(row.baseline_name)}\">{row.baseline:.3f}</td></tr>" for row in rows)
    return f'<table class="metrics"><tr>{head}</tr>{body}</table>'


def render_page(title: str, summary: str, metrics: Sequence[MetricRow], charts: Sequence[str],
                sections: Sequence[Section], baselines_note: str = "") -> str:
    """The whole page; `summary` and the notes are plain text, `charts` are SVG documents."""
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>", f"<p>{escape(summary)}</p>",
             "<h2>Metrics on the held-out test rows</h2>", metrics_html(metrics)]
    if baselines_note:
        parts.append(f"<p>{escape(baselines_note)}</p>")
    parts += ["<h2>Training loss</h2>", f'<div class="charts">{"".join(charts)}</div>']
    for section in sections:
        parts += [f"<h2>{escape(section.title)}</h2>", f"<p>{escape(section.note)}</p>",
                  f'<div class="cards">{"".join(section.cards)}</div>']
    parts.append("</body></html>\n")
    return "\n".join(parts)
