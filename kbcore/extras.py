"""Optional dependencies: import one, or fail with the command that installs its extra."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module!r} is needed for this embedder but is not installed; install the extra: pip install '.[{extra}]'"
        ) from exc
