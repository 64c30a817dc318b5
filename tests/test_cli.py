"""The ``arith-rl`` command line (agents/cli/), end to end on micro models."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil

import pytest
import torch

from agents.cli import main
from agents.evaluation.heldout import heldout_eval_set
from agents.lm.model import load_reference
from agents.rundir import read_metrics

TRAIN_BUDGET = [
    "--total-episodes", "4",
    "--episodes-per-update", "4",
    "--set", "minibatches=1",
    "--set", "eval_greedy=true",
    "--set", "update_epochs=1",
    "--set", "eval_episodes=4",
    "--set", "final_eval_episodes=4",
    "--set", "final_comfort_episodes=4",
    "--set", "value_hidden=[8]",
    "--lr", "1e-4",
]  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """``arith-rl pretrain`` of a micro model for 1-digit addition (4 steps)."""
    out = tmp_path_factory.mktemp("cli") / "ref"
    argv = [
        "pretrain", "--digits", "1", "--size", "micro", "--out", str(out),
        "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--eval-problems", "4",
        "--checkpoint-every", "2", "--temperature", "1.5",
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def test_pretrain_writes_a_reference_model(pretrained):
    model, task = load_reference(pretrained)
    assert (task.comfort_digits, task.size, task.temperature) == (1, "micro", 1.5)
    assert model.config.n_layer == 2
    metrics = (pretrained / "metrics.csv").read_text().splitlines()
    assert metrics[0] == "step,loss,lr,comfort_greedy,plus1_sampled"
    assert [line.split(",")[0] for line in metrics[1:]] == ["2", "4"]
    assert json.loads((pretrained / "pretrain_config.json").read_text())["steps"] == 4


def test_pretrain_refuses_to_overwrite_or_to_resume_with_other_settings(pretrained, capsys):
    argv = ["pretrain", "--digits", "1", "--size", "micro", "--out", str(pretrained), "--steps", "4"]
    assert main(argv) == 2
    assert "already holds a run: pass --resume" in capsys.readouterr().err
    # --resume with other settings than the checkpoint's is refused with a clear message.
    assert main([*argv, "--resume"]) == 2
    assert "different settings" in capsys.readouterr().err


def test_eval_ref_prints_the_length_table(pretrained, capsys):
    assert main(["eval-ref", str(pretrained), "--problems", "4", "--offsets", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "N=1, greedy, 4 problems per cell" in out
    assert "N=1, sampled at T=1.5, 4 problems per cell" in out
    assert "| identical |" in out and "| varying |" in out
    assert "1 digits (N)" in out and "2 digits" in out and "3 digits" not in out


@pytest.fixture(scope="module")
def trained(pretrained, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli-run") / "run"
    argv = ["train", "--out", str(run), "--ref", str(pretrained), "--algo", "a2c", *TRAIN_BUDGET]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return run, stdout.getvalue()


def test_train_runs_and_prints_accuracy(trained):
    trained, stdout = trained
    assert " comfort: sampled" in stdout and "   plus1: sampled" in stdout and "greedy" in stdout
    config = json.loads((trained / "config.json").read_text())
    assert config["algo"] == "a2c" and config["lr"] == 1e-4 and config["total_episodes"] == 4
    assert config["value_hidden"] == [8] and config["temperature"] == 1.5  # from the reference
    assert [row["update"] for row in read_metrics(trained)] == [0, 1]
    assert (trained / "checkpoint" / "trainer.pt").is_file()


def test_train_refuses_an_existing_run(trained, pretrained, capsys):
    trained, _ = trained
    argv = ["train", "--out", str(trained), "--ref", str(pretrained), "--algo", "a2c", *TRAIN_BUDGET]
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_eval_of_a_run(trained, capsys):
    trained, _ = trained
    assert main(["eval", str(trained), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint: N=1, T=1.5, held-out problems: 4 comfort, 4 plus1" in out
    assert "comfort: sampled" in out and "plus1: sampled" in out


def test_eval_on_a_comparisons_eval_set_scores_all_its_problems(trained, tmp_path, capsys):
    # what a comparison's curves start from: the reference on the same problems as the final evaluation
    trained, _ = trained
    eval_set = heldout_eval_set(1, "plus1", 5, 3).save(tmp_path / "eval_set.json")
    assert main(["eval", str(trained), "--eval-set", str(eval_set)]) == 0
    assert "held-out problems: 3 comfort, 5 plus1" in capsys.readouterr().out
    assert main(["eval", str(trained), "--eval-set", str(eval_set), "--episodes", "2"]) == 0
    assert "held-out problems: 2 comfort, 2 plus1" in capsys.readouterr().out


def test_eval_of_a_model_directory(pretrained, capsys):
    # A model directory's config.json is the GPT-2 config, not an RL config.
    assert main(["eval", str(pretrained), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert f"{pretrained}: N=1, T=1.5" in out and "plus1: sampled" in out


def test_missing_model_dir_is_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    assert main(["eval-ref", str(missing), "--problems", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arith-rl eval-ref: error:") and "does not exist" in err and str(missing) in err
    assert main(["eval", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_set_name_is_exit_code_2(pretrained, tmp_path, capsys):
    argv = ["train", "--out", str(tmp_path / "run"), "--ref", str(pretrained), "--set", "learning_rate=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "arith-rl train: error: unknown RL settings: ['learning_rate']" in err
    assert not (tmp_path / "run").exists()


def test_bad_set_syntax_and_preset_are_exit_code_2(pretrained, tmp_path, capsys):
    base = ["train", "--out", str(tmp_path / "run"), "--ref", str(pretrained)]
    assert main([*base, "--set", "lr"]) == 2
    assert "--set takes KEY=VALUE" in capsys.readouterr().err
    # The preset's choices come from agents.rl.PRESETS: argparse names the bad one.
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--preset", "fast"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fast' (choose from" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train"])  # --out is required
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err


class _RunsCode:
    """Unpickling this runs ``touch MARKER``: what a malicious shared ``trainer.pt`` could hold."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(run, marker):
    torch.save({"config": {}, "payload": _RunsCode(marker)}, run / "checkpoint" / "trainer.pt")


def test_train_resume_refuses_a_trainer_state_that_would_run_code(trained, pretrained, tmp_path, capsys):
    run, _ = trained
    copy = tmp_path / "shared-run"
    shutil.copytree(run, copy)
    marker = tmp_path / "MARKER"
    _plant(copy, marker)
    argv = ["train", "--out", str(copy), "--ref", str(pretrained), "--algo", "a2c", *TRAIN_BUDGET, "--resume"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.startswith("arith-rl train: error:") and "refused" in err and len(err.splitlines()) == 1


def test_pretrain_resume_refuses_a_trainer_state_that_would_run_code(pretrained, tmp_path, capsys):
    copy = tmp_path / "shared-ref"
    shutil.copytree(pretrained, copy)
    marker = tmp_path / "MARKER"
    _plant(copy, marker)
    argv = ["pretrain", "--digits", "1", "--size", "micro", "--out", str(copy), "--steps", "4", "--resume"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.startswith("arith-rl pretrain: error:") and "refused" in err and len(err.splitlines()) == 1


def test_a_truncated_trainer_state_is_a_one_line_error(trained, pretrained, tmp_path, capsys):
    run, _ = trained
    copy = tmp_path / "truncated"
    shutil.copytree(run, copy)
    state = copy / "checkpoint" / "trainer.pt"
    state.write_bytes(state.read_bytes()[:100])
    argv = ["train", "--out", str(copy), "--ref", str(pretrained), "--algo", "a2c", *TRAIN_BUDGET, "--resume"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and len(err.splitlines()) == 1


def test_train_refuses_a_directory_that_is_not_a_run(pretrained, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["train", "--out", str(tmp_path), "--ref", str(pretrained), *TRAIN_BUDGET]
    assert main(argv) == 2
    assert "holds no run of this package" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_bench_rl_prints_training_episodes_per_second(capsys):
    assert main(["bench", "rl", "--batch", "8", "--updates", "1", "--algo", "grpo"]) == 0
    out = capsys.readouterr().out
    assert "cpu preset, grpo, shipped model: 8 episodes in" in out and "training episodes/s" in out


def test_bench_without_a_kind_runs_every_benchmark(capsys):
    assert main(["bench", "--batch", "2", "--updates", "1", "--max-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("==")] == [
        "== rollout",
        "== generate",
        "== rl",
        "== env",
    ]
    assert "full RL rollout (policy, env, reference scores):" in out
    for ratio in ("speedup cached / naive:", "speedup rollout / generate:", "ratio vector/single:"):
        assert ratio in out
    assert "batch 2, N=7 plus1, 4 tokens/episode" in out


def test_train_never_writes_into_a_model_directory(micro_reference_dir, tmp_path, capsys):
    model_dir = tmp_path / "model"  # holds a config.json too: its model's
    shutil.copytree(micro_reference_dir, model_dir)
    (model_dir / "metrics.csv").write_text("step,loss\n1,2.0\n")
    argv = ["train", "--out", str(model_dir), "--ref", str(micro_reference_dir), *TRAIN_BUDGET]
    assert main(argv) == 2
    assert "holds no run of this package" in capsys.readouterr().err
    assert (model_dir / "metrics.csv").read_text() == "step,loss\n1,2.0\n"
