"""``evstore bench``: a quick run of the benchmark suite against the store's backend.

On PostgreSQL it works inside the database ``--url`` names, in scratch schemas
(``evstore_bench_<hex>_<n>``) it creates and drops, and refuses a server whose commits are
not durable. Otherwise it measures SQLite in a temporary directory (never the store's own
file). The eventsourcing baselines run when that library is installed
(``pip install 'evstore[bench]'``) and are skipped with a note when it is not.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from urllib.parse import urlsplit

import click

from evstore.cli._app import AppContext, CliError, pass_app, store_options

__all__ = ["COMMANDS"]


@click.command(short_help="Measure evstore beside its peer and the raw database (quick).")
@click.option("--seconds", type=float, default=None, help="Measured seconds per cell [2].")
@click.option("--warmup", type=float, default=None, help="Warm-up seconds per cell [0.5].")
@click.option("--only", multiple=True, metavar="W1,W2", help="Workloads W1 to W6 [all but W3].")
@click.option("--full", is_flag=True, help="The full suite's settings instead of quick ones.")
@click.option("--markdown", is_flag=True, help="Print Markdown tables.")
@click.option(
    "--sqlite-dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Where the scratch SQLite files go [a temporary directory].",
)
@click.option(
    "--allow-non-durable", is_flag=True, help="Measure even with fsync or synchronous_commit off."
)
@store_options
@pass_app
def bench(
    app: AppContext,
    seconds: float | None,
    warmup: float | None,
    only: tuple[str, ...],
    full: bool,
    markdown: bool,
    sqlite_dir: str | None,
    allow_non_durable: bool,
) -> None:
    """Benchmark evstore beside eventsourcing and raw asyncpg/sqlite3, in one run.

    W1 appends 100 events per operation, W2 one, W3 from 8 processes, W4 reads a
    100-event stream, W5 reads $all (and checks memory while streaming), W6 is W2's
    latency with 50 writers. See benchmarks/ and docs/benchmarks.md for the full suite.
    """
    from evstore.bench.main import print_run
    from evstore.bench.runner import NotDurableError, Plan, parse_workloads, quick_plan, run_plan

    try:
        workloads = parse_workloads(only)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from None
    postgres = urlsplit(app.url).scheme in ("postgresql", "postgres")
    if postgres and app.schema is not None:
        raise CliError("bench makes its own scratch schemas; leave out --schema")
    plan = Plan(
        backends=("postgres",) if postgres else ("sqlite",),
        workloads=workloads,
        admin_url=None,
        database_url=app.url if postgres else None,
        sqlite_dir=sqlite_dir or tempfile.gettempdir(),
        allow_non_durable=allow_non_durable,
    )
    if not full:
        chosen = plan.workloads
        plan = quick_plan(plan)
        if only:
            plan = replace(plan, workloads=chosen)
    settings = plan.settings
    if seconds is not None:
        settings = replace(settings, seconds=seconds)
    if warmup is not None:
        settings = replace(settings, warmup=warmup)
    target = app.display_url if postgres else f"SQLite files in {plan.sqlite_dir}"
    click.echo(f"evstore bench: {', '.join(plan.workloads)} on {target}", err=True)
    try:
        result = run_plan(replace(plan, settings=settings))
    except NotDurableError as exc:
        raise CliError(str(exc)) from None
    print_run(result, markdown=markdown)


COMMANDS = [bench]
