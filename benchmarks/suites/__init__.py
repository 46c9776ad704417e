"""One module per benchmark suite; each has ``run(device, quick) -> (rows, curves)``."""
