"""Templates by version: a tag is resolved to its sha256: version before a job is created,
and upload-template takes a host with a trailing '/'."""

import subprocess
import sys

import pytest

from pipelines.templates import normalise_host, parse, resolve
from pipelines.validation import InputError

HOST = "https://europe-west10-kfp.pkg.dev/my-proj-123/pipelines"
DIGEST = "sha256:" + "ab" * 32


class TagsOnly:
    """What resolve() needs of kfp's RegistryClient: get_tag, as Artifact Registry answers."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags
        self.asked: list[tuple[str, str]] = []

    def get_tag(self, package: str, tag: str) -> dict:
        self.asked.append((package, tag))
        base = "projects/my-proj-123/locations/europe-west10/repositories/pipelines/packages"
        return {
            "name": f"{base}/{package}/tags/{tag}",
            "version": f"{base}/{package}/versions/{self.tags[tag]}",
        }


def test_a_tag_resolves_to_its_version():
    client = TagsOnly({"main": DIGEST})
    assert resolve(f"{HOST}/deploytest/main", client) == f"{HOST}/deploytest/{DIGEST}"
    assert client.asked == [("deploytest", "main")]


def test_a_version_is_used_as_is():
    client = TagsOnly({})
    assert resolve(f"{HOST}/deploytest/{DIGEST}", client) == f"{HOST}/deploytest/{DIGEST}"
    assert client.asked == []


def test_a_tag_without_a_version_is_an_error():
    class Broken(TagsOnly):
        def get_tag(self, package, tag):
            return {"name": "x"}

    with pytest.raises(InputError, match="names no version"):
        resolve(f"{HOST}/deploytest/main", Broken({}))


def test_a_missing_tag_is_a_clear_error():
    import requests

    class Missing(TagsOnly):
        def get_tag(self, package, tag):
            response = requests.Response()
            response.status_code = 404
            raise requests.HTTPError("404 Client Error", response=response)

    with pytest.raises(InputError, match="cannot resolve tag 'main'.*no such tag"):
        resolve(f"{HOST}/deploytest/main", Missing({}))


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/p/r/deploytest/main",
        f"{HOST}/deploytest",
        f"{HOST}/deploytest/sha256:short",
        f"{HOST}/deploytest/Main",
    ],
)
def test_bad_template_uris(uri):
    with pytest.raises(InputError):
        parse(uri)


def test_host_loses_its_trailing_slash():
    assert normalise_host(HOST + "/") == HOST
    with pytest.raises(InputError):
        normalise_host("https://example.com/p/r")


def test_upload_template_dry_run_strips_the_slash(tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("pipelineInfo: {name: deploytest}\n")
    r = subprocess.run(
        [sys.executable, "-m", "deploytest", "upload-template", "--file", str(pipeline),
         "--host", HOST + "/", "--tag", "main", "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"to {HOST} with tags ['main']" in r.stdout
