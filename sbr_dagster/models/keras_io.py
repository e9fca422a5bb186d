"""What every model with a Keras network shares: its state, its device, saving and loading.

Keras insists on the ``.keras`` extension and writes in place, so an archive is staged under a
temporary name beside its target and moved over it: a reader never sees half a network.
Importing this module stays cheap: Keras loads only when a network is saved or loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from sbr_dagster.lake.files import atomic_path
from sbr_dagster.models.base import ModelConfig, SessionModel

NETWORK_FILE = "model.keras"


class KerasModel(SessionModel):
    """A ``SessionModel`` whose trained state is one Keras network (``self.network``)."""

    has_weights = True
    weight_files = (NETWORK_FILE,)
    network_name: ClassVar[str]  # the network class's registered Keras name

    def __init__(self, config: ModelConfig | None = None, network: Any = None) -> None:
        super().__init__(config)
        self.network = network  # once fitted or loaded

    @classmethod
    def network_class(cls) -> type:
        """The Keras model class (imported lazily: it imports TensorFlow)."""
        raise NotImplementedError

    def _fitted(self):
        if self.network is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit() or load() first")
        return self.network

    @property
    def device(self) -> str:
        from sbr_dagster.models.device import device_name

        return device_name()

    def snapshot(self) -> list[np.ndarray]:
        return [w.copy() for w in self._fitted().get_weights()]

    def restore(self, snapshot: list[np.ndarray]) -> None:
        self._fitted().set_weights(snapshot)

    def save(self, directory: Path) -> None:
        save_network(self._fitted(), Path(directory) / NETWORK_FILE)

    @classmethod
    def load(cls, directory: Path, config: ModelConfig) -> Self:
        return cls(
            config, load_network(Path(directory) / NETWORK_FILE, cls.network_name, cls.network_class())
        )


def save_network(network, target: Path) -> None:
    with atomic_path(Path(target), suffix=".keras") as tmp:
        staged = tmp.with_suffix("")  # ".<name>.<random>.keras": what Keras accepts
        try:
            network.save(staged)
            staged.replace(tmp)
        finally:
            staged.unlink(missing_ok=True)


def load_network(source: Path, name: str, network_class: type):
    import keras

    return keras.saving.load_model(Path(source), custom_objects={name: network_class}, compile=False)
