"""Print the Markdown tables of results files: ``python -m benchmarks.render_readme FILE.json [FILE.json ...]``.

The tables in benchmarks/README.md and the README are pasted from this output,
so every number quoted there comes from a committed results file. Given a CPU
and a CUDA file, it prints one section each (``### cpu``, ``### cuda (NVIDIA H200)``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.harness import Measurement, Row, curve_table, table


def rows_of(data: dict) -> list[Row]:
    """The rows of a results file as :class:`Row` objects."""
    rows = []
    for row in data["rows"]:
        fields = {key: row[key] for key in ("suite", "case", "peer_name", "note")}
        rows.append(Row(**fields, ours=Measurement(**row["ours"]), peer=Measurement(**row["peer"])))
    return rows


def main(*paths: str) -> None:
    """Print each file's tables, under a heading per device when there are several."""
    for number, path in enumerate(paths):
        if len(paths) > 1:
            machine = json.loads(Path(path).read_text())["machine"]
            gpu = f" ({machine['gpu']})" if machine.get("gpu") else ""
            if number:
                print()
            print(f"### {machine['device']}{gpu}\n")
        render(path)


def render(path: str) -> None:
    """Print one results file: where it was measured, its rows and curves."""
    data = json.loads(Path(path).read_text())
    machine = data["machine"]
    print(f"{data['date']}, {machine['device']}, {machine.get('gpu', machine['cpu'])}, "
          f"{machine['cpu_cores']} cores, torch {machine['torch']} ({machine['torch_threads']} threads), "
          f"Python {machine['python']}: `{Path(path).as_posix()}`\n")
    print(table(rows_of(data)))
    if data.get("curves"):
        print()
        print(curve_table(data["curves"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
