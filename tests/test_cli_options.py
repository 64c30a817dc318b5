"""``train`` and ``compare`` take one option per RLConfig setting, made from the dataclass itself."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

import pytest

from agents.cli import main
from agents.cli.config_options import add_config_options, config_overrides, field_docs
from agents.cli.registry import build_parser
from agents.cli.rl_commands import rl_config_from_args
from agents.rl.config import PRESETS, RLConfig


def _options(command: str) -> dict[str, argparse.Action]:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {option: action for action in sub._actions for option in action.option_strings}


@pytest.mark.parametrize(("command", "excluded"), [("train", {"algo"}), ("compare", {"algo", "seed"})])
def test_every_setting_has_an_option_with_its_docstring_as_help(command, excluded):
    options = _options(command)
    docs = field_docs(RLConfig)
    for field in fields(RLConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.name in excluded:  # its own option (--algo, --algos, --seeds) says more
            continue
        assert flag in options, flag
        assert options[flag].help.startswith(docs[field.name].replace("%", "%%")), flag


def test_a_new_setting_appears_without_a_second_list():
    @dataclass(frozen=True)
    class Settings:
        width: int = 3
        """How wide the thing is."""
        ratio: float | None = None
        """A ratio, if any."""
        loud: bool = False

    parser = argparse.ArgumentParser()
    add_config_options(parser, Settings)
    args = parser.parse_args(["--width", "5", "--loud"])
    assert config_overrides(args, Settings) == {"width": 5, "loud": True}
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["width"].startswith("How wide the thing is.") and helps["ratio"].startswith(
        "A ratio, if any."
    )


def _config(*argv: str) -> RLConfig:
    args = build_parser("train").parse_args(["train", "--out", "x", *argv])
    return rl_config_from_args(args)


def test_types_parse_from_the_annotations():
    config = _config(
        "--lr", "3e-5", "--value-hidden", "64,64", "--no-eval-greedy", "--final-eval-episodes", "400"
    )
    assert (config.lr, config.value_hidden, config.eval_greedy, config.final_eval_episodes) == (
        3e-5,
        (64, 64),
        False,
        400,
    )
    assert _config().final_eval_episodes == PRESETS["cpu"].final_eval_episodes  # not given: the preset's


def test_the_named_flags_of_before_give_the_same_settings():
    flags = _config("--kl-weighting", "critical", "--beta", "500", "--total-episodes", "64", "--seed", "3")
    sets = _config(
        "--set", "kl_weighting=critical", "--set", "beta=500", "--set", "total_episodes=64", "--set", "seed=3"
    )
    assert (
        flags
        == sets
        == PRESETS["cpu"].with_overrides(kl_weighting="critical", beta=500.0, total_episodes=64, seed=3)
    )


def test_the_option_beats_set():
    assert _config("--set", "lr=0.1", "--lr", "0.2").lr == 0.2


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--lr", "abc"], "argument --lr: invalid finite number value: 'abc'"),
        (["--kl-coef", "nan"], "argument --kl-coef: invalid finite number value: 'nan'"),
        (["--value-hidden", "a,b"], "argument --value-hidden: invalid comma-separated integers value"),
        (["--kl-in", "sideways"], "argument --kl-in: invalid choice: 'sideways'"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option(argv, named, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--out", str(tmp_path), *argv])
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert named in last


def test_compare_passes_the_options_to_every_run(tmp_path, monkeypatch):
    import importlib

    compare_module = importlib.import_module("agents.experiments.compare")

    seen = {}

    def fake_compare(settings, out, *args, **kwargs):
        seen.update(dict(settings.overrides))
        (tmp_path / "summary.md").write_text("no runs\n")
        return tmp_path / "summary.md"

    monkeypatch.setattr(compare_module, "compare", fake_compare)
    argv = [
        "compare",
        "--out",
        str(tmp_path),
        "--total-episodes",
        "64",
        "--kl-coef",
        "0.5",
        "--set",
        "lr=1e-4",
    ]
    assert main(argv) == 0
    assert seen == {"total_episodes": 64, "kl_coef": 0.5, "lr": 1e-4}


def test_help_does_not_import_torch():
    """``arith-rl --help`` builds no command's arguments, so no registry (and no torch) is imported."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom agents.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'agents.rl') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
