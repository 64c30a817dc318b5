"""arith_gym: arithmetic with a scratchpad as token-level Gymnasium environments.

``import arith_gym`` registers ``arith_gym/Addition-v0`` (:class:`AdditionEnv`; its
``gym.make_vec`` vector entry point is :class:`AdditionVectorEnv`) and one environment per
registered task (:mod:`arith_gym.task`): ``arith_gym/Multiply-v0``, ``arith_gym/MultiSum-v0``
(:class:`~arith_gym.task_env.TaskEnv`). This package depends on numpy and gymnasium only.
"""

from gymnasium.envs.registration import register, registry

from arith_gym.env import AdditionEnv
from arith_gym.multiply import MultiplyTask
from arith_gym.multisum import MultiSumTask
from arith_gym.operands import sample_operands
from arith_gym.rules import ENV_ID
from arith_gym.scratchpad import CriticalToken, critical_tokens, parse_result, prompt_text, target_text
from arith_gym.task import TASKS, AdditionTask, Task, get_task, register_task
from arith_gym.task_env import TaskEnv
from arith_gym.tokenizer import PAD_ID, VOCAB, VOCAB_SIZE, decode, encode
from arith_gym.vector_env import AdditionVectorEnv

# Importing the package twice (e.g. after importlib.reload) must not register twice. No
# max_episode_steps here: the environment truncates itself, its default limit depends on kwargs.
if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="arith_gym.task_env:make_addition_env",
        vector_entry_point="arith_gym.vector_env:AdditionVectorEnv",
    )
for _task in (AdditionTask(), MultiplyTask(), MultiSumTask()):
    if _task.name not in TASKS:
        # Addition keeps its own registration above (its fast env, and its vector env).
        register_task(_task, make_env=_task.name != "Addition")

__all__ = [
    "ENV_ID",
    "PAD_ID",
    "VOCAB",
    "VOCAB_SIZE",
    "AdditionEnv",
    "AdditionTask",
    "AdditionVectorEnv",
    "CriticalToken",
    "MultiSumTask",
    "MultiplyTask",
    "TASKS",
    "Task",
    "TaskEnv",
    "critical_tokens",
    "decode",
    "encode",
    "get_task",
    "parse_result",
    "prompt_text",
    "register_task",
    "sample_operands",
    "target_text",
]
