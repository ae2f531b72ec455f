"""In-memory IO manager for tests: values live in this process only."""

from __future__ import annotations

import copy
import threading
import uuid
from typing import Any

from dagster import InputContext, OutputContext
from pydantic import Field

from ._base import PartitionAwareIOManager, StoredValueMissing
from ._naming import StorageLocation

# Stores by ``store_id``. Dagster may rebuild a resource from its config between steps, so the
# values cannot live on the instance itself; the id (part of the config) finds them again.
_STORES: dict[str, dict[tuple[tuple[str, ...], str | None], Any]] = {}
_STORES_LOCK = threading.Lock()


class InMemoryIOManager(PartitionAwareIOManager):
    """Keep outputs in a process-local dict keyed by (asset path, partition key).

    Same contract as the other IO managers (dicts, polars frames, ``None``, partitions), plus
    any other value (e.g. a ``GraphData``), since nothing is serialised. Values are
    deep-copied on the way in and out so a step cannot mutate what another step loads. Use
    only with the in-process executor.
    """

    store_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex, description="Key of this manager's store."
    )

    def _values(self) -> dict[tuple[tuple[str, ...], str | None], Any]:
        with _STORES_LOCK:
            return _STORES.setdefault(self.store_id, {})

    def stored(self) -> dict[tuple[tuple[str, ...], str | None], Any]:
        """A snapshot of every stored value by (asset path, partition key or ``None``)."""
        return dict(self._values())

    def clear(self) -> None:
        """Forget every stored value."""
        self._values().clear()

    def _check(self, location: StorageLocation, obj: object) -> None:
        """Any value is accepted: nothing is serialised."""

    def _store(self, context: OutputContext, location: StorageLocation, obj: Any) -> dict[str, Any]:
        self._values()[(location.asset_path, location.partition_key)] = copy.deepcopy(obj)
        rows = getattr(obj, "height", None)
        return {"row_count": rows} if isinstance(rows, int) else {}

    def _load(self, context: InputContext, location: StorageLocation) -> Any:
        try:
            return copy.deepcopy(self._values()[(location.asset_path, location.partition_key)])
        except KeyError:
            raise StoredValueMissing(
                f"nothing stored in memory for {location.describe()}; materialise it in the same process first"
            ) from None
