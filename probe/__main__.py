"""``python -m probe``: the ``probe`` command, so that ``torchrun -m probe atlas ...`` works."""

from probe.cli.entry import main

if __name__ == "__main__":
    main()
