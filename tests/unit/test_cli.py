"""The command line's shape: every flow parameter is an option, bad values fail before a run."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops import cli
from modelops.cli.options import coerce
from modelops.errors import ConfigurationError


@pytest.mark.parametrize("command", cli.FLOW_COMMANDS, ids=lambda c: c.name)
def test_help_lists_every_parameter_of_the_flow_it_runs(
    command: cli.FlowCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = command.load()
    with pytest.raises(SystemExit) as done:
        cli.main([command.name, "--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    for name in inspect.signature(flow.fn).parameters:
        flags = command.flags.get(name, ["--" + name.replace("_", "-")])
        shown = name if name in command.positionals else flags[0]
        assert shown in usage, f"{command.name} --help does not list {name}"
    described = [line for line in usage.splitlines() if line.strip()]
    assert len(described) > len(inspect.signature(flow.fn).parameters)


def test_flow_commands_run_the_flows_prefect_yaml_deploys() -> None:
    import yaml

    ROOT = Path(__file__).resolve().parents[2]
    entrypoints = {
        d["entrypoint"].split(":")[0].replace("/", ".").removesuffix(".py")
        for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    commands = {c.flow.split(":")[0] for c in cli.FLOW_COMMANDS}
    assert entrypoints <= commands


@pytest.fixture
def unreachable_api() -> Iterator[None]:
    """A Prefect API nobody listens on: what is refused up front never talks to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        yield


@pytest.mark.usefixtures("unreachable_api")
def test_bad_values_are_refused_before_any_flow_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--test-size", "3"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --test-size: Input should be less than 1"
    assert cli.main(["train", "--thresholds", '{"rocauc": 0.7}']) == 2
    assert "Unknown metric(s) in thresholds: rocauc" in capsys.readouterr().err
    assert cli.main(["run", "--promote-to", "staging"]) == 2  # deploy=local needs production
    assert "Use promote_to=production, or deploy=false" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["deploy", "--target", "mars"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MODELOPS_LOCK_LEASE_SECONDS", "0"), ("MODELOPS_REQUIRE_STAGING", "maybe")],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    variable: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(variable, value)
    assert cli.main(["versions", "lead-scoring"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {variable}={value!r} is not a valid value: ")
    assert not (tmp_path / "home").exists()  # nothing started, nothing written


def test_key_value_options_and_json_options_parse() -> None:
    flow = next(c for c in cli.FLOW_COMMANDS if c.name == "register-pretrained").load()
    values = coerce(flow, {"tags": ["team=search", "stage=staging"], "labels": ["a", "b"]})
    assert values["tags"] == {"team": "search", "stage": "staging"}
    assert values["labels"] == ["a", "b"]
    with pytest.raises(ConfigurationError):
        coerce(flow, {"tags": ["no-equals-sign"]})


def test_docstring_args_are_read_whole() -> None:
    docs = cli.arg_docs(
        """Do it.

        Args:
            first: one line.
            second: spans
                two lines.

        Returns:
            nothing.
        """
    )
    assert docs == {"first": "one line.", "second": "spans two lines."}


def test_stored_options_are_the_flows_own() -> None:
    from modelops.cli.options import option_specs, stored_options

    stored = stored_options()
    live = {c.name: option_specs(c, c.load()) for c in cli.FLOW_COMMANDS}
    assert stored == live, (
        "modelops/cli/flow_options.json is stale: run python -m modelops.cli.write_options"
    )


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["train", "--help"], ["deploy", "--help"], ["train", "--no-such-option"]],
    ids=" ".join,
)
def test_help_and_refusals_import_nothing_heavy(argv: list[str], tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MODELOPS_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "modelops", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "MODELOPS_HOME": str(tmp_path / "home")},
        timeout=60,
    )
    assert done.returncode == (0 if "--help" in argv else 2), done.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {"prefect", "mlflow", "great_expectations", "flows", "tasks", "sklearn", "pandas"}
    assert not heavy & imported, sorted(heavy & imported)
    assert not (tmp_path / "home").exists()  # and nothing was written


@pytest.mark.parametrize("value", [None, "", "relative/home", "~/somewhere", "/abs/home"])
def test_the_command_lines_home_is_the_settings_home(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelops.home import home_dir
    from modelops.settings import get_settings

    if value is None:
        monkeypatch.delenv("MODELOPS_HOME", raising=False)
    else:
        monkeypatch.setenv("MODELOPS_HOME", value)
    assert home_dir() == get_settings().home_dir
