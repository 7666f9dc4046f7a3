"""The local AWS's own costs, cut: what moto's server and boto's clients spend that AWS does not
model (it takes no virtual time), done in less time with the same answers.

- DynamoDB's `AttributeValue`s: moto's response serializer walks the botocore output shape for
  every attribute of every item, trying each member of the union under half a dozen aliases.
  An item moto hands the serializer is already in the wire's shape ({"S": "..."}, {"N": "1"},
  {"B": b"..."}, {"M": {...}}, ...): `_attribute_value` writes what the generic walk would,
  straight from it (strings as `str`, blobs base64, sets and containers member by member), for
  one value or a whole item (a map of them), and falls back to the generic walk for anything
  else.
- DynamoDB's Query (on the table or an index) and Scan start from `Table.all_items()`, every
  item of the table in key order, sorted anew on each request by comparing moto's `DynamoType`s
  (each comparison converts both values again). Sorting by the converted key values gives the
  same order (a `DynamoType` compares by that value) at a fraction of the cost. A Query on an
  index sorts what it found by the index's keys and then the table's (a total order) whatever
  order it looked at the items in: there the table is not sorted first. With thousands of items
  (the webhook ledger, the room index) a Query no longer costs what a sort of the table does.
- The server's dispatcher lists moto's package directory on every request to learn whether the
  host names a backend (`moto.backends.list_of_moto_modules`): the list is read once.
- Every new botocore session reads and decodes botocore's data files (endpoints, partitions,
  each service's model) again, and the handlers build new sessions at each cold start (a new
  Powertools SecretsProvider, the wiring's clients after a timeout). The sessions share one
  data loader (`botocore.session.create_loader`): the files are read once, as by the clients
  of one session. The clients, their hooks and their state are still new each time.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from functools import cache
from typing import Any, Final

import botocore.session
import moto.backends as moto_backends
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb.models.table import Table

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
        return {kind: {k: _attribute_value(v) for k, v in inner.items()}}
    if kind == "L" and isinstance(inner, list):
        return {kind: [_attribute_value(v) for v in inner]}
    if kind in _STRING_SETS and isinstance(inner, list):
        if any(v is None or v in ({}, []) for v in inner):
            raise _NotPlainError
        return {kind: [str(v) for v in inner]}
    if kind == "BS" and isinstance(inner, list):
        return {kind: [_blob(v) for v in inner]}
    raise _NotPlainError


def _item_order(item: Any) -> Any:
    """The key `Table.all_items` sorts by, as the values the `DynamoType`s compare."""
    if item.range_key:
        return (item.hash_key.cast_value, item.range_key.cast_value)
    return item.hash_key.cast_value


# Set while a thread runs a Query on an index: its `all_items` need not be sorted.
_index_query = threading.local()


def _all_items(table: Table) -> list[Any]:
    """`Table.all_items`, sorted by `_item_order` (not at all for a Query on an index)."""
    items: list[Any] = []
    for hash_set in table.items.values():
        if table.range_key_attr:
            items.extend(hash_set.values())
        else:
            items.append(hash_set)
    if getattr(_index_query, "on", False):
        return items
    return sorted(items, key=_item_order)


_QUERY_INDEX_NAME_POSITION: Final = 7  # Table.query(hash_key, ..., projection_expressions, index_name, ...)


_ORIGINAL_CREATE_LOADER: Final = botocore.session.create_loader


@cache
def _shared_loader(search_path_string: str | None = None) -> Any:
    return _ORIGINAL_CREATE_LOADER(search_path_string)


@cache
def _moto_modules() -> frozenset[str]:
    return frozenset(_ORIGINAL_LIST_OF_MOTO_MODULES())


_ORIGINAL_LIST_OF_MOTO_MODULES: Final = moto_backends.list_of_moto_modules


def install(set_attribute: Setter) -> None:
    """Put the faster paths in place through `set_attribute(owner, name, value)` (the caller
    keeps what it replaced, to put it back)."""
    generic_structure = BaseJSONSerializer._serialize_type_structure
    generic_map = BaseJSONSerializer._serialize_type_map
    generic_query = Table.query

    def dynamodb(serializer: BaseJSONSerializer) -> bool:
        return serializer.service_model.service_name in _DYNAMODB_SERVICES

    def serialize_structure(
        serializer: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        if key and shape.name == _ATTRIBUTE_VALUE and dynamodb(serializer):
            try:
                plain = _attribute_value(value)
            except _NotPlainError:
                pass
            else:
                serialized[serializer.get_serialized_name(shape, key)] = plain
                return
        generic_structure(serializer, serialized, value, shape, key)

    def serialize_map(
        serializer: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        # An item (AttributeMap, Key, ...): a map of AttributeValues, each under its own name.
        if (
            shape.value.name == _ATTRIBUTE_VALUE
            and not shape.value.serialization.get("name")
            and isinstance(value, dict)
            and dynamodb(serializer)
        ):
            try:
                plain = {k: _attribute_value(v) for k, v in value.items()}
            except _NotPlainError:
                pass
            else:
                serialized[serializer.get_serialized_name(shape, key)] = plain
                return
        generic_map(serializer, serialized, value, shape, key)

    def query(table: Table, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get(
            "index_name", args[_QUERY_INDEX_NAME_POSITION] if len(args) > _QUERY_INDEX_NAME_POSITION else None
        )
        _index_query.on = bool(index_name)
        try:
            return generic_query(table, *args, **kwargs)
        finally:
            _index_query.on = False

    set_attribute(BaseJSONSerializer, "_serialize_type_structure", serialize_structure)
    set_attribute(BaseJSONSerializer, "_serialize_type_map", serialize_map)
    set_attribute(Table, "query", query)
    set_attribute(moto_backends, "list_of_moto_modules", _moto_modules)
    set_attribute(Table, "all_items", _all_items)
    set_attribute(botocore.session, "create_loader", _shared_loader)


__all__ = ["install"]
