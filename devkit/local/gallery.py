"""``<out>/index.html``: one page with every annotated picture (and annotated video) beside a table of what each
vision service found on it, for looking at a run in a browser. Self-contained: no script, no network."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from devkit.local.annotate import colour_for, text_colour
from devkit.local.results import ImageResult

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; background: #f4f4f4; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; } p.sub { margin: 0 0 1.2em; color: #555; }
.card { display: flex; flex-wrap: wrap; gap: 1.2em; background: #fff; border-radius: 6px; padding: 1em;
        margin-bottom: 1.2em; box-shadow: 0 1px 3px rgba(0,0,0,.15); }
.card img, .card video { max-width: 560px; width: 100%; height: auto; border-radius: 4px; }
.card h2 { font-size: 1.05em; margin: 0 0 .5em; word-break: break-all; }
table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; border-bottom: 1px solid #ccc; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tag { padding: 0 6px; border-radius: 3px; white-space: nowrap; } .err { color: #b00; } .none { color: #888; }
"""


def _rel(path: Path, base: Path) -> str:
    return html.escape(os.path.relpath(path, base).replace(os.sep, "/"), quote=True)


def _rows(result: ImageResult) -> str:
    rows = []
    for service in result.results:
        first = f"<td>{html.escape(service.service)}</td>"
        ms = f"<td class=num>{service.ms:.1f}</td>" if service.ms is not None else "<td></td>"
        if service.error:
            rows.append(f"<tr>{first}<td colspan=3 class=err>{html.escape(service.error)}</td>{ms}</tr>")
            continue
        found = [(b.label, b.confidence, f"({b.x_min}, {b.y_min}, {b.x_max}, {b.y_max})") for b in service.boxes]
        found += [(c.label, c.confidence, "") for c in service.labels]
        if not found:
            rows.append(f"<tr>{first}<td colspan=3 class=none>nothing found</td>{ms}</tr>")
        for i, (label, confidence, box) in enumerate(found):
            colour = colour_for(label)
            style = f"background: rgb{colour}; color: rgb{text_colour(colour)}"
            rows.append(f"<tr>{first if i == 0 else '<td></td>'}<td><span class=tag style=\"{style}\">"
                        f"{html.escape(label)}</span></td><td class=num>{confidence:.2f}</td><td>{box}</td>"
                        f"{ms if i == 0 else '<td></td>'}</tr>")
    return ("<table><tr><th>service</th><th>label</th><th>conf</th><th>box (x0, y0, x1, y1)</th><th>ms</th></tr>"
            + "".join(rows) + "</table>")


def write_gallery(out: Path, results: Sequence[ImageResult], videos: Sequence[Path] = (), *,
                  title: str = "Local run") -> Path:
    """Write ``out/index.html`` (paths in it are relative, so the folder can be moved or zipped) and return it."""
    cards = []
    for video in videos:
        cards.append(f"<div class=card><div><h2>{html.escape(video.name)}</h2><video src=\"{_rel(video, out)}\" "
                     "controls muted loop></video></div></div>")
    for result in results:
        if result.annotated is None:
            continue
        name = result.source.name if not result.video else f"{result.video} frame {result.frame}"
        cards.append(f"<div class=card><a href=\"{_rel(result.annotated, out)}\"><img loading=lazy "
                     f"src=\"{_rel(result.annotated, out)}\" alt=\"{html.escape(name, quote=True)}\"></a>"
                     f"<div><h2>{html.escape(name)}</h2>{_rows(result)}</div></div>")
    pictures = sum(1 for r in results if r.annotated is not None)
    counted = f"{pictures} pictures" + (f", {len(videos)} video" + ("s" if len(videos) > 1 else "") if videos else "")
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class=sub>{counted}. "
            "Times are per call, as the runner saw them.</p>" + "".join(cards) + "</body></html>\n")
    target = out / "index.html"
    target.write_text(page, encoding="utf-8")
    return target
