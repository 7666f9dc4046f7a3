"""The local AWS's own costs, cut: what moto's server spends on each request that AWS does not
model, done in less time with the same answers.

- DynamoDB's `AttributeValue`s: moto's response serializer walks the botocore output shape for
  every attribute of every item, trying each member of the union under half a dozen aliases.
  An item moto hands the serializer is already in the wire's shape ({"S": "..."}, {"N": "1"},
  {"B": b"..."}, {"M": {...}}, ...): `_attribute_value` writes what the generic walk would,
  straight from it (strings as `str`, blobs base64, sets and containers member by member), and
  falls back to the generic walk for anything else.
- The server's dispatcher lists moto's package directory on every request to learn whether the
  host names a backend (`moto.backends.list_of_moto_modules`): the list is read once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import cache
from typing import Any, Final

import moto.backends as moto_backends
from moto.core.serialize import BaseJSONSerializer

Setter = Callable[[object, str, object], None]

_ATTRIBUTE_VALUE: Final = "AttributeValue"
_DYNAMODB_SERVICES: Final = frozenset({"dynamodb", "dynamodbstreams"})
_STRINGS: Final = frozenset({"S", "N"})
_STRING_SETS: Final = frozenset({"SS", "NS"})
_FLAGS: Final = frozenset({"BOOL", "NULL"})


class _NotPlainError(Exception):
    """A value the fast path does not take: the generic walk serializes it."""


def _blob(value: object) -> str:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes | bytearray):
        raise _NotPlainError
    return base64.b64encode(value).strip().decode("utf-8")


def _attribute_value(value: object) -> dict[str, Any]:
    """One DynamoDB AttributeValue as moto's JSON serializer would write it."""
    if not isinstance(value, dict) or len(value) != 1:
        raise _NotPlainError
    ((kind, inner),) = value.items()
    if inner is None:
        raise _NotPlainError
    if kind in _STRINGS:
        if inner in ({}, []):
            raise _NotPlainError
        return {kind: str(inner)}
    if kind in _FLAGS:
        if not isinstance(inner, bool):
            raise _NotPlainError
        return {kind: inner}
    if kind == "B":
        return {kind: _blob(inner)}
    if not isinstance(inner, list | dict):
        raise _NotPlainError
    if kind == "M" and isinstance(inner, dict):
        return {kind: {str(k): _attribute_value(v) for k, v in inner.items()}}
    if kind == "L" and isinstance(inner, list):
        return {kind: [_attribute_value(v) for v in inner]}
    if kind in _STRING_SETS and isinstance(inner, list):
        if any(v is None or v in ({}, []) for v in inner):
            raise _NotPlainError
        return {kind: [str(v) for v in inner]}
    if kind == "BS" and isinstance(inner, list):
        return {kind: [_blob(v) for v in inner]}
    raise _NotPlainError


@cache
def _moto_modules() -> frozenset[str]:
    return frozenset(_ORIGINAL_LIST_OF_MOTO_MODULES())


_ORIGINAL_LIST_OF_MOTO_MODULES: Final = moto_backends.list_of_moto_modules


def install(set_attribute: Setter) -> None:
    """Put the faster paths in place through `set_attribute(owner, name, value)` (the caller
    keeps what it replaced, to put it back)."""
    generic_structure = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(
        serializer: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        if (
            key
            and shape.name == _ATTRIBUTE_VALUE
            and serializer.service_model.service_name in _DYNAMODB_SERVICES
        ):
            try:
                plain = _attribute_value(value)
            except _NotPlainError:
                pass
            else:
                serialized[serializer.get_serialized_name(shape, key)] = plain
                return
        generic_structure(serializer, serialized, value, shape, key)

    set_attribute(BaseJSONSerializer, "_serialize_type_structure", serialize_structure)
    set_attribute(moto_backends, "list_of_moto_modules", _moto_modules)


__all__ = ["install"]
