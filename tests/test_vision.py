"""Upload safety, image-token cost and grounding boxes."""

import struct
import zlib

import pytest
from PIL import Image, ImageChops

from qwen_playground.vision import Box, UploadRejected, check_image, check_video, draw_boxes, image_cost, parse_boxes


def save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_a_plain_image_passes(tmp_path):
    checked = check_image(save(tmp_path, "a.png", Image.new("RGB", (64, 48), "red")))
    assert checked.image.size == (64, 48) and checked.image.mode == "RGB" and checked.notes == ()


def test_type_is_read_from_content_not_name(tmp_path):
    path = tmp_path / "photo.png"
    path.write_text("#!/bin/sh\necho not an image\n")
    with pytest.raises(UploadRejected, match="not an image"):
        check_image(path)
    jpeg_named_txt = save(tmp_path, "notes.txt", Image.new("RGB", (8, 8)), format="JPEG")
    assert check_image(jpeg_named_txt).image.size == (8, 8)


def test_unsupported_format(tmp_path):
    with pytest.raises(UploadRejected, match="TIFF file"):
        check_image(save(tmp_path, "a.tif", Image.new("RGB", (8, 8)), format="TIFF"))


def test_too_many_bytes(tmp_path, monkeypatch):
    from qwen_playground import vision

    monkeypatch.setattr(vision, "MAX_BYTES", 100)
    with pytest.raises(UploadRejected, match="at most"):
        check_image(save(tmp_path, "big.png", Image.effect_noise((64, 64), 50).convert("RGB")))


def test_too_many_pixels(tmp_path):
    with pytest.raises(UploadRejected, match="9000x10 pixels"):
        check_image(save(tmp_path, "wide.png", Image.new("RGB", (9000, 10))))


def test_decompression_bomb(tmp_path):
    # a valid PNG header that declares 100000 x 100000 pixels and carries almost nothing
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    with pytest.raises(UploadRejected, match="decompression bomb|100000x100000"):
        check_image(path)


def test_truncated_and_empty_files(tmp_path):
    full = save(tmp_path, "full.jpg", Image.effect_noise((256, 256), 80).convert("RGB"), format="JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(UploadRejected, match="damaged or truncated"):
        check_image(cut)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UploadRejected, match="empty"):
        check_image(empty)


def test_animated_cmyk_and_alpha_are_converted_with_notes(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert "first frame" in check_image(gif).notes[0]
    cmyk = check_image(save(tmp_path, "c.jpg", Image.new("CMYK", (16, 16)), format="JPEG"))
    assert cmyk.image.mode == "RGB" and "CMYK" in cmyk.notes[0]
    alpha = check_image(save(tmp_path, "a.png", Image.new("RGBA", (16, 16), (255, 0, 0, 0))))
    assert alpha.image.mode == "RGB" and alpha.image.getpixel((0, 0)) == (255, 255, 255) and "white" in alpha.notes[0]


def test_video_checked_by_content(tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"definitely not a video")
    with pytest.raises(UploadRejected, match="not an MP4"):
        check_video(fake)
    real_header = tmp_path / "ok.mp4"
    real_header.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\0" * 32)
    assert check_video(real_header) == real_header


def test_token_cost_follows_resolution():
    image = Image.new("RGB", (1280, 960))
    small = image_cost(image, 4 * 28 * 28, 256 * 28 * 28, 28)
    large = image_cost(image, 4 * 28 * 28, 1280 * 28 * 28, 28)
    assert small.tokens <= 256 and large.tokens > small.tokens
    assert small.resized_width % 28 == 0 and small.resized_height % 28 == 0
    assert small.tokens == (small.resized_width // 28) * (small.resized_height // 28)


def test_grounding_boxes_are_parsed_and_drawn():
    text = 'Here:\n```json\n[{"bbox_2d": [10, 20, 110, 60], "label": "cat"}, {"bbox_2d": [50, 5, 5, 50], "label": "dog"}, {"point": [1, 2]}]\n```'
    boxes = parse_boxes(text)
    assert boxes == [Box("cat", 10, 20, 110, 60), Box("dog", 5, 5, 50, 50)]
    assert parse_boxes("no boxes here") == [] and parse_boxes("```json\n[{broken\n```") == []
    image = Image.new("RGB", (280, 140), "white")
    cost = image_cost(image, 4 * 28 * 28, 1024 * 28 * 28, 28)
    drawn = draw_boxes(image, boxes, cost)
    assert drawn.size == image.size and drawn.getpixel((int(10 * 280 / cost.resized_width), 40)) != (255, 255, 255)


def test_token_side_and_grounding_come_from_the_family():
    """A 640x480 image: 20x15 blocks of 32 px (Qwen3-VL's side) or 23x17 of 28 px (Qwen2.5-VL's), up to the default cap."""
    image = Image.new("RGB", (640, 480), "white")
    assert image_cost(image, 4 * 32 * 32, 16384 * 32 * 32, 32).tokens == 300
    assert image_cost(image, 4 * 28 * 28, 16384 * 28 * 28, 28).tokens == 391
    box = [Box("x", 500, 500, 1000, 1000)]  # relative: the lower right quarter
    cost = image_cost(image, 4 * 32 * 32, 16384 * 32 * 32, 32)
    drawn = draw_boxes(image, box, cost, "relative")
    assert drawn.getpixel((321, 300)) != (255, 255, 255) and drawn.getpixel((639, 479)) != (255, 255, 255)
    assert drawn.getpixel((200, 200)) == (255, 255, 255)
    absolute = draw_boxes(image, [Box("x", 0, 0, 100, 100)], image_cost(image, 4 * 28 * 28, 16384 * 28 * 28, 28))
    assert absolute.getpixel((1, 50)) != (255, 255, 255) and absolute.getpixel((200, 200)) == (255, 255, 255)


def test_video_needs_torchvision(monkeypatch):
    import sys

    from qwen_playground.vision import video_support

    assert video_support() is None  # the pinned torch/torchvision pair is installed
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if it were missing
    assert "torchvision" in video_support()


def test_uploads_are_screened_as_they_arrive(tmp_path):
    from qwen_playground.tasks.vision import screen_uploads

    Image.new("RGB", (640, 480), "red").save(tmp_path / "red.png")
    (tmp_path / "cat.png").write_text("not a cat")
    kept, thumbnails, refused = screen_uploads([tmp_path / "red.png", tmp_path / "cat.png"])
    assert kept == [tmp_path / "red.png"] and [name for _, name in thumbnails] == ["red.png"]
    assert thumbnails[0][0].size == (256, 192) and len(refused) == 1 and "cat.png is not an image" in refused[0]


def test_a_relative_box_lands_where_the_equivalent_absolute_box_does():
    """Qwen3-VL's [100, 200, 500, 600] in [0, 1000] and the same place in Qwen2.5-VL's resized pixels, on a non-square
    image: both drawn on the original at x 10-50%, y 20-60% of its sides."""
    image = Image.new("RGB", (900, 500), "white")
    absolute_cost = image_cost(image, 4 * 28 * 28, 16384 * 28 * 28, 28)
    assert (absolute_cost.resized_width, absolute_cost.resized_height) != image.size  # the resize is what makes them differ
    w, h = absolute_cost.resized_width, absolute_cost.resized_height
    relative = draw_boxes(image, [Box("", 100, 200, 500, 600)], image_cost(image, 4 * 32 * 32, 16384 * 32 * 32, 32), "relative")
    absolute = draw_boxes(image, [Box("", 0.1 * w, 0.2 * h, 0.5 * w, 0.6 * h)], absolute_cost, "absolute")

    def drawn_box(drawn):
        return ImageChops.difference(drawn, image).getbbox()

    assert drawn_box(relative) == pytest.approx(drawn_box(absolute), abs=1)
    left, top, right, bottom = drawn_box(relative)
    assert (left, top) == pytest.approx((90, 100), abs=1) and (right, bottom) == pytest.approx((450, 300), abs=3)
