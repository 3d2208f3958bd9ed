"""The HTML page: figures embedded as PNG data, tables, no scripts and nothing fetched."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
img { max-width: 100%; } .verdict { font-size: 1.1em; font-weight: bold; }
"""


class Page:
    def __init__(self, title: str, figure_dir: Path):
        self.title, self.figure_dir, self.parts = title, figure_dir, []
        figure_dir.mkdir(parents=True, exist_ok=True)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, css: str = "") -> None:
        self.parts.append(f'<p class="{css}">{html.escape(text)}</p>')

    def figure(self, fig, name: str, alt: str) -> None:
        """Save ``fig`` as PNG beside the report and embed the same bytes in the page."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        data = buffer.getvalue()
        (self.figure_dir / f"{name}.png").write_bytes(data)
        encoded = base64.b64encode(data).decode()
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">')

    def table(self, header: list[str], rows: list[list]) -> None:
        cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><tr>{cells}</tr>{body}</table>")

    def write(self, path: Path) -> Path:
        text = (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>{''.join(self.parts)}</body></html>"
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path


def _td(value) -> str:
    """A table cell: numbers right-aligned, text left; ("link", text, href) a link to a relative path."""
    if isinstance(value, tuple) and len(value) == 3 and value[0] == "link":
        return f'<td class="text"><a href="{html.escape(value[2])}">{html.escape(value[1])}</a></td>'
    css = "" if isinstance(value, (int, float)) else "text"
    return f'<td class="{css}">{html.escape(_cell(value))}</td>'


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
