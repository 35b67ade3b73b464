"""The synthesised stack: resources, their key properties, and policies over the JSON."""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import re

import pytest
from deploytest_infra.build_config import (
    LABELS_FIELD,
    MODEL_FIELD,
    UPLOAD_METHODS,
    builder_substitutions,
    merge_substitutions,
    model_upload_substitutions,
    pr_substitutions,
)
from deploytest_infra.settings import SERVING_GPU_QUOTAS
from deploytest_infra.submit_body import regression_request_body

from .conftest import KMS_KEY, PINNED, Synth

PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}


def ref(synth: Synth, tf_type: str, attr: str, **match: str) -> str:
    """The Terraform reference `${type.key.attr}` of the one resource matching `match`."""
    keys = [
        key
        for key, res in synth.resources(tf_type).items()
        if all(res.get(k) == v for k, v in match.items())
    ]
    assert len(keys) == 1, f"{tf_type} matching {match}: {keys}"
    return f"${{{tf_type}.{keys[0]}.{attr}}}"


def sa_member(synth: Synth, account_id: str) -> str:
    return f"serviceAccount:{ref(synth, 'google_service_account', 'email', account_id=account_id)}"


# ---- resources and key properties -----------------------------------------------------


def test_buckets(synth: Synth) -> None:
    s = synth.settings
    buckets = {b["name"]: b for b in synth.resources("google_storage_bucket").values()}
    assert set(buckets) == {s.pipeline_root_bucket, s.loadtest_bucket}
    for bucket in buckets.values():
        assert bucket["location"] == s.region.upper()
        assert bucket["versioning"] == {"enabled": True}
        assert bucket["force_destroy"] is False
        assert "encryption" not in bucket  # CMEK is optional, off by default
    rules = buckets[s.pipeline_root_bucket]["lifecycle_rule"]
    expiry = [r for r in rules if r["condition"].get("age")]
    assert expiry == [
        {
            "action": {"type": "Delete"},
            "condition": {"age": s.artifact_retention_days, "matches_prefix": ["root/"]},
        }
    ]
    assert s.pipeline_root.startswith(f"gs://{s.pipeline_root_bucket}/root")
    pr_rules = [
        r for r in buckets[s.loadtest_bucket]["lifecycle_rule"] if r["condition"].get("age")
    ]
    assert pr_rules == [
        {
            "action": {"type": "Delete"},
            "condition": {"age": 30, "matches_prefix": ["locustfiles/pr/"]},
        }
    ]
    for bucket in buckets.values():  # superseded versions do not pile up
        assert any(
            r["condition"].get("days_since_noncurrent_time") and r["action"]["type"] == "Delete"
            for r in bucket["lifecycle_rule"]
        )


def test_artifact_registry(synth: Synth) -> None:
    s = synth.settings
    repos = {
        r["repository_id"]: r
        for r in synth.resources("google_artifact_registry_repository").values()
    }
    assert {k: r["format"] for k, r in repos.items()} == {
        s.docker_repository: "DOCKER",
        s.kfp_repository: "KFP",
    }
    for repo in repos.values():
        assert repo["location"] == s.region
    assert s.kfp_host == f"https://{s.region}-kfp.pkg.dev/{s.project_id}/{s.kfp_repository}"


def test_service_accounts_and_no_keys(synth: Synth) -> None:
    s = synth.settings
    accounts = {a["account_id"] for a in synth.resources("google_service_account").values()}
    janitor = f"dt-{s.environment}-janitor"  # tests/infra/test_janitor.py
    assert accounts == {s.runner_account_id, s.build_account_id, s.invoker_account_id, janitor}
    assert not synth.resources("google_service_account_key")


def test_project_roles_are_exactly_these(synth: Synth) -> None:
    s = synth.settings
    runner, build, invoker = (
        sa_member(synth, a) for a in (s.runner_account_id, s.build_account_id, s.invoker_account_id)
    )
    granted = {
        (m["member"], m["role"]) for m in synth.resources("google_project_iam_member").values()
    }
    assert granted == {
        (runner, "roles/aiplatform.user"),
        (build, "roles/aiplatform.user"),
        (build, "roles/logging.logWriter"),
        (invoker, "roles/aiplatform.user"),
        # the janitor's own custom role (tests/infra/test_janitor.py)
        (
            sa_member(synth, f"dt-{s.environment}-janitor"),
            ref(synth, "google_project_iam_custom_role", "id"),
        ),
    }


def test_bucket_access_runner_on_its_two_buckets_build_on_locustfiles(synth: Synth) -> None:
    s = synth.settings
    runner = sa_member(synth, s.runner_account_id)
    build = sa_member(synth, s.build_account_id)
    bucket_ref = {
        name: ref(synth, "google_storage_bucket", "name", name=name)
        for name in (s.pipeline_root_bucket, s.loadtest_bucket)
    }
    grants = {
        (m["bucket"], m["role"], m["member"])
        for m in synth.resources("google_storage_bucket_iam_member").values()
    }
    assert grants == {
        (bucket_ref[s.pipeline_root_bucket], "roles/storage.objectAdmin", runner),
        (bucket_ref[s.loadtest_bucket], "roles/storage.objectViewer", runner),
        # upload (and replace) the locustfile, and check it exists before a run
        (bucket_ref[s.loadtest_bucket], "roles/storage.objectUser", build),
    }
    project_roles = {m["role"] for m in synth.resources("google_project_iam_member").values()}
    assert not [r for r in project_roles if r.startswith("roles/storage.")]


def test_artifact_registry_access(synth: Synth) -> None:
    s = synth.settings
    runner, build, invoker = (
        sa_member(synth, a) for a in (s.runner_account_id, s.build_account_id, s.invoker_account_id)
    )
    docker = ref(synth, "google_artifact_registry_repository", "name", format="DOCKER")
    kfp = ref(synth, "google_artifact_registry_repository", "name", format="KFP")
    grants = {
        (m["repository"], m["role"], m["member"])
        for m in synth.resources("google_artifact_registry_repository_iam_member").values()
    }
    assert grants == {
        (docker, "roles/artifactregistry.reader", runner),
        (kfp, "roles/artifactregistry.reader", runner),
        (docker, "roles/artifactregistry.writer", build),
        (kfp, "roles/artifactregistry.writer", build),
        (kfp, "roles/artifactregistry.reader", invoker),
        # The Scheduler starts from a tag (the default): Vertex AI's agent resolves it.
        (kfp, "roles/artifactregistry.reader", f"serviceAccount:{vertex_agent(synth)}"),
    }


def vertex_agent(synth: Synth) -> str:
    return ref(
        synth, "google_project_service_identity", "email", service="aiplatform.googleapis.com"
    )


def test_no_agent_grant_when_the_scheduler_pins_a_version(pinned_synth: Synth) -> None:
    members = {
        m["member"]
        for m in pinned_synth.resources("google_artifact_registry_repository_iam_member").values()
    }
    assert not [m for m in members if "google_project_service_identity" in m]
    assert not pinned_synth.resources("google_project_service_identity")
    assert "google-beta" not in pinned_synth.config["provider"]
    body = json.loads(base64.b64decode(regression_job(pinned_synth)["http_target"]["body"]))
    assert body["templateUri"] == pinned_synth.settings.template_uri(PINNED)


def test_act_as_only_on_the_runner(synth: Synth) -> None:
    s = synth.settings
    runner_name = ref(synth, "google_service_account", "name", account_id=s.runner_account_id)
    grants = {
        (m["service_account_id"], m["role"], m["member"])
        for m in synth.resources("google_service_account_iam_member").values()
    }
    assert grants == {
        (runner_name, "roles/iam.serviceAccountUser", sa_member(synth, a))
        for a in (s.runner_account_id, s.build_account_id, s.invoker_account_id)
    }


def test_gpu_quota_preference(synth: Synth) -> None:
    s = synth.settings
    pref = synth.one("google_cloud_quotas_quota_preference")
    assert pref["service"] == "aiplatform.googleapis.com"
    assert pref["quota_id"] == SERVING_GPU_QUOTAS[s.serving_gpu_type][0]
    assert pref["quota_id"] == "CustomModelServingT4GPUsPerProjectPerRegion"
    assert pref["dimensions"] == {"region": s.region}
    assert pref["parent"] == f"projects/{s.project_id}"
    assert int(pref["quota_config"]["preferred_value"]) >= s.serving_gpu_count
    assert len(pref["name"]) <= 63


def test_scheduler_job(synth: Synth) -> None:
    s = synth.settings
    job = regression_job(synth)
    assert job["schedule"] == s.regression_schedule
    assert job["region"] == s.region
    target = job["http_target"]
    assert target["http_method"] == "POST"
    assert target["uri"] == (
        f"https://{s.region}-aiplatform.googleapis.com/v1/projects/{s.project_id}"
        f"/locations/{s.region}/pipelineJobs"
    )
    assert target["oauth_token"]["service_account_email"] == ref(
        synth, "google_service_account", "email", account_id=s.invoker_account_id
    )
    assert "oidc_token" not in target  # Google APIs take OAuth access tokens
    assert target["headers"]["Content-Type"] == "application/json"


def regression_job(synth: Synth) -> dict:
    [job] = [
        j
        for j in synth.resources("google_cloud_scheduler_job").values()
        if j["name"] == f"{synth.settings.prefix}-regression"
    ]
    return job


def scheduler_body(synth: Synth) -> dict:
    job = regression_job(synth)
    return json.loads(base64.b64decode(job["http_target"]["body"]))


def test_scheduler_body_parses_as_pipeline_job(synth: Synth) -> None:
    from google.cloud import aiplatform_v1

    body = scheduler_body(synth)
    # Strict: an unknown or misspelt field raises.
    job = aiplatform_v1.PipelineJob.from_json(json.dumps(body), ignore_unknown_fields=False)
    s = synth.settings
    assert job.template_uri == s.template_uri(s.template_tag)
    assert job.service_account == s.runner_email
    assert job.runtime_config.gcs_output_directory == s.pipeline_root
    assert job.display_name == f"{s.prefix}-regression"
    for key, value in s.cost_labels.items():
        assert job.labels[key] == value
    params = body["runtimeConfig"]["parameterValues"]
    assert params["model"] == s.regression_model
    assert params["locustfile"] == s.regression_locustfile_uri
    assert params["accelerator_type"] == s.serving_gpu_type
    assert params["accelerator_count"] == s.serving_gpu_count
    # The endpoints the run creates carry the same cost labels as this stack.
    assert params["cost_labels"] == s.cost_labels


def test_scheduler_body_is_what_deploytest_submit_prints(synth: Synth) -> None:
    assert scheduler_body(synth) == regression_request_body(synth.settings)


def upload_topic(synth: Synth) -> tuple[str, dict]:
    """(key, resource) of the model-upload topic (the run-end topic is the other one)."""
    (found,) = [
        (k, t)
        for k, t in synth.resources("google_pubsub_topic").items()
        if t["name"].endswith("model-uploads")
    ]
    return found


def test_model_upload_sink_topic_and_publisher(synth: Synth) -> None:
    s = synth.settings
    topic_key, topic = upload_topic(synth)
    sink = synth.one("google_logging_project_sink")
    assert sink["destination"] == f"pubsub.googleapis.com/${{google_pubsub_topic.{topic_key}.id}}"
    assert sink["unique_writer_identity"] is True
    flt = sink["filter"]
    assert "cloudaudit.googleapis.com%2Factivity" in flt
    for method in UPLOAD_METHODS:
        assert f'protoPayload.methodName="{method}"' in flt
    # Either entry of the LRO (which one Vertex AI writes, with what, is undocumented).
    assert "operation." not in flt
    assert f'{MODEL_FIELD}:"/locations/{s.region}/models/"' in flt
    # Only opted-in models: the label on the logged request.
    key, value = s.opt_in_label
    assert f'{LABELS_FIELD}."{key}"="{value}"' in flt
    (member,) = [
        m
        for m in synth.resources("google_pubsub_topic_iam_member").values()
        if m["topic"] == f"${{google_pubsub_topic.{topic_key}.name}}"
    ]
    sink_key = next(iter(synth.resources("google_logging_project_sink")))
    assert member["role"] == "roles/pubsub.publisher"
    assert member["member"] == f"${{google_logging_project_sink.{sink_key}.writer_identity}}"
    assert member["topic"] == f"${{google_pubsub_topic.{topic_key}.name}}"
    assert topic["name"].endswith("model-uploads")


def test_run_end_topic_and_webhook_secret(synth: Synth, cmek_synth: Synth) -> None:
    s = synth.settings
    runner = sa_member(synth, s.runner_account_id)
    (key, topic), = [(k, t) for k, t in synth.resources("google_pubsub_topic").items()
                     if t["name"] == f"{s.prefix}-run-ends"]  # fmt: skip
    assert topic["labels"] == s.labels and topic["message_retention_duration"] == "604800s"
    (publisher,) = [
        m
        for m in synth.resources("google_pubsub_topic_iam_member").values()
        if m["topic"] == f"${{google_pubsub_topic.{key}.name}}"
    ]
    assert publisher["role"] == "roles/pubsub.publisher" and publisher["member"] == runner
    # the default stack has no secret; with notify_webhook_secret one, the runner may read it
    notify_synth = cmek_synth
    assert synth.resources("google_secret_manager_secret") == {}
    n = notify_synth.settings
    secret = notify_synth.one("google_secret_manager_secret")
    assert secret["secret_id"] == f"{n.prefix}-notify-webhook"
    assert secret["replication"] == {"auto": {}} and secret["labels"] == n.labels
    assert "google_secret_manager_secret_version" not in notify_synth.config["resource"]
    reader = notify_synth.one("google_secret_manager_secret_iam_member")
    assert reader["role"] == "roles/secretmanager.secretAccessor"
    assert reader["member"] == sa_member(notify_synth, n.runner_account_id)
    # the scheduled run sends its run-end message there
    values = scheduler_body(notify_synth)["runtimeConfig"]["parameterValues"]
    assert values["notify_topic"] == f"projects/{n.project_id}/topics/{n.prefix}-run-ends"
    assert values["notify_webhook_secret"] == (
        f"projects/{n.project_id}/secrets/{n.prefix}-notify-webhook/versions/latest"
    )


def test_build_triggers(synth: Synth) -> None:
    s = synth.settings
    triggers = {t["name"]: t for t in synth.resources("google_cloudbuild_trigger").values()}
    merge, upload = triggers[f"{s.prefix}-merge"], triggers[f"{s.prefix}-model-upload"]
    builder = triggers[f"{s.prefix}-builder"]
    build_sa = ref(synth, "google_service_account", "id", account_id=s.build_account_id)

    push = {"branch": f"^{s.main_branch}$"}
    assert merge["github"] == {"owner": s.github_owner, "name": s.github_repo, "push": push}
    assert merge["filename"] == "cloudbuild.yaml"
    assert merge["service_account"] == build_sa
    assert merge["substitutions"] == merge_substitutions(s, s.runner_email)
    # Default: a merge compiles and uploads; it starts no paid run.
    assert merge["substitutions"]["_LOAD_TEST"] == "false"

    topic_key, _ = upload_topic(synth)
    assert upload["pubsub_config"] == {"topic": f"${{google_pubsub_topic.{topic_key}.id}}"}
    assert upload["git_file_source"]["path"] == "cloudbuild-model.yaml"
    assert upload["source_to_build"]["uri"] == s.github_uri
    assert upload["service_account"] == build_sa
    assert upload["substitutions"] == model_upload_substitutions(s, s.runner_email)
    assert upload["substitutions"]["_MODEL_RESOURCE_NAME"] == (
        "$(body.message.data.protoPayload.resourceName)"
    )
    assert re.fullmatch(r'_MODEL_RESOURCE_NAME\.matches\(".+"\)', upload["filter"])

    pull = triggers[f"{s.prefix}-pull-request"]
    assert pull["github"]["pull_request"] == {
        "branch": f"^{s.main_branch}$",
        "comment_control": "COMMENTS_ENABLED",  # only on /gcbrun by an owner or collaborator
    }
    assert pull["filename"] == "cloudbuild-pr.yaml"
    assert pull["substitutions"] == pr_substitutions(s, s.runner_email)
    assert pull["service_account"] == build_sa

    assert builder["filename"] == "builder/cloudbuild.yaml"
    assert builder["included_files"] == ["builder/**"]
    assert builder["substitutions"] == builder_substitutions(s)
    assert builder["service_account"] == build_sa


def test_a_merge_runs_the_load_test_only_if_configured(pinned_synth: Synth) -> None:
    triggers = pinned_synth.resources("google_cloudbuild_trigger").values()
    merge = next(t for t in triggers if t["name"].endswith("-merge"))
    assert merge["substitutions"]["_LOAD_TEST"] == "true"


def test_apis_enabled_and_kept_on_destroy(synth: Synth) -> None:
    services = synth.resources("google_project_service").values()
    names = {svc["service"] for svc in services}
    assert {
        "aiplatform.googleapis.com",
        "cloudbuild.googleapis.com",
        "cloudquotas.googleapis.com",
        "cloudresourcemanager.googleapis.com",
        "serviceusage.googleapis.com",
    } <= names
    assert all(svc["disable_on_destroy"] is False for svc in services)


IAM_GRANT_TYPES = (
    "google_project_iam_member",
    "google_storage_bucket_iam_member",
    "google_artifact_registry_repository_iam_member",
    "google_service_account_iam_member",
    "google_kms_crypto_key_iam_member",
)


def api_refs(synth: Synth, *services: str) -> set[str]:
    return {
        f"google_project_service.{key}"
        for key, svc in synth.resources("google_project_service").items()
        if svc["service"] in services
    }


@pytest.mark.parametrize("which", ["synth", "cmek_synth"])
def test_iam_grants_wait_for_the_iam_and_resource_manager_apis(which, request) -> None:
    synth = request.getfixturevalue(which)
    needed = api_refs(synth, "iam.googleapis.com", "cloudresourcemanager.googleapis.com")
    assert len(needed) == 2
    grants = [
        (tf_type, key, res)
        for tf_type in IAM_GRANT_TYPES
        for key, res in synth.resources(tf_type).items()
    ]
    assert len(grants) >= 15
    for tf_type, key, res in grants:
        assert needed <= set(res.get("depends_on", [])), f"{tf_type}.{key}"


def test_provider_bills_the_quota_project(synth: Synth) -> None:
    (google,) = synth.config["provider"]["google"]
    assert google["user_project_override"] is True
    assert google["billing_project"] == synth.settings.project_id
    (beta,) = synth.config["provider"]["google-beta"]
    assert beta["user_project_override"] is True
    assert beta["billing_project"] == synth.settings.project_id
    versions = synth.config["terraform"]["required_providers"]
    assert versions["google-beta"]["version"] == versions["google"]["version"]


def test_quota_preference_has_a_contact(synth: Synth) -> None:
    pref = synth.one("google_cloud_quotas_quota_preference")
    assert pref["contact_email"] == synth.settings.quota_contact_email
    assert "@" in pref["contact_email"]


def test_outputs(synth: Synth) -> None:
    outputs = synth.config["output"]
    assert outputs["pipeline_root"]["value"] == synth.settings.pipeline_root
    assert outputs["kfp_host"]["value"] == synth.settings.kfp_host


def test_local_state_by_default_gcs_when_configured(synth: Synth, cmek_synth: Synth) -> None:
    assert "gcs" not in synth.config["terraform"].get("backend", {})
    assert cmek_synth.config["terraform"]["backend"]["gcs"] == {
        "bucket": "deploytest-demo-tfstate",
        "prefix": "deploytest/cmek",
    }


def test_provider_pinned(synth: Synth) -> None:
    provider = synth.config["terraform"]["required_providers"]["google"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", provider["version"]), provider


# ---- policies over the synthesised JSON -----------------------------------------------


def all_resources(synth: Synth):
    for tf_type, by_key in synth.config.get("resource", {}).items():
        for key, res in by_key.items():
            yield tf_type, key, res


def test_no_primitive_roles(synth: Synth) -> None:
    found = [
        (tf_type, key, res["role"])
        for tf_type, key, res in all_resources(synth)
        if re.search(r"_iam_(member|binding)$", tf_type) and res.get("role") in PRIMITIVE_ROLES
    ]
    assert not found
    assert not [t for t, _, _ in all_resources(synth) if t.endswith("_iam_policy")], (
        "authoritative IAM policies would wipe other grants"
    )


def test_every_bucket_is_private_and_uniform(synth: Synth) -> None:
    buckets = synth.resources("google_storage_bucket")
    assert buckets
    for key, bucket in buckets.items():
        assert bucket.get("uniform_bucket_level_access") is True, key
        assert bucket.get("public_access_prevention") == "enforced", key


def takes_labels(tf_type: str) -> bool:
    """Whether the provider's resource schema has a `labels` argument."""
    if tf_type == "google_project_service_identity":  # google-beta; arguments: project, service
        return False
    module = importlib.import_module(
        f"cdktf_cdktf_provider_google.{tf_type.removeprefix('google_')}"
    )
    from cdktf import TerraformResource

    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, TerraformResource) and cls is not TerraformResource
    ]
    assert len(classes) == 1, (tf_type, classes)
    return "labels" in inspect.signature(classes[0].__init__).parameters


def test_every_labelled_resource_carries_the_cost_labels(synth: Synth) -> None:
    cost = synth.settings.cost_labels
    assert set(cost) == {"team", "environment", "cost-center", "gpu-type"}
    labelled = [t for t in synth.config["resource"] if takes_labels(t)]
    assert {
        "google_storage_bucket",
        "google_artifact_registry_repository",
        "google_pubsub_topic",
    } <= set(labelled)
    for tf_type in labelled:
        for key, res in synth.resources(tf_type).items():
            labels = res.get("labels") or {}
            missing = {k: v for k, v in cost.items() if labels.get(k) != v}
            assert not missing, f"{tf_type}.{key} lacks cost labels {missing}"


def test_no_provider_default_labels(synth: Synth) -> None:
    # CDKTF rewrites map keys in provider blocks (cost-center -> cost_center), which would
    # put a second, wrong set of labels on every resource.
    for provider in synth.config["provider"]["google"]:
        assert "default_labels" not in provider


# ---- CMEK ---------------------------------------------------------------------------


def test_cmek_everywhere_when_configured(cmek_synth: Synth) -> None:
    for bucket in cmek_synth.resources("google_storage_bucket").values():
        assert bucket["encryption"] == {"default_kms_key_name": KMS_KEY}
    for repo in cmek_synth.resources("google_artifact_registry_repository").values():
        assert repo["kms_key_name"] == KMS_KEY
    for topic in cmek_synth.resources("google_pubsub_topic").values():  # uploads, run ends
        assert topic["kms_key_name"] == KMS_KEY
    # The runs' pipeline jobs and endpoints: the Scheduler body carries the key.
    body = json.loads(base64.b64decode(regression_job(cmek_synth)["http_target"]["body"]))
    assert body["encryptionSpec"] == {"kmsKeyName": KMS_KEY}
    assert body["runtimeConfig"]["parameterValues"]["encryption_spec_key_name"] == KMS_KEY


def test_cmek_service_agents_exist_and_hold_the_key_first(cmek_synth: Synth) -> None:
    identities = cmek_synth.resources("google_project_service_identity")
    assert {i["service"] for i in identities.values()} == {
        "aiplatform.googleapis.com",
        "artifactregistry.googleapis.com",
        "pubsub.googleapis.com",
    }
    assert all(i["provider"] == "google-beta" for i in identities.values())
    grants = cmek_synth.resources("google_kms_crypto_key_iam_member")
    assert {g["crypto_key_id"] for g in grants.values()} == {KMS_KEY}
    assert {g["role"] for g in grants.values()} == {"roles/cloudkms.cryptoKeyEncrypterDecrypter"}
    members = {g["member"] for g in grants.values()}
    for key in identities:
        assert f"serviceAccount:${{google_project_service_identity.{key}.email}}" in members
    storage_agent = next(iter(cmek_synth.config["data"]["google_storage_project_service_account"]))
    assert (
        f"serviceAccount:${{data.google_storage_project_service_account.{storage_agent}"
        ".email_address}" in members
    )
    for key, grant in grants.items():  # the agent exists before it is granted
        refs = set(grant["depends_on"])
        assert {f"google_project_service_identity.{k}" for k in identities} <= refs, key
    # ... and every encrypted resource waits for the grants.
    grant_refs = {f"google_kms_crypto_key_iam_member.{k}" for k in grants}
    for tf_type in (
        "google_storage_bucket",
        "google_artifact_registry_repository",
        "google_pubsub_topic",
    ):
        for key, res in cmek_synth.resources(tf_type).items():
            assert grant_refs <= set(res["depends_on"]), f"{tf_type}.{key}"


@pytest.mark.parametrize("tf_type", ["google_storage_bucket", "google_pubsub_topic"])
def test_no_cmek_by_default(synth: Synth, tf_type: str) -> None:
    for res in synth.resources(tf_type).values():
        assert "kms_key_name" not in res and "encryption" not in res
