"""Renders a suite's result as a table for people (``--json`` skips this)."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def render(suite: str, result: dict[str, Any]) -> str:
    """Rows with ``name/ours/baseline/ratio`` become a table; anything else is listed."""
    lines = [f"VeriStream benchmark: {suite}"]
    for section, rows in result.items():
        lines.append(f"\n[{section}]")
        if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "ratio" in rows[0]:
            lines.append(f"{'measurement':44} {'ours':>14} {'baseline':>14} {'ratio':>8}  unit / baseline")
            for row in rows:
                lines.append(
                    f"{row['name']:44} {_fmt(row['ours']):>14} {_fmt(row['baseline']):>14} "
                    f"{row['ratio']:>7.2f}x  {row['unit']} / {row['baseline_name']}"
                )
        elif isinstance(rows, dict):
            for key, value in rows.items():
                lines.append(f"  {key}: {_fmt(value)}")
        else:
            lines.append(f"  {_fmt(rows)}")
    return "\n".join(lines)
