"""``sbr``: the project's console commands (``sbr recommend`` for now).

Mistakes a user can fix (bad arguments, unknown movies, a model not trained yet) end as one
``error: ...`` line on stderr and exit status 2, never a stack trace. Heavy imports (Polars,
TensorFlow) wait until a command runs, so ``sbr --help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterator, Sequence

EXIT_USER_ERROR = 2


class UsageError(Exception):
    """A command line that argparse (or a value parser) rejects."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage and exit; main prints one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


_WHOLE = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() also takes other scripts' digits


def _whole_number(text: str) -> int | None:
    """``text`` as an int when it is a plain whole number, else None (never raises)."""
    text = text.strip()
    if not _WHOLE.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:  # more digits than int() accepts
        return None


def _int_list(what: str):
    def parse(text: str) -> list[int]:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"is empty: give comma-separated {what}, e.g. 1193,661")
        parts = [p.strip() for p in text.split(",")]
        numbers = [_whole_number(p) for p in parts]
        bad = [p for p, n in zip(parts, numbers, strict=True) if n is None]
        if bad:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of {what} ({', '.join(repr(b) for b in bad)} "
                "is not a whole number)"
            )
        return numbers

    return parse


def _positive_int(text: str) -> int:
    number = _whole_number(text)
    if number is None or number < 1 or text.strip().startswith(("+", "-")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sbr",
        description="Session-based movie recommendation (GRU4Rec on MovieLens 1M).",
        epilog="Models come from the Dagster pipeline: train one with "
        "`dg launch --assets '+gap_1h/gru4rec'`.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)
    recommend = commands.add_parser(
        "recommend",
        help="recommend the next movies after a history of watched movies",
        description="Print the movies a trained model expects next after HISTORY, best first. "
        "Movies of the history are left out unless --include-history is given.",
        epilog="example: sbr recommend --definition gap_1h --history 1193,661,914 --ratings 5,3,4",
    )
    recommend.add_argument(
        "--definition",
        required=True,
        help="session definition whose model to use (<lake>/<definition>/<model>), e.g. gap_1h, user",
    )
    recommend.add_argument(
        "--model", help="which trained model of that definition (default: the study's main model, gru4rec)"
    )
    recommend.add_argument(
        "--tuned",
        action="store_true",
        help="use the tuning job's model (<lake>/<definition>/tuned/<model>, settings chosen on "
        "validation) instead of the main job's",
    )
    recommend.add_argument(
        "--history",
        required=True,
        type=_int_list("movie ids"),
        help="comma-separated MovieLens 1M movie ids, oldest first, e.g. 1193,661,914",
    )
    recommend.add_argument(
        "--ratings",
        type=_int_list("ratings"),
        help="comma-separated 1..5 ratings, one per history movie; used only by rating-aware models "
        "(which assume 4 stars when none are given)",
    )
    recommend.add_argument("--k", type=_positive_int, default=10, help="how many movies to list (default 10)")
    recommend.add_argument("--lake", help="data lake root (default: $SBR_DATA_LAKE or ./data_lake)")
    recommend.add_argument(
        "--include-history", action="store_true", help="allow movies of the history in the list"
    )
    recommend.add_argument(
        "--skip-unseen",
        action="store_true",
        help="drop history movies the model never saw in training (with a warning) instead of failing",
    )
    return parser


@contextlib.contextmanager
def _tensorflow_quiet() -> Iterator[None]:
    """Drop native writes to stderr while TensorFlow loads and runs, unless TF_CPP_MIN_LOG_LEVEL < 2.

    TensorFlow's start-up lines (oneDNN notice, CUDA probing) are written before its log
    level applies, so TF_CPP_MIN_LOG_LEVEL alone does not keep them out of the table.
    Python exceptions still surface: they are reported after stderr is restored.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() in ("0", "1"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def format_table(recommendations) -> str:
    """An aligned plain-text table: rank, movie (year), genres, score."""
    import polars as pl

    from sbr_dagster.serving.recommender import display_title

    rows = recommendations.select(
        "rank", display_title().alias("movie"), pl.col("genres").list.join("|").fill_null(""), "score"
    )
    cells = [["#", "movie", "genres", "score"]] + [
        [str(r), m, g, f"{s:.3f}"] for r, m, g, s in rows.iter_rows()
    ]
    widths = [max(len(row[c]) for row in cells) for c in range(4)]
    align = (str.rjust, str.ljust, str.ljust, str.rjust)
    return "\n".join(
        "  ".join(a(cell, w) for a, cell, w in zip(align, row, widths, strict=True)).rstrip() for row in cells
    )


def _check_argument(option: str, check, value: str) -> None:
    """Run a catalog ``check`` on an option's value; its complaint names the option."""
    from sbr_dagster.errors import InputDataError

    try:
        check(value)
    except InputDataError as error:
        raise UsageError(f"argument {option}: {error}") from None


def _recommend(args: argparse.Namespace) -> int:
    from sbr_dagster.models import registry
    from sbr_dagster.serving.catalog import check_definition, check_model, load_recommender

    model = args.model if args.model is not None else registry.PRIMARY
    _check_argument("--definition", check_definition, args.definition)
    _check_argument("--model", check_model, model)
    if args.lake is not None and not args.lake.strip():
        raise UsageError("argument --lake: is empty: give the data lake directory, or leave --lake out")
    warnings: list[str] = []
    with _tensorflow_quiet():
        recommender = load_recommender(args.definition, lake_root=args.lake, model=model, tuned=args.tuned)
        recommendations = recommender.recommend(
            args.history,
            args.ratings,
            k=args.k,
            exclude_history=not args.include_history,
            unknown="skip" if args.skip_unseen else "error",
            warn=warnings.append,
        )
    for message in warnings:
        print(f"warning: {message}", file=sys.stderr)
    seen = recommender.movies_of(args.history)["display"].to_list()
    print(f"After: {'; '.join(seen)}")
    print(f"Next movies ({'tuned ' if args.tuned else ''}{model} on {args.definition}):")
    print(format_table(recommendations))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from sbr_dagster.errors import InputDataError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return _recommend(args)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except (UsageError, InputDataError) as error:
        message = " ".join(str(error).splitlines())  # one line, even if a path holds a newline
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
