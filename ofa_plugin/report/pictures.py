"""Pictures for the report: test images enlarged so they can be seen, boxes drawn on them, inlined as PNG.

Toy images are 48-160 px; the page shows them at about `DISPLAY_SIZE` px with nearest-neighbour
resampling, so what is drawn is the image's own pixels, not an interpolation.
"""
from __future__ import annotations

import base64
import io
from typing import Sequence

from PIL import Image, ImageDraw

DISPLAY_SIZE = 240  # longer side on the page, in px
Box = Sequence[float]  # x0, y0, x1, y1 in the original image's pixels


def enlarged(image: Image.Image, size: int = DISPLAY_SIZE) -> tuple[Image.Image, float]:
    """The image scaled (nearest neighbour) so that its longer side is `size` px, and the scale factor."""
    scale = size / max(image.size)
    width, height = (max(1, round(side * scale)) for side in image.size)
    return image.convert("RGB").resize((width, height), Image.NEAREST), scale


def with_boxes(image: Image.Image, boxes: Sequence[tuple[Box, str]], size: int = DISPLAY_SIZE,
               line_width: int = 3) -> Image.Image:
    """The enlarged image with each (box in original pixels, colour) drawn as an outline, in order."""
    picture, scale = enlarged(image, size)
    draw = ImageDraw.Draw(picture)
    for box, colour in boxes:
        x0, y0, x1, y1 = (coordinate * scale for coordinate in box)
        # An inverted box (a model can generate one) is drawn over the area it spans.
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=colour, width=line_width)
    return picture


def png_data_uri(image: Image.Image) -> str:
    """The image as a `data:image/png;base64,...` URI, for a self-contained HTML page."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
