"""The usage line of a command with arguments: ``dlrun report PATH``, not Typer's ``{PATH}``.

Typer writes a required argument as ``{NAME}`` in the usage line, which reads like a template
placeholder ("{path}") to users; POSIX usage writes it bare (an optional one keeps [brackets]).
"""

from __future__ import annotations

import typer.core


class PlainUsage(typer.core.TyperCommand):
    """A command whose usage line names required arguments without braces."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]
