"""The ``probe`` command line: thin click commands that parse, call :mod:`probe` and write galleries.

Each command is declared, free of torch, in :mod:`probe.cli.commands` (its options, help and examples) and does
its work in a module here (``probe.cli.maximize``: ``run``), imported only when the command runs."""
