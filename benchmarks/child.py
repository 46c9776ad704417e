"""Child-process entry point: ``python -m benchmarks.child '{"target": ..., "config": ..., "repeat": N}'``.

Prints the :class:`~benchmarks.harness.Measurement` as one JSON line.
"""

import json
import sys
from dataclasses import asdict

from benchmarks.harness import measure_here

if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    result = measure_here(request["target"], request["config"], request["repeat"], request.get("warmup", True))
    print(json.dumps(asdict(result)))
