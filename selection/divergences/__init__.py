"""The divergences a worst case can be taken over, by name: a registry of plain data.

Each divergence is one class (:class:`postconv.selection.divergences.base.Divergence`) in a
file of its own; this registry names where it lives, so the names load without torch (the
CLI's choices and the options' checks read them) and the class loads on first use. Adding a
divergence is one new file and one line here, or :func:`register` from outside the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postconv.selection.divergences.base import Divergence

REGISTRY: dict[str, str] = {
    "kl": "postconv.selection.divergences.kl:KL",
    "chi2": "postconv.selection.divergences.chi2:ChiSquare",
}
"""Name -> ``module:Class`` of each divergence."""

_LOADED: dict[str, Divergence] = {}


def names() -> tuple[str, ...]:
    """The registered divergences' names, e.g. for a CLI's choices."""
    return tuple(REGISTRY)


def register(name: str, target: str | type) -> None:
    """Add (or replace) a divergence: ``target`` is ``module:Class`` of a :class:`Divergence`
    subclass (loaded on first use), or the class itself."""
    if isinstance(target, str):
        REGISTRY[name] = target
        _LOADED.pop(name, None)
        return
    _check(name, target)
    REGISTRY[name] = f"{target.__module__}:{target.__qualname__}"
    _LOADED[name] = target()


def _check(name: str, cls: type) -> None:
    from postconv.selection.divergences.base import Divergence

    if not (isinstance(cls, type) and issubclass(cls, Divergence)):
        raise TypeError(f"divergence {name!r}: {cls!r} is not a subclass of Divergence")
    if getattr(cls, "name", None) != name:
        raise ValueError(
            f"divergence {name!r}: its class says name = {getattr(cls, 'name', None)!r}; give them one name"
        )


def get(divergence: str | Divergence) -> Divergence:
    """The divergence named ``divergence`` (an instance passes through)."""
    if not isinstance(divergence, str):
        return divergence
    if divergence not in _LOADED:
        if divergence not in REGISTRY:
            raise ValueError(f"divergence must be one of {', '.join(REGISTRY)}; got {divergence!r}")
        module, _, path = REGISTRY[divergence].partition(":")
        cls = importlib.import_module(module)
        for part in path.split("."):
            cls = getattr(cls, part)
        _check(divergence, cls)
        _LOADED[divergence] = cls()
    return _LOADED[divergence]


__all__ = ["REGISTRY", "get", "names", "register"]
