"""GRU4Rec's settings: the network's shape, its loss and optimizer, and the epoch budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sbr_dagster.models.base import ModelConfig

AUTO_BATCH_MAX, AUTO_BATCH_MIN, AUTO_UPDATES_PER_EPOCH = 128, 16, 1000  # batch_size 0 (batch_for)
N_RATINGS = 6  # rating values 1..5 index a table of 6 rows; 0 means "no rating"


@dataclass(frozen=True)
class GRU4RecConfig(ModelConfig):
    """Everything that defines a GRU4Rec training run.

    The defaults were tuned on ML-1M's user-as-session split (best epoch chosen on validation):
    dropout on the hidden output and a per-epoch learning-rate decay gave the largest gains
    (test Recall@20 0.18 -> 0.26), time-ordered epochs beat shuffled ones, batch 128 beat 192 and
    256; tied embeddings and Adagrad scored lower, 200 hidden units no better after 4 epochs at
    2.5x the cost. They were then checked on a 10% sample of ML-1M's users, where 8 epochs of batch
    128 underfitted (below sequential rules): the batch now follows the data (``batch_for``) and the
    epoch count follows validation (at most ``epochs``, stopped after ``patience``). A decay only on
    validation plateaus (``lr_schedule: plateau``) scored about the same on the sample but on ML-1M
    kept 3e-3 for epochs (validation Recall@20 0.216 after 5 on `user`; the per-epoch decay: 0.327
    after 8). Reading the time since the session's previous rating (``gap_dim`` 8) then raised
    validation Recall@20 on ML-1M from 0.331 to 0.367 on `user` and from 0.342 to 0.373 on `gap_30m`
    (timeline protocol), and from 0.276 to 0.317 on the days protocol's `user` split. Leaving the
    session's earlier movies out of the softmax (``exclude_seen``) then raised validation Recall@20
    among unseen movies on `user` from 0.430 to 0.443 (timeline; paired +0.013 [+0.011, +0.015]) and
    on the days split from 0.317 to 0.392, at ~19% more training time.
    Batch 128 with ``bptt_steps=2`` trains at ~39k events/s on 2 CPU cores (bench/train_eval.py).
    """

    layers: tuple[int, ...] = (100,)  # GRU widths, first to last
    embedding_dim: int = 0  # 0: one-hot item input (GRU4Rec's default)
    rating_dim: int = 0  # 0: ratings unused; > 0: a rating embedding joins the item input
    # > 0: the gap since the session's previous event (sbr_dagster.data.gaps) joins the item input as
    # an embedding of this width, and the gap before a target shifts the output it is scored from;
    # 0: times unused
    gap_dim: int = 8
    tied_embeddings: bool = False  # output layer scores items with the input embedding
    dropout_embedding: float = 0.0  # on the item input
    dropout_hidden: float = 0.3  # on each GRU layer's output (next layer's input / the output layer's)
    loss: Literal["cross_entropy", "bpr_max"] = "cross_entropy"  # cross_entropy: softmax over all items
    # The session's earlier movies leave the training softmax (cross_entropy only) and are never
    # scored: a viewer does not rate a movie twice, so pushing them down is wasted effort
    exclude_seen: bool = True
    n_negatives: int = 2048  # bpr_max: popularity-sampled negatives shared by the batch (plus in-batch)
    sample_alpha: float = 0.5  # bpr_max: negatives drawn with probability ~ support ** sample_alpha
    bpreg: float = 1.0  # bpr_max: score regulariser weight
    optimizer: Literal["adam", "adagrad"] = "adam"  # adagrad: with momentum, as GRU4Rec
    learning_rate: float = 0.003
    lr_decay: float = 0.6  # the learning rate is multiplied by this after an epoch (see lr_schedule)
    # epoch: decay after every epoch; plateau: only after an epoch with no better validation score
    # (without validation it never decays)
    lr_schedule: Literal["epoch", "plateau"] = "epoch"
    momentum: float = 0.0  # adagrad only
    batch_size: int = 0  # sessions side by side; 0: chosen from the train events (batch_for)
    bptt_steps: int = 2  # steps per update, gradients flowing back through them (1: GRU4Rec's)
    epochs: int = 30  # at most: validation decides (patience)
    patience: int = 2  # epochs without a better validation Recall@20 before stopping
    seed: int = 0
    order: Literal["shuffle", "time"] = "time"  # session order of each training epoch
    steps_per_call: int = 256  # schedule steps run per compiled call (speed only, results unchanged)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(w) for w in self.layers))
        if not self.layers or min(self.layers) < 1:
            raise ValueError(f"layers must be one or more positive widths, got {self.layers}")
        if self.loss not in ("cross_entropy", "bpr_max"):
            raise ValueError(f"unknown loss {self.loss!r}: use 'cross_entropy' or 'bpr_max'")
        if self.optimizer not in ("adam", "adagrad"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use 'adam' or 'adagrad'")
        if self.lr_schedule not in ("epoch", "plateau"):
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}: use 'epoch' or 'plateau'")
        if self.order not in ("shuffle", "time"):
            raise ValueError(f"unknown order {self.order!r}: use 'shuffle' or 'time'")
        if self.exclude_seen and self.loss != "cross_entropy":
            raise ValueError(
                "exclude_seen works with loss 'cross_entropy' only: set exclude_seen: false for 'bpr_max'"
            )
        if self.tied_embeddings and self.embedding_dim not in (0, self.layers[-1]):
            raise ValueError(
                f"tied_embeddings needs embedding_dim 0 or the last layer's width {self.layers[-1]}, "
                f"got {self.embedding_dim}"
            )
        if min(self.bptt_steps, self.epochs, self.steps_per_call) < 1:
            raise ValueError("bptt_steps, epochs and steps_per_call must be >= 1")
        if min(self.rating_dim, self.gap_dim, self.embedding_dim) < 0:
            raise ValueError("embedding_dim, rating_dim and gap_dim must be >= 0 (0: unused)")
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 1 (0: chosen from the data), not {self.batch_size}")

    def batch_for(self, n_events: int) -> int:
        """The batch for ``n_events`` train events: ``batch_size``, or (0) the largest power of two up to
        128 that still gives an epoch 1,000 updates, and at least 16.

        Small data needs updates more than width: on a 10% sample of ML-1M's users (80k train events)
        batch 32 beat 128 on validation, both trained until validation stopped them (Recall@20 0.252
        vs 0.219 on `user`, 0.259 vs 0.234 on `gap_1h`, decaying on plateaus; 0.245 and 0.263 at 32
        with the default per-epoch decay), while on ML-1M itself (800k events) this still gives 128.
        """
        if self.batch_size:
            return self.batch_size
        wanted = n_events // (AUTO_UPDATES_PER_EPOCH * self.bptt_steps)
        return int(min(AUTO_BATCH_MAX, max(AUTO_BATCH_MIN, 1 << max(wanted.bit_length() - 1, 0))))

    def network(self) -> dict[str, Any]:
        """The settings that shape the network (what ``build_model`` needs)."""
        return {
            "layers": list(self.layers),
            "embedding_dim": self.embedding_dim,
            "rating_dim": self.rating_dim,
            "gap_dim": self.gap_dim,
            "tied_embeddings": self.tied_embeddings,
            "dropout_embedding": self.dropout_embedding,
            "dropout_hidden": self.dropout_hidden,
        }
