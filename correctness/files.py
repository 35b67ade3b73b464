"""Reading the phase's inputs from a local path or Cloud Storage, bounded."""

from __future__ import annotations

import os
from pathlib import Path


class InputError(ValueError):
    """An input that cannot be read; the message says which and why."""


class TooBig(InputError):
    """A reference model over the size limit: not measured, rather than loaded."""


def read_text(uri: str, limit: int) -> str:
    """A UTF-8 file at a path or gs:// URI, at most `limit` bytes."""
    try:
        if uri.startswith("gs://"):
            from google.cloud import storage

            blob = storage.Blob.from_string(uri, client=storage.Client())
            data = blob.download_as_bytes(end=limit)  # `end` is inclusive: one byte over
        else:
            with open(uri, "rb") as f:
                data = f.read(limit + 1)
    except (OSError, ValueError) as exc:
        raise InputError(f"{uri}: cannot be read ({exc})") from None
    except Exception as exc:  # google.api_core errors (not found, forbidden)
        raise InputError(f"{uri}: cannot be read ({exc})") from None
    if len(data) > limit:
        raise InputError(f"{uri}: larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{uri}: not UTF-8 ({exc})") from None


def local_model_dir(uri: str, work_dir: str | os.PathLike, limit_bytes: int) -> Path:
    """A local folder holding the model at `uri` (a folder, or gs://BUCKET/PATH copied into
    `work_dir`), refused when its files add up to more than `limit_bytes`."""
    if not uri.startswith("gs://"):
        folder = Path(uri)
        if not folder.is_dir():
            raise InputError(f"reference model {uri}: no such folder")
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        if size > limit_bytes:
            raise TooBig(_too_big(uri, size, limit_bytes))
        return folder
    from google.cloud import storage

    bucket, _, prefix = uri[len("gs://") :].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    client = storage.Client()
    blobs = [b for b in client.list_blobs(bucket, prefix=prefix) if not b.name.endswith("/")]
    size = sum(b.size or 0 for b in blobs)
    if not blobs:
        raise InputError(f"reference model {uri}: no files there")
    if size > limit_bytes:
        raise TooBig(_too_big(uri, size, limit_bytes))
    target = Path(work_dir) / "reference-model"
    for blob in blobs:
        path = target / blob.name[len(prefix) :]
        if ".." in Path(blob.name[len(prefix) :]).parts:
            raise InputError(f"reference model {uri}: unsafe object name {blob.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(path))
    return target


def _too_big(uri: str, size: int, limit: int) -> str:
    return (
        f"reference model {uri}: {size / 1e6:.0f} MB, over the limit of {limit / 1e6:.0f} MB "
        "for the machine that runs the load test (raise --reference-max-mb, or give "
        "--reference-model none)"
    )
