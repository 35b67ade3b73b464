"""Google-managed service agents this stack grants roles to, created before the grants.

A service agent (`service-PROJECT_NUMBER@gcp-sa-SERVICE.iam.gserviceaccount.com`) often
exists only after the service first needs it; granting a role to one that does not exist
yet fails. `google_project_service_identity` creates it, but only the google-beta
provider has that resource, so this construct adds google-beta (same version as the
google provider) for these resources alone. The Cloud Storage agent comes from the GA
data source `google_storage_project_service_account`, which creates it when read.

Grants:
* CMEK (`kms_key_name` set): `roles/cloudkms.cryptoKeyEncrypterDecrypter` on the key for
  the Cloud Storage, Artifact Registry, Pub/Sub and Vertex AI agents (buckets,
  repositories, topic, and the endpoints and pipeline jobs the runs create);
* a Scheduler that starts from a template *tag*: `roles/artifactregistry.reader` on the
  KFP repository for the Vertex AI service agent. Which identity Vertex AI uses to
  resolve a tag is not documented (python-aiplatform #2181: a tag failed with 500 where
  a sha256: version worked); infra/README.md says how to check. With a version in
  `scheduler_template` no grant is made.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable, TerraformProvider, TerraformResource
from cdktf_cdktf_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepository,
)
from cdktf_cdktf_provider_google.artifact_registry_repository_iam_member import (
    ArtifactRegistryRepositoryIamMember,
)
from cdktf_cdktf_provider_google.data_google_storage_project_service_account import (
    DataGoogleStorageProjectServiceAccount,
)
from cdktf_cdktf_provider_google.kms_crypto_key_iam_member import KmsCryptoKeyIamMember
from constructs import Construct

from deploytest_infra.settings import InfraSettings

GOOGLE_PROVIDER_VERSION = "6.50.0"  # cdktf-cdktf-provider-google==16.12.1
CMEK_SERVICES = (
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "pubsub.googleapis.com",
)
KMS_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


class GoogleBetaProvider(TerraformProvider):
    """hashicorp/google-beta, for google_project_service_identity only."""

    def __init__(self, scope: Construct, id_: str, *, settings: InfraSettings) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type="google-beta",
            terraform_generator_metadata={
                "provider_name": "google-beta",
                "provider_version_constraint": GOOGLE_PROVIDER_VERSION,
            },
            terraform_provider_source="hashicorp/google-beta",
        )
        for key, value in {
            "project": settings.project_id,
            "region": settings.region,
            "user_project_override": True,
            "billing_project": settings.billing_project_id,
        }.items():
            self.add_override(key, value)


class ServiceIdentity(TerraformResource):
    """google_project_service_identity (google-beta): creates a service's agent."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        project: str,
        service: str,
        provider: TerraformProvider,
        depends_on: Sequence[ITerraformDependable],
    ) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type="google_project_service_identity",
            terraform_generator_metadata={"provider_name": "google-beta"},
            provider=provider,
            depends_on=list(depends_on),
        )
        self.add_override("project", project)
        self.add_override("service", service)

    @property
    def email(self) -> str:
        return self.get_string_attribute("email")


class ServiceAgents(Construct):
    """Creates the agents the settings need and grants them; nothing if none is needed."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: InfraSettings,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        self._settings = settings
        self._depends_on = list(depends_on)
        self._provider: GoogleBetaProvider | None = None
        self.identities: dict[str, ServiceIdentity] = {}
        # What must exist before a CMEK-encrypted resource is created.
        self.key_grants: list[ITerraformDependable] = []
        if settings.kms_key_name:
            self._grant_key()

    @property
    def needed(self) -> bool:
        return bool(self._settings.kms_key_name) or self._settings.scheduler_uses_tag

    def identity(self, service: str) -> ServiceIdentity:
        if self._provider is None:
            self._provider = GoogleBetaProvider(self, "google-beta", settings=self._settings)
        if service not in self.identities:
            self.identities[service] = ServiceIdentity(
                self,
                service.split(".")[0],
                project=self._settings.project_id,
                service=service,
                provider=self._provider,
                depends_on=self._depends_on,
            )
        return self.identities[service]

    def _grant_key(self) -> None:
        key = self._settings.kms_key_name
        storage_agent = DataGoogleStorageProjectServiceAccount(
            self, "storage", project=self._settings.project_id, depends_on=self._depends_on
        )
        members = {"storage": f"serviceAccount:{storage_agent.email_address}"}
        for service in CMEK_SERVICES:
            members[service.split(".")[0]] = f"serviceAccount:{self.identity(service).email}"
        for name, member_ in members.items():
            self.key_grants.append(
                KmsCryptoKeyIamMember(
                    self,
                    f"{name}-key",
                    crypto_key_id=key,
                    role=KMS_ROLE,
                    member=member_,
                    depends_on=[*self._depends_on, *self.identities.values()],
                )
            )

    def grant_template_reader(self, kfp: ArtifactRegistryRepository) -> None:
        """Let Vertex AI resolve a template tag in `kfp` (only if the Scheduler uses one)."""
        if not self._settings.scheduler_uses_tag:
            return
        agent = self.identity("aiplatform.googleapis.com")
        ArtifactRegistryRepositoryIamMember(
            self,
            "vertex-agent-kfp-reader",
            project=self._settings.project_id,
            location=kfp.location,
            repository=kfp.name,
            role="roles/artifactregistry.reader",
            member=f"serviceAccount:{agent.email}",
            depends_on=[*self._depends_on, agent],
        )
