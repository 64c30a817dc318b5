"""arith_gym: multi-digit addition with a scratchpad as a token-level Gymnasium environment.

``import arith_gym`` registers ``arith_gym/Addition-v0`` (:class:`AdditionEnv`; its
``gym.make_vec`` vector entry point is :class:`AdditionVectorEnv`). This package depends on
numpy and gymnasium only.
"""

from gymnasium.envs.registration import register, registry

from arith_gym.env import AdditionEnv
from arith_gym.operands import sample_operands
from arith_gym.rules import ENV_ID
from arith_gym.scratchpad import CriticalToken, critical_tokens, parse_result, prompt_text, target_text
from arith_gym.tokenizer import PAD_ID, VOCAB, VOCAB_SIZE, decode, encode
from arith_gym.vector_env import AdditionVectorEnv

# Importing the package twice (e.g. after importlib.reload) must not register twice. No
# max_episode_steps here: the environment truncates itself, its default limit depends on kwargs.
if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="arith_gym.env:AdditionEnv",
        vector_entry_point="arith_gym.vector_env:AdditionVectorEnv",
    )

__all__ = [
    "ENV_ID",
    "PAD_ID",
    "VOCAB",
    "VOCAB_SIZE",
    "AdditionEnv",
    "AdditionVectorEnv",
    "CriticalToken",
    "critical_tokens",
    "decode",
    "encode",
    "parse_result",
    "prompt_text",
    "sample_operands",
    "target_text",
]
