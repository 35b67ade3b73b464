"""Artifact Registry's KFP repositories, as far as kfp's `RegistryClient` uses them.

Two hosts, the ones kfp's `context/kfp_pkg_dev.json` names:

* `https://{location}-kfp.pkg.dev/{project}/{repo}`: POST (multipart `content` + `tags`)
  uploads a compiled pipeline and answers `{package}/{version}` as text; GET
  `/{project}/{repo}/{package}/{sha256:... | tag}` downloads it.
* `https://artifactregistry.googleapis.com/v1/projects/*/locations/*/repositories/*/packages`
  (REST v1): packages, versions and tags: get, list, delete; tags create and update.

As on Artifact Registry, the package is the pipeline's `pipelineInfo.name`, the version is
`sha256:` + the SHA-256 of the file, and a tag names one version: uploading with a tag that
another version holds moves it. Not documented, so chosen here: a repository exists once
something is uploaded to it (on Google Cloud it is created beforehand, in `infra/`), and
the automatic `latest` tag that the Artifact Registry console shows is not added.
State: `<state-dir>/registry/index.json` and `blobs/`.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import re
import threading
from pathlib import Path

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator import resources as res
from emulator.errors import ApiError, failed_precondition, invalid, not_found

UPLOAD_LIMIT = 32 * 1024 * 1024
_TAG = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$")
_VERSION = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_REPO = (
    rf"projects/(?P<project>{_NAME})/locations/(?P<location>[a-z0-9-]+)"
    rf"/repositories/(?P<repo>{_NAME})"
)
_AR_PATH = re.compile(
    rf"^/v1/(?P<parent>{_REPO})/packages(?:/(?P<package>{_NAME})"
    rf"(?:/(?P<kind>tags|versions)(?:/(?P<item>[A-Za-z0-9:._-]+))?)?)?$"
)
_KFP_HOST = re.compile(r"^(?P<location>[a-z0-9-]+)-kfp\.pkg\.dev$")
_KFP_PATH = re.compile(
    rf"^/(?P<project>{_NAME})/(?P<repo>{_NAME})(?:/(?P<package>{_NAME})/(?P<ref>[A-Za-z0-9:._-]+))?/?$"
)


def _pipeline_name(content: bytes) -> str:
    try:
        doc = next(iter(yaml.safe_load_all(content)), None)
    except yaml.YAMLError as exc:
        raise invalid(f"The uploaded file is not YAML: {exc}") from None
    name = (doc or {}).get("pipelineInfo", {}).get("name") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not re.fullmatch(_NAME, name):
        raise invalid("The uploaded file is not a compiled KFP pipeline (no pipelineInfo.name).")
    return name


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    if not content_type.startswith("multipart/form-data"):
        raise invalid("Upload must be multipart/form-data with a `content` file part.")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    parts = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            parts[name] = part.get_payload(decode=True) or b""
    return parts


class Registry:
    """KFP repositories kept in a folder; `app` is the ASGI app for both hosts."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.json"
        self.lock = threading.Lock()
        self.index: dict = (
            json.loads(self.index_path.read_text()) if self.index_path.is_file() else {}
        )

    def _save(self) -> None:
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.index, indent=1))
        tmp.replace(self.index_path)

    # -- model ----------------------------------------------------------------------------
    def upload(self, repo: str, content: bytes, tags: list[str]) -> tuple[str, str]:
        """Store a pipeline file; tag it; return (package, version)."""
        package = _pipeline_name(content)
        for tag in tags:
            if not _TAG.match(tag):
                raise invalid(f"Invalid tag {tag!r}.")
        version = "sha256:" + hashlib.sha256(content).hexdigest()
        (self.root / "blobs" / version.split(":", 1)[1]).write_bytes(content)
        with self.lock:
            now = res.now()
            pkgs = self.index.setdefault(repo, {})
            pkg = pkgs.setdefault(package, {"createTime": now, "versions": {}, "tags": {}})
            pkg["updateTime"] = now
            pkg["versions"].setdefault(version, {"createTime": now})["updateTime"] = now
            for tag in tags:
                pkg["tags"][tag] = version  # a tag names one version: re-applying moves it
            self._save()
        return package, version

    def _package(self, repo: str, package: str) -> dict:
        pkg = self.index.get(repo, {}).get(package)
        if pkg is None:
            raise not_found(f"{repo}/packages/{package}")
        return pkg

    def resolve(self, repo: str, package: str, ref: str) -> bytes:
        """The file of a version (`sha256:...`) or tag."""
        with self.lock:
            pkg = self._package(repo, package)
            version = ref if ref.startswith("sha256:") else pkg["tags"].get(ref)
            if version not in pkg["versions"]:
                raise not_found(f"{repo}/packages/{package} version or tag {ref}")
        return (self.root / "blobs" / version.split(":", 1)[1]).read_bytes()

    def _tag_json(self, repo, package, tag, version) -> dict:
        base = f"{repo}/packages/{package}"
        return {"name": f"{base}/tags/{tag}", "version": f"{base}/versions/{version}"}

    def _version_json(self, repo, package, pkg, version) -> dict:
        v = pkg["versions"][version]
        tags = [
            self._tag_json(repo, package, t, ver)
            for t, ver in pkg["tags"].items()
            if ver == version
        ]
        return {
            "name": f"{repo}/packages/{package}/versions/{version}",
            "createTime": v["createTime"],
            "updateTime": v["updateTime"],
            "relatedTags": tags,
        }

    def _version_of(self, repo: str, package: str, given: str) -> str:
        version = str(given or "").rsplit("/versions/", 1)[-1]
        if not _VERSION.match(version):
            raise invalid(f"Invalid version {given!r}.")
        if version not in self._package(repo, package)["versions"]:
            raise not_found(f"{repo}/packages/{package}/versions/{version}")
        return version

    def rest(self, method: str, m: re.Match, query, body: dict) -> dict:
        """Artifact Registry REST v1 on packages, versions and tags."""
        repo, package, kind, item = m["parent"], m["package"], m["kind"], m["item"]
        with self.lock:
            if package is None:
                if method != "GET":
                    raise ApiError("UNIMPLEMENTED", f"{method} on packages.", 501)
                if repo not in self.index:
                    raise not_found(repo)
                return {"packages": [self._pkg_json(repo, p) for p in sorted(self.index[repo])]}
            pkg = self._package(repo, package)
            if kind is None:
                if method == "GET":
                    return self._pkg_json(repo, package)
                if method == "DELETE":
                    del self.index[repo][package]
                    self._save()
                    return self._done_operation(repo)
            elif kind == "versions":
                if item is None and method == "GET":
                    return {
                        "versions": [
                            self._version_json(repo, package, pkg, v) for v in pkg["versions"]
                        ]
                    }
                if item is not None:
                    version = self._version_of(repo, package, item)
                    if method == "GET":
                        return self._version_json(repo, package, pkg, version)
                    if method == "DELETE":
                        tagged = [t for t, v in pkg["tags"].items() if v == version]
                        if tagged and query.get("force") != "true":
                            raise failed_precondition(
                                f"Version {version} has tags {tagged}; delete with force=true."
                            )
                        for t in tagged:
                            del pkg["tags"][t]
                        del pkg["versions"][version]
                        self._save()
                        return self._done_operation(repo)
            elif kind == "tags":
                if item is None and method == "GET":
                    return {
                        "tags": [
                            self._tag_json(repo, package, t, v) for t, v in pkg["tags"].items()
                        ]
                    }
                if item is None and method == "POST":
                    tag = query.get("tagId", "")
                    if not _TAG.match(tag):
                        raise invalid(f"Invalid tagId {tag!r}.")
                    if tag in pkg["tags"]:
                        raise ApiError("ALREADY_EXISTS", f"Tag {tag} already exists.")
                    pkg["tags"][tag] = self._version_of(repo, package, body.get("version"))
                    self._save()
                    return self._tag_json(repo, package, tag, pkg["tags"][tag])
                if item is not None:
                    if item not in pkg["tags"]:
                        raise not_found(f"{repo}/packages/{package}/tags/{item}")
                    if method == "GET":
                        return self._tag_json(repo, package, item, pkg["tags"][item])
                    if method == "PATCH":
                        pkg["tags"][item] = self._version_of(repo, package, body.get("version"))
                        self._save()
                        return self._tag_json(repo, package, item, pkg["tags"][item])
                    if method == "DELETE":
                        del pkg["tags"][item]
                        self._save()
                        return {}
        raise ApiError("UNIMPLEMENTED", f"{method} {m.string}", 501)

    def _pkg_json(self, repo: str, package: str) -> dict:
        pkg = self.index[repo][package]
        return {
            "name": f"{repo}/packages/{package}",
            "createTime": pkg["createTime"],
            "updateTime": pkg["updateTime"],
        }

    @staticmethod
    def _done_operation(repo: str) -> dict:
        parent = repo.split("/repositories/", 1)[0]
        return {"name": f"{parent}/operations/{res.new_id()}", "done": True}

    # -- HTTP -----------------------------------------------------------------------------
    async def app(self, scope, receive, send):
        """ASGI app for `artifactregistry.googleapis.com` and `*-kfp.pkg.dev`."""
        request = Request(scope, receive)
        try:
            response = await self._dispatch(request)
        except ApiError as err:
            response = JSONResponse(err.body(), status_code=err.http_code)
        await response(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        host = request.headers.get("host", "").split(":", 1)[0].lower()
        path = request.url.path
        try:
            declared = int(request.headers.get("content-length") or 0)
        except ValueError:
            raise invalid("Bad Content-Length.") from None
        if declared > UPLOAD_LIMIT:  # refused before the body is read
            raise invalid(f"Request body over {UPLOAD_LIMIT} bytes.")
        raw = await request.body()
        if len(raw) > UPLOAD_LIMIT:
            raise invalid(f"Request body over {UPLOAD_LIMIT} bytes.")
        kfp = _KFP_HOST.match(host)
        if kfp:
            m = _KFP_PATH.match(path)
            if not m:
                raise not_found(f"{request.method} {path}")
            repo = f"projects/{m['project']}/locations/{kfp['location']}/repositories/{m['repo']}"
            if request.method == "POST" and m["package"] is None:
                parts = _multipart(request.headers.get("content-type", ""), raw)
                if "content" not in parts:
                    raise invalid("Upload has no `content` file part.")
                tags = [t.strip() for t in parts.get("tags", b"").decode().split(",") if t.strip()]
                package, version = self.upload(repo, parts["content"], tags)
                return Response(f"{package}/{version}", media_type="text/plain")
            if request.method == "GET" and m["package"] is not None:
                content = self.resolve(repo, m["package"], m["ref"])
                return Response(content, media_type="application/x-yaml")
            raise not_found(f"{request.method} {path}")
        m = _AR_PATH.match(path)
        if not m:
            raise not_found(f"{request.method} {path}")
        body = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise invalid("Request body is not valid JSON.") from None
            if not isinstance(body, dict):
                raise invalid("Request body must be a JSON object.")
        return JSONResponse(self.rest(request.method, m, request.query_params, body))
