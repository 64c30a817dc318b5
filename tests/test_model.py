"""Reference models (agents/lm/model.py): size presets, HF tokenizer, save/load, clear load errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from agents.lm.decoding import CachedDecoder
from agents.lm.model import (
    DEFAULT_REFERENCE,
    SIZES,
    TASK_FILE,
    CheckpointError,
    TaskInfo,
    build_model,
    build_tokenizer,
    count_parameters,
    load_reference,
    load_task_info,
    save_reference,
)
from agents.rl.policy import LMPolicy
from arith_gym.scratchpad import prompt_text, target_text
from arith_gym.tokenizer import PAD_ID, VOCAB_SIZE, decode, encode

# ----------------------------------------------------------------------------- presets


def test_paper_preset_is_gpt2_small_body_with_arith_vocabulary():
    with torch.device("meta"):  # shapes only: no 340 MB allocation
        model = build_model("paper")
    assert round(count_parameters(model) / 1e6, 1) == 85.9
    config = model.config
    assert (config.n_layer, config.n_embd, config.n_head) == (12, 768, 12)
    assert config.vocab_size == VOCAB_SIZE == 41
    assert model.get_input_embeddings().num_embeddings == 41


@pytest.mark.parametrize("size", sorted(SIZES))
def test_presets_have_dropout_off_and_pad_ids(size):
    with torch.device("meta"):
        model = build_model(size)
    config = model.config
    shape = SIZES[size]
    assert (config.n_layer, config.n_embd, config.n_head, config.n_positions) == (
        shape.n_layer,
        shape.n_embd,
        shape.n_head,
        shape.n_positions,
    )
    assert config.resid_pdrop == config.embd_pdrop == config.attn_pdrop == 0.0
    assert config.pad_token_id == config.eos_token_id == PAD_ID
    assert config.vocab_size == VOCAB_SIZE


def test_tiny_preset_parameter_count():
    # 4 layers x 128 wide, 1024 positions, 41 tokens (tied embeddings counted once).
    assert count_parameters(build_model("tiny")) == 929_664


def test_build_model_is_seeded():
    a, b, c = build_model("micro", seed=3), build_model("micro", seed=3), build_model("micro", seed=4)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


def test_unknown_size_is_a_value_error():
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        build_model("huge")


# ----------------------------------------------------------------------------- tokenizer

TOKENIZER = build_tokenizer()
operand = st.integers(min_value=0, max_value=10**6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=operand, b=operand)
def test_hf_tokenizer_ids_equal_arith_gym_encode(a, b):
    text = prompt_text(a, b) + target_text(a, b)
    expected = encode(text).tolist()
    ids = TOKENIZER(text)["input_ids"]
    assert ids == expected
    assert TOKENIZER.decode(ids) == text == decode(expected)


def test_hf_tokenizer_pad_token_and_batch_padding():
    assert TOKENIZER.pad_token_id == PAD_ID
    assert len(TOKENIZER) == VOCAB_SIZE
    batch = TOKENIZER(["1+2\n", "12+3\n"], padding=True)
    assert batch["input_ids"][0][-1] == PAD_ID
    assert batch["attention_mask"] == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


# ----------------------------------------------------------------------------- save / load


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = build_model("micro", seed=1).eval()
    out = save_reference(
        model,
        tmp_path_factory.mktemp("ref"),
        TaskInfo(comfort_digits=2, temperature=1.5, size="micro", notes="test"),
    )
    return model, out


def _logits(model, text="Input:\n57+8\nTarget:\n<scratch>\n"):
    ids = torch.as_tensor(encode(text))[None]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_save_load_round_trip_gives_identical_logits(saved):
    model, out = saved
    loaded, task = load_reference(out)
    assert task == TaskInfo(comfort_digits=2, temperature=1.5, size="micro", notes="test")
    assert not loaded.training
    assert torch.equal(_logits(model), _logits(loaded))
    assert (out / "model.safetensors").is_file()


def test_task_file_records_comfort_digits_and_temperature(saved):
    _, out = saved
    values = json.loads((out / TASK_FILE).read_text())
    assert values["comfort_digits"] == 2
    assert values["temperature"] == 1.5
    assert load_task_info(out).comfort_digits == 2


def test_directory_loads_offline_with_auto_classes(saved, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, out = saved
    auto_model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    auto_tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert torch.equal(_logits(model), _logits(auto_model))
    text = prompt_text(905, 17) + target_text(905, 17)
    assert auto_tokenizer(text)["input_ids"] == encode(text).tolist()
    assert auto_tokenizer.pad_token_id == PAD_ID


# ----------------------------------------------------------------------------- load errors


@pytest.fixture
def copy_of(saved, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(saved[1], target)
    return target


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_reference(tmp_path / "nowhere")


def test_missing_weights(copy_of):
    (copy_of / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_reference(copy_of)


def test_missing_task_file(copy_of):
    (copy_of / TASK_FILE).unlink()
    with pytest.raises(CheckpointError, match=TASK_FILE):
        load_reference(copy_of)


def test_corrupt_config(copy_of):
    (copy_of / "config.json").write_text("{ this is not json")
    with pytest.raises(CheckpointError, match="could not load the model"):
        load_reference(copy_of)


@pytest.mark.parametrize("content", ["{ broken", '{"comfort_digits": 3, "colour": "red"}'])
def test_corrupt_task_file(copy_of, content):
    (copy_of / TASK_FILE).write_text(content)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_reference(copy_of)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_other_vocabulary_is_rejected(tmp_path):
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=2))
    save_reference(gpt2, tmp_path, TaskInfo(comfort_digits=1))
    with pytest.raises(CheckpointError, match="vocabulary has 50 tokens"):
        load_reference(tmp_path)
    with pytest.raises(CheckpointError, match="vocabulary"):
        LMPolicy(gpt2)


def test_logits_cover_the_vocabulary(saved):
    model, _ = saved
    logits = _logits(model)
    assert logits.shape[-1] == VOCAB_SIZE
    assert np.isfinite(logits.numpy()).all()


# ----------------------------------------------------------------------------- fast paths


def test_loaded_model_runs_the_fused_gelu_with_the_same_outputs():
    """load_reference swaps gelu_new for its fused kernel: the shipped model's logits, on
    prompts and on cached one-token steps, equal plain transformers'."""
    fast, _ = load_reference()
    plain = GPT2LMHeadModel.from_pretrained(DEFAULT_REFERENCE, local_files_only=True).eval()
    assert plain.config.activation_function == "gelu_new"
    assert fast.config.activation_function == "gelu_pytorch_tanh"
    prompts = [encode(prompt_text(a, b)) for a, b in ((123, 45), (7, 9081), (5000, 321))]
    steps = [torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8]), torch.tensor([1, 1, 2])]
    outputs = []
    for model in (fast, plain):
        decoder = CachedDecoder(model)
        with torch.no_grad():
            logits = [decoder.start(prompts).logits[:, -1]]
            logits += [decoder.step(tokens).logits[:, -1] for tokens in steps]
        outputs.append(torch.stack(logits))
    torch.testing.assert_close(outputs[0], outputs[1], atol=2e-5, rtol=1e-5)
