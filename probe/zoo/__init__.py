"""The embedded model zoo (being built on the `zoo` branch; this file only keeps `import probe` working until it lands)."""

from probe.errors import unknown_name


def zoo_names() -> list[str]:
    """Names of the embedded models (none until the zoo lands)."""
    return []


def get_spec(name: str):  # noqa: ANN201
    raise unknown_name("zoo model", name, zoo_names(), param="model")


def sample_input(name: str, key: str):  # noqa: ANN201
    raise unknown_name("zoo model", name, zoo_names(), param="model")
