"""Choose the device work runs on; ``"auto"`` takes CUDA when there is one."""

from __future__ import annotations

import torch

from probe.errors import ProbeUsageError

__all__ = ["resolve_device", "normalize_device", "same_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a device into a ``torch.device``.

    ``"auto"`` (and None) pick ``cuda`` when it is available, else ``cpu``.

    Raises:
        ProbeUsageError: for a malformed name or a device this machine lacks.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ProbeUsageError(
            f"unknown device {device!r}; use auto, cpu, cuda or cuda:N ({error})", param="device"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ProbeUsageError("CUDA is not available on this machine; use --device cpu or auto", param="device")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ProbeUsageError(
                f"device {device!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)",
                param="device",
            )
    if resolved.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ProbeUsageError("MPS is not available on this machine; use --device cpu or auto", param="device")
    if resolved.type == "meta":
        raise ProbeUsageError("the meta device holds no data, so nothing can be computed on it; use --device cpu "
                              "or auto", param="device")
    if resolved.type not in ("cpu", "cuda", "mps") and not _backend_available(resolved.type):
        raise ProbeUsageError(
            f"{resolved.type} is not available on this machine (torch was not built with it, or no device is "
            "present); use --device cpu or auto", param="device")
    return resolved


def _backend_available(kind: str) -> bool:
    """Whether torch has a working backend for device type ``kind`` (``xpu``, ``hpu``, ...): its
    ``torch.<kind>.is_available()``; False when torch has no such module (it would fail on first use)."""
    backend = getattr(torch, kind, None)
    available = getattr(backend, "is_available", None)
    try:
        return bool(available()) if callable(available) else False
    except Exception:  # noqa: BLE001 - a backend that cannot even say is not one to run on
        return False


def normalize_device(device: str | torch.device) -> torch.device:
    """``device`` with its index made explicit: ``cuda`` -> ``cuda:<current device>``; ``cpu`` stays ``cpu``.

    ``torch.device("cuda") != torch.device("cuda:0")``, yet a tensor created on
    ``"cuda"`` lives on the current CUDA device; this names that device.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if device.type in ("mps", "xpu") and device.index is None:
        return torch.device(device.type, 0)
    return device


def same_device(a: str | torch.device, b: str | torch.device) -> bool:
    """True when ``a`` and ``b`` name one device (``"cuda"`` and ``"cuda:0"`` while device 0 is current)."""
    return normalize_device(a) == normalize_device(b)
