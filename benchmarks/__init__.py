"""Side-by-side benchmarks of cnn-probe against the field's tools.

Run ``python -m benchmarks --suite all --device auto`` (install the comparison
tools first: ``pip install -e ".[bench]"``). Every measurement runs in a fresh
child process, so one contender's caches, hooks and memory high-water mark
never reach another's; contenders of one row run back to back on the same
device, model, sizes and steps, and the row reports their ratio. Results go to
``benchmarks/results/<date>-<device>.json``; ``benchmarks/README.md`` quotes them.
"""
