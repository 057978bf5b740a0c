"""A nested config as dotted keys: the one helper both the schema and the config read keys with (no imports)."""

from __future__ import annotations

from typing import Any, Mapping


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def get_dotted(nested: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """nested["a"]["b"] for "a.b"; `default` when a part is missing."""
    node: Any = nested
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node
