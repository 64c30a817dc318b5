"""Settings checked by type and range, with one-line errors naming the field (agents/settings.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from agents.cli import main
from agents.lm.model import CheckpointError, load_reference
from agents.lm.pretrain import PretrainConfig
from agents.rl.config import PRESETS, RLConfig


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    return err


@pytest.mark.parametrize(
    ("pair", "named"),
    [
        ("lr=abc", "lr must be a finite number, got 'abc'"),
        ('total_episodes="8"', "total_episodes must be an integer, got '8'"),
        ("value_hidden=5", "value_hidden must be a list of integers, got 5"),
        ("seed=1.5", "seed must be an integer, got 1.5"),
        ("eval_greedy=maybe", "eval_greedy must be true or false, got 'maybe'"),
        ("beta=1e39", "beta must be at most 1e+06"),
        ("value_hidden=[0]", "value_hidden must be a list of positive layer widths"),
    ],
)
def test_a_bad_setting_is_a_one_line_error_naming_it(pair, named, tmp_path, capsys):
    # The reference does not exist: the settings are checked before any model is loaded.
    argv = ["train", "--out", str(tmp_path / "run"), "--ref", str(tmp_path / "none"), "--set", pair]
    assert main(argv) == 2
    assert named in _error(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[1, 2]", "expected a JSON object of settings, got list"),
        ('{"preset": "nope"}', "unknown preset 'nope'"),
        ("lr: 1", "is not valid JSON"),
        ('{"lr": "fast"}', "lr must be a finite number"),
        ('{"learning_rate": 1}', "unknown settings ['learning_rate']"),
    ],
)
def test_a_bad_config_file_is_a_one_line_error_naming_the_file(text, named, tmp_path, capsys):
    config = tmp_path / "settings.json"
    config.write_text(text)
    argv = ["train", "--out", str(tmp_path / "run"), "--ref", str(tmp_path / "none"), "--config", str(config)]
    assert main(argv) == 2
    err = _error(capsys)
    assert named in err and str(config) in err


def test_json_values_map_onto_the_annotated_types():
    config = PRESETS["cpu"].with_overrides(lr=1, value_hidden=[8, 8], clip_coef_high=None)
    assert isinstance(config.lr, float) and config.value_hidden == (8, 8)
    assert RLConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="steps must be an integer, got True"):
        PretrainConfig(steps=True)


def test_eval_of_a_run_with_an_unknown_setting(micro_reference_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(micro_reference_dir, run / "checkpoint")
    (run / "config.json").write_text(json.dumps({**json.loads(RLConfig().to_json()), "colour": "blue"}))
    assert main(["eval", str(run), "--episodes", "2"]) == 2
    assert "unknown settings ['colour']" in _error(capsys)


def test_an_out_that_cannot_be_a_directory(micro_reference_dir, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    argv = ["train", "--out", str(afile / "sub"), "--ref", str(micro_reference_dir), "--total-episodes", "1"]
    assert main(argv) == 2
    assert "Not a directory" in _error(capsys)


def test_non_finite_weights_are_named_at_load(micro_reference_dir, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(micro_reference_dir, damaged)
    weights = load_file(damaged / "model.safetensors")
    name = next(iter(weights))
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="model.safetensors is damaged: .* holds non-finite values"):
        load_reference(damaged)


def test_an_unwritable_out_is_a_one_line_error(micro_reference_dir, capsys):
    # /proc takes no new directories, not even from root (which ignores file permissions).
    argv = [
        "train",
        "--out",
        "/proc/arith-gym-run",
        "--ref",
        str(micro_reference_dir),
        "--total-episodes",
        "1",
    ]
    assert main(argv) == 2
    assert "cannot create the run directory /proc/arith-gym-run" in _error(capsys)
