"""Saving and loading the trained models' Keras networks, one way for every model.

Keras insists on the ``.keras`` extension and writes in place, so an archive is staged under a
temporary name beside its target and moved over it: a reader never sees half a network.
"""

from __future__ import annotations

from pathlib import Path

from sbr_dagster.lake.files import atomic_path


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
