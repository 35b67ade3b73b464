#!/usr/bin/env python
"""CDKTF app: `make synth` (or `cdktf synth`) writes cdktf.out/stacks/<stack>/cdk.tf.json,
one stack per environment (deploytest-dev, deploytest-test, …); `cdktf deploy <stack>`
deploys one.

Settings: the JSON file named in $DEPLOYTEST_INFRA_SETTINGS (see settings.example.json:
defaults and one entry per environment; a flat file of one environment works too); none:
the defaults, one dev stack. Invalid settings stop here, before anything is synthesised.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from deploytest_infra import silence_node_warnings  # noqa: E402
from deploytest_infra.environments import load_environments  # noqa: E402
from deploytest_infra.settings import SettingsError  # noqa: E402


def main() -> int:
    try:
        environments = load_environments()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    # Heavy (jsii + the Google provider, ~15 s): only once the settings are valid.
    silence_node_warnings()
    from cdktf import App
    from deploytest_infra.stack import DeploytestStack
    from deploytest_infra.submit_body import RequestBodyError

    app = App(outdir=os.environ.get("CDKTF_OUTDIR", str(HERE / "cdktf.out")))
    for settings in environments:
        try:
            DeploytestStack(app, settings)
        except RequestBodyError as exc:
            print(
                f"{settings.stack_name}: cannot build the Scheduler request body: {exc}",
                file=sys.stderr,
            )
            return 2
    app.synth()
    for settings in environments:
        print(
            f"synthesised stack {settings.stack_name} to {app.outdir}/stacks/{settings.stack_name}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
