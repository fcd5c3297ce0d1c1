"""Markdown tables for results printed to the console (readable as plain text too)."""
from typing import Any, Sequence


def format_cell(value: Any) -> str:
    """Floats in [0, 1] as percentages with 2 decimals, other floats with 1; anything else as str."""
    if isinstance(value, float):
        return "%.2f" % (100 * value) if 0.0 <= value <= 1.0 else "%.1f" % value
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with padded columns; cells are formatted by :func:`format_cell`."""
    cells = [[format_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
              for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(str(v).ljust(w) for v, w in zip(values, widths)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells])
