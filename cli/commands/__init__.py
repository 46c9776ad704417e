"""The ``probe`` commands as click sees them: one module each declares a command's arguments, options, help and
examples, free of torch, so that ``probe COMMAND --help`` and click's own usage errors answer at once; the
command's work (``probe.cli.<module>``, which imports torch) is imported only when the command runs
(:func:`probe.cli.common.work`). Choices and defaults the library has too (presets, methods, precisions, ...)
come from :mod:`probe.choices`, which both import."""
