"""Dagster assets, one module per mission step; each only wires plain functions into the graph."""

from importlib.metadata import version

PREPROCESSING_TAGS = {"stage": "preprocessing"}
# Every asset's code version: a new release of the package marks what it built stale in the UI.
CODE_VERSION = version("sbr_dagster")
MODELING_TAGS = {"stage": "modeling"}

# The parallel executor starts the ready step of highest "dagster/priority" first (default 0).
# Preprocessing and its checks (about a minute in all) go first, so every training can start; then
# the trainings, longest first (on ML-1M with one thread each: SASRec 14 min, GRU4Rec 7 to 9), so
# that no core is left alone with the longest at the end; evaluation and the rest after them.
PRIORITY = "dagster/priority"
PREPROCESSING_OP_TAGS = {PRIORITY: "3"}
TRAINING_PRIORITY = {"sasrec": 2}


def training_op_tags(model: str) -> dict[str, str]:
    return {PRIORITY: str(TRAINING_PRIORITY.get(model, 1))}
