"""A run is reused only when it is the same run, written by one process, finished and intact.

Each test is one of the ways a result used to be wrong (a run reported under another reference
or other settings, two writers, a damaged ``metrics.csv`` summarised), now a one-line refusal or
a correct retrain.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agents.cli import main
from agents.experiments.compare import compare
from agents.experiments.jobs import CompareSettings
from agents.lm.model import TaskInfo, build_model, save_reference
from agents.run_identity import RunInUse, read_fingerprint, reference_hash
from agents.rundir import read_metrics, read_rows, write_rows

TINY = (
    ("episodes_per_update", 4),
    ("total_episodes", 8),
    ("eval_every", 1),
    ("eval_episodes", 2),
    ("final_eval_episodes", 3),
    ("final_comfort_episodes", 3),
    ("eval_greedy", False),
    ("value_hidden", (8,)),
    ("minibatches", 1),
)
RUN = Path("runs") / "ppo-uniform-s0"
HOLD_LOCK = """
import sys, time
from agents.run_identity import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def other_reference(tmp_path_factory):
    """A second micro reference, same N and vocabulary, other weights."""
    out = tmp_path_factory.mktemp("other-ref")
    return save_reference(build_model("micro", seed=7).eval(), out, TaskInfo(comfort_digits=1, size="micro"))


def _settings(reference, algos=("ppo",), overrides=TINY) -> CompareSettings:
    return CompareSettings(
        methods=("uniform",), seeds=(0,), algos=algos, overrides=overrides, reference=str(reference)
    )


def _compare(settings, out, **kwargs):
    return compare(settings, out, workers=1, progress=False, **kwargs)


def test_compare_on_another_reference_refuses_its_runs_then_retrains_them(
    micro_reference_dir, other_reference, tmp_path
):
    _compare(_settings(micro_reference_dir), tmp_path)
    first = (tmp_path / "evaluations.csv").read_text()
    refusal = r"1 of 1 runs .* cannot be reused \(runs/ppo-uniform-s0: trained with other settings: "
    refusal += r"reference weights [0-9a-f]+ -> [0-9a-f]+\): pass --retrain"
    with pytest.raises(ValueError, match=refusal):
        _compare(_settings(other_reference), tmp_path)
    assert (tmp_path / "evaluations.csv").read_text() == first  # nothing reported under the new reference
    _compare(_settings(other_reference), tmp_path, retrain=True)
    assert (tmp_path / RUN / "reference.txt").read_text().strip() == str(Path(other_reference).resolve())
    assert read_fingerprint(tmp_path / RUN)["reference_sha256"] == reference_hash(other_reference)


def test_train_resume_with_another_reference_is_refused_and_rewrites_nothing(
    micro_reference_dir, other_reference, tmp_path, capsys
):
    budget = ["--set", "total_episodes=4", "--set", "episodes_per_update=4", "--set", "eval_episodes=2"]
    budget += [
        "--set",
        "final_eval_episodes=2",
        "--set",
        "final_comfort_episodes=2",
        "--set",
        "eval_greedy=false",
    ]
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--ref", str(micro_reference_dir), *budget]) == 0
    files = {name: (out / name).read_text() for name in ("reference.txt", "eval_set.json", "config.json")}
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--ref", str(other_reference), "--resume", *budget]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was trained with other settings: reference weights" in err
    assert {name: (out / name).read_text() for name in files} == files


def test_sb3_runs_are_reused_only_with_the_same_settings(micro_reference_dir, tmp_path):
    sb3 = TINY + (("episodes_per_update", 4), ("eval_every", 1))
    _compare(_settings(micro_reference_dir, ("sb3-ppo",), sb3), tmp_path)
    changed = _settings(micro_reference_dir, ("sb3-ppo",), sb3 + (("lr", 0.5), ("kl_coef", 0.0)))
    with pytest.raises(ValueError, match=r"settings\.lr 1e-05 -> 0\.5, settings\.kl_coef 1\.0 -> 0\.0"):
        _compare(changed, tmp_path)


def test_a_second_process_on_the_same_out_stops_with_one_line(micro_reference_dir, tmp_path, capsys):
    holder = subprocess.Popen(  # another comparison, writing tmp_path
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUse, match=f"is being written by another process \\(pid {holder.pid}\\)"):
            _compare(_settings(micro_reference_dir), tmp_path)
        code = main(["compare", "--out", str(tmp_path), "--ref", str(micro_reference_dir), "--seeds", "0"])
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is being written by another process" in err
    assert not (tmp_path / "runs").exists()  # nothing was trained or written


def test_a_damaged_metrics_file_is_never_summarised(micro_reference_dir, tmp_path):
    _compare(_settings(micro_reference_dir), tmp_path)
    metrics = tmp_path / RUN / "metrics.csv"
    rows = read_rows(metrics)
    write_rows(metrics, rows[:-1])  # the final evaluation's row lost
    with pytest.raises(ValueError, match=r"runs/ppo-uniform-s0: damaged: .*pass --retrain"):
        _compare(_settings(micro_reference_dir), tmp_path)
    for content in ("", rows and ",".join(rows[0]) + "\n"):  # empty, and header only
        metrics.write_text(content)
        with pytest.raises(ValueError, match="damaged"):
            _compare(_settings(micro_reference_dir), tmp_path)
    _compare(_settings(micro_reference_dir), tmp_path, retrain=True)
    assert (
        read_metrics(tmp_path / RUN)[-1]["episodes"] == 8
        and "plus1_problems" in read_metrics(tmp_path / RUN)[-1]
    )


def test_a_run_copied_elsewhere_with_its_reference_is_still_the_same_run(micro_reference_dir, tmp_path):
    _compare(_settings(micro_reference_dir), tmp_path / "a")
    copied = tmp_path / "ref-copy"
    shutil.copytree(micro_reference_dir, copied)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / ".lock").unlink(missing_ok=True)
    _compare(_settings(copied), tmp_path / "b")  # same weights: reused, nothing retrained
    assert (tmp_path / "b" / RUN / "metrics.csv").read_text() == (
        tmp_path / "a" / RUN / "metrics.csv"
    ).read_text()
