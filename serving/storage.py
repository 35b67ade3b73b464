"""Resolve AIP_STORAGE_URI to a local model directory.

Vertex AI hands the container a `gs://bucket/prefix` URI where the model artifacts lie; the
server copies that prefix into a temporary directory before loading. A local path (or a
`file://` URI) is used in place, which is how `deploytest run` and the tests serve models.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

log = logging.getLogger("serving.storage")


class StorageError(RuntimeError):
    """The model location is malformed, missing or empty."""


def parse_gcs_uri(uri: str) -> tuple[str, str]:
    """Split `gs://bucket/some/prefix` into ("bucket", "some/prefix/"); the prefix may be ""."""
    if not uri.startswith("gs://"):
        raise StorageError(f"not a gs:// URI: {uri!r}")
    bucket, _, prefix = uri[len("gs://") :].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {uri!r}")
    prefix = prefix.strip("/")
    # A trailing slash keeps "models/a" from also matching "models/ab/...".
    return bucket, f"{prefix}/" if prefix else ""


def blob_to_path(blob_name: str, prefix: str, dest: Path) -> Path | None:
    """Map a blob under `prefix` to its path under `dest`; None for blobs to skip.

    Skips "directory" placeholder blobs (names ending in "/") and blobs outside the
    prefix, and refuses names that would escape `dest` ("..", absolute parts).
    """
    if not blob_name.startswith(prefix) or blob_name.endswith("/"):
        return None
    relative = PurePosixPath(blob_name[len(prefix) :])
    if not relative.parts or any(part in ("..", "") for part in relative.parts):
        raise StorageError(f"refusing blob name {blob_name!r}")
    if relative.is_absolute():
        raise StorageError(f"refusing blob name {blob_name!r}")
    return dest.joinpath(*relative.parts)


def download_gcs(uri: str, dest: Path, client=None) -> Path:
    """Copy every blob under the gs:// `uri` into `dest`; return `dest`.

    Args:
        uri: gs://bucket/prefix.
        dest: local directory (created if missing).
        client: a `google.cloud.storage.Client`; by default one with the container's
            credentials (the Vertex AI service account).
    """
    bucket_name, prefix = parse_gcs_uri(uri)
    if client is None:
        from google.cloud import storage

        client = storage.Client()
    count = 0
    for blob in client.list_blobs(bucket_name, prefix=prefix):
        target = blob_to_path(blob.name, prefix, dest)
        if target is None:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
        count += 1
    if count == 0:
        raise StorageError(f"no files under {uri}")
    log.info("downloaded %d files from %s to %s", count, uri, dest)
    return dest


def resolve_model_dir(uri: str, scratch: Path) -> Path:
    """Return a local directory holding the model named by `uri`.

    Args:
        uri: a local directory, a file:// URI, or gs://bucket/prefix.
        scratch: an empty directory to download gs:// models into.
    """
    if uri.startswith("gs://"):
        return download_gcs(uri, scratch)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        raise StorageError(f"unsupported model URI {uri!r}: use a local path or gs://")
    path = Path(uri)
    if not path.is_dir():
        raise StorageError(f"model directory {path} does not exist")
    return path
