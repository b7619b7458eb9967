"""``deputize policy check|show|import`` and the ``policy`` key of the configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from deputize.keys.policy import Question, decide, load_policy
from deputize.server.cli import main
from deputize.server.settings import ConfigError, load_settings

from support import write_config

REPO = Path(__file__).resolve().parents[2]
STORY = REPO / "examples" / "policy" / "unified-auth.yaml"
THEAIOS = REPO / "examples" / "policy" / "theaios-agent-auth.yaml"

pytestmark = pytest.mark.usefixtures("no_deputize_environment")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, str]]:
    status, out, _ = _cli(
        capsys, "policy", "check", "--policy", str(STORY), "--user", "alice", "--json", *argv
    )
    return status, json.loads(out)


@pytest.mark.parametrize(
    ("argv", "status", "decision", "rule"),
    [
        (["--agent", "scheduling-agent", "--action", "read"], 0, "allow", "tiers.default"),
        (
            ["--agent", "scheduling-agent", "--action", "delete"],
            0,
            "supervised",
            "tiers.deletes-wait-for-a-person",
        ),
        (
            ["--agent", "scheduling-agent", "--via", "analysis-agent", "--action", "read"],
            0,
            "allow",
            "tiers.default",
        ),
        (
            ["--agent", "scheduling-agent", "--via", "analysis-agent", "--action", "delete"],
            1,
            "deny",
            "profiles.analysis-agent.allow",
        ),
        (["--agent", "analysis-agent", "--action", "read"], 0, "allow", "tiers.default"),
        (
            ["--agent", "scheduling-agent", "--via", "analysis-agent", "--action", "write"],
            1,
            "deny",
            "profiles.analysis-agent.allow",
        ),
        (
            ["--agent", "analysis-agent", "--via", "scheduling-agent", "--action", "read"],
            1,
            "deny",
            "profiles.analysis-agent.delegate_to",
        ),
    ],
)
def test_check_tells_the_story(
    capsys: pytest.CaptureFixture[str], argv: list[str], status: int, decision: str, rule: str
) -> None:
    got, answer = _check(capsys, "--role", "admin", "--resource", "docs:/q3/report.pdf", *argv)
    assert (got, answer["decision"], answer["rule"]) == (status, decision, rule)
    assert answer["policy"] == load_policy(yaml.safe_load(STORY.read_text())).hash


def test_check_forbidden_and_conditions(capsys: pytest.CaptureFixture[str]) -> None:
    status, answer = _check(
        capsys, "--role", "admin", "--agent", "scheduling-agent", "--action", "read",
        "--resource", "users:/bob",
    )  # fmt: skip
    assert (status, answer["decision"], answer["tier"]) == (1, "deny", "forbidden")
    status, answer = _check(
        capsys, "--role", "admin", "--agent", "scheduling-agent", "--action", "write",
        "--resource", "docs:/q3/a",
    )  # fmt: skip
    assert (status, answer["decision"]) == (0, "allow")
    status, answer = _check(
        capsys, "--role", "viewer", "--agent", "scheduling-agent", "--action", "delete",
        "--resource", "docs:/q3/a",
    )  # fmt: skip
    assert (status, answer["rule"]) == (1, "roles")
    status, answer = _check(
        capsys, "--role", "admin", "--agent", "scheduling-agent", "--action", "share",
        "--resource", "docs:/q3/a",
    )  # fmt: skip
    assert (status, answer["rule"]) == (1, "profiles.scheduling-agent.deny")


def test_the_guide_s_command_prints_what_the_guide_shows(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex

    monkeypatch.chdir(REPO)
    guide = (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Asking from the command line") :]
    command, rest = section.split("```sh\n", 1)[1].split("```\n", 1)
    shown = rest.split("```\n", 1)[1].split("```", 1)[0]
    command = command.replace("\\\n", " ")
    argv = shlex.split(command)
    assert argv[0] == "deputize"
    _, out, _ = _cli(capsys, *argv[1:])
    assert out == shown


def test_check_flags_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    base = ("policy", "check", "--policy", str(STORY), "--user", "a", "--action", "read")
    status, _, err = _cli(capsys, *base, "--resource", "documents:/a", "--via", "x")
    assert status == 2 and err.startswith("deputize: --via:")
    status, _, err = _cli(capsys, *base, "--resource", "documents:/a", "--at", "tomorrow")
    assert status == 2 and "--at:" in err
    status, _, err = _cli(capsys, *base, "--resource", "documents:/a", "--details", "[1]")
    assert status == 2 and "--details:" in err


def test_show_prints_tables(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _cli(capsys, "policy", "show", "--policy", str(STORY))
    assert status == 0
    for text in ("roles", "agent profiles", "deletes-wait-for-a-person", "writes-stay-near"):
        assert text in out
    status, out, _ = _cli(capsys, "policy", "show", "--policy", str(STORY), "--json")
    assert json.loads(out)["profiles"]["analysis-agent"]["receive_from"] == ["scheduling-agent"]


def test_the_configuration_names_a_policy_file_or_holds_one(tmp_path: Path) -> None:
    by_file = write_config(tmp_path / "a.yaml", "sqlite:///x.db", policy=str(STORY))
    source = load_settings(by_file).policy
    assert source is not None and source.file == STORY.resolve()
    inline = write_config(
        tmp_path / "b.yaml", "sqlite:///x.db", policy=yaml.safe_load(STORY.read_text())
    )
    loaded = load_settings(inline).policy
    assert loaded is not None and loaded.file is None and loaded.policy.hash == source.policy.hash


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"roles": {"a": {"extends": ["b"]}, "b": {"extends": ["a"]}}}, "policy.roles.a.extends"),
        (
            {"conditions": [{"name": "c", "permissions": ["x:y"], "when": "tme > 1"}]},
            "policy.conditions[0].when: condition 'c' names unknown variable 'tme'",
        ),
        ("missing.yaml", "cannot read the policy file"),
        (7, "policy: expected a mapping"),
    ],
)
def test_a_broken_policy_stops_the_server_naming_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: object, message: str
) -> None:
    config = write_config(tmp_path / "c.yaml", "sqlite:///x.db", policy=policy)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert message in str(caught.value)
    status, _, err = _cli(capsys, "check-config", str(config))
    assert status == 2 and message in err


def test_import_translates_theaios_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "policy.yaml"
    status, _, _ = _cli(
        capsys, "policy", "import", str(THEAIOS), "--namespace", "documents", "-o", str(out)
    )
    assert status == 0
    policy = load_policy(yaml.safe_load(out.read_text()))

    def ask(action: str, *chain: str) -> str:
        question = Question("alice", ["editor"], action, "documents:/a", chain=chain)
        return decide(policy, question).outcome

    assert ask("write", "assistant") == "allow"
    assert ask("delete", "assistant") == "deny"  # editor has no delete in the theaios file
    assert ask("purge", "assistant") == "deny"
    assert ask("read", "assistant", "summarizer") == "allow"
    assert ask("write", "assistant", "summarizer") == "deny"
    assert ask("read", "summarizer", "assistant") == "deny"
    assert policy.tiers[0].tier == "supervised"
    status, _, err = _cli(
        capsys, "policy", "import", str(THEAIOS), "--namespace", "documents", "-o", str(out)
    )
    assert status == 2 and "--output:" in err


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        ("profiles:\n  a:\n    allow: [read]\n    scopes: ['project:*']\n", 4, "session scopes"),
        ("approval_policies:\n  - condition: 'user.role != \"x\"'\n", 2, "only conditions naming"),
        (
            "profiles:\n  a: {allow: [read]}\n"
            "a2a:\n  policies:\n    - {from_agent: '*', to_agent: a}\n",
            5,
            "no wildcards",
        ),
        ("a2a:\n  default: allow\n", 2, "no allow-all"),
        ("delegation:\n  rules:\n    - {name: x}\n", 2, "delegation rules"),
        ("roles:\n  r:\n    actions: ['read:*']\n", 3, "no exact translation"),
        ("rules: []\n", 1, "unknown key"),
    ],
)
def test_import_refuses_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, line: int, message: str
) -> None:
    source = tmp_path / "theaios.yaml"
    source.write_text(change, encoding="utf-8")
    status, out, err = _cli(capsys, "policy", "import", str(source), "--namespace", "documents")
    assert status == 1 and out == ""
    assert f"{source}:{line}:" in err and message in err, err


def test_the_guide_shows_the_example_policy() -> None:
    guide = (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
    block = guide.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == yaml.safe_load(STORY.read_text(encoding="utf-8"))
