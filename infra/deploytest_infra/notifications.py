"""Where the run-end message goes (components/runtime/notify.py): a Pub/Sub topic the runs
publish to, and a Secret Manager secret that holds a webhook URL; the runner service
account may publish to the one and read the other, nothing more.

The secret's value (the URL, itself a credential for Google Chat and Slack webhooks) is
never in the stack or its state: add it with
`gcloud secrets versions add SECRET --data-file=-`. Until then a run's webhook send fails,
which never fails the run (the message still goes to the topic).
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.pubsub_topic import PubsubTopic
from cdktf_cdktf_provider_google.pubsub_topic_iam_member import PubsubTopicIamMember
from cdktf_cdktf_provider_google.secret_manager_secret import SecretManagerSecret
from cdktf_cdktf_provider_google.secret_manager_secret_iam_member import (
    SecretManagerSecretIamMember,
)
from constructs import Construct

from deploytest_infra.settings import InfraSettings

# Messages nobody pulled are kept this long (Pub/Sub's topic retention; 31 days at most).
TOPIC_RETENTION = f"{7 * 24 * 3600}s"


class Notifications(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: InfraSettings,
        runner_member: str,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        self.topic = self.secret = None
        if settings.notify_topic:
            self.topic = PubsubTopic(
                self,
                "topic",
                project=settings.project_id,
                name=f"{settings.prefix}-run-ends",
                labels=settings.labels,
                kms_key_name=settings.kms_key_name or None,
                message_retention_duration=TOPIC_RETENTION,
                depends_on=list(depends_on),
            )
            PubsubTopicIamMember(
                self,
                "runner-publishes",
                project=settings.project_id,
                topic=self.topic.name,
                role="roles/pubsub.publisher",
                member=runner_member,
            )
        if settings.notify_webhook_secret:
            self.secret = SecretManagerSecret(
                self,
                "webhook",
                project=settings.project_id,
                secret_id=f"{settings.prefix}-notify-webhook",
                replication={"auto": {}},
                labels=settings.labels,
                depends_on=list(depends_on),
            )
            SecretManagerSecretIamMember(
                self,
                "runner-reads-webhook",
                project=settings.project_id,
                secret_id=self.secret.secret_id,
                role="roles/secretmanager.secretAccessor",
                member=runner_member,
            )
