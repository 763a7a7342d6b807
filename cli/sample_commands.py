"""`mot sample N`: realistic generated moments to try mot on (what `make demo` imports)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from mot.cli.params import Timestamp, whole


@click.command("sample")
@click.argument("n", type=whole(0), metavar="N")
@click.option("--seed", type=int, default=7, show_default=True,
              help="The same seed and options give the same lines, byte for byte.")
@click.option("--tenants", default="acme,globex", show_default=True, metavar="A,B,...",
              help="Comma-separated tenants: the first listens well, the second asks too much.")
@click.option("--customers", type=whole(1), default=None, metavar="COUNT",
              help="How many customers [default: about N/12].")
@click.option("--start", type=Timestamp(), default="2026-01-01", show_default=True,
              help="When the first moment occurs (a date, or an RFC 3339 timestamp).")
@click.option("--no-corrections", is_flag=True,
              help="No amendments, retractions or repeated lines (otherwise about 1.7%).")
@click.option("--bad-lines", is_flag=True,
              help="About 0.5% of the lines are bad input (typos, a truncated line, ...), to "
              "see the quarantine at work.")
@click.option("--out", "-o", type=click.File("wb"), default="-", metavar="FILE",
              help="Write here instead of standard output.")
def sample(n: int, seed: int, tenants: str, customers: int | None, start: datetime,
           no_corrections: bool, bad_lines: bool, out: Any) -> None:
    """Write N realistic wire-format moments as JSONL, for two brands by default.

    Each customer lives a small story: teams answer, help and ask; customers
    ask, complain, praise and buy; some then post, review or mention the brand,
    and others share those posts. Nothing is read or written but the output.
    Samples of another N or --seed reuse the same source ids with other content:
    imported into one store (make demo's, say), the second one's are quarantined.

    \b
    Examples:
      mot sample 5000 > moments.jsonl && mot import moments.jsonl
      mot sample 1000 --tenants shop --bad-lines -o sample.jsonl
      mot sample 200 | mot import -
    """
    from mot.adapters.sources.sample import generate_lines

    names = [t.strip() for t in tenants.split(",") if t.strip()]
    if not names:
        raise click.UsageError("--tenants: name at least one tenant")
    if customers is not None and customers > max(n, 1):
        # The generator lays out a story per customer: 10**20 of them for two lines took
        # minutes of CPU and gigabytes of memory before the first line.
        raise click.BadParameter(f"{customers} is more customers than the {n} moments asked"
                                 f" for: at most {max(n, 1)}", param_hint="'--customers'")
    from itertools import islice

    from mot.cli.progress import Progress

    lines = generate_lines(n, seed=seed, tenants=names, start=start, customers=customers,
                           corrections=not no_corrections, bad_lines=bad_lines)
    # A million lines take a while: the count goes to standard error, the lines where asked.
    progress, written = Progress("sample"), 0
    while chunk := list(islice(lines, 5000)):
        out.writelines(chunk)
        written += len(chunk)
        progress.update(f"{written:,} lines written", done=min(written / n, 1.0), count=written)
    progress.finish()
    out.flush()


COMMANDS = [sample]
