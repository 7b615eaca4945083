"""`python -m infra <command> --stage <stage>`: deploy imgpress to the AWS account boto3 is configured for.

resources  create/update the stage's resources stack (infra/resources.json), then write its
           outputs into .chalice/config.json and each function's .chalice/policy-<stage>-<function>.json;
           then its monitoring stack (infra/monitoring.json: alarms, dashboard, saved queries);
           on a stage with a user pool, the deployed API's URL (and PAGE_URLS) become the app
           client's callback URLs
attach     create/update the handler stack (infra/handler.json): async retries and the
           on-failure queue of the S3 handler, and the API key when API_AUTH=api_key; then
           API Gateway's own error answers in our JSON shape (infra/gateway_responses.json),
           and ReportBatchItemFailures on the SQS mappings Chalice made (infra/eventsources.py)
deploy     resources, then `chalice deploy`, then resources again if the API's URL is new to the
           user pool client (the first deploy of a stage with one), then attach
teardown   everything deploy made, including the buckets' contents (asks for --yes)
check      refuse a stage that must not be deployed (no AWS call)
package    check, then `chalice package --pkg-format terraform` into --dir (default build/terraform-<stage>),
           then add what Chalice leaves out; needs no AWS account or configuration (`make package`)
terraform  add what Chalice leaves out to the Terraform `chalice package` generated: --dir
migrate-table  move the deployed table to the template's indexes in steps: --step expand, then
           (new code deployed) --step backfill, then --step contract (infra/migrate.py, docs/deploy/index.md)

A stage with API_AUTH=none (or CORS_ALLOW_ORIGINS=*) is refused unless its environment sets
IMGPRESS_ALLOW_PUBLIC_API=i-understand-anyone-can-upload (docs/security.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from chalicelib.settings import Environment
from infra import eventsources, gateway, migrate, monitoring, stacks, stages


class Deployment:
    """One stage of one project directory, in the account boto3 resolves and the stage's own region."""

    def __init__(self, project: Path, stage: str) -> None:
        import boto3

        self.project = project
        self.stage = stage
        self.config = stages.load_config(project)
        stages.stage_config(self.config, stage)  # fails early on a stage that cannot be deployed
        self.region = stages.region(stage)
        session = boto3.session.Session(region_name=self.region)
        self.cfn: Any = session.client("cloudformation")
        self.apigateway: Any = session.client("apigateway")
        self.lambda_: Any = session.client("lambda")
        self.s3: Any = session.client("s3")
        self.resources_stack = stages.stack_name(self.config, stage, "resources")
        self.monitoring_stack = stages.stack_name(self.config, stage, "monitoring")
        self.handler_stack = stages.stack_name(self.config, stage, "handler")
        self.tags = {"imgpress:stage": stage}

    def resources_parameters(self) -> dict[str, str]:
        api_url = stages.deployed_api_url(self.project, self.stage)
        return stages.resources_parameters(self.config, self.stage, api_url)

    def resources(self) -> dict[str, str]:
        print(f"Deploying stack {self.resources_stack} ...", flush=True)
        parameters = self.resources_parameters()
        outputs = stacks.deploy(
            self.cfn, self.resources_stack, stages.TEMPLATES / "resources.json", parameters, self.tags
        )
        stages.record_outputs(self.project, self.stage, outputs)
        self.config = stages.load_config(self.project)
        print(
            f"Recorded the stack outputs in .chalice/config.json (stage {self.stage}) and its functions' policy files."
        )
        if "OutputBaseUrl" in outputs:
            print(f"Outputs are served by CloudFront from {outputs['OutputBaseUrl']} (OUTPUT_BASE_URL).")
        if "HostedUiUrl" in outputs:
            pages = parameters["PageUrls"].replace(",", ", ") or "none yet (no API deployed)"
            print(f"The upload page signs in at {outputs['HostedUiUrl']}; callback URLs: {pages}.")
        self.monitoring()
        return outputs

    def monitoring(self) -> dict[str, str]:
        """Alarms, dashboard and saved queries: named by the stage alone, so they may precede the functions."""
        print(f"Deploying stack {self.monitoring_stack} ...", flush=True)
        parameters = stages.monitoring_parameters(self.config, self.stage)
        outputs = stacks.deploy(self.cfn, self.monitoring_stack, monitoring.TEMPLATE, parameters, self.tags)
        print(f"Alarms notify {outputs['AlarmTopicArn']}; dashboard: {outputs['DashboardUrl']}")
        return outputs

    def register_page(self) -> None:
        """After `chalice deploy`, the API's URL is known: a second update of the resources stack makes
        it a callback URL of the user pool client, and the CDN's fallback origin for on-demand variants,
        only if the stack does not have it yet (CloudFormation owns the client, so an update never
        reverts it). A no-op on every later deploy."""
        wanted = self.resources_parameters()
        current = stacks.parameters(self.cfn, self.resources_stack)
        if all(wanted.get(name, "") == current.get(name, "") for name in ("PageUrls", "ApiDomain")):
            return
        environment = stages.stage_environment(self.config, self.stage)
        self.resources()
        if stages.stage_environment(self.config, self.stage) != environment:
            self.chalice("deploy")  # not expected (the client keeps its id), but the functions must see it

    def chalice(self, command: str) -> None:
        run_chalice(self.project, self.stage, command)

    def attach(self) -> dict[str, str]:
        print(f"Deploying stack {self.handler_stack} ...", flush=True)
        resource_outputs = stacks.outputs(self.cfn, self.resources_stack)
        rest_api_id = stages.deployed_rest_api_id(self.project, self.stage)
        parameters = stages.handler_parameters(self.config, self.stage, resource_outputs, rest_api_id)
        if stages.stage_environment(self.config, self.stage).get("API_AUTH") == "api_key" and not rest_api_id:
            raise SystemExit(
                f"API_AUTH=api_key needs the deployed API: run `chalice deploy --stage {self.stage}` first."
            )
        outputs = stacks.deploy(self.cfn, self.handler_stack, stages.TEMPLATES / "handler.json", parameters, self.tags)
        if "ApiKeyId" in outputs:
            print(
                f"API key id {outputs['ApiKeyId']}: `aws apigateway get-api-key --include-value "
                f"--api-key {outputs['ApiKeyId']}` shows the value clients send as x-api-key."
            )
        if rest_api_id:
            api_stage = parameters["ApiGatewayStage"]
            kinds = gateway.put_responses(self.apigateway, rest_api_id, api_stage)
            print(f"Gateway responses {', '.join(kinds)} answer in JSON; stage {api_stage} redeployed.")
        else:
            print(f"No API deployed yet: run `chalice deploy --stage {self.stage}`, then attach, for JSON 401s.")
        self.report_batch_item_failures()
        return outputs

    def report_batch_item_failures(self) -> None:
        functions = [stages.function_name(self.config, self.stage, h) for h in eventsources.PARTIAL_BATCH_CONSUMERS]
        changed = eventsources.report_batch_item_failures(self.lambda_, functions)
        print(f"ReportBatchItemFailures on the SQS mappings of {', '.join(functions)} ({len(changed)} changed).")

    def migrate_table(self, step: str, checkpoint: Path | None) -> None:
        """One phase of infra/migrate.py on this stage's table."""
        import boto3

        table_name = stages.stage_environment(self.config, self.stage)["TABLE_NAME"]
        if step == "backfill":
            checkpoint = checkpoint or self.project / "build" / f"migrate-{self.stage}-backfill.json"
            count = migrate.backfill(boto3.resource("dynamodb").Table(table_name), checkpoint)
            print(f"backfill done: {count.updated} updated, {count.current} already current, {count.skipped} skipped")
            if count.unreadable:
                raise SystemExit(
                    f"{len(count.unreadable)} records could not be read: {', '.join(count.unreadable[:20])}"
                )
            return
        template = json.loads((stages.TEMPLATES / "resources.json").read_text())
        target = template["Resources"]["ImagesTable"]["Properties"]["GlobalSecondaryIndexes"]
        steps = migrate.plan(migrate.current_indexes(boto3.client("dynamodb"), table_name), target)
        chosen = steps.expand if step == "expand" else steps.contract
        if not chosen:
            print(f"{table_name}: nothing to {step}.")
            return
        parameters = self.resources_parameters()  # the stack's own, the page's URLs included
        migrate.deploy_steps(
            chosen, template, lambda path: stacks.deploy(self.cfn, self.resources_stack, path, parameters, self.tags)
        )
        # As `resources` does: the stage's config and policies for the code deployed next.
        stages.record_outputs(self.project, self.stage, stacks.outputs(self.cfn, self.resources_stack))
        print(f"{table_name}: {step} done.")

    def teardown(self) -> None:
        stacks.delete(self.cfn, self.handler_stack)
        if (self.project / ".chalice" / "deployed" / f"{self.stage}.json").exists():
            self.chalice("delete")
        env = stages.stage_environment(self.config, self.stage)
        for bucket in sorted({env["INPUT_BUCKET"], env["OUTPUT_BUCKET"]}):
            print(f"Emptied s3://{bucket}: {stacks.empty_bucket(self.s3, bucket)} objects deleted.")
        stacks.delete(self.cfn, self.monitoring_stack)
        print(f"Deleting stack {self.resources_stack} ...", flush=True)
        stacks.delete(self.cfn, self.resources_stack)


def run_chalice(project: Path, stage: str, command: str, *arguments: str) -> None:
    """The chalice command, in the stage's region whatever the shell's AWS settings say."""
    chalice = Path(sys.executable).with_name("chalice")
    region = stages.region(stage)
    env = {**os.environ, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    subprocess.run([str(chalice), command, *arguments, "--stage", stage], cwd=project, env=env, check=True)


def package(project: Path, stage: str, directory: Path) -> None:
    """Terraform configuration and the deployment zip for `stage`, made without touching AWS."""
    shutil.rmtree(directory, ignore_errors=True)
    run_chalice(project, stage, "package", "--pkg-format", "terraform", str(directory))
    patch_terraform_dir(directory)


def patch_terraform_dir(directory: Path) -> None:
    path = directory / "chalice.tf.json"
    document = json.loads(path.read_text())
    stages.save_json(path, eventsources.patch_terraform(document))
    print(
        f"{path}: function_response_types = [ReportBatchItemFailures] on {', '.join(eventsources.PARTIAL_BATCH_CONSUMERS)}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m infra", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command",
        choices=["resources", "attach", "deploy", "teardown", "check", "package", "terraform", "migrate-table"],
    )
    parser.add_argument("--step", choices=["expand", "backfill", "contract"], help="migrate-table: the phase to run")
    parser.add_argument("--checkpoint", type=Path, help="migrate-table --step backfill: where its position is kept")
    parser.add_argument("--dir", type=Path, help="package, terraform: the directory of the Terraform configuration")
    parser.add_argument(
        "--stage", required=True, help="a stage of .chalice/config.json whose functions name an iam_policy_file"
    )
    parser.add_argument("--project", type=Path, default=stages.PROJECT, help=argparse.SUPPRESS)
    parser.add_argument("--yes", action="store_true", help="confirm teardown (deletes all images of the stage)")
    args = parser.parse_args(argv)
    if args.command != "teardown":  # refused before any AWS call; an open stage may still be torn down
        config = stages.load_config(args.project)
        stages.stage_config(config, args.stage)
        stages.check_deployable(config, args.stage)
    terraform_dir = args.dir or args.project / "build" / f"terraform-{args.stage}"
    if args.command == "package":
        package(args.project, args.stage, terraform_dir)
        return
    if args.command == "terraform":
        patch_terraform_dir(terraform_dir)
        return
    if args.command == "check":
        auth = Environment(stages.stage_environment(config, args.stage)).text("API_AUTH")
        print(f"stage {args.stage} ({stages.region(args.stage)}): API_AUTH={auth}")
        return
    deployment = Deployment(args.project, args.stage)
    if args.command == "migrate-table":
        if not args.step:
            raise SystemExit("migrate-table needs --step expand, backfill or contract (docs/deploy/index.md).")
        deployment.migrate_table(args.step, args.checkpoint)
    elif args.command == "resources":
        deployment.resources()
    elif args.command == "attach":
        deployment.attach()
    elif args.command == "deploy":
        deployment.resources()
        deployment.chalice("deploy")
        deployment.register_page()
        deployment.attach()
    elif not args.yes:
        raise SystemExit(f"teardown deletes every image of stage {args.stage}; run again with --yes to confirm.")
    else:
        deployment.teardown()


if __name__ == "__main__":
    main()
