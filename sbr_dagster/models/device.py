"""Where TensorFlow runs, and making it repeatable there.

TensorFlow picks the device itself (the GPU when one is visible); these helpers only name it for
reports and pin the randomness, so the same code and seed give the same model on a CPU.
"""

from __future__ import annotations


def device_name() -> str:
    """ "GPU:0 (<name>)" when TensorFlow sees a GPU, else "CPU"."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU:0 ({details.get('device_name', gpus[0].name)})"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF's kernels deterministic (same seed, same run on CPU)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
