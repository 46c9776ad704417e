"""``python -m probe``: the ``probe`` command, so that ``torchrun -m probe atlas ...`` works."""

from probe.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="probe")
