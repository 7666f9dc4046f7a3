"""docs/deploy.md, checked where a test can check it: the parameters and outputs it names exist,
samconfig.toml with its overrides deploys without a question, and its answers take the real
`sam deploy --guided` through every prompt. Also: the repository carries its LICENSE."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest

from drainctl.cli import main
from drainctl.template import Template, load_template, samconfig_parameter_overrides
from drainctl.world.aws import REGION, LocalAws

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deploy.md"
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
IAM_NAME_PROPERTIES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
}


def _section(text: str, marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", text, re.DOTALL)
    assert match, f"docs/deploy.md has no <!-- {marker} --> section"
    return match.group(1)


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text()


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE)


def guide_overrides_block(guide: str) -> str:
    """The `parameter_overrides = [...]` lines the guide tells the user to put in samconfig.toml."""
    match = re.search(r"```toml\n(.*?)```", _section(guide, "samconfig-overrides"), re.DOTALL)
    assert match
    return match.group(1)


def guided_answers(guide: str) -> dict[str, str]:
    """Prompt label (without the bracketed default) -> what the guide says to type ("" for Enter)."""
    answers: dict[str, str] = {}
    for line in _section(guide, "guided-prompts").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        prompt, what, example = cells
        label = re.sub(r"\s*\[[^\]]*\]$", "", prompt.strip("`"))
        answers[label] = "" if what == "Enter" else example.strip("`")
    return answers


def samconfig_with_the_guides_overrides(guide: str, tmp_path: Path) -> Path:
    """samconfig.toml as the guide tells the user to edit it."""
    text = SAMCONFIG.read_text()
    header = "[default.deploy.parameters]\n"
    assert text.count(header) == 1
    edited = text.replace(header, header + 'region = "eu-west-1"\n' + guide_overrides_block(guide))
    path = tmp_path / "samconfig.toml"
    path.write_text(edited)
    return path


def test_every_parameter_and_output_the_guide_names_is_in_the_template(
    guide: str, template: Template
) -> None:
    # GIVEN the parameters the guide names: NAME=value anywhere, the guided prompts, the settings table
    named = set(re.findall(r"\b([A-Z][a-z][A-Za-z0-9]*)=(?!=)", guide))
    named |= set(re.findall(r"Parameter ([A-Z][A-Za-z0-9]+)", guide))
    for row in re.findall(r"^\| (`[A-Z][^|]*`) \|", guide, re.MULTILINE):
        named |= set(re.findall(r"`([A-Z][A-Za-z0-9]+)`", row))
    outputs = set(re.findall(r"OutputKey=='([A-Za-z0-9]+)'", guide))

    # WHEN they are looked up in the template
    parameters = set(template.body["Parameters"])

    # THEN each exists (the guide names many, and a few outputs)
    assert len(named) >= 15
    assert sorted(named - parameters) == []
    assert outputs == {"WebhookUrl", "AlarmTopicArn", "DeadLetterQueueUrl"}
    assert outputs <= set(template.body["Outputs"])


def test_samconfig_with_the_guides_overrides_gives_every_parameter_a_valid_value(
    guide: str, template: Template, tmp_path: Path
) -> None:
    # GIVEN samconfig.toml edited as the guide says
    path = samconfig_with_the_guides_overrides(guide, tmp_path)

    # WHEN the SAM CLI reads it (its own config reader and parameter parser)
    read = subprocess.run(  # noqa: S603 - a fixed command line
        [str(SAM_PYTHON), "-c", _READ_SAMCONFIG, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert read.returncode == 0, read.stderr
    sam_view = json.loads(read.stdout)

    # THEN every parameter without a default has a value, every value passes the template's
    # constraints and rules, and SAM reads the same values as the project does
    no_default = {name for name, spec in template.body["Parameters"].items() if "Default" not in spec}
    assert no_default == {"LiveKitUrl", "LiveKitSecretArn"}
    assert no_default <= set(sam_view["overrides"])
    values = template.parameters(samconfig=path)
    assert set(values) == set(template.body["Parameters"])
    assert sam_view["overrides"] == samconfig_parameter_overrides(path)
    assert sam_view["deploy"]["region"] == "eu-west-1"


def test_samconfig_deploys_without_a_question_given_no_confirm_changeset(template: Template) -> None:
    # GIVEN the repository's samconfig.toml
    deploy = tomllib.loads(SAMCONFIG.read_text())["default"]["deploy"]["parameters"]

    # WHEN / THEN the only question `sam deploy` would ask is the change set, which
    # --no-confirm-changeset skips; the managed bucket is resolved; CAPABILITY_IAM is enough
    # because no IAM resource of the template has a fixed name (that would need CAPABILITY_NAMED_IAM)
    assert deploy["confirm_changeset"] is True
    assert deploy["resolve_s3"] is True
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    named = [
        logical_id
        for logical_id, resource in template.body["Resources"].items()
        if IAM_NAME_PROPERTIES.get(resource["Type"]) in resource.get("Properties", {})
    ]
    assert named == []


def test_samconfig_with_the_guides_overrides_passes_drainctl_check(
    guide: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN samconfig.toml edited as the guide says (the packaged worker on)
    path = samconfig_with_the_guides_overrides(guide, tmp_path)

    # WHEN the guide's check runs on it
    status = main(["check", "--template", str(TEMPLATE), "--config", str(path)])

    # THEN every timer rule passes
    assert status == 0, capsys.readouterr().out


_READ_SAMCONFIG = """
import json, sys
from pathlib import Path
from samcli.lib.config.samconfig import SamConfig
from samcli.cli.types import CfnParameterOverridesType
path = Path(sys.argv[1])
params = SamConfig(str(path.parent), path.name).get_all(["deploy"], "parameters", "default")
raw = params.pop("parameter_overrides", ())
value = tuple(raw) if isinstance(raw, list) else (raw,)
print(json.dumps({"deploy": params, "overrides": CfnParameterOverridesType().convert(value, None, None)}))
"""


def _guided_stdin(guide: str, template: Template) -> tuple[str, list[str]]:
    """The lines typed into `sam deploy --guided`, in the SAM CLI's order of prompts."""
    answers = guided_answers(guide)
    order = ["Stack Name", "AWS Region"]
    order += [f"Parameter {name}" for name in template.body["Parameters"]]
    order += ["Confirm changes before deploy", "Allow SAM CLI IAM role creation", "Disable rollback"]
    order += ["WebhookFunction Function Url has no authentication. Is this okay?"]
    order += [
        "Save arguments to configuration file",
        "SAM configuration file",
        "SAM configuration environment",
    ]
    lines = [answers.get(label, "") for label in order]
    return "\n".join(lines) + "\n", order


def _managed_stack(local_aws: LocalAws, region: str) -> None:
    """The SAM CLI's own stack, as `sam deploy` leaves it after a first run (moto's CloudFormation
    cannot create its bucket policy): a bucket, its output, the SAM CLI's tag."""
    cloudformation = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    ).client("cloudformation", endpoint_url=local_aws.endpoint_url)
    cloudformation.create_stack(
        StackName="aws-sam-cli-managed-default",
        TemplateBody=json.dumps(
            {
                "Resources": {"SamCliSourceBucket": {"Type": "AWS::S3::Bucket"}},
                "Outputs": {"SourceBucket": {"Value": {"Ref": "SamCliSourceBucket"}}},
            }
        ),
        Tags=[{"Key": "ManagedStackSource", "Value": "AwsSamCli"}],
    )


def _guided_deploy(local_aws: LocalAws, workdir: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    for name in ("template.yaml", "samconfig.toml"):
        (workdir / name).write_text((ROOT / name).read_text())
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": local_aws.endpoint_url,
        "SAM_CLI_TELEMETRY": "0",
    }
    return subprocess.run(  # noqa: S603 - a fixed command line
        [str(SAM), "deploy", "--guided"],
        cwd=workdir,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_the_guides_answers_take_sam_deploy_guided_through_every_prompt(
    guide: str, template: Template, local_aws: LocalAws, tmp_path: Path
) -> None:
    # GIVEN the answers of the guide, in the SAM CLI's order, and the local AWS behind the SAM CLI
    stdin, order = _guided_stdin(guide, template)
    _managed_stack(local_aws, guided_answers(guide)["AWS Region"])

    # WHEN the real `sam deploy --guided` is answered with them
    result = _guided_deploy(local_aws, tmp_path, stdin)
    out = result.stdout + result.stderr

    # THEN every prompt it asked is one the guide answers (or a parameter left at its default),
    # it went past the last prompt (to the deployment's resources), and saved a samconfig whose
    # values the template accepts; the upload that follows fails here only for want of a build
    prompts = out.split("Looking for resources needed for deployment")[0]
    asked = re.findall(r"\t([A-Z][^\t\[\n]*?\S)(?: \[[^\]]*\])?: ", prompts)
    assert asked == order, out
    assert "Security Constraints Not Satisfied" not in out
    assert "Looking for resources needed for deployment" in out
    saved = samconfig_parameter_overrides(tmp_path / "samconfig.toml")
    assert saved["LiveKitUrl"] == "wss://livekit.example.com"
    values = template.parameters(samconfig=tmp_path / "samconfig.toml")
    assert set(values) == set(template.body["Parameters"])


@pytest.mark.slow
def test_enter_at_the_function_url_prompt_stops_the_guided_deploy(
    guide: str, template: Template, local_aws: LocalAws, tmp_path: Path
) -> None:
    # GIVEN the guide's answers with Enter (No) at the Function URL prompt
    stdin, order = _guided_stdin(guide, template)
    lines = stdin.split("\n")
    lines[order.index("WebhookFunction Function Url has no authentication. Is this okay?")] = ""
    _managed_stack(local_aws, guided_answers(guide)["AWS Region"])

    # WHEN the SAM CLI is answered with them
    result = _guided_deploy(local_aws, tmp_path, "\n".join(lines))

    # THEN it stops there, as the guide warns
    assert result.returncode != 0
    assert "Security Constraints Not Satisfied!" in result.stdout + result.stderr
    assert guided_answers(guide)["WebhookFunction Function Url has no authentication. Is this okay?"] == "y"


def test_the_license_is_the_apache_2_0_text(tmp_path: Path) -> None:
    # GIVEN the repository's LICENSE and the license pyproject.toml declares
    text = (ROOT / "LICENSE").read_text()
    declared: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]

    # WHEN / THEN it is the full Apache License 2.0
    assert declared == {"text": "Apache-2.0"}
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text) > 10_000
