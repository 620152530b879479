"""Captioned image folders: the format a LoRA fine-tune reads its images and captions in.

Shared by the prompt audit (which checks a folder before any work starts) and the torch
runner in ``bridges`` (which trains on it); both layouts are those of ``diffusers``'
text-to-image examples:

* ``metadata.jsonl``: one JSON object per line, ``{"file_name": "0001.png", "text": "..."}``;
* no ``metadata.jsonl``: image files, each with a caption in a same-named ``.txt`` file.
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class CaptionError(ValueError):
    """An image folder cannot be read as captioned images."""


def captioned_images(data_dir: str | Path) -> list[tuple[Path, str]]:
    """``[(image path, caption), ...]`` of ``data_dir`` in a fixed order; :class:`CaptionError` names the problem."""
    root = Path(data_dir)
    if not root.is_dir():
        raise CaptionError(f"'{root}' is not a directory")
    metadata = root / "metadata.jsonl"
    if metadata.is_file():
        pairs = []
        for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"'{metadata}' line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CaptionError(f"{where} is not JSON: {exc}") from None
            if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
                raise CaptionError(f"{where} needs a string 'file_name'")
            text = row.get("text")
            if not isinstance(text, str) or not text.strip():
                raise CaptionError(f"{where}: the caption ('text') of '{row['file_name']}' is missing or empty")
            image = root / row["file_name"]
            if not image.is_file():
                raise CaptionError(f"{where}: image '{image}' does not exist")
            pairs.append((image, text.strip()))
        if not pairs:
            raise CaptionError(f"'{metadata}' lists no images")
        return pairs
    images = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise CaptionError(
            f"'{root}' has neither a metadata.jsonl nor image files ({', '.join(IMAGE_SUFFIXES)}) with same-named .txt captions"
        )
    pairs = []
    for image in images:
        caption = image.with_suffix(".txt")
        text = caption.read_text(encoding="utf-8").strip() if caption.is_file() else ""
        if not text:
            raise CaptionError(f"image '{image.name}' has no caption: '{caption.name}' is missing or empty")
        pairs.append((image, text))
    return pairs
