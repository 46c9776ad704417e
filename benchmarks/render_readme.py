"""Print the Markdown tables of a results file: ``python -m benchmarks.render_readme benchmarks/results/FILE.json``.

The tables in benchmarks/README.md and the README are pasted from this output,
so every number quoted there comes from a committed results file.
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


def main(path: str) -> None:
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
    main(sys.argv[1])
