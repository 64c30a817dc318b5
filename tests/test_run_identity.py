"""Run identity: fingerprints refuse another run's directory, one writer per run, and a run is
finished only when its checkpoint, last metrics row and final evaluation agree."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import save_file

from agents.run_identity import (
    FINGERPRINT_FILE,
    PROGRESS_FILE,
    Progress,
    RunInUse,
    RunLock,
    RunMismatch,
    RunStatus,
    check_fingerprint,
    eval_set_hash,
    fingerprint,
    fingerprint_differences,
    package_version,
    read_fingerprint,
    read_progress,
    reference_hash,
    run_status,
    write_fingerprint,
    write_progress,
)
from agents.rundir import CHECKPOINT, LOCK_FILE, METRICS, open_run, read_metrics, write_rows

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "agents" / "checkpoints"
SETTINGS = {
    "algo": "ppo",
    "lr": 1e-4,
    "kl_coef": 5.0,
    "value_hidden": (128, 128),
    "seed": 0,
    "beta_share": None,
}
EVAL_SET = {
    "comfort_digits": 1,
    "seed": 0,
    "problems": {"comfort": [(1, 2), (3, 4)], "plus1": [(12, 3), (45, 67)]},
}


def tiny_reference(directory: Path, value: float = 0.0) -> Path:
    """A model directory with real (tiny) safetensors weights and the two described files."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file({"wte": np.full((3, 2), value, dtype=np.float32)}, str(directory / "model.safetensors"))
    (directory / "config.json").write_text('{"n_layer": 2}\n')
    (directory / "arith_gym.json").write_text('{"comfort_digits": 1}\n')
    (directory / "tokenizer.json").write_text("{}\n")
    return directory


def make_fingerprint(reference: Path, **changes) -> dict:
    settings = {**SETTINGS, **changes.pop("settings", {})}
    arguments = dict(algo="ppo", method="critical", backend="agents", eval_set=EVAL_SET, version="0.2.0")
    return fingerprint(settings, reference_dir=reference, **{**arguments, **changes})


# --------------------------------------------------------------------------- fingerprints


def test_a_fingerprint_survives_its_file(tmp_path):
    fp = make_fingerprint(tiny_reference(tmp_path / "ref"))
    write_fingerprint(tmp_path / "run", fp)
    assert read_fingerprint(tmp_path / "run") == fp  # tuples stored as lists already
    assert fingerprint_differences(read_fingerprint(tmp_path / "run"), fp) == []
    check_fingerprint(tmp_path / "run", fp)
    assert not (tmp_path / "run" / (FINGERPRINT_FILE + ".tmp")).exists()
    assert read_fingerprint(tmp_path / "elsewhere") is None


def test_default_version_is_the_installed_package():
    assert package_version() == importlib.metadata.version("arith-gym")
    fp = fingerprint(
        {}, algo="ppo", method=None, backend="agents", reference_dir=SHIPPED / "gpt2-tiny-n2", eval_set={}
    )
    assert fp["version"] == package_version()


def test_changed_settings_are_named_in_one_line(tmp_path):
    """A finished run reused with --set lr=0.5 --set kl_coef=0 is refused, naming both settings."""
    reference, sb3 = tiny_reference(tmp_path / "ref"), {"algo": "sb3-ppo", "backend": "sb3"}
    write_fingerprint(tmp_path / "run", make_fingerprint(reference, **sb3))
    wanted = make_fingerprint(reference, settings={"lr": 0.5, "kl_coef": 0}, **sb3)
    assert fingerprint_differences(read_fingerprint(tmp_path / "run"), wanted) == [
        "settings.lr 0.0001 -> 0.5",
        "settings.kl_coef 5.0 -> 0",
    ]
    with pytest.raises(RunMismatch) as caught:
        check_fingerprint(tmp_path / "run", wanted)
    assert str(caught.value) == (
        f"{tmp_path / 'run'} was trained with other settings: settings.lr 0.0001 -> 0.5, "
        "settings.kl_coef 5.0 -> 0; use another --out, or retrain it (compare --retrain)"
    )
    assert isinstance(caught.value, ValueError)


def test_numbers_compare_by_value_but_bools_are_not_numbers(tmp_path):
    reference = tiny_reference(tmp_path / "ref")
    saved = make_fingerprint(reference, settings={"kl_coef": 5.0, "flag": 1})
    assert (
        fingerprint_differences(saved, make_fingerprint(reference, settings={"kl_coef": 5, "flag": 1})) == []
    )
    changed = make_fingerprint(reference, settings={"kl_coef": 5, "flag": True})
    assert fingerprint_differences(saved, changed) == ["settings.flag 1 -> true"]
    nan = make_fingerprint(reference, settings={"lr": float("nan")})
    assert fingerprint_differences(nan, make_fingerprint(reference, settings={"lr": float("nan")})) == []
    line = make_fingerprint(reference, settings={"split": "plus1\nplus2"})
    assert fingerprint_differences(saved, line) == [
        'settings.split (absent) -> "plus1\\nplus2"',  # quoted: the message stays one line
        "settings.flag 1 -> (absent)",
    ]


def test_added_or_removed_settings_and_other_keys_are_named(tmp_path):
    reference = tiny_reference(tmp_path / "ref")
    saved = make_fingerprint(reference)
    wanted = make_fingerprint(reference, settings={"new_knob": 3}, algo="grpo", method=None, backend="trl")
    del wanted["settings"]["seed"]
    assert fingerprint_differences(saved, wanted) == [
        "algorithm ppo -> grpo",
        "method critical -> null",
        "backend agents -> trl",
        "settings.new_knob (absent) -> 3",
        "settings.seed 0 -> (absent)",
    ]
    assert fingerprint_differences(saved, wanted, ignore=("algo", "method", "backend", "settings.seed")) == [
        "settings.new_knob (absent) -> 3"
    ]


def test_package_version_and_format_are_named(tmp_path):
    reference = tiny_reference(tmp_path / "ref")
    saved, wanted = make_fingerprint(reference), make_fingerprint(reference, version="0.3.0")
    assert fingerprint_differences(saved, wanted) == ["package version 0.2.0 -> 0.3.0"]
    assert fingerprint_differences({**saved, "format": 0}, saved) == ["fingerprint format 0 -> 1"]


def test_another_reference_is_named_and_a_copy_is_the_same(tmp_path):
    first, second = tiny_reference(tmp_path / "a", 0.0), tiny_reference(tmp_path / "b", 1.0)
    shutil.copytree(first, tmp_path / "copy")
    assert reference_hash(tmp_path / "copy") == reference_hash(first) != reference_hash(second)
    saved = make_fingerprint(first)
    assert fingerprint_differences(saved, make_fingerprint(tmp_path / "copy")) == []
    (difference,) = fingerprint_differences(saved, make_fingerprint(second))
    assert difference == f"reference weights {reference_hash(first)[:8]} -> {reference_hash(second)[:8]}"


def test_another_model_under_the_same_path_is_another_reference(tmp_path):
    reference = tiny_reference(tmp_path / "ref", 0.0)
    before = reference_hash(reference)
    tiny_reference(reference, 2.0)  # retrained in place
    assert reference_hash(reference) != before


def test_the_reference_hash_reads_weights_config_and_task_only(tmp_path):
    reference = tiny_reference(tmp_path / "ref")
    before = reference_hash(reference)
    (reference / "tokenizer.json").write_text('{"changed": true}\n')
    (reference / "README.md").write_text("notes\n")
    assert reference_hash(reference) == before
    for name in ("config.json", "arith_gym.json"):
        (reference / name).write_text('{"other": 1}\n')
        assert reference_hash(reference) != before
        before = reference_hash(reference)
    save_file({"extra": np.zeros(1, dtype=np.float32)}, str(reference / "adapter.safetensors"))
    assert reference_hash(reference) != before


def test_the_shipped_references_differ_and_the_default_is_refused_for_another(tmp_path):
    """`compare --out c` then `--ref gpt2-tiny-n2` into the same c: the runs are refused, not reused."""
    n2, n3 = SHIPPED / "gpt2-tiny-n2", SHIPPED / "gpt2-tiny-n3"
    write_fingerprint(tmp_path / "c" / "run", make_fingerprint(n3))
    (tmp_path / "c" / "run" / METRICS).write_text("update,episodes\n0,0\n")
    with pytest.raises(
        RunMismatch, match=r"was trained with other settings: reference weights \w{8} -> \w{8};"
    ):
        check_fingerprint(tmp_path / "c" / "run", make_fingerprint(n2))


def test_a_reference_without_weights_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="reference model directory .*missing does not exist"):
        reference_hash(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no \*\.safetensors weights"):
        reference_hash(tmp_path / "empty")


def test_an_evaluation_set_hashes_the_same_in_every_form(tmp_path):
    text = json.dumps(
        {
            "problems": {"plus1": [[12, 3], [45, 67]], "comfort": [[1, 2], [3, 4]]},
            "seed": 0,
            "comfort_digits": 1,
        },
        indent=1,
    )
    assert eval_set_hash(EVAL_SET) == eval_set_hash(text) == eval_set_hash(text.encode())
    reordered = {**EVAL_SET, "problems": {"comfort": [(3, 4), (1, 2)], "plus1": [(12, 3), (45, 67)]}}
    assert eval_set_hash(reordered) != eval_set_hash(EVAL_SET)  # a prefix is evaluated: order counts
    with pytest.raises(ValueError, match="the evaluation set is not JSON"):
        eval_set_hash(b"\x00not json")


def test_another_evaluation_set_is_named(tmp_path):
    reference = tiny_reference(tmp_path / "ref")
    other = {**EVAL_SET, "seed": 1}
    (difference,) = fingerprint_differences(
        make_fingerprint(reference), make_fingerprint(reference, eval_set=other)
    )
    assert difference.startswith("evaluation set ") and " -> " in difference


def test_a_run_without_a_fingerprint_is_refused_only_if_it_holds_a_run(tmp_path):
    wanted = make_fingerprint(tiny_reference(tmp_path / "ref"))
    check_fingerprint(tmp_path / "new", wanted)  # nothing there yet
    (tmp_path / "new").mkdir()
    check_fingerprint(tmp_path / "new", wanted)
    write_rows(tmp_path / "old" / METRICS, [{"update": 0, "episodes": 0}])
    with pytest.raises(RunMismatch, match=r"other settings: no fingerprint \(a run from an older version\);"):
        check_fingerprint(tmp_path / "old", wanted)
    (tmp_path / "old" / METRICS).unlink()
    (tmp_path / "old" / CHECKPOINT).mkdir()
    with pytest.raises(RunMismatch, match="no fingerprint"):
        check_fingerprint(tmp_path / "old", wanted)


def test_an_unreadable_fingerprint_is_a_mismatch_in_one_line(tmp_path):
    (tmp_path / FINGERPRINT_FILE).write_text('{"cut": ')
    with pytest.raises(ValueError, match="fingerprint.json is unreadable"):
        read_fingerprint(tmp_path)
    with pytest.raises(RunMismatch, match=r"cannot be reused: .*unreadable .*; use another --out") as caught:
        check_fingerprint(tmp_path, {}, hint="use another --out")
    assert "\n" not in str(caught.value)


def test_settings_may_be_a_config_dataclass(tmp_path):
    from agents.rl.config import RLConfig

    config = RLConfig()
    reference = tiny_reference(tmp_path / "ref")
    arguments = dict(
        algo="ppo", method="critical", backend="agents", reference_dir=reference, eval_set=EVAL_SET
    )
    fp = fingerprint(config, **arguments)
    assert fp["settings"] == json.loads(config.to_json())
    other = fingerprint(config.with_overrides(kl_coef=0.0), **arguments)
    assert fingerprint_differences(fp, other) == ["settings.kl_coef 5.0 -> 0.0"]
    with pytest.raises(TypeError, match="settings must be a dict or a dataclass instance, not a list"):
        fingerprint([], **arguments)


def test_a_setting_that_is_not_json_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"settings\.device is a object"):
        make_fingerprint(tiny_reference(tmp_path / "ref"), settings={"device": object()})


JSON_LEAF = (
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=False) | st.text(max_size=5)
)
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


def as_floats(value):
    """``value`` with every number (not bools) a float, -0.0 as 0.0: the values a setting can mean."""
    if isinstance(value, list):
        return [as_floats(item) for item in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) + 0.0
    return value


@given(
    settings=st.dictionaries(st.text(min_size=1, max_size=8), JSON_VALUE, min_size=1, max_size=6),
    data=st.data(),
)
def test_exactly_the_changed_setting_is_named(settings, data):
    fp = {"settings": settings, "algo": "ppo"}
    assert fingerprint_differences(json.loads(json.dumps(fp)), fp) == []
    name = data.draw(st.sampled_from(sorted(settings)))
    value = data.draw(JSON_VALUE)
    differences = fingerprint_differences(fp, {**fp, "settings": {**settings, name: value}})
    if json.dumps(as_floats(value)) == json.dumps(as_floats(settings[name])):
        assert differences == []  # 1 and 1.0 are one number
    else:
        assert differences == [f"settings.{name} {shown(settings[name])} -> {shown(value)}"]


def shown(value) -> str:
    return value if isinstance(value, str) and value.isprintable() else json.dumps(value)


# --------------------------------------------------------------------------- the lock

HOLDER = """
import sys
from agents.run_identity import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def start_holder(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's agents, not an installed one
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_second_process_on_a_run_stops_in_one_line(tmp_path):
    """Two `compare` processes on one --out: the second stops at once, naming the directory and pid."""
    run_dir = tmp_path / "runs" / "ppo-critical-seed0"
    holder = start_holder(run_dir)
    try:
        assert (run_dir / LOCK_FILE).read_text() == f"{holder.pid}\n"
        with pytest.raises(RunInUse) as caught, RunLock(run_dir):
            pass
        assert str(caught.value) == (
            f"{run_dir} is being written by another process (pid {holder.pid}): "
            "wait for it to finish, or use another --out"
        )
        assert isinstance(caught.value, OSError)
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    with RunLock(run_dir):  # released when the holder exits
        assert (run_dir / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert (run_dir / LOCK_FILE).read_text() == ""


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = start_holder(tmp_path)
    holder.kill()
    holder.wait(timeout=60)
    with RunLock(tmp_path):
        pass


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    with RunLock(tmp_path / "run") as lock:
        with (
            pytest.raises(RunInUse, match=rf"being written by this process \(pid {os.getpid()}\)"),
            RunLock(tmp_path / "run"),
        ):
            pass
        with pytest.raises(RunInUse, match="already held by this RunLock"), lock:
            pass
    with RunLock(tmp_path / "run"):
        pass


def test_a_locked_new_directory_still_opens_as_a_new_run(tmp_path):
    with RunLock(tmp_path / "run"):
        assert open_run(tmp_path / "run", None, "reference.txt") is False


def test_an_impossible_run_directory_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="cannot create the run directory"), RunLock(tmp_path / "file" / "run"):
        pass


# --------------------------------------------------------------------------- progress and status

FINAL = {"comfort": 200, "plus1": 400}
TOTAL = 30


def evaluation(problems: int, comfort: int) -> dict:
    return {
        "comfort_problems": comfort,
        "comfort_sampled": 0.5,
        "plus1_problems": problems,
        "plus1_sampled": 0.25,
    }


def rows_up_to(update: int, final: bool = False) -> list[dict]:
    """Rows as the trainer logs them: an evaluation at update 0, every 2 updates, 10 episodes each."""
    rows = []
    for u in range(update + 1):
        row = {"update": u, "episodes": 10 * u, "kl": 0.1}
        if u == update and final:
            row.update(evaluation(FINAL["plus1"], FINAL["comfort"]))
        elif u % 2 == 0:
            row.update(evaluation(100, 100))
        rows.append(row)
    return rows


def make_run(run_dir: Path, checkpoint_at: int | None, rows: list[dict] | None) -> Path:
    if checkpoint_at is not None:
        (run_dir / CHECKPOINT).mkdir(parents=True)
        write_progress(run_dir / CHECKPOINT, checkpoint_at, 10 * checkpoint_at)
    if rows is not None:
        write_rows(run_dir / METRICS, rows)
    return run_dir


def status(run_dir: Path) -> RunStatus:
    return run_status(run_dir, total_episodes=TOTAL, final_problems=FINAL)


def test_progress_survives_its_file(tmp_path):
    write_progress(tmp_path, 3, 150)
    assert read_progress(tmp_path) == Progress(3, 150)
    assert read_progress(tmp_path / "nothing") is None
    for bad in (
        '{"update": 3}',
        '{"update": -1, "episodes": 0}',
        '{"update": true, "episodes": 0}',
        "[1, 2]",
        "{",
    ):
        (tmp_path / PROGRESS_FILE).write_text(bad)
        with pytest.raises(ValueError, match=r"progress\.json is unreadable"):
            read_progress(tmp_path)


def test_a_finished_run(tmp_path):
    run = make_run(tmp_path, 3, rows_up_to(3, final=True))
    assert status(run) == RunStatus("finished", "finished at update 3 (30 episodes)")


def test_a_finished_run_mid_checkpoint_swap(tmp_path):
    run = make_run(tmp_path, 3, rows_up_to(3, final=True))
    (run / CHECKPOINT).rename(run / (CHECKPOINT + ".old"))  # killed between the two renames
    assert status(run).state == "finished"


def test_nothing_trained_is_new(tmp_path):
    assert status(tmp_path / "missing") == RunStatus("new", "nothing trained yet")
    assert status(tmp_path) == RunStatus("new", "nothing trained yet")


def test_metrics_without_a_checkpoint_start_over(tmp_path):
    run = make_run(tmp_path, None, rows_up_to(1))
    assert status(run) == RunStatus("unfinished", "it logged metrics but saved no checkpoint: it starts over")


def test_a_run_behind_its_budget_is_unfinished_even_with_rows_after_its_checkpoint(tmp_path):
    assert status(make_run(tmp_path / "a", 2, rows_up_to(2))) == RunStatus(
        "unfinished", "checkpoint at update 2: 20 of 30 episodes"
    )
    assert status(make_run(tmp_path / "b", 1, rows_up_to(2))).state == "unfinished"  # a resume trims them


def test_a_cut_last_row_is_damaged_not_summarised(tmp_path):
    """Cut metrics.csv's last row: the pre-RL or an intermediate accuracy is never reported as final."""
    run = make_run(tmp_path, 3, rows_up_to(3, final=True))
    lines = (run / METRICS).read_text().splitlines(keepends=True)
    (run / METRICS).write_text("".join(lines[:-1]))
    assert status(run) == RunStatus(
        "damaged",
        f"the checkpoint is at update 3 (30 episodes) but {run / METRICS} ends at update 2: rows were lost",
    )


def test_a_last_row_cut_mid_line_is_damaged(tmp_path):
    run = make_run(tmp_path, 3, rows_up_to(3, final=True))
    text = (run / METRICS).read_text()
    (run / METRICS).write_text(text[: text.rindex("\n3,30,") + len("\n3,30,0.1")])  # before its evaluation
    assert status(run) == RunStatus(
        "damaged",
        f"the last row of {run / METRICS} (update 3) is not the final evaluation "
        "(comfort_problems absent, not 200)",
    )


def test_a_final_row_with_an_intermediate_evaluation_is_damaged(tmp_path):
    rows = rows_up_to(3)
    rows[-1].update(evaluation(100, 200))
    reason = status(make_run(tmp_path, 3, rows)).reason
    assert reason.endswith("is not the final evaluation (plus1_problems 100, not 400)")


@pytest.mark.parametrize("content", ["", "update,episodes,kl\n"], ids=["empty", "header-only"])
def test_empty_metrics_with_a_checkpoint_are_damaged_not_a_crash(tmp_path, content):
    run = make_run(tmp_path, 3, None)
    (run / METRICS).write_text(content)
    assert read_metrics(run) == []
    assert status(run) == RunStatus(
        "damaged", f"the checkpoint is at update 3 (30 episodes) but {run / METRICS} holds no rows"
    )


def test_missing_metrics_with_a_checkpoint_are_damaged(tmp_path):
    run = make_run(tmp_path, 1, None)
    assert status(run) == RunStatus(
        "damaged", f"the checkpoint is at update 1 (10 episodes) but {run / METRICS} is missing"
    )


def test_rows_written_twice_are_damaged(tmp_path):
    """Two processes on one run write every row twice: never summarised."""
    rows = rows_up_to(3, final=True)
    run = make_run(tmp_path, 3, [rows[0], rows[0], *rows[1:]])
    assert status(run) == RunStatus(
        "damaged", f"{run / METRICS} goes back from update 0 to 0 (written twice, or by two processes)"
    )


def test_rows_that_disagree_with_the_checkpoint_are_damaged(tmp_path):
    rows = rows_up_to(2)
    rows[1]["episodes"] = 12
    assert status(make_run(tmp_path / "a", 1, rows)).reason.endswith("has 12 episodes at that update")
    assert status(make_run(tmp_path / "b", 3, rows_up_to(4, final=True))).reason.endswith(
        "its last, but " + str(tmp_path / "b" / METRICS) + " goes on to update 4"
    )


def test_a_checkpoint_without_progress_is_damaged(tmp_path):
    run = make_run(tmp_path, None, rows_up_to(3, final=True))
    (run / CHECKPOINT).mkdir()
    assert status(run) == RunStatus(
        "damaged", f"{run / CHECKPOINT} has no progress.json (cut, or from an older version)"
    )
    (run / CHECKPOINT / PROGRESS_FILE).write_text("{")
    assert status(run).state == "damaged" and "progress.json is unreadable" in status(run).reason


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("update,episodes\n0,0\n1,10,7\n", "line 3: more cells than columns"),
        ("update,episodes\n0,zero\n", "line 2: not a metrics row"),
        ("update,episodes\n0,0\x00\n", "not a metrics row"),
    ],
    ids=["extra-cells", "not-a-number", "nul"],
)
def test_unreadable_metrics_are_damaged_not_a_crash(tmp_path, text, problem):
    run = make_run(tmp_path, 1, None)
    (run / METRICS).write_text(text)
    with pytest.raises(ValueError, match=problem):
        read_metrics(run)
    result = status(run)
    assert result.state == "damaged" and problem in result.reason and "\n" not in result.reason


def test_a_real_run_reads_as_finished_and_its_cut_copy_as_damaged(micro_reference_dir, tmp_path):
    """The columns the trainer really writes: its final row holds ``{split}_problems`` of the whole set."""
    from agents.rl.config import RLConfig
    from agents.rl.trainer import Trainer
    from agents.rundir import checkpoint_dir

    config = RLConfig(
        episodes_per_update=4,
        total_episodes=8,
        eval_every=4,
        eval_episodes=4,
        final_eval_episodes=8,
        final_comfort_episodes=6,
        value_hidden=(16,),
    )
    trainer = Trainer(config, micro_reference_dir, tmp_path / "run")
    trainer.run(progress=False)
    write_progress(checkpoint_dir(trainer.run_dir), trainer.update, trainer.episodes)  # as a backend will
    final = {name: len(problems) for name, problems in trainer.eval_set.problems.items()}
    assert final == {"comfort": 6, "plus1": 8}
    assert run_status(trainer.run_dir, total_episodes=8, final_problems=final).state == "finished"
    assert run_status(trainer.run_dir, total_episodes=12, final_problems=final).state == "unfinished"

    lines = (trainer.run_dir / METRICS).read_text().splitlines(keepends=True)
    (trainer.run_dir / METRICS).write_text("".join(lines[:-1]))
    assert run_status(trainer.run_dir, total_episodes=8, final_problems=final).reason.endswith(
        "rows were lost"
    )

    copy = shutil.copytree(micro_reference_dir, tmp_path / "copied-reference")
    arguments = dict(algo="ppo", method=None, backend="agents", eval_set=trainer.eval_set.to_json())
    assert fingerprint(config, reference_dir=copy, **arguments) == fingerprint(
        config, reference_dir=micro_reference_dir, **arguments
    )
    assert eval_set_hash(trainer.eval_set.to_json()) == eval_set_hash(
        {"comfort_digits": 1, "seed": 0, "problems": dict(trainer.eval_set.problems)}
    )
