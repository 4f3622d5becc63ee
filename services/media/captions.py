"""Captions drawn into the picture without libass or FreeType in FFmpeg (the PyAV
wheel has neither): Pillow draws each cue once (HarfBuzz shaping and FriBiDi
through Pillow's RAQM layout, so Arabic and Somali come out right), the drawing is
turned into premultiplied Y/U/V and alpha once, and numpy blends it into the
yuv420p planes of each frame it shows on, in place, only inside its box. About
1-2 ms a frame at 1080p; drawing a cue costs 20-120 ms, once."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont, features

#: Debian's fonts-dejavu-core (Latin, Arabic, Cyrillic); Noto where installed covers more.
FONTS = (
    Path("/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
)

Plane = npt.NDArray[np.float32]
Overlay = tuple[int, int, Plane, Plane, Plane, Plane, Plane]


def font_path(configured: Path | None = None) -> Path | None:
    for candidate in (configured, *FONTS):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _font(size: int, path: Path | None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size)
    engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(path), size, layout_engine=engine)


def _wrap(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: int,
) -> str:
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=font) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return "\n".join(lines)


def draw_cue(text: str, width: int, height: int, font: Path | None = None) -> Image.Image:
    """One cue as an RGBA picture: white text, black outline, on a translucent box."""
    size = max(14, round(min(width, height) / 18))
    face = _font(size, font)
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    wrapped = _wrap(probe, text, face, int(width * 0.86))
    stroke = max(2, size // 12)
    left, top, right, bottom = probe.multiline_textbbox(
        (0, 0), wrapped, font=face, stroke_width=stroke, align="center", spacing=size // 4
    )
    pad = size // 3
    box_w = int(right - left + 0.999) + 2 * pad
    box_h = int(bottom - top + 0.999) + 2 * pad
    box_w, box_h = min(box_w + box_w % 2, width), min(box_h + box_h % 2, height)
    image = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 110))
    ImageDraw.Draw(image).multiline_text(
        (pad - left, pad - top),
        wrapped,
        font=face,
        fill=(255, 255, 255, 255),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 255),
        align="center",
        spacing=size // 4,
    )
    return image


def _yuva420(image: Image.Image) -> tuple[Plane, Plane, Plane, Plane, Plane]:
    """Premultiplied Y, alpha, U, V and chroma alpha (BT.709, limited range)."""
    rgba = np.asarray(image, dtype=np.float32)
    r, g, b, alpha = rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] / 255.0
    y = 16 + (0.2126 * r + 0.7152 * g + 0.0722 * b) * 219 / 255
    u = 128 + (-0.1146 * r - 0.3854 * g + 0.5 * b) * 224 / 255
    v = 128 + (0.5 * r - 0.4542 * g - 0.0458 * b) * 224 / 255

    def half(plane: Plane) -> Plane:
        rows, cols = plane.shape
        halved: Plane = plane.reshape(rows // 2, 2, cols // 2, 2).mean(axis=(1, 3))
        return halved.astype(np.float32)

    return (
        (y * alpha).astype(np.float32),
        alpha.astype(np.float32),
        half(u * alpha),
        half(v * alpha),
        half(alpha),
    )


class CaptionBurner:
    """Draws the cue showing at a time into a yuv420p frame (``cues``: start, end, text)."""

    def __init__(
        self,
        cues: Sequence[tuple[float, float, str]],
        *,
        font: Path | None = None,
        bottom_margin: float = 0.08,
    ) -> None:
        self.cues = sorted(cues)
        self.starts = [c[0] for c in self.cues]
        self.font = font_path(font)
        self.bottom_margin = bottom_margin
        self._cache: dict[tuple[int, int, int], Overlay] = {}

    def _overlay(self, index: int, width: int, height: int) -> Overlay:
        key = (index, width, height)
        if key not in self._cache:
            image = draw_cue(self.cues[index][2], width, height, self.font)
            y, alpha, u, v, chroma_alpha = _yuva420(image)
            x0 = ((width - image.width) // 2) & ~1
            y0 = max(0, height - image.height - int(height * self.bottom_margin)) & ~1
            self._cache[key] = (x0, y0, y, alpha, u, v, chroma_alpha)
        return self._cache[key]

    def __call__(self, frame: av.VideoFrame, at_s: float) -> None:
        index = bisect.bisect_right(self.starts, at_s) - 1
        if index < 0 or at_s >= self.cues[index][1]:
            return
        x0, y0, y, alpha, u, v, chroma_alpha = self._overlay(index, frame.width, frame.height)
        for number, (colour, weight, left, top) in enumerate(
            (
                (y, alpha, x0, y0),
                (u, chroma_alpha, x0 // 2, y0 // 2),
                (v, chroma_alpha, x0 // 2, y0 // 2),
            )
        ):
            plane = frame.planes[number]
            raw = np.frombuffer(plane, np.uint8)  # type: ignore[call-overload]
            pixels = raw.reshape(-1, plane.line_size)
            rows, cols = colour.shape
            region = pixels[top : top + rows, left : left + cols]
            rows, cols = region.shape
            region[...] = (
                region * (1.0 - weight[:rows, :cols]) + colour[:rows, :cols] + 0.5
            ).astype(np.uint8)
