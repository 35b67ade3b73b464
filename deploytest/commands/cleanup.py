"""`deploytest cleanup`: the janitor. Undeploys and deletes endpoints by label, the same
clean-up the pipeline's exit task runs, for when a run could not clean up after itself;
with `--expired`, every managed endpoint past its `deploytest-expires-at` (what the
scheduled janitor in `infra/` runs)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cleanup",
        help="undeploy and delete the endpoints of a run (or of every run): the janitor",
        description="Find endpoints by label (deploytest-run=RUN; deploytest-managed=true "
        "with --all-managed; with --expired, deploytest-managed=true endpoints whose "
        "deploytest-expires-at has passed, or that have none and are older than --max-age), "
        "cancel deploys in flight, undeploy every deployed model, delete the endpoints, and "
        "exit non-zero if anything is left. Never touches an endpoint without "
        "deploytest-managed=true. Works on Vertex AI (default) or the emulator "
        "(--api-endpoint).",
    )
    p.add_argument("--project", required=True, help="Google Cloud project (or emulated one)")
    p.add_argument("--location", default="us-central1", help="region (default: us-central1)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="the run's deploytest-run label (its id or job name)")
    which.add_argument(
        "--all-managed",
        action="store_true",
        help="every endpoint labelled deploytest-managed=true, whichever run made it",
    )
    which.add_argument(
        "--expired",
        action="store_true",
        help="managed endpoints past their deploytest-expires-at (each one is logged as a "
        "leak): the scheduled janitor",
    )
    p.add_argument(
        "--max-age",
        default="24h",
        help="with --expired: age after which a managed endpoint without an expiry label "
        "counts as expired, as 30m, 6h or 1h30m (default: 24h)",
    )
    p.add_argument("--api-endpoint", default="", help="the emulator's URL; empty for Vertex AI")
    p.add_argument("--timeout-s", type=float, default=900.0, help="bound on the whole clean-up")
    p.add_argument("--dry-run", action="store_true", help="list the endpoints, change nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from components.runtime.cleanup import cleanup_run, list_run_endpoints
    from components.runtime.load_test import parse_duration
    from components.runtime.make_labels import MANAGED_LABEL_KEY, RUN_LABEL_KEY, label_value
    from components.vertex_clients import endpoint_client
    from pipelines import validation as check

    try:
        check.location(args.location)
        check.check(bool(args.project), "the project may not be empty")
        if args.run is not None:
            check.check(label_value(args.run) == args.run, f"invalid run label {args.run!r}")
        check.check(args.timeout_s > 0, "--timeout-s must be > 0")
        try:
            max_age_s = parse_duration(args.max_age)
        except ValueError as exc:
            raise check.InputError(f"invalid --max-age: {exc}") from None
    except check.InputError as exc:
        print(f"deploytest cleanup: {exc}", file=sys.stderr)
        return 2
    if args.expired:
        return _expired(args, max_age_s)
    key, value = (MANAGED_LABEL_KEY, "true") if args.all_managed else (RUN_LABEL_KEY, args.run)
    if args.dry_run:
        client = endpoint_client(args.location, args.api_endpoint)
        names = list_run_endpoints(client, args.project, args.location, value, key)
        print(f"dry run: {len(names)} endpoint(s) labelled {key}={value}")
        for name in names:
            print(f"  {name}")
        return 0
    record = cleanup_run(
        project=args.project,
        location=args.location,
        run_label=value,
        api_endpoint=args.api_endpoint,
        timeout_s=args.timeout_s,
        log=lambda line: print(line, flush=True),
        label_key=key,
    )
    for name in record.left:
        print(f"left: {name}", file=sys.stderr)
    return 0 if record.ok else 1


def _expired(args: argparse.Namespace, max_age_s: int) -> int:
    from google.api_core.exceptions import GoogleAPIError

    from components.janitor import clean_expired

    try:
        _, record = clean_expired(
            project=args.project,
            location=args.location,
            api_endpoint=args.api_endpoint,
            max_age_s=max_age_s,
            timeout_s=args.timeout_s,
            dry_run=args.dry_run,
            log=lambda line: print(line, flush=True),
        )
    except (GoogleAPIError, OSError) as exc:  # e.g. listing refused: say so, in one line
        print(f"deploytest cleanup: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not args.dry_run:
        print(
            f"janitor: {sum(e.deleted for e in record.endpoints)} endpoint(s) deleted, "
            f"{len(record.left)} left, {record.seconds:.1f}s",
            flush=True,
        )
    for name in record.left:
        print(f"left: {name}", file=sys.stderr)
    return 0 if record.ok else 1
