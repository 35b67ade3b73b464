"""`deploytest upload-template`: publish a compiled pipeline to an Artifact Registry KFP repo."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_TAG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "upload-template",
        help="upload a compiled pipeline to an Artifact Registry KFP repository",
        description="Upload the compiled pipeline YAML with kfp.registry.RegistryClient, so "
        "Vertex AI (and the regression schedule) can run it by template URI. Prints the "
        "version (sha256:…) and its template URI; run by version, since a tag is resolved "
        "by Vertex AI on its side (see pipelines/templates.py).",
    )
    p.add_argument("--file", required=True, help="compiled pipeline YAML")
    p.add_argument("--host", required=True, help="https://REGION-kfp.pkg.dev/PROJECT/REPO")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        help="a tag to point at the new version, e.g. main (repeatable; none: no tag is "
        "moved, though Artifact Registry may still tag the newest version `latest`)",
    )
    p.add_argument(
        "--version-file",
        default="",
        help="also write the version's template URI to this file (for later build steps)",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be uploaded")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.templates import normalise_host
    from pipelines.validation import InputError

    path = Path(args.file)
    errors = []
    if not path.is_file():
        errors.append(f"no such file: {path}")
    try:
        host = normalise_host(args.host)  # kfp's host parsing breaks on a trailing '/'
    except InputError as exc:
        errors.append(str(exc))
    errors += [f"invalid tag {t!r}: lowercase letters, digits, '.', '_', '-'" for t in args.tag
               if not _TAG.match(t)]  # fmt: skip
    if errors:
        for e in errors:
            print(f"deploytest upload-template: {e}", file=sys.stderr)
        return 2
    tags = args.tag
    if args.dry_run:
        print(f"dry run: would upload {path} to {host} with tags {tags}")
        return 0
    from kfp.registry import RegistryClient

    package, version = RegistryClient(host=host).upload_pipeline(
        file_name=str(path), tags=tags or None
    )
    uri = f"{host}/{package}/{version}"
    print(f"uploaded {package} version {version} with tags {tags}")
    print(f"template URI {uri}")
    if args.version_file:
        Path(args.version_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.version_file).write_text(uri + "\n")
    return 0
