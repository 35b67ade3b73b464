"""`deploytest verdict`: judge one run against the history of its series."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verdict",
        help="compare a run with the earlier runs of its series (regression test)",
        description="Compare the candidate run folder (its run.json and metrics.json) with the "
        "earlier runs of the same series in the history: per metric the baseline, the change, "
        "the test and its p-value, and REGRESSION, IMPROVEMENT or NO CHANGE; overall NOT ENOUGH "
        "HISTORY below the minimum number of earlier runs. Exits 1 on a REGRESSION of a gated "
        "metric, 0 otherwise, 2 on bad input. Reads only; writes nothing.",
    )
    p.add_argument(
        "--history", required=True, help="history folder or gs://BUCKET[/PREFIX] (read only)"
    )
    p.add_argument(
        "--candidate", required=True, help="the run folder to judge (holds run.json, metrics.json)"
    )
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from history.records import RecordError
    from history.store import Entry, StoreError, entry_name, open_store, read_run_folder
    from history.verdict import format_verdict, judge

    try:
        record, metrics, times = read_run_folder(args.candidate)
        store = open_store(args.history)
        listing = store.list()
    except (RecordError, StoreError) as exc:
        print(f"deploytest verdict: {exc}", file=sys.stderr)
        return 2
    candidate = Entry(entry_name(record), record, metrics, times)
    for problem in listing.problems:
        print(f"deploytest verdict: skipped history entry {problem}", file=sys.stderr)
    verdict = judge(candidate, listing.entries, listing.problems)
    if verdict.history_runs == 0 and listing.entries:
        print(
            f"deploytest verdict: the history holds {len(listing.entries)} run(s), none earlier "
            f"in series {verdict.series_key} ({record.series.describe()})",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        print(format_verdict(verdict))
    return 1 if verdict.gate_failed else 0
