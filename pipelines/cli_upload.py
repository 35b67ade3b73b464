"""`deploytest upload-template`: publish a compiled pipeline to an Artifact Registry KFP repo."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_HOST = re.compile(r"^https://[a-z0-9-]+-kfp\.pkg\.dev/[a-z][a-z0-9-]+/[a-z0-9-]+/?$")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "upload-template",
        help="upload a compiled pipeline to an Artifact Registry KFP repository",
        description="Upload the compiled pipeline YAML with kfp.registry.RegistryClient, so "
        "Vertex AI (and the regression schedule) can run it by template URI.",
    )
    p.add_argument("--file", required=True, help="compiled pipeline YAML")
    p.add_argument("--host", required=True, help="https://REGION-kfp.pkg.dev/PROJECT/REPO")
    p.add_argument("--tag", action="append", default=[], help="a tag, e.g. latest (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print what would be uploaded")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    errors = []
    if not path.is_file():
        errors.append(f"no such file: {path}")
    if not _HOST.match(args.host):
        errors.append(f"invalid host {args.host!r}: expected https://REGION-kfp.pkg.dev/P/REPO")
    if errors:
        for e in errors:
            print(f"deploytest upload-template: {e}", file=sys.stderr)
        return 2
    tags = args.tag or ["latest"]
    if args.dry_run:
        print(f"dry run: would upload {path} to {args.host.rstrip('/')} with tags {tags}")
        return 0
    from kfp.registry import RegistryClient

    package, version = RegistryClient(host=args.host).upload_pipeline(
        file_name=str(path), tags=tags
    )
    print(f"uploaded {package} version {version} with tags {tags}")
    return 0
