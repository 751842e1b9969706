"""QR codes of link URLs as SVG or PNG images (segno), for the admin API and the partner portal."""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass

import segno

from edge.errors import InvalidInput

QR_MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
DEFAULT_QR_SIZE = 256
MIN_QR_SIZE = 64
MAX_QR_SIZE = 2048
QUIET_ZONE = 4  # modules of light border around the symbol, as the standard asks
# Level M restores up to 15% of a damaged or smudged print: the usual choice for URLs.
ERROR_CORRECTION = "m"
MAX_QR_TEXT = 1024
# Rendering costs 10-30 ms of CPU; a page of links asks for the same images again and again.
CACHED_IMAGES = 256


@dataclass(frozen=True, slots=True)
class QrImage:
    content: bytes
    media_type: str
    width: int  # pixels (SVG: user units)
    etag: str  # changes with the URL, the format and the size

    @property
    def extension(self) -> str:
        return "svg" if self.media_type == QR_MEDIA_TYPES["svg"] else "png"


def render_qr(url: str, image_format: str, size: int = DEFAULT_QR_SIZE) -> QrImage:
    """The QR code of `url`, `size` pixels wide: exactly for SVG, for PNG rounded down to a whole
    number of pixels per module (never under one). InvalidInput names what is out of range.

    CPU-bound (pure Python): call it in a worker thread from async code."""
    if image_format not in QR_MEDIA_TYPES:
        raise InvalidInput(f"format {image_format[:10]!r} must be one of svg, png")
    if not MIN_QR_SIZE <= size <= MAX_QR_SIZE:
        raise InvalidInput(f"size must be a whole number from {MIN_QR_SIZE} to {MAX_QR_SIZE}")
    if not url or len(url) > MAX_QR_TEXT:
        raise InvalidInput(f"a QR code holds a URL of 1 to {MAX_QR_TEXT} characters")
    return _render(url, image_format, size)


@functools.lru_cache(maxsize=CACHED_IMAGES)
def _render(url: str, image_format: str, size: int) -> QrImage:
    media_type = QR_MEDIA_TYPES[image_format]
    code = segno.make_qr(url, error=ERROR_CORRECTION, boost_error=False)
    modules = int(code.symbol_size(scale=1, border=QUIET_ZONE)[0])
    buffer = io.BytesIO()
    if image_format == "svg":
        width = size
        # Drawn in modules and sized by the viewBox: exact at any size, crisp when scaled.
        code.save(buffer, kind="svg", scale=1, border=QUIET_ZONE, dark="#000", light="#fff",
                  xmldecl=False, svgclass=None, lineclass=None, omitsize=True)
        sized = f'<svg width="{size}" height="{size}" shape-rendering="crispEdges" '
        buffer = io.BytesIO(buffer.getvalue().replace(b"<svg ", sized.encode(), 1))
    else:
        scale = max(1, size // modules)
        width = scale * modules
        code.save(buffer, kind="png", scale=scale, border=QUIET_ZONE, dark="#000", light="#fff")
    digest = hashlib.sha256(f"{segno.__version__}\0{image_format}\0{size}\0{url}".encode())
    return QrImage(buffer.getvalue(), media_type, width, f'"{digest.hexdigest()[:32]}"')
