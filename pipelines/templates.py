"""Pipeline templates in an Artifact Registry KFP repository, by tag or by version.

A template URI is `https://REGION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/REF`, where REF is a
tag (`main`, `latest`, `build-…`) or a version (`sha256:…`). Vertex AI resolves a tag on
its side, through a Google-managed identity that the stack may not have granted
(googleapis/python-aiplatform#2181: a tag answered 500 where `sha256:` worked). So the
builds resolve a tag to its version here, with the build's own credentials, and create
the `PipelineJob` with the `sha256:` URI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.validation import InputError

VERSION_PREFIX = "sha256:"
HOST_RE = re.compile(r"^https://[a-z0-9-]+-kfp\.pkg\.dev/[a-z][a-z0-9-]+/[a-z0-9-]+$")
_TEMPLATE_RE = re.compile(
    r"^(?P<host>https://[a-z0-9-]+-kfp\.pkg\.dev/[a-z][a-z0-9-]+/[a-z0-9-]+)"
    r"/(?P<package>[a-z][a-z0-9-]*)/(?P<ref>sha256:[0-9a-f]{64}|[a-z0-9][a-z0-9._-]{0,127})$"
)


@dataclass(frozen=True)
class TemplateRef:
    """One template URI, split."""

    host: str
    package: str
    ref: str

    @property
    def is_version(self) -> bool:
        return self.ref.startswith(VERSION_PREFIX)

    @property
    def uri(self) -> str:
        return f"{self.host}/{self.package}/{self.ref}"


def normalise_host(host: str) -> str:
    """`https://REGION-kfp.pkg.dev/P/REPO` without a trailing '/'; InputError if not one."""
    host = host.rstrip("/")
    if not HOST_RE.match(host):
        raise InputError(f"invalid host {host!r}: expected https://REGION-kfp.pkg.dev/P/REPO")
    return host


def parse(uri: str) -> TemplateRef:
    """Split a template URI; InputError if it is not an Artifact Registry KFP template."""
    m = _TEMPLATE_RE.match(uri)
    if not m:
        raise InputError(
            f"invalid template URI {uri!r}: expected "
            "https://REGION-kfp.pkg.dev/P/REPO/PACKAGE/(TAG|sha256:DIGEST)"
        )
    return TemplateRef(m["host"], m["package"], m["ref"])


def resolve(uri: str, client=None) -> str:
    """The `sha256:` version URI of a template URI (unchanged if it names a version).

    `client` is a `kfp.registry.RegistryClient` for the URI's host (made here if None).
    """
    ref = parse(uri)
    if ref.is_version:
        return uri
    if client is None:
        from kfp.registry import RegistryClient

        client = RegistryClient(host=ref.host)
    import requests

    try:
        tag = client.get_tag(ref.package, ref.ref)
    except requests.HTTPError as exc:  # kfp's client raises requests' errors
        status = exc.response.status_code if exc.response is not None else "?"
        what = "no such tag" if status == 404 else f"HTTP {status}"
        raise InputError(
            f"cannot resolve tag {ref.ref!r} of {ref.host}/{ref.package}: {what}"
        ) from None
    # Artifact Registry's Tag: {"name": ".../tags/T", "version": ".../versions/sha256:…"}
    version = str((tag or {}).get("version", "")).rsplit("/", 1)[-1]
    if not version.startswith(VERSION_PREFIX):
        raise InputError(f"tag {ref.ref!r} of {ref.host}/{ref.package} names no version: {tag}")
    return TemplateRef(ref.host, ref.package, version).uri
