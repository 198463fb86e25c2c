"""Registries whose misses say which config key was wrong and what names exist."""
from typing import Any, Callable, Optional

from fvcore.common.registry import Registry as _FvcoreRegistry

from .errors import UserError

__all__ = ["Registry", "UnknownNameError", "lookup"]


class UnknownNameError(KeyError, UserError):
    """A name that no registry entry has, usually a config value. A KeyError (and a UserError);
    prints its message unquoted."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(_FvcoreRegistry):
    """fvcore's registry, plus registration under a name other than ``__name__``.

    Short names such as ``"GN"`` or ``"FrozenBN"`` are what configs use, so norm layers register
    under them: ``NORM_REGISTRY.register_as("GN")(GroupNorm)``.
    """

    def register_as(self, name: str, *, replace: bool = False) -> Callable[[Any], Any]:
        """Register under ``name``; ``replace`` puts it over an entry of that name."""

        def deco(obj: Any) -> Any:
            if name in self and not replace:
                raise ValueError(f"{name!r} is already registered in the {self._name} registry")
            self._obj_map[name] = obj
            return obj

        return deco

    def names(self) -> list:
        return sorted(self._obj_map)


def lookup(registry: Registry, name: str, key: Optional[str] = None) -> Any:
    """Return ``registry``'s entry for ``name``.

    Args:
        registry: where to look.
        name: the registered name, usually a config value.
        key: the config key that held ``name``; it goes into the error message.

    Raises:
        UnknownNameError: naming the key, the value and every registered name.
    """
    if name in registry:
        return registry.get(name)
    where = f"{key}={name!r}" if key else repr(name)
    raise UnknownNameError(
        f"{where} is not in the {registry._name} registry; "
        f"registered names: {', '.join(registry.names()) or '(none)'}"
    )
