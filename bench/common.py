"""What every benchmark needs: the real ML-1M directory, or a clear exit when it is absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_dir(script: str) -> Path:
    """``SBR_ML1M_DIR``, else ``../shared/data/ml-1m`` beside the repository."""
    directory = Path(os.environ.get("SBR_ML1M_DIR") or REPO.parent / "shared" / "data" / "ml-1m")
    if not (directory / "ratings.dat").is_file():
        sys.exit(f"{script}: no ratings.dat in {directory}; set SBR_ML1M_DIR to the ml-1m directory.")
    return directory
