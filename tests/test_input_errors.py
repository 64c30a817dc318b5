"""Each bad input of a new user ends in one line naming it (rc 2), never a traceback or a silent result."""

from __future__ import annotations

import json
import shutil

import pytest

from agents.cli import main
from agents.evaluation.heldout import heldout_eval_set
from agents.lm.model import CheckpointError, load_reference
from arith_gym.tokenizer import VOCAB


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse's own errors
        code = exited.code
    err = capsys.readouterr().err.strip()
    return code, err.splitlines()[-1] if err else ""


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["compare", "--seeds", "a,b"], "--seeds takes comma-separated integers, got 'a' in 'a,b'"),
        (["compare", "--seeds", "0,-1"], "--seeds takes integers >= 0, got '-1'"),
        (["compare", "--betas", "x"], "--betas takes comma-separated numbers, got 'x' in 'x'"),
        (["compare", "--workers", "0"], "argument --workers: invalid integer >= 1 value: '0'"),
        (["train", "--set", "seed=-1"], "seed must be a non-negative integer, got -1"),
        (
            ["eval", "agents/checkpoints/gpt2-tiny-n3", "--episodes", "0"],
            "argument --episodes: invalid integer >= 1",
        ),
    ],
)
def test_a_bad_option_is_one_line_naming_it(argv, named, tmp_path, capsys):
    argv = [*argv[:1], "--out", str(tmp_path / "out"), *argv[1:]] if argv[0] in ("compare", "train") else argv
    code, last = _run(argv, capsys)
    assert code == 2
    assert named in last
    assert not (tmp_path / "out" / "runs").exists()


def test_a_task_file_with_a_string_for_a_number_names_the_field(micro_reference_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(micro_reference_dir, model)
    (model / "arith_gym.json").write_text(json.dumps({"comfort_digits": "3", "temperature": 1.0}))
    code, last = _run(["eval-ref", str(model), "--problems", "2"], capsys)
    assert code == 2 and "comfort_digits must be an integer, got '3'" in last


def test_a_tokenizer_with_two_ids_swapped_is_refused(micro_reference_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(micro_reference_dir, model)
    data = json.loads((model / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    vocab["0"], vocab["1"] = vocab["1"], vocab["0"]
    (model / "tokenizer.json").write_text(json.dumps(data))
    zero, one = VOCAB.index("0"), VOCAB.index("1")
    with pytest.raises(CheckpointError, match=f"maps '0' to {one}, arith_gym.tokenizer to {zero}"):
        load_reference(model)


def test_a_plugin_that_exits_is_an_error_not_a_silent_success(tmp_path, capsys):
    plugin = tmp_path / "quits.py"
    plugin.write_text("import sys\nsys.exit(0)\n")
    code, last = _run(["train", "--out", str(tmp_path / "run"), "--plugin", str(plugin)], capsys)
    assert code == 2 and "the file called sys.exit(0) while loading" in last


def test_plot_of_a_split_the_runs_never_evaluated_is_refused(micro_reference_dir, tmp_path, capsys):
    budget = ["--set", "total_episodes=4", "--set", "episodes_per_update=4", "--set", "eval_episodes=2"]
    budget += ["--set", "final_eval_episodes=2", "--set", "final_comfort_episodes=2", "--no-eval-greedy"]
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--ref", str(micro_reference_dir), *budget]) == 0
    capsys.readouterr()
    code, last = _run(["plot", str(run), "--out", str(tmp_path / "p.png"), "--split", "plus7"], capsys)
    assert code == 2 and "has no 'plus7' evaluation" in last
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("command", ["passk", "eval"])
def test_passk_and_eval_refuse_an_eval_set_of_another_n(command, micro_reference_dir, tmp_path, capsys):
    wrong = heldout_eval_set(2, "plus1", 4, 4).save(tmp_path / "eval_set.json")  # N=2; the model's is 1
    argv = [command, str(micro_reference_dir), "--eval-set", str(wrong)]
    if command == "passk":
        argv += ["--out", str(tmp_path / "pk"), "--samples", "2", "--problems", "2"]
    code, last = _run(argv, capsys)
    assert (
        code == 2 and "holds Addition problems for N=2, but" in last and "pre-trained on Addition N=1" in last
    )


def test_a_plugin_that_exits_during_the_run_is_an_error(micro_reference_dir, tmp_path, capsys):
    plugin = tmp_path / "exits_later.py"
    plugin.write_text(
        "import sys\nfrom agents.rl import register_kl_weighting\n\n"
        "@register_kl_weighting('exits_later')\ndef exits_later(batch, config):\n    sys.exit(0)\n"
    )
    argv = [
        "train",
        "--out",
        str(tmp_path / "run"),
        "--ref",
        str(micro_reference_dir),
        "--plugin",
        str(plugin),
    ]
    argv += ["--method", "exits_later", "--set", "episodes_per_update=4", "--set", "eval_episodes=2"]
    code, last = _run(argv, capsys)
    assert code == 2 and "sys.exit(0) called during the run" in last
