"""How an instrument writes its report: a Markdown file, a JSON file of every number and a figure, into one
folder, each atomically (lth_tf.atomic); the figure first, so the Markdown never names a missing one."""
from __future__ import annotations

import os
from typing import Callable

from lth_tf import atomic


def write(result: dict, out: str, names: tuple[str, str, str], markdown: Callable[[dict, str | None], str],
          figure: Callable[[dict, str], str], plots: bool = True) -> dict[str, str]:
    """names: the Markdown, JSON and PNG file names; markdown(result, figure name or None) -> text;
    figure(result, path) draws and saves. Returns the paths written ("markdown", "json", "figure")."""
    md, js, png = names
    os.makedirs(out, exist_ok=True)
    written = {"markdown": os.path.join(out, md), "json": os.path.join(out, js)}
    if plots:
        written["figure"] = figure(result, os.path.join(out, png))
    atomic.write_json(written["json"], result)
    atomic.write_text(written["markdown"], markdown(result, png if plots else None))
    return written
