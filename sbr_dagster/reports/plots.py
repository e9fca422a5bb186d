"""Every PNG chart of the Dagster UI; matplotlib is imported lazily so importing the pipeline stays cheap."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence


def _figure(width: float = 6.0, height: float = 3.4):
    """A figure and its axes; ``Figure`` needs no pyplot state, so plotting is safe in any thread."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    return figure, figure.subplots()


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def histogram_png(values, title: str, xlabel: str, log_x: bool = False) -> bytes:
    """A small histogram; ``log_x`` suits long tails (values <= 0 join the first bin)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    figure, axes = _figure(width=5.0, height=3.0)
    if values.size and log_x:
        low = values[values > 0].min() if (values > 0).any() else 1.0
        high = max(values.max(), low * 1.01)
        axes.hist(np.clip(values, low, None), bins=np.geomspace(low, high, 41))
        axes.set_xscale("log")
    elif values.size:
        axes.hist(values, bins=40)
    axes.set_title(f"{title} (n={values.size:,})", fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("count")
    return _png(figure)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that embeds ``png`` inline, which is how Dagster's markdown metadata shows a picture."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def curves_png(
    epochs: Sequence[int], left: dict[str, Sequence[float]], right: dict[str, Sequence[float]], title: str
) -> bytes:
    """Lines by epoch: ``left`` series (e.g. loss) on one axis, ``right`` (e.g. Recall@20) on a twin axis."""
    fig, ax = _figure()
    for label, values in left.items():
        ax.plot(epochs, values, marker="o", label=label, color="tab:gray")
    ax.set_xlabel("epoch")
    ax.set_ylabel(" / ".join(left))
    twin = ax.twinx()
    for label, values in right.items():
        twin.plot(epochs, values, marker="s", label=label)
    twin.set_ylabel(" / ".join(right))
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    twin.legend(handles, list(left) + list(right), loc="best", fontsize=8)
    ax.set_title(title)
    return _png(fig)


def search_png(trials: Sequence[int], values: Sequence[float], states: Sequence[str], title: str) -> bytes:
    """A tuning run: each trial's validation score (pruned ones at their last report, hollow) and the
    best complete score so far."""
    import numpy as np

    fig, ax = _figure()
    trials, values = np.asarray(trials), np.asarray(values, dtype=float)
    complete = np.asarray(states) == "complete"
    ax.scatter(trials[complete], values[complete], label="complete", color="tab:blue")
    ax.scatter(trials[~complete], values[~complete], label="pruned", facecolors="none", edgecolors="tab:gray")
    best = np.fmax.accumulate(np.where(complete, values, -np.inf)) if values.size else values
    shown = np.isfinite(best)
    ax.step(trials[shown], best[shown], where="post", color="tab:orange", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation score")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    return _png(fig)


def interval_png(
    labels: Sequence[str],
    series: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    title: str,
) -> bytes:
    """Point estimates with confidence bars per label; ``series`` maps a name to (value, low, high)."""
    import numpy as np

    fig, ax = _figure(width=max(6.0, 0.45 * len(labels) + 2), height=4.0)
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, bars) in enumerate(series.items()):
        value, low, high = (np.asarray(v, dtype=float) for v in bars)
        ax.errorbar(
            x + (i - (len(series) - 1) / 2) * width,
            value,
            yerr=[value - low, high - value],
            fmt="o",
            capsize=3,
            label=name,
        )
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.legend(fontsize=8)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
