"""The ``probe`` command line: thin click commands that parse, call :mod:`probe` and write galleries."""
