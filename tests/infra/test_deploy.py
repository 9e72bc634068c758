"""Issue 15: the stack deploys into a real account as the README says, and refuses a placeholder loudly.

- `sam deploy --guided` finishes with the README's answers: no parameter re-prompts forever (NoEcho), every one but
  the two Vault ones has a default CloudFormation accepts, and the README answers every prompt, in order.
- A missing or placeholder `VaultAddr`, and a cross-account stack without its external id, are refused by
  CloudFormation before anything is created (the template's parameters and `Rules`, evaluated by cfn_rules.py).
- The webhook reserves no concurrency unless asked, so an account with a low concurrency quota can deploy.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from rescind_local.stack import IntrinsicResolver, plan_local_resources
from rescind_local.template import load_template, translate_template
from tests.infra.cfn_rules import ACCOUNT, refusals, rule_refusals
from tests.infra.readme import README, readme_section

REPO_ROOT = Path(__file__).resolve().parents[2]
# The two parameters a deploy must be given; every other one has a default.
REQUIRED = {"VaultAddr", "VaultAwsAuthRole"}
REAL = {"VaultAddr": "https://vault.internal.example:8200", "VaultAwsAuthRole": "rescind"}
PLACEHOLDERS = ["https://vault.example.com:8200", "https://vault.example.com", "https://vault.example.com:8200/"]
MEMBERS = "111111111111,222222222222"
EXTERNAL_ID = "rescind-org-7f3a-2c9d"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


# --- VaultAddr: required, and never the placeholder ------------------------------------------------------------


def test_samconfig_names_no_vault_so_a_plain_deploy_stops_and_asks() -> None:
    deploy = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())["default"]["deploy"]["parameters"]
    overrides = dict(item.split("=", 1) for item in shlex.split(deploy["parameter_overrides"]))

    assert "VaultAddr" not in overrides
    assert not [value for value in overrides.values() if "example" in value]


@pytest.mark.parametrize("address", ["", *PLACEHOLDERS])
def test_a_missing_empty_or_placeholder_vault_addr_is_refused_before_anything_is_created(
    template: dict[str, Any], address: str
) -> None:
    refused = refusals(template, {**REAL, "VaultAddr": address})

    assert refused
    assert all("VaultAddr" in reason for reason in refused), refused
    # The Rules alone refuse it too, whatever AllowedPattern says (a later, looser pattern changes nothing).
    assert rule_refusals(template, {**REAL, "VaultAddr": address})


def test_a_deploy_without_vault_addr_is_refused_naming_it(template: dict[str, Any]) -> None:
    assert refusals(template, {"VaultAwsAuthRole": "rescind"}) == ["Parameters: [VaultAddr] must have values"]


@pytest.mark.parametrize(
    "address", ["https://vault.internal.example:8200", "https://10.0.12.7:8200", "https://bao.corp.example.net"]
)
def test_a_real_vault_address_is_accepted(template: dict[str, Any], address: str) -> None:
    assert refusals(template, {**REAL, "VaultAddr": address}) == []


def test_cloudformation_receives_the_rules(template: dict[str, Any]) -> None:
    # The SAM transform keeps the Rules section: CloudFormation, not only cfn-lint, evaluates it.
    assert translate_template(template)["Rules"] == template["Rules"]


# --- the external id: required only when another account is reached ------------------------------------------


@pytest.mark.parametrize(
    ("accounts", "external_id", "refused"),
    [
        ("", "", False),
        (ACCOUNT, "", False),
        (MEMBERS, "", True),
        ("111111111111", "", True),
        (MEMBERS, EXTERNAL_ID, False),
    ],
    ids=["single-account", "only-this-account", "members-without", "one-member-without", "members-with"],
)
def test_the_external_id_is_required_only_when_another_account_is_listed(
    template: dict[str, Any], accounts: str, external_id: str, refused: bool
) -> None:
    given = {**REAL, "DiscoveryAccountIds": accounts, "CrossAccountExternalId": external_id}

    found = refusals(template, given)

    assert bool(found) is refused, found
    assert all("CrossAccountExternalId" in reason for reason in found)


# --- the guided deploy finishes ---------------------------------------------------------------------------------


def test_no_parameter_is_no_echo(template: dict[str, Any]) -> None:
    # `sam deploy --guided` prompts a NoEcho parameter with no default and re-prompts on Enter until something is
    # typed, so an optional one (the external id of a single-account stack) could never be left empty.
    assert [name for name, spec in template["Parameters"].items() if spec.get("NoEcho")] == []


def test_every_parameter_but_the_vault_ones_has_a_default_cloudformation_accepts(template: dict[str, Any]) -> None:
    without_default = {name for name, spec in template["Parameters"].items() if "Default" not in spec}

    assert without_default == REQUIRED
    # Enter at every other prompt: the defaults together pass the parameters' constraints and the Rules.
    assert refusals(template, REAL) == []


def _samconfig_overrides() -> dict[str, str]:
    deploy = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())["default"]["deploy"]["parameters"]
    return dict(item.split("=", 1) for item in shlex.split(deploy["parameter_overrides"]))


def _prompt_rows(section: str) -> list[tuple[str, str]]:
    """(prompt, answer) of each row of the README's prompt table."""
    return re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, re.M)


def test_the_readme_answers_every_prompt_of_the_guided_deploy_in_order(template: dict[str, Any]) -> None:
    rows = _prompt_rows(readme_section("`sam deploy --guided`, prompt by prompt"))
    prompts = [prompt for prompt, _ in rows]
    overrides = _samconfig_overrides()

    # SAM CLI asks the parameters in the template's order, each with its default (samconfig.toml's, else the
    # template's) in brackets.
    parameters = [re.fullmatch(r"Parameter (\w+) \[(.*)\]", prompt) for prompt in prompts]
    asked = [(match.group(1), match.group(2)) for match in parameters if match]
    assert asked == [
        (name, overrides.get(name, str(spec.get("Default", "")))) for name, spec in template["Parameters"].items()
    ]
    # The questions around them, in SAM CLI's order (samcli/commands/deploy/guided_context.py).
    others = [prompt for prompt, match in zip(prompts, parameters, strict=True) if not match]
    expected_urls = [
        f"{name} Function Url may not have authorization defined, Is this okay? [y/N]"
        for name, body in template["Resources"].items()
        if body["Type"] == "AWS::Serverless::Function"
        and (body["Properties"].get("FunctionUrlConfig") or {}).get("AuthType") == "NONE"
    ]
    assert [prompt.split(" ", 1)[0] for prompt in expected_urls] == ["GitHubWebhookFunction"]
    assert others == [
        "Stack Name [rescind]",
        "AWS Region [us-east-1]",
        "Confirm changes before deploy [Y/n]",
        "Allow SAM CLI IAM role creation [Y/n]",
        "Disable rollback [y/N]",
        *expected_urls,
        "Save arguments to configuration file [Y/n]",
        "SAM configuration file [samconfig.toml]",
        "SAM configuration environment [default]",
        "Deploy this changeset? [y/N]",
    ]
    answers = dict(rows)
    for prompt in expected_urls:
        assert answers[prompt].startswith("**y**"), "the default, N, aborts the deploy"


def test_the_readme_never_tells_a_deploy_to_use_the_placeholder_vault() -> None:
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", README, re.S)
    deploys = [command for command in commands if "sam deploy" in command]

    assert deploys
    for command in deploys:
        assert "vault.example.com" not in command, command


# --- the webhook's reserved concurrency: off unless asked -------------------------------------------------------


def _webhook_properties(template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    given = {**REAL, **parameters}
    resolver = IntrinsicResolver(
        template, plan_local_resources(template, "rescind", parameters=given), "rescind", parameters=given
    )
    properties: dict[str, Any] = resolver.resolve(template["Resources"]["GitHubWebhookFunction"]["Properties"])
    return properties


def test_the_webhook_reserves_no_concurrency_unless_asked(template: dict[str, Any]) -> None:
    assert template["Parameters"]["WebhookReservedConcurrency"]["Default"] == 0
    assert "ReservedConcurrentExecutions" not in _webhook_properties(template)
    assert "ReservedConcurrentExecutions" not in _webhook_properties(template, WebhookReservedConcurrency="0")
    assert _webhook_properties(template, WebhookReservedConcurrency="10")["ReservedConcurrentExecutions"] == "10"


# --- the README's Deploy section: one path, with links that lead somewhere -------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_within_the_readme_leads_to_a_heading() -> None:
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    headings = {_slug(heading) for heading in re.findall(r"^#+ (.+)$", prose, re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", README))

    assert links
    assert links - headings == set()


def test_the_deploy_section_goes_from_build_to_a_test_event_in_the_ledger_in_order() -> None:
    section = readme_section("Deploy")
    steps = [
        "make build",
        "sam deploy --guided",
        "rescind vault setup --stack rescind",
        "rescind doctor --stack rescind",
        "[Many accounts](#many-accounts)",
        "rescind replay events/",
        "rescind ledger --stack rescind",
    ]

    positions = [section.find(step) for step in steps]
    assert -1 not in positions, dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions)
    for prerequisite in ("[Before you deploy](#before-you-deploy)", "[Build](#build)", "python3.12"):
        assert prerequisite in section
    # The sample it replays exists
    (sample,) = re.findall(r"rescind replay (events/\S+\.json)", section)
    assert (REPO_ROOT / sample).is_file()


def test_every_rescind_command_in_the_deploy_section_is_one_the_cli_has() -> None:
    import typer.main

    from rescind_cli.main import app

    cli = typer.main.get_command(app)
    section = readme_section("Deploy")
    commands = re.findall(r"`(rescind [^`]+)`", section) + re.findall(r"^\s*(rescind .+?)(?:\s+#.*)?$", section, re.M)
    assert len(commands) >= 5
    for command in commands:
        words = shlex.split(command.replace("<", "'<").replace(">", ">'"))[1:]
        group: Any = cli  # typer's own click: a group is what has subcommands
        while words and words[0] in getattr(group, "commands", {}):
            group = group.commands[words.pop(0)]
        assert group is not cli, f"{command}: no such command"
        options = {name for parameter in group.params for name in parameter.opts}
        given = {word for word in words if word.startswith("--")}
        assert given <= options, f"{command}: {sorted(given - options)} are not options of it"
