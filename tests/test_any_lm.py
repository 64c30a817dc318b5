"""Any causal LM with its own tokenizer plays and is evaluated (issue: any tokenizer, any LM).

A tiny Llama built from a config and a byte-level BPE trained here (offline, about a second):
episodes decoded over transformers' own KV cache equal whole-context greedy decoding, pass@k
counts them; the shipped GPT-2 through its saved character tokenizer takes the same path and
plays exactly the episodes of the GPT-2 fast path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import quick_criticality, tiny_llama

from agents.cli import main
from agents.evaluation.criticality_table import CriticalityTable
from agents.evaluation.heldout import heldout_eval_set
from agents.evaluation.passk import correct_counts
from agents.lm.decoding import GREEDY
from agents.lm.episodes import model_codec, play_episodes
from agents.lm.model import CHECKPOINTS_DIR, load_reference
from arith_gym.task import get_task, task_problems
from arith_gym.task_env import TaskEnv

tokenizers = pytest.importorskip("tokenizers")
# TRL 1.16 still calls transformers' deprecated `gradient_checkpointing` names itself.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`[a-z_]*gradient_checkpointing[a-z_]*` is deprecated:FutureWarning"
)


@pytest.fixture(scope="module")
def bpe():
    from agents.lm.bpe import train_bpe

    return train_bpe("Addition", 2, vocab_size=300, problems=200)


@pytest.fixture(scope="module")
def llama():
    return tiny_llama(320)  # wider than the tokenizer, as real models often are


def _greedy_by_whole_context(model, codec, task, problem) -> str:
    env = TaskEnv(task, comfort_digits=2, split="plus1", tokenizer=codec)
    _, info = env.reset(options={"problem": problem})
    ids = list(codec.encode(info["prompt"]))
    while True:
        with torch.no_grad():
            token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        _, _, terminated, truncated, info = env.step(token)
        if terminated or truncated:
            return info["text"]
        ids.append(token)


@pytest.mark.parametrize("name", ["Addition", "Multiply"])
def test_a_llama_with_a_bpe_tokenizer_plays_as_whole_context_decoding_does(llama, bpe, name):
    problems = task_problems(name, "plus1", 2, 3, seed=1)
    _, texts = play_episodes(llama, problems, 2, "plus1", GREEDY, task=name, tokenizer=bpe)
    codec = model_codec(llama, bpe)
    assert codec.vocab_size == 320 and codec.piece(310) is None  # ids past the tokenizer write nothing
    for problem, text in zip(problems, texts, strict=True):
        assert text == _greedy_by_whole_context(llama, codec, name, problem)


def test_pass_at_k_counts_any_models_episodes(llama, bpe):
    problems = task_problems("Addition", "plus1", 2, 2, seed=0)
    counts = correct_counts(llama, problems, 2, "plus1", 1.0, samples=3, task="Addition", tokenizer=bpe)
    assert counts.shape == (2,) and ((counts >= 0) & (counts <= 3)).all()


def test_the_shipped_model_through_its_saved_tokenizer_plays_the_fast_paths_episodes():
    from transformers import AutoTokenizer

    model, _ = load_reference(CHECKPOINTS_DIR / "gpt2-tiny-n3")
    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINTS_DIR / "gpt2-tiny-n3")
    problems = heldout_eval_set(3, "plus1", 24, 24).head("plus1")
    for temperature in (GREEDY, 1.0):
        fast = play_episodes(model, problems, 3, "plus1", temperature, torch.Generator().manual_seed(0))
        generic = play_episodes(
            model, problems, 3, "plus1", temperature, torch.Generator().manual_seed(0), tokenizer=tokenizer
        )
        assert fast[1] == generic[1]
        np.testing.assert_array_equal(fast[0], generic[0])


@pytest.fixture(scope="module")
def llama_reference(llama, bpe, tmp_path_factory):
    """The tiny Llama saved as a reference with its own tokenizer (``tokenizer: model``)."""
    from agents.lm.model import TaskInfo, save_reference

    info = TaskInfo(comfort_digits=2, size="micro", tokenizer="model")
    return save_reference(llama, tmp_path_factory.mktemp("llama-ref"), info, tokenizer=bpe)


TRL_METHODS = (
    *("none", "uniform", "critical", "critical_auto", "oracle_critical", "group_fork", "group_fork_critical"),
)
"""Every registered KL weighting a GRPO run takes (``value_jump`` needs a critic), as methods."""


@pytest.mark.parametrize(
    ("algo", "method"),
    [("ppo", "critical_auto"), ("grpo", "uniform"), *(("trl-grpo", method) for method in TRL_METHODS)],
)
def test_every_backend_but_sb3_fine_tunes_a_llama_with_its_own_tokenizer(
    llama_reference, algo, method, tiny_rl, tmp_path
):
    from agents.backends import backend_for
    from agents.lm.model import load_codec
    from agents.rundir import read_metrics

    if algo == "trl-grpo":
        pytest.importorskip("trl")
    tiny = tiny_rl.with_overrides(group_size=1 if algo == "ppo" else 2)
    backend = backend_for(algo)
    run = backend.train(backend.job_config(tiny, algo, method), tmp_path / "run", llama_reference, algo)
    row = read_metrics(run)[-1]
    assert row["plus1_problems"] == 4 and "plus1_errors/critical" in row
    model, info = load_reference(run / "checkpoint")  # the fine-tuned Llama, its tokenizer beside it
    assert type(model).__name__ == "LlamaForCausalLM" and info.tokenizer == "model"
    assert load_codec(run / "checkpoint", model).vocab_size == 320


def test_a_bpe_reference_pretrains_resumes_and_records_its_tokenizer(tmp_path):
    from agents.lm.model import load_codec
    from agents.lm.pretrain import PretrainConfig, pretrain, progress_evaluator

    config = PretrainConfig(
        comfort_digits=2,
        size="micro",
        tokenizer="bpe",
        bpe_vocab=300,
        architecture="qwen2",
        steps=6,
        batch_size=4,
        eval_every=3,
        eval_problems=2,
        checkpoint_every=2,
        glimpse_share=0.5,
        unscored_critical="all",
    )
    whole = pretrain(config, tmp_path / "whole", progress=False, evaluate_fn=progress_evaluator())
    pretrain(config, tmp_path / "cut", progress=False, stop_after=4)
    resumed = pretrain(config, tmp_path / "cut", resume=True, progress=False)
    for mine, theirs in zip(whole.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)  # the resumed run continues bit for bit
    model, info = load_reference(tmp_path / "whole")
    assert type(model).__name__ == "Qwen2ForCausalLM" and info.tokenizer == "model"
    codec = load_codec(tmp_path / "whole", model)
    assert codec.vocab_size == 300 and codec.piece(codec.encode("8,")[0]) is not None


def test_unscored_critical_tokens_of_a_bpe_batch_are_the_tokens_covering_them(bpe):
    from agents.lm.batches import IGNORE_INDEX, make_batch
    from arith_gym.codec import TokenizerCodec

    codec = TokenizerCodec(bpe)
    problem = (123, 45)  # plus1 for N = 2: a third digit, a decision comma
    batch = make_batch([problem], unscored_critical_of=2, task="Addition", codec=codec)
    text, records = get_task("Addition").target(problem, 2)
    spans = codec.offsets(text)
    prompt = len(codec.encode(get_task("Addition").prompt(problem)))
    labels = batch["labels"][0, prompt : prompt + len(spans)]
    covering = {t for t, (start, end) in enumerate(spans) for r in records if start <= r[0] < end}
    assert covering and {t for t in range(len(spans)) if labels[t] == IGNORE_INDEX} == covering


def test_trl_s_critical_labels_of_a_bpe_completion_are_the_tokens_covering_a_critical_character(bpe):
    pytest.importorskip("trl")
    from agents.trl import CriticalLabels
    from arith_gym.codec import TokenizerCodec

    codec = TokenizerCodec(bpe)
    labels = CriticalLabels("Addition", comfort_digits=2, split="plus1", tokenizer=codec)
    problem = (123, 45)
    text, records = get_task("Addition").target(problem, 2)
    spans = codec.offsets(text)
    covering = [any(start <= r[0] < end for r in records) for start, end in spans]
    assert any(covering) and labels("123 45", [int(t) for t in codec.encode(text)]) == covering
    by_character = [int(codec.encode(character)[0]) for character in text]  # another path, same text
    assert labels("123 45", by_character) == [any(r[0] == i for r in records) for i in range(len(text))]


def test_the_sb3_backend_refuses_a_model_of_another_tokenizer_in_one_line(llama_reference, tmp_path):
    from agents.backends import backend_for
    from agents.rl.config import RLConfig

    backend = backend_for("sb3-ppo")
    config = backend.job_config(RLConfig(episodes_per_update=4, total_episodes=4), "sb3-ppo", "uniform")
    with pytest.raises(ValueError, match="the SB3 backend trains models of the character ids") as refused:
        backend.train(config, tmp_path / "run", llama_reference, "sb3-ppo")
    assert "\n" not in str(refused.value)


def test_the_shipped_bpe_reference_loads_with_its_tokenizer_and_solves_its_comfort_zone():
    from agents.lm.model import load_codec

    directory = CHECKPOINTS_DIR / "llama-tiny-bpe-n3"
    model, info = load_reference(directory)
    assert (type(model).__name__, info.tokenizer, info.comfort_digits) == ("LlamaForCausalLM", "model", 3)
    codec = load_codec(directory, model)
    assert codec.vocab_size == 384 and len(codec.encode("[3,7,6,9]")) < 9  # BPE fuses characters
    problems = heldout_eval_set(3, "plus1", 16, 16).head("comfort")
    solved, _ = play_episodes(model, problems, 3, "comfort", GREEDY, tokenizer=codec)
    assert solved.all()  # its card: 100.0 % greedy comfort on 1000


def test_the_criticality_benchmark_runs_on_a_model_with_its_own_tokenizer(llama_reference, tmp_path, capsys):
    out = tmp_path / "crit"
    argv = [*quick_criticality(llama_reference, out), "--selectors", "critical,entropy_topk,random"]
    assert main(argv) == 0
    assert "| entropy_topk |" in (out / "summary.md").read_text()
    table = CriticalityTable.load(next(out.glob("seed0/problem*.npz")))
    assert table.ref_logits.shape[1] == 320  # the model's own vocabulary
    # analyze reads character positions: it refuses such a model in one line, naming the way out.
    assert main(["analyze", str(llama_reference), "--episodes", "2"]) == 2
    assert "arith-rl criticality" in capsys.readouterr().err
