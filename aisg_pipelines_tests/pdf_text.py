"""Read back the text of a PDF that reportlab wrote (the report and certificate tests)."""

from __future__ import annotations

import base64
import re
import zlib


def pdf_text(data: bytes) -> str:
    """Text shown in a PDF written by reportlab (Flate streams inflated, Tj strings joined).

    Tests read the reports and certificates back with it; no extra package needed.
    """
    out: list[str] = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\n?endstream", data, re.S):
        raw = m.group(1).strip()
        try:
            if raw.endswith(b"~>"):  # reportlab: /Filter [ /ASCII85Decode /FlateDecode ]
                raw = base64.a85decode(b"<~" + raw, adobe=True)
            raw = zlib.decompress(raw)
        except Exception:  # noqa: BLE001 - not a Flate text stream (e.g. an image)
            continue
        for s in re.findall(rb"\((.*?)(?<!\\)\)\s*Tj", raw, re.S):
            out.append(s.replace(rb"\(", b"(").replace(rb"\)", b")").replace(rb"\\", b"\\").decode("latin-1"))
    return "\n".join(out)


def pdf_page_count(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
