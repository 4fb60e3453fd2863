"""HTML pages from the Jinja2 templates in `templates/` (package data), autoescape on.

jinja2 is imported on first use only (the code location imports nothing it does not need).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=jinja2.StrictUndefined)


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
