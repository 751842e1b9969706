"""Reading the QR images the edge serves, as a phone's scanner would (zxing-cpp), from the PNG's
pixels or the SVG's drawn modules."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import zxingcpp


def png_pixels(data: bytes) -> np.ndarray:
    """A 1-bit grayscale PNG (what segno writes) as a 0/255 array."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    position, compressed = 8, b""
    width = height = 0
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (1, 0), "expected a 1-bit grayscale PNG"
        elif kind == b"IDAT":
            compressed += body
    raw, stride = zlib.decompress(compressed), (width + 7) // 8
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - 1] if i else 0
            up, up_left = previous[i], previous[i - 1] if i else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - up_left
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                           (abs(guess - up_left), 2, up_left))
                line[i] = (line[i] + near[2]) & 255
        rows.append(bytes(line))
        previous = bytes(line)
    packed = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(height, stride)
    return (np.unpackbits(packed, axis=1)[:, :width] * 255).astype(np.uint8)


def svg_pixels(svg: bytes, pixels_per_module: int = 8) -> np.ndarray:
    """segno's SVG (horizontal strokes one module high, in a viewBox of modules) as an array."""
    text = svg.decode()
    size = int(re.search(r'viewBox="0 0 (\d+) \1"', text).group(1))  # type: ignore[union-attr]
    path = re.search(r'<path stroke="#000" d="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    modules = np.full((size, size), 255, dtype=np.uint8)
    x = y = 0.0
    for command, numbers in re.findall(r"([MmHh])([^MmHh]*)", path):
        values = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", numbers)]
        if command == "M":
            x, y = values
        elif command == "m":
            x, y = x + values[0], y + values[1]
        else:
            end = values[0] if command == "H" else x + values[0]
            modules[int(y), int(x) : int(end)] = 0
            x = end
    return np.kron(modules, np.ones((pixels_per_module, pixels_per_module), dtype=np.uint8))


def decoded(pixels: np.ndarray) -> str | None:
    result = zxingcpp.read_barcode(pixels)
    return result.text if result is not None else None
