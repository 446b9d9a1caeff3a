"""Images for Qwen's vision models: safe uploads, what each image costs in tokens, and grounding boxes.

Uploads are checked by content, never by file name: size in bytes, format,
pixel dimensions, decompression bombs, truncated or corrupt data; animated
images keep their first frame, and CMYK, palette or transparent images are
converted to RGB (transparency over white). Each fix is reported.
Token cost follows Qwen's resizing (`qwen_vl_utils.smart_resize`): the image
is scaled to a multiple of the family's token side (28 pixels for
Qwen2.5-VL: 14-pixel patches merged 2x2) within [min_pixels, max_pixels], and
every block of that side becomes one token. Boxes come in the family's
grounding convention: pixels of the resized image, or relative in [0, 1000].
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from .core import ml_stack

FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
MAX_BYTES = 20 * 2**20
MAX_SIDE = 8192
MAX_PIXELS = 40_000_000  # beyond this PIL's bomb check fires too
RELATIVE_SCALE = 1000  # relative grounding: coordinates in [0, 1000]
VIDEO_MAGIC = {b"ftyp": "MP4/MOV", b"\x1aE\xdf\xa3": "WebM/MKV"}
MAX_VIDEO_BYTES = 100 * 2**20


class UploadRejected(ValueError):
    """An upload that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class CheckedImage:
    image: Image.Image
    name: str
    notes: tuple[str, ...] = ()


def _check_size(path: Path, name: str, limit: int, kind: str) -> None:
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected(f"{name} is empty.")
    if size > limit:
        raise UploadRejected(f"{name} is {size / 2**20:.1f} MB; {kind} may be at most {limit // 2**20} MB.")


def looks_like_video(path: str | Path) -> bool:
    """A container signature in the first bytes (read 12 bytes, not the file)."""
    with open(path, "rb") as f:
        head = f.read(12)
    return any(magic in head for magic in VIDEO_MAGIC)


def check_image(path: str | Path, name: str | None = None) -> CheckedImage:
    """Open an uploaded image safely, or raise UploadRejected with a clear reason."""
    path = Path(path)
    name = name or path.name
    _check_size(path, name, MAX_BYTES, "images")
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as probe:
                fmt, (width, height) = probe.format, probe.size
                if fmt not in FORMATS:
                    raise UploadRejected(f"{name} is a {fmt or 'unknown'} file; upload PNG, JPEG, WebP, GIF or BMP.")
                if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                    raise UploadRejected(f"{name} is {width}x{height} pixels; the limit is {MAX_SIDE} pixels a side and "
                                         f"{MAX_PIXELS // 1_000_000} million pixels. Scale it down first.")
                probe.verify()  # structure and checksums
            with Image.open(path) as image:
                frames = getattr(image, "n_frames", 1)
                image.seek(0)
                image.load()  # decodes every byte: a truncated file fails here
                if frames > 1:
                    notes.append(f"animated ({frames} frames): the first frame is used")
                image = ImageOps.exif_transpose(image)
                mode = image.mode
                if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
                    background = Image.new("RGB", image.size, "white")
                    background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
                    image = background
                    notes.append("transparency flattened onto white")
                elif mode != "RGB":
                    image = image.convert("RGB")
                    notes.append(f"converted from {mode} to RGB")
                return CheckedImage(image.copy(), name, tuple(notes))
        except UploadRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UploadRejected(f"{name} declares an enormous size (a decompression bomb?) and was refused.") from None
        except UnidentifiedImageError:
            raise UploadRejected(f"{name} is not an image this app can read (checked by content, not by name).") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise UploadRejected(f"{name} is damaged or truncated ({e}); export it again and retry.") from None


def check_video(path: str | Path, name: str | None = None) -> Path:
    """A video upload, checked by size and container signature."""
    path = Path(path)
    name = name or path.name
    _check_size(path, name, MAX_VIDEO_BYTES, "videos")
    if not looks_like_video(path):
        raise UploadRejected(f"{name} is not an MP4, MOV, WebM or MKV video (checked by content).")
    return path


def video_support() -> str | None:
    """None when videos can be read here, else why not."""
    try:
        import av  # noqa: F401  (PyAV decodes the frames: read_video)
        import torchvision  # noqa: F401  (qwen-vl-utils resizes the frames with it)
    except ImportError:
        return "Videos need PyAV and torchvision (pip install -r requirements.txt installs them)."
    return None


def read_video(path: str | Path, fps: float = 1.0, max_frames: int = 64, name: str | None = None) -> list[Image.Image]:
    """A video's frames sampled at `fps` (at most `max_frames`), decoded with PyAV. qwen-vl-utils' own reader needs
    `torchvision.io.read_video`, which torchvision 0.29 no longer has; it takes frames as they are, with their rate."""
    import av

    name = name or Path(path).name
    frames: list[Image.Image] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for index, frame in enumerate(container.decode(stream)):
                seconds = float(frame.pts * frame.time_base) if frame.pts is not None else index / float(stream.average_rate or 1)
                if seconds + 1e-6 >= len(frames) / fps:
                    frames.append(frame.to_image().convert("RGB"))
                    if len(frames) >= max_frames:
                        break
    except (av.FFmpegError, IndexError, ValueError) as e:
        raise UploadRejected(f"{name} could not be decoded as a video ({e}); export it again as MP4 (H.264) and retry.") from None
    if not frames:
        raise UploadRejected(f"{name} has no video frames.")
    return frames


@dataclass(frozen=True)
class Cost:
    width: int
    height: int
    resized_width: int
    resized_height: int
    token_side: int

    @property
    def tokens(self) -> int:
        return (self.resized_width // self.token_side) * (self.resized_height // self.token_side)


def image_cost(image: Image.Image, min_pixels: int, max_pixels: int, token_side: int) -> Cost:
    """The size a Qwen vision model resizes this image to and the tokens it then costs."""
    ml_stack.load()  # qwen_vl_utils brings torch and torchvision: not before the page is up
    from qwen_vl_utils import smart_resize

    height, width = smart_resize(image.height, image.width, factor=token_side, min_pixels=min_pixels, max_pixels=max_pixels)
    return Cost(image.width, image.height, width, height, token_side)


@dataclass(frozen=True)
class Box:
    label: str
    x1: float
    y1: float
    x2: float
    y2: float


def parse_boxes(text: str) -> list[Box]:
    """Qwen-VL grounding output: JSON objects with `bbox_2d` [x1, y1, x2, y2] and `label`."""
    candidates = re.findall(r"```(?:json)?\s*(.*?)```", text, re.DOTALL) or [text[text.find("["):text.rfind("]") + 1]]
    boxes = []
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, TypeError):
            continue
        for item in data if isinstance(data, list) else [data]:
            coords = item.get("bbox_2d") if isinstance(item, dict) else None
            if isinstance(coords, list) and len(coords) == 4 and all(isinstance(c, (int, float)) for c in coords):
                x1, y1, x2, y2 = coords
                boxes.append(Box(str(item.get("label", "")), min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    return boxes


def draw_boxes(image: Image.Image, boxes: list[Box], cost: Cost, grounding: str = "absolute") -> Image.Image:
    """The image with boxes drawn. `grounding` "absolute": coordinates in the resized image's pixels (Qwen2.5-VL);
    "relative": in [0, 1000] of each side."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    if grounding == "relative":
        sx, sy = image.width / RELATIVE_SCALE, image.height / RELATIVE_SCALE
    else:
        sx, sy = image.width / cost.resized_width, image.height / cost.resized_height
    colors = ["#ef4444", "#3b82f6", "#22c55e", "#f59e0b", "#a855f7", "#14b8a6"]
    for i, box in enumerate(boxes):
        color = colors[i % len(colors)]
        rect = [box.x1 * sx, box.y1 * sy, box.x2 * sx, box.y2 * sy]
        draw.rectangle(rect, outline=color, width=max(2, image.width // 300))
        if box.label:
            draw.text((rect[0] + 3, max(rect[1] - 12, 0)), box.label, fill=color)
    return out
