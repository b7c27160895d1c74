"""Reading a command's one argument, `{uri, range, ...}` (docs/protocol.md).

Anything malformed is answered with a JSON-RPC "invalid params" error that says
what was expected; it never reaches the features' logic.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams


def command_argument(ls, args: tuple, command: str, shape: str, **fields: type) -> dict:
    """The one object a command takes, with `fields` of the given types.

    A field typed `types.Range` or `types.Position` is structured into one; a
    field named with a trailing `_` is optional (None when absent).
    """
    argument = args[0] if len(args) == 1 and isinstance(args[0], dict) else None
    if argument is None:
        raise JsonRpcInvalidParams(f"{command} takes one argument, {shape}")
    values: dict[str, Any] = {}
    for name, kind in fields.items():
        key = name.rstrip("_")
        value = argument.get(key)
        if value is None and name.endswith("_"):
            values[key] = None
            continue
        try:
            if kind in (types.Range, types.Position):
                values[key] = ls.protocol._converter.structure(value, kind)
            elif isinstance(value, kind):
                values[key] = value
            else:
                raise TypeError(key)
        except Exception:
            raise JsonRpcInvalidParams(
                f"{command}: `{key}` is missing or not a {kind.__name__}; it takes {shape}"
            ) from None
    return values
