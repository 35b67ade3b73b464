"""Model Registry versions: `parentModel` uploads, `@VERSION` and `@alias` names,
`:listVersions`, `:mergeVersionAliases`, `:deleteVersion`, `UpdateModel`.

Storage (SQLite, `emulator/store.py`, so it survives a restart): a model row (kind
`models`, `projects/P/locations/L/models/ID`) holds the model's own fields
(`displayName`, `description`, model `labels`, `createTime`, `updateTime`, `etag`) and
the last version id given out; one row per version (kind `modelVersions`, name
`.../models/ID@N`, parent the model) holds the version's fields (`versionId`,
`versionAliases`, `versionDescription`, `containerSpec`, `artifactUri`, version
`labels`, ...). A version is answered as the two merged. A model row an older emulator
wrote (every field in one row, no version rows) is read as its one version and split on
the first write.

What Google documents and the emulator does (aiplatform_v1 `Model`, `UploadModelRequest`,
`GetModelRequest`, `UpdateModelRequest`, `MergeVersionAliasesRequest` field docs; "How
to use model version aliases", cloud.google.com/vertex-ai/docs/model-registry/model-alias):

* `versionId` is "an auto-incrementing decimal number in string representation"; the
  first version is "1" (the SDK's own docs). The first version always has the `default`
  alias; exactly one version of a model has it.
* an alias names one version of a model: applying an alias that another version has
  removes it there (so a `parentModel` upload with `default` in its `versionAliases`, or
  a merge of `default`, moves the default); aliases match
  `[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]` (Model.version_aliases; MergeVersionAliasesRequest
  writes the last class `[a-z-0-9]` and the alias page `[a-z][a-z0-9-]...`: the field's
  own doc is taken); `-alias` in a merge removes it, and adding and removing one alias in
  one request cancel out.
* `models/ID` (or `@-`) is the default version, `models/ID@2` a version id,
  `models/ID@golden` an alias; UpdateModel of `models/ID` updates the model
  (`displayName`, `description`, `labels`), of `models/ID@N` the version
  (`versionDescription`, `labels`); labels of both are merged when a model is answered;
  a mask path of the other kind is FAILED_PRECONDITION.
* deleting the version with the default alias gives the alias to the next most recent
  version (the alias page).

Not documented, the emulator's choice:

* version ids are never reused, not after a version is deleted (auto-increment);
* `versionCreateTime` is the upload's time; `versionUpdateTime` changes with the
  version's own fields and its aliases; the model's `updateTime` with any change;
* a new version without `default` in its `versionAliases` does not become the default
  (the SDK adds `default` unless `is_default_version=False`, "the default alias will not
  be moved"); a `parentModel` upload keeps the model's display name and description and
  its labels become the version's labels (UpdateModel calls display name and description
  model fields);
* GetModel of `models/ID` answers the name without a version, of `models/ID@X` with the
  version id (as ListModelVersions documents for its names; the SDK's
  `ModelRegistry.update_version` sends that name back to update the version);
* removing `default` from the version that has it is FAILED_PRECONDITION (there must be
  one), removing an alias the version does not have changes nothing; removing the last
  version, or a deployed one, with `:deleteVersion` is FAILED_PRECONDITION; DeleteModel of
  a versioned name is INVALID_ARGUMENT (`:deleteVersion` deletes one version);
* bounds: at most 1000 versions a model, 64 aliases a version (our bounds; Vertex AI
  documents neither).
"""

from __future__ import annotations

import re

from emulator import resources as res
from emulator import validation as check
from emulator.errors import ApiError, failed_precondition, invalid, not_found
from emulator.store import Store

MODELS = "models"
VERSIONS = "modelVersions"
DEFAULT = "default"
LAST_VERSION = "_lastVersionId"  # private field of a model row
_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]$")
MAX_VERSIONS = 1000
MAX_ALIASES = 64
# The model's own fields; every other stored field belongs to a version.
MODEL_FIELDS = ("name", "displayName", "description", "createTime", "updateTime", "etag")
MODEL_UPDATE_PATHS = {"displayName", "description", "labels"}
VERSION_UPDATE_PATHS = {"versionDescription", "labels"}


def split_name(name: str) -> tuple[str, str]:
    """`.../models/ID@X` -> (`.../models/ID`, `X`); no version: (name, '')."""
    base, _, version = name.partition("@")
    return base, version


def check_aliases(aliases: object, field: str) -> list[str]:
    """A list of valid aliases, without repeats (INVALID_ARGUMENT otherwise)."""
    if aliases is None:
        return []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise invalid(f"{field} must be a list of strings.")
    out: list[str] = []
    for alias in aliases:
        if not _ALIAS.match(alias):
            raise invalid(
                f"{field}: invalid alias {alias[:140]!r}: it must match "
                "[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]."
            )
        if alias not in out:
            out.append(alias)
    if len(out) > MAX_ALIASES:
        raise invalid(f"{field}: at most {MAX_ALIASES} aliases a version.")
    return out


def _split_legacy(doc: dict) -> tuple[dict, dict]:
    """An older emulator's one-row model -> (model row, version row)."""
    model = {k: doc[k] for k in MODEL_FIELDS if k in doc}
    if "labels" in doc:
        model["labels"] = doc["labels"]
    version = {
        k: v
        for k, v in doc.items()
        if k not in MODEL_FIELDS and k not in ("labels", "deployedModels") and k[:1] != "_"
    }
    version.setdefault("versionId", "1")
    version.setdefault("versionAliases", [DEFAULT])
    version["name"] = f"{doc['name']}@{version['versionId']}"
    model[LAST_VERSION] = version["versionId"]
    return model, version


def render(model: dict, version: dict, versioned: bool) -> dict:
    """One version as the API answers it: the model's fields and the version's, labels of
    both (a version's win); named with its version id when `versioned`."""
    out = {k: v for k, v in version.items() if k not in ("name", "labels") and k[:1] != "_"}
    out.update({k: model[k] for k in MODEL_FIELDS if k in model})
    labels = {}
    for source in (model.get("labels"), version.get("labels")):
        if isinstance(source, dict):
            labels.update(source)
        elif source is not None:
            labels = source  # an older emulator's non-map: `renderable` answers it
    if labels:
        out["labels"] = labels
    if versioned:
        out["name"] = f"{model['name']}@{version.get('versionId', '1')}"
    return check.renderable(out)


class ModelVersions:
    """The models and their versions in the store (stateless: any number may share one)."""

    def __init__(self, store: Store):
        self.store = store

    # -- reading --------------------------------------------------------------------------
    def _model_row(self, base: str) -> dict:
        row = self.store.get_resource(base)
        if row is None or "/models/" not in base or base.count("/") != 5:
            raise not_found(f"Model {base}")
        return row

    def versions(self, model: dict) -> list[dict]:
        """Every version row of a model row, oldest first."""
        if LAST_VERSION not in model:
            return [_split_legacy(model)[1]]
        return self.store.list_resources(VERSIONS, model["name"])

    def _pick(self, model: dict, spec: str, name: str) -> dict:
        versions = self.versions(model)
        if spec in ("", "-"):
            found = [v for v in versions if DEFAULT in (v.get("versionAliases") or [])]
            found = found or versions[-1:]  # an older state without a default: the newest
        elif spec.isdigit():
            found = [v for v in versions if v.get("versionId") == spec]
        else:
            found = [v for v in versions if spec in (v.get("versionAliases") or [])]
        if not found:
            raise not_found(f"Model {name}")
        return found[0]

    def resolve(self, name: str) -> tuple[dict, dict]:
        """(model row, version row) of `models/ID`, `models/ID@N` or `models/ID@alias`."""
        base, spec = split_name(name)
        model = self._model_row(base)
        return model, self._pick(model, spec, name)

    def get(self, name: str) -> dict:
        """GetModel: the version named (or the default one)."""
        model, version = self.resolve(name)
        return render(model, version, versioned=split_name(name)[1] not in ("", "-"))

    def deployable(self, name: str) -> dict:
        """The version `name` names, answered under the model's name (what a deploy
        records: the model and `modelVersionId`)."""
        model, version = self.resolve(name)
        return render(model, version, versioned=False)

    def version_doc(self, name: str, version_id: str | None = None) -> dict | None:
        """The answered form of one version (the default one without an id), or None: what
        a deployed model runs and predictions report."""
        try:
            base = split_name(name)[0]
            model, version = self.resolve(f"{base}@{version_id}" if version_id else name)
        except ApiError:
            return None
        return render(model, version, versioned=False)

    def list_models(self, parent: str) -> list[dict]:
        """ListModels: each model as its default version (filtered by the caller)."""
        return [
            render(model, self._pick(model, "", model["name"]), versioned=False)
            for model in self.store.list_resources(MODELS, parent)
        ]

    def list_versions(self, name: str) -> list[dict]:
        """ListModelVersions: every version, named with its version id, by version id
        (filtered and ordered by the caller)."""
        base, spec = split_name(name)
        if spec:
            raise invalid(f"ListModelVersions takes a model name without a version: {name}.")
        model = self._model_row(base)
        docs = [render(model, v, versioned=True) for v in self.versions(model)]
        docs.sort(key=lambda d: int(d["versionId"]) if str(d.get("versionId")).isdigit() else 0)
        return docs

    # -- writing (callers hold `store.lock`) ----------------------------------------------
    def _split(self, model: dict) -> dict:
        """A model row in the two-kind form (an older row is split and written)."""
        if LAST_VERSION in model:
            return model
        model, version = _split_legacy(model)
        self.store.put_resource(VERSIONS, model["name"], version)
        self._put_model(model)
        return model

    def _put_model(self, model: dict) -> None:
        self.store.put_resource(MODELS, model["name"].rsplit("/models/", 1)[0], model)

    def create(self, name: str, body: dict, aliases: list[str]) -> str:
        """A new model with its first version (which always has `default`)."""
        aliases = aliases if DEFAULT in aliases else [*aliases, DEFAULT]
        model, version = _split_legacy(res.model_resource(name, body, res.now(), "1", aliases))
        self.store.put_resource(VERSIONS, name, version)
        self._put_model(model)
        return "1"

    def add_version(self, parent_model: str, body: dict, aliases: list[str]) -> str:
        """A new version of an existing model (`parentModel`): its id."""
        model = self._split(self._model_row(parent_model))
        versions = self.versions(model)
        if len(versions) >= MAX_VERSIONS:
            raise ApiError(
                "RESOURCE_EXHAUSTED",
                f"Model {parent_model} has {len(versions)} versions, the emulator's limit; "
                "delete one first.",
            )
        version_id = str(int(model[LAST_VERSION]) + 1)
        now = res.now()
        doc = res.model_resource(f"{parent_model}@{version_id}", body, now, version_id, aliases)
        # the upload's labels are the version's; the model's own fields stay the model's
        version = {k: v for k, v in doc.items() if k not in MODEL_FIELDS or k == "name"}
        self._take_aliases(versions, aliases, now)
        self.store.put_resource(VERSIONS, parent_model, version)
        model[LAST_VERSION] = version_id
        model["updateTime"] = now
        model["etag"] = res.new_id()
        self._put_model(model)
        return version_id

    def _take_aliases(self, others: list[dict], aliases: list[str], now: str) -> None:
        """Remove `aliases` from the other versions that have them (and write those)."""
        for other in others:
            had = other.get("versionAliases") or []
            kept = [a for a in had if a not in aliases]
            if kept != had:
                other["versionAliases"] = kept
                other["versionUpdateTime"] = now
                self.store.put_resource(VERSIONS, other["name"].split("@")[0], other)

    def merge_aliases(self, name: str, changes: object) -> dict:
        """MergeVersionAliases: add `alias`, remove `-alias`; answer the version."""
        base, spec = split_name(name)
        if spec in ("", "-"):
            raise invalid(f"MergeVersionAliases needs a version: {name}@VERSION_ID.")
        if not changes:  # a list of strings: the body was parsed strictly (strict.py)
            raise invalid("version_aliases is required.")
        adds = check_aliases([c for c in changes if not c.startswith("-")], "version_aliases")
        removes = check_aliases([c[1:] for c in changes if c.startswith("-")], "version_aliases")
        adds, removes = (
            [a for a in adds if a not in removes],
            [r for r in removes if r not in adds],
        )  # "the 2 operations will be cancelled out"
        model = self._split(self._model_row(base))
        version = self._pick(model, spec, name)
        current = list(version.get("versionAliases") or [])
        if DEFAULT in removes and DEFAULT in current:
            raise failed_precondition(
                f"Model {base} must keep exactly one version with the default alias: move "
                "it to another version instead of removing it."
            )
        merged = [a for a in current if a not in removes]
        merged += [a for a in adds if a not in merged]
        if len(merged) > MAX_ALIASES:
            raise invalid(f"version_aliases: at most {MAX_ALIASES} aliases a version.")
        now = res.now()
        others = [v for v in self.versions(model) if v["versionId"] != version["versionId"]]
        self._take_aliases(others, [a for a in adds if a not in current], now)
        if merged != current:
            version["versionAliases"] = merged
            version["versionUpdateTime"] = now
            self.store.put_resource(VERSIONS, base, version)
            model["updateTime"] = now
            model["etag"] = res.new_id()
            self._put_model(model)
        return render(model, version, versioned=True)

    def update(self, name: str, body: dict, paths: list[str]) -> dict:
        """UpdateModel: the fields in the mask, of the model or of one version."""
        base, spec = split_name(name)
        versioned = spec not in ("", "-")
        if not paths:
            raise invalid("update_mask is required.")
        allowed = VERSION_UPDATE_PATHS if versioned else MODEL_UPDATE_PATHS
        for path in paths:
            if path in allowed:
                continue
            if path in (MODEL_UPDATE_PATHS | VERSION_UPDATE_PATHS):
                which = "a model version" if versioned else "the model"
                raise failed_precondition(
                    f"update_mask path {path!r} cannot be updated on {which} ({name}): "
                    "update the model and its versions separately."
                )
            raise invalid(f"update_mask path {path!r} is not an updatable Model field.")
        if "displayName" in paths:
            check.check_display_name(body.get("displayName"), "model.display_name")
        if "labels" in paths:
            check.check_labels(body.get("labels"), "model.labels")
        for key in ("description", "versionDescription"):  # strings (emulator/strict.py)
            if key in paths and len(body.get(key) or "") > 10000:
                raise invalid(f"model.{key} is at most 10000 characters (emulator's bound).")
        model = self._split(self._model_row(base))
        version = self._pick(model, spec, name)
        now = res.now()
        target = version if versioned else model
        for path in paths:
            value = body.get(path)
            if value in (None, "", {}):
                target.pop(path, None)  # proto3: a field in the mask but unset is cleared
            else:
                target[path] = value
        if versioned:
            version["versionUpdateTime"] = now
            self.store.put_resource(VERSIONS, base, version)
        model["updateTime"] = now
        model["etag"] = res.new_id()
        self._put_model(model)
        return render(model, version, versioned=versioned)

    def delete_version(self, name: str, deployed_versions: set[str]) -> None:
        """DeleteModelVersion (`deployed_versions`: the ids deployed anywhere)."""
        base, spec = split_name(name)
        if spec in ("", "-"):
            raise invalid(f"DeleteModelVersion needs a version: {name}@VERSION_ID.")
        model = self._split(self._model_row(base))
        version = self._pick(model, spec, name)
        versions = self.versions(model)
        if len(versions) == 1:
            raise failed_precondition(
                f"Version {version['versionId']} is the only version of Model {base}: "
                "delete the model instead."
            )
        if version["versionId"] in deployed_versions:
            raise failed_precondition(
                f'The Model version "{base}@{version["versionId"]}" is deployed or being '
                "deployed; undeploy it first."
            )
        now = res.now()
        self.store.delete_resource(version["name"])
        if DEFAULT in (version.get("versionAliases") or []):
            newest = [v for v in versions if v["versionId"] != version["versionId"]][-1]
            newest["versionAliases"] = [*(newest.get("versionAliases") or []), DEFAULT]
            newest["versionUpdateTime"] = now
            self.store.put_resource(VERSIONS, base, newest)
        model["updateTime"] = now
        model["etag"] = res.new_id()
        self._put_model(model)

    def delete(self, base: str) -> None:
        """Delete a model and every version of it."""
        model = self._model_row(base)
        if LAST_VERSION in model:
            for version in self.versions(model):
                self.store.delete_resource(version["name"])
        self.store.delete_resource(base)
