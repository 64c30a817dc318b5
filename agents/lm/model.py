"""GPT-2 with the arith_gym character vocabulary: size presets, tokenizer, save and load.

A model directory is a plain ``save_pretrained`` directory (safetensors weights,
``config.json``, tokenizer files) that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load offline, plus ``arith_gym.json`` that records the
task it was trained for (``comfort_digits``) and the RL sampling temperature.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from agents.settings import check_field_types
from arith_gym.codec import Codec, TokenizerCodec
from arith_gym.task import TASKS, get_task
from arith_gym.tokenizer import CHARACTERS, PAD_ID, PAD_TOKEN, VOCAB_SIZE

TASK_FILE = "arith_gym.json"
CHECKPOINTS_DIR = Path(__file__).parent.parent / "checkpoints"  # agents/checkpoints
DEFAULT_REFERENCE = CHECKPOINTS_DIR / "gpt2-tiny-n3"
FUSED_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}
"""Activation -> PyTorch's fused kernel of the same formula, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

GPT-2's ``gelu_new`` runs that formula as separate element-wise operations, forward and
backward: about 30 % of a PPO update's time on the tiny model (docs/benchmarks.md). The fused
kernel gives the same function up to float rounding (tested), so models load with it.
"""


@dataclass(frozen=True)
class ModelSize:
    """Shape of a GPT-2 body. ``n_positions`` bounds prompt + generated tokens."""

    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int = 1024


SIZES: dict[str, ModelSize] = {
    # For tests and smoke runs only: learns nothing useful, runs in milliseconds.
    "micro": ModelSize(n_layer=2, n_embd=32, n_head=2, n_positions=512),
    # CPU-friendly: trains in minutes on 2 cores, ships under 5 MB.
    "tiny": ModelSize(n_layer=4, n_embd=128, n_head=4),
    "small": ModelSize(n_layer=6, n_embd=256, n_head=8),
    # GPT-2 small's body (the paper's model), ~85M parameters with this vocabulary.
    "paper": ModelSize(n_layer=12, n_embd=768, n_head=12),
}


TOKENIZER_KINDS = ("characters", "model")


@dataclass(frozen=True)
class TaskInfo:
    """What a reference model was trained for, saved as ``arith_gym.json`` beside ``config.json``."""

    comfort_digits: int
    temperature: float = 1.0
    size: str = "tiny"
    notes: str = ""
    task: str = "Addition"
    """The registered task (:mod:`arith_gym.task`) it was trained on (a card without one: addition)."""
    tokenizer: str = "characters"
    """``characters``: a GPT-2 of the character ids (``arith_gym.tokenizer``); ``model``: any causal
    LM with the directory's own tokenizer (:mod:`arith_gym.codec`, docs/tokenizers.md)."""

    def __post_init__(self) -> None:
        check_field_types(self)  # "comfort_digits": "3" is an error naming it, not a TypeError later
        if self.comfort_digits < 1 or not self.temperature > 0:
            raise ValueError(f"comfort_digits must be >= 1 and temperature > 0, got {self}")
        if self.tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer must be one of {TOKENIZER_KINDS}, got {self.tokenizer!r}")
        get_task(self.task)  # an unknown task is named

    @property
    def vocab_size(self) -> int:
        """The task's vocabulary: the first ``vocab_size`` ids of ``arith_gym.tokenizer.CHARACTERS``."""
        return get_task(self.task).vocab_size


class CheckpointError(ValueError):
    """A model directory is missing, incomplete or does not fit the arith_gym vocabulary."""


def build_model(
    size: str | ModelSize = "tiny", seed: int | None = None, vocab_size: int = VOCAB_SIZE
) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 with the arith_gym vocabulary (its first ``vocab_size`` ids:
    addition's 41 by default) and dropout off."""
    shape = model_size(size)
    if seed is not None:
        torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=shape.n_positions,
        n_embd=shape.n_embd,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=PAD_ID,
        eos_token_id=PAD_ID,
        pad_token_id=PAD_ID,
        activation_function=FUSED_ACTIVATIONS["gelu_new"],
    )
    return GPT2LMHeadModel(config)


def model_size(size: str | ModelSize) -> ModelSize:
    """The preset ``size`` (a :class:`ModelSize` is returned as it is)."""
    if isinstance(size, ModelSize):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(SIZES)}")
    return SIZES[size]


def build_tokenizer(vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """A ``PreTrainedTokenizerFast`` with exactly the ids of ``arith_gym.tokenizer`` (its first
    ``vocab_size`` characters)."""
    vocab = {token: i for i, token in enumerate(CHARACTERS[:vocab_size])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD_TOKEN))
    # One token per character, newlines included.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )


def save_reference(
    model: PreTrainedModel, out_dir: str | Path, task: TaskInfo, tokenizer: object | None = None
) -> Path:
    """Save ``model``, the tokenizer and ``arith_gym.json`` into ``out_dir`` (safetensors).

    The tokenizer is the character one, or for ``task.tokenizer == "model"`` the model's own
    (a ``transformers`` tokenizer or a ``tokenizers.Tokenizer``).
    """
    if (task.tokenizer == "model") != (tokenizer is not None):
        raise ValueError("pass the model's own tokenizer exactly when task.tokenizer is 'model'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _no_progress_bar():
        model.save_pretrained(out, safe_serialization=True)
    if tokenizer is None:
        build_tokenizer(task.vocab_size).save_pretrained(out)
    elif isinstance(tokenizer, Tokenizer):
        PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, clean_up_tokenization_spaces=False
        ).save_pretrained(out)
    else:
        tokenizer.save_pretrained(out)
    (out / TASK_FILE).write_text(json.dumps(asdict(task), indent=2) + "\n")
    return out


def load_task_info(model_dir: str | Path) -> TaskInfo:
    """Read ``arith_gym.json`` of a model directory."""
    path = Path(model_dir) / TASK_FILE
    if not path.is_file():
        raise CheckpointError(f"{model_dir} has no {TASK_FILE}: not an arith_gym reference model directory")
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError(f"expected a JSON object, got {type(values).__name__}")
        return TaskInfo(**values)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is corrupt: {err}") from None


def shipped_references(tasks: Sequence[str]) -> list[Path]:
    """The shipped character-id reference directories (``agents/checkpoints``) of ``tasks`` (names,
    any case), task by task in the given order, each task's by N (a reference of another tokenizer
    is a comparison of its own: ``--refs``).

    Raises:
        ValueError: an unknown task, or one without a shipped reference (named).
    """
    shipped = [(load_task_info(path), path) for path in sorted(CHECKPOINTS_DIR.iterdir())]
    chosen = []
    for name in tasks:
        task = next((t for t in TASKS if t.lower() == name.strip().lower()), None)
        if task is None:
            raise ValueError(f"unknown task {name!r}; registered: {', '.join(TASKS)}")
        found = sorted(
            (info.comfort_digits, path)
            for info, path in shipped
            if info.task == task and info.tokenizer == "characters"
        )
        if not found:
            raise ValueError(f"no shipped reference of task {task} in {CHECKPOINTS_DIR}")
        chosen += [path for _, path in found]
    return chosen


def load_reference(model_dir: str | Path = DEFAULT_REFERENCE) -> tuple[GPT2LMHeadModel, TaskInfo]:
    """Load a reference model directory offline, checking it fits the arith_gym vocabulary.

    The model runs the fused form of its activation (:data:`FUSED_ACTIVATIONS`): the same
    function, faster.

    Raises:
        CheckpointError: the directory is missing, lacks a file, is corrupt (non-finite
            weights included), or its vocabulary differs from ``arith_gym.tokenizer.VOCAB``.
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise CheckpointError(f"reference model directory {path} does not exist")
    for required in ("config.json", "model.safetensors"):
        if not (path / required).is_file():
            raise CheckpointError(f"{path} has no {required}: not a complete model directory")
    task = load_task_info(path)
    if task.tokenizer == "model":
        return _load_any_model(path), task
    try:
        with _no_progress_bar():
            config = GPT2Config.from_pretrained(path, local_files_only=True)
            activation = config.activation_function
            config.activation_function = FUSED_ACTIVATIONS.get(activation, activation)
            model = GPT2LMHeadModel.from_pretrained(path, config=config, local_files_only=True)
    except Exception as err:  # transformers raises many types for a damaged directory
        raise CheckpointError(f"could not load the model in {path}: {err}") from err
    check_vocabulary(model, task.vocab_size)
    check_tokenizer(path, task.vocab_size)
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():  # damaged bytes load, then poison every sample
            raise CheckpointError(f"{path / 'model.safetensors'} is damaged: {name} holds non-finite values")
    model.eval()
    return model, task


def _load_any_model(path: Path) -> PreTrainedModel:
    """A causal LM of any architecture with its own tokenizer (its output size is checked against
    the tokenizer's by :func:`load_codec`)."""
    try:
        with _no_progress_bar():
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except Exception as err:  # transformers raises many types for a damaged directory
        raise CheckpointError(f"could not load the model in {path}: {err}") from err
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise CheckpointError(f"{path} is damaged: {name} holds non-finite values")
    return model.eval()


def load_codec(model_dir: str | Path, model: PreTrainedModel) -> Codec | None:
    """The codec of a reference's actions: None for the character ids, else its own tokenizer's
    (ids up to the model's output size)."""
    if load_task_info(model_dir).tokenizer == "characters":
        return None
    try:
        # The generic fast tokenizer of tokenizer.json: AutoTokenizer would pick the architecture's
        # class, which may add tokens of its own (Qwen2's adds <|endoftext|>).
        tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir, local_files_only=True)
    except Exception as err:  # transformers raises many types for a missing or damaged tokenizer
        raise CheckpointError(f"could not load the tokenizer in {model_dir}: {err}") from err
    codec = TokenizerCodec(tokenizer, vocab_size=model.get_output_embeddings().out_features)
    if codec.vocab_size < len(tokenizer):
        raise CheckpointError(
            f"{model_dir}: the model writes {codec.vocab_size} ids, its tokenizer has {len(tokenizer)}"
        )
    return codec


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """transformers draws a bar to load or write even a local file of a few MB: noise here."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def check_tokenizer(model_dir: str | Path, vocab_size: int = VOCAB_SIZE) -> None:
    """Raise ``CheckpointError`` unless the directory's ``tokenizer.json`` (if any) maps every
    character to the id ``arith_gym.tokenizer`` gives it (a size check alone accepted a tokenizer
    with '0' and '1' swapped)."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text())
        vocab = dict(data["model"]["vocab"])
        vocab.update({token["content"]: token["id"] for token in data.get("added_tokens", [])})
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is corrupt: {err}") from None
    for expected_id, token in enumerate(CHARACTERS[:vocab_size]):
        if vocab.get(token) != expected_id:
            raise CheckpointError(
                f"{path} maps {token!r} to {vocab.get(token)}, arith_gym.tokenizer to {expected_id}: "
                "a reference model must use arith_gym's token ids"
            )


def check_vocabulary(model: PreTrainedModel, vocab_size: int = VOCAB_SIZE) -> None:
    """Raise ``CheckpointError`` unless ``model`` reads and writes the ``vocab_size`` first arith_gym
    token ids (addition's 41 by default; a task's own, :attr:`TaskInfo.vocab_size`)."""
    size = model.get_input_embeddings().num_embeddings
    if size != vocab_size or model.config.vocab_size != vocab_size:
        raise CheckpointError(
            f"model vocabulary has {size} tokens but the task's has {vocab_size}: "
            "a reference model must be trained with arith_gym.tokenizer's characters"
        )


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters())
