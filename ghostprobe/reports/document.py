"""A report as a list of blocks, rendered twice: Markdown for terminals and diffs, HTML for people.

The HTML is self-contained on purpose: reports get mailed, attached to tickets and opened offline, so the CSS is
inline, images are data: URIs and there is no script and no external URL. Markdown leaves images out (a data URI
in a .md file is unreadable) and says where they are.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    css: str = ""  # e.g. "decision deploy", "warning", "note": styling only, the text says everything


@dataclass
class Image:
    uri: str  # a data: URI
    alt: str
    width_px: int | None = None
    zoom: bool = False  # HTML: shown small, a click toggles its full size (CSS only: the page has no script)


@dataclass
class Link:
    """A table cell linking to a file or page (Markdown: [text](href); HTML: an anchor)."""

    text: str
    href: str


@dataclass
class Estimate:
    """A table cell holding a value and its confidence interval (Markdown: one line; HTML: the CI below, smaller)."""

    value: str
    ci: str = ""

    def __str__(self) -> str:
        return f"{self.value} {self.ci}".strip()


@dataclass
class Table:
    header: list[str]
    rows: list[list]  # cells: text, an Estimate, or an Image (HTML only; Markdown shows its alt text)
    css: str = ""
    emphasise_first_row: bool = False


@dataclass
class Bullets:
    items: list[str] = field(default_factory=list)


def data_uri(payload: bytes, mime: str) -> str:
    """`payload` as a data: URI (how the HTML carries its charts and frame strips)."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def num(value, digits: int = 3) -> str:
    """A metric for display: None/NaN (undefined, e.g. precision with no positive prediction) prints as "-"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def interval(ci, digits: int = 2) -> str:
    """A [low, high] pair as "[0.71, 0.90]"; "" when there is no interval."""
    if not ci or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ci):
        return ""
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


# --- Markdown -------------------------------------------------------------------------------------------------


def _md_text(text: str) -> str:
    """Text with `&` and `<` escaped: Markdown renders raw HTML, and clip ids, file names and model answers are not
    ours (`<img onerror=...>` in a clip id must stay text, as in the HTML report)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;")


def _md_cell(cell) -> str:
    if isinstance(cell, Link):
        return f"[{_md_cell(cell.text)}](<{cell.href.replace('>', '%3E').replace(' ', '%20')}>)"
    text = _md_text(cell.alt if isinstance(cell, Image) else str(cell))
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, blocks: list) -> str:
    """The blocks as GitHub-flavoured Markdown; images become one line pointing at the HTML."""
    out = [f"# {_md_text(title)}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + _md_text(block.text), ""]
        elif isinstance(block, Para):
            text = _md_text(block.text)
            out += [f"**{text}**" if "decision" in block.css else text, ""]
        elif isinstance(block, Image):
            out += [f"*Figure in the HTML report: {_md_text(block.alt)}.*", ""]
        elif isinstance(block, Bullets):
            out += [f"- {_md_text(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(map(_md_cell, block.header)) + " |")
            out.append("|" + "---|" * len(block.header))
            out += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
            out.append("")
    return "\n".join(out)


# --- HTML -----------------------------------------------------------------------------------------------------

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans CJK SC", sans-serif;
       color: #1d2430; max-width: 1180px; margin: 24px auto; padding: 0 20px; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 20px; margin-top: 34px;
     border-bottom: 2px solid #e3e7ee; padding-bottom: 4px; } h3 { font-size: 16px; margin: 22px 0 6px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px; }
th, td { border: 1px solid #d6dbe3; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f4f8; } .num { text-align: right; } td.num, td:first-child { white-space: nowrap; }
.ci { display: block; color: #718096; font-size: 11.5px; font-weight: normal; }
tr.first td { font-weight: 600; background: #f7fbff; }
table.gallery td { max-width: 420px; } table.gallery td:last-child { font-size: 12.5px; }
table.keyvalue td:first-child { color: #4a5568; }
.decision { font-size: 17px; padding: 10px 14px; border-radius: 6px; border-left: 6px solid; }
.decision.deploy { background: #e8f7ee; border-color: #1f9d55; }
.decision.optimise { background: #e8f1fc; border-color: #2b6cb0; }
.decision.fine-tune { background: #fdecec; border-color: #e53e3e; }
.decision.inconclusive { background: #fff6e0; border-color: #d69e2e; }
.decision.none { background: #edf0f4; border-color: #4a5568; }
.warning { background: #fdecec; padding: 6px 10px; border-radius: 4px; }
.note { color: #4a5568; font-size: 13.5px; }
img { display: block; margin: 8px 0; max-width: 100%; }
table img { margin: 0; }
.zoom { cursor: zoom-in; display: inline-block; } .zoom input { display: none; }
.zoom img { height: 64px; width: auto; max-width: none; }
.zoom input:checked + img { height: auto; cursor: zoom-out; }
"""


_NUMBER = re.compile(r"[-+]?[\d.]+( ?(%|s|\[[-\d., ]+\]))?|-|")


def _numeric_columns(table: Table) -> list[bool]:
    """Columns whose every cell is a number (or "-"): right-aligned so that digits line up; text stays left."""
    return [
        all(isinstance(row[i], Estimate) or _NUMBER.fullmatch(str(row[i])) for row in table.rows)
        for i in range(len(table.header))
    ]


def _html_cell(cell) -> str:
    if isinstance(cell, Image):
        return _html_image(cell)
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href, quote=True)}">{html.escape(cell.text)}</a>'
    if isinstance(cell, Estimate):
        ci = f'<span class="ci">{html.escape(cell.ci)}</span>' if cell.ci else ""
        return html.escape(cell.value) + ci
    return html.escape(str(cell))


def _html_image(image: Image) -> str:
    width = f' width="{image.width_px}"' if image.width_px else ""
    tag = f'<img src="{html.escape(image.uri, quote=True)}" alt="{html.escape(image.alt, quote=True)}"{width}>'
    if image.zoom:
        return f'<label class="zoom" title="click to enlarge"><input type="checkbox">{tag}</label>'
    return tag


def to_html(title: str, blocks: list) -> str:
    """The blocks as one self-contained HTML page (inline CSS, data: URIs, no script)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # else browsers fetch /favicon.ico from wherever the file is served
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            css = f' class="{block.css}"' if block.css else ""
            out.append(f"<p{css}>{html.escape(block.text)}</p>")
        elif isinstance(block, Image):
            out.append(_html_image(block))
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            css = f' class="{block.css}"' if block.css else ""
            align = [' class="num"' if numeric else "" for numeric in _numeric_columns(block)]
            out.append(
                f"<table{css}><thead><tr>"
                + "".join(f"<th{a}>{html.escape(h)}</th>" for h, a in zip(block.header, align, strict=True))
                + "</tr></thead><tbody>"
            )
            for k, row in enumerate(block.rows):
                first = ' class="first"' if block.emphasise_first_row and k == 0 else ""
                cells = "".join(f"<td{a}>{_html_cell(c)}</td>" for c, a in zip(row, align, strict=True))
                out.append(f"<tr{first}>{cells}</tr>")
            out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)
