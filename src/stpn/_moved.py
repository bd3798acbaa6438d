"""Names that moved keep working for one release: a module's ``__getattr__`` that finds them at
their new home and warns with a FutureWarning naming it."""
from __future__ import annotations

import warnings
from types import ModuleType


def moved_names(old_module: str, homes: dict[str, ModuleType]):
    """``__getattr__`` for ``old_module``: each name in ``homes`` is looked up in its new module."""
    def __getattr__(name: str):
        if name in homes:
            new = homes[name].__name__
            warnings.warn(f"{old_module}.{name} moved to {new}.{name}; the old name goes in the next release",
                          FutureWarning, stacklevel=2)
            return getattr(homes[name], name)
        raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
    return __getattr__
