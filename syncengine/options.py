"""Sync options and the seed's merge order.

Options come as a frozen :class:`SyncOptions` or as a partial mapping
(``{"exclude": ["*.tmp"]}``).  Layers merge key by key, as the seed's object
spread does: a later layer's ``exclude`` replaces an earlier one, it does not
extend it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["SyncOptions", "OptionsLike", "merge_options"]


@dataclass(frozen=True)
class SyncOptions:
    """What one sync does: delete extraneous destination entries, and which
    rsync ``--exclude`` patterns to apply (in order)."""

    delete: bool = True
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.delete, bool):
            raise ValueError(f"option 'delete' must be a bool, not {type(self.delete).__name__}")
        exclude = self.exclude
        if isinstance(exclude, (str, bytes)):
            raise ValueError("option 'exclude' must be a list of patterns, not a single string")
        exclude = tuple(exclude)
        for pattern in exclude:
            if not isinstance(pattern, str):
                raise ValueError(f"exclude pattern must be a string, not {type(pattern).__name__}")
            if "\0" in pattern:
                raise ValueError("exclude pattern must not contain a NUL byte")
        object.__setattr__(self, "exclude", exclude)

    def as_dict(self) -> dict[str, Any]:
        return {"delete": self.delete, "exclude": list(self.exclude)}


OptionsLike = SyncOptions | Mapping[str, Any] | None

_KEYS = frozenset(f.name for f in fields(SyncOptions))


def _partial(layer: OptionsLike) -> dict[str, Any]:
    """The keys one layer sets. A SyncOptions sets every key; a mapping only
    the keys it names; None sets nothing."""
    if layer is None:
        return {}
    if isinstance(layer, SyncOptions):
        return {"delete": layer.delete, "exclude": layer.exclude}
    if not isinstance(layer, Mapping):
        raise ValueError(f"options must be SyncOptions or a mapping, not {type(layer).__name__}")
    unknown = sorted(set(layer) - _KEYS)
    if unknown:
        raise ValueError(f"unknown sync option(s): {', '.join(map(str, unknown))} (known: delete, exclude)")
    partial = dict(layer)
    if "exclude" in partial and partial["exclude"] is None:
        partial["exclude"] = ()
    # Validate the layer on its own, and keep the validated values: a
    # one-shot iterable of patterns would be consumed here, and a caller's
    # list must not be able to change the stored layer later.
    checked = SyncOptions(**{**SyncOptions().as_dict(), **partial})
    return {key: getattr(checked, key) for key in partial}


def merge_options(*layers: OptionsLike) -> SyncOptions:
    """Merge layers left to right over the defaults (later keys win)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(_partial(layer))
    return SyncOptions(**merged)


def normalize_partial(layer: OptionsLike) -> dict[str, Any]:
    """Validate a layer and return the keys it sets (for storing on a facade)."""
    return _partial(layer)
