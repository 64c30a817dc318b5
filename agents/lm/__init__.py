"""agents.lm: the language model and everything that runs it, below any RL.

- :mod:`~agents.lm.model`: GPT-2 with the arith_gym vocabulary (sizes, tokenizer, save/load);
- :mod:`~agents.lm.decoding`: batched KV-cached decoding, greedy or sampled;
- :mod:`~agents.lm.gpt2_decoding`: the same for GPT-2, with a cache laid out for the CPU's memory;
- :mod:`~agents.lm.episodes`: whole episodes in the vector env, judged by the env;
- :mod:`~agents.lm.batches`: teacher-forced batches (prompt + target, labels on the target);
- :mod:`~agents.lm.pretrain`: supervised pre-training of reference models.
"""

from agents.lm.batches import IGNORE_INDEX, make_batch
from agents.lm.decoding import GREEDY, CachedDecoder, NaiveDecoder, choose_tokens, left_pad
from agents.lm.episodes import make_vector_env, play_episodes
from agents.lm.gpt2_decoding import GPT2Decoder, cached_decoder
from agents.lm.model import (
    DEFAULT_REFERENCE,
    SIZES,
    CheckpointError,
    TaskInfo,
    build_model,
    build_tokenizer,
    load_reference,
    save_reference,
)
from agents.lm.pretrain import PretrainConfig, pretrain

__all__ = [
    "DEFAULT_REFERENCE",
    "GREEDY",
    "IGNORE_INDEX",
    "SIZES",
    "CachedDecoder",
    "CheckpointError",
    "GPT2Decoder",
    "NaiveDecoder",
    "PretrainConfig",
    "TaskInfo",
    "build_model",
    "build_tokenizer",
    "cached_decoder",
    "choose_tokens",
    "left_pad",
    "load_reference",
    "make_batch",
    "make_vector_env",
    "play_episodes",
    "pretrain",
    "save_reference",
]
