"""Stable-Baselines3 policies around a pre-trained causal LM, for ``arith_gym/Addition-v0``.

With these policies ``stable_baselines3.PPO`` / ``A2C`` and ``sb3_contrib.MaskablePPO``
fine-tune a language model on the token-level environment::

    from stable_baselines3 import PPO
    from agents.sb3 import LMActorCriticPolicy, make_sb3_env

    env = make_sb3_env(comfort_digits=3, split="plus1", n_envs=8)
    model = PPO(LMActorCriticPolicy, env, n_steps=256, batch_size=256, learning_rate=1e-5,
                policy_kwargs=dict(lm_path="path/to/reference-model"))
    model.learn(100_000)

The action distribution *is* the LM's next-token distribution ``softmax(logits / T)`` at the
last real token of the observation (no fresh action layer); a value MLP reads the LM's last
hidden state there. SB3's ``ortho_init`` is forced off, so construction never touches the
LM weights; every LM weight is in the optimizer. The policy trains its own deep copy of the
model it is given (the caller's object is left untouched).

Observations reach the policy as float batches of token ids (prompt + generated text,
left-aligned, ``PAD_ID`` after). A row's length is its number of non-pad tokens: the pad is
never inside a live episode's text, because playing it ends the episode. The batch is cut to
its longest row and run right-padded with an attention mask; logits and hidden state are
gathered at each row's last real token.

**Cost.** SB3 hands the policy one observation per step, so every step re-runs the LM over
the whole context (no KV cache): a T-token episode costs O(T) forward passes over up to T
tokens each, where :func:`agents.rollout.collect_rollout` runs one cached token per step.
:func:`sb3_vs_cached_seconds_per_episode` measures the difference. Use these policies for
SB3 compatibility (its algorithms, callbacks, logging, MaskablePPO); use ``agents.train``
for speed.

**KL to a reference.** SB3's ``train()`` has no hook for an extra loss term, and adding one
means copying its whole update loop (once for PPO, A2C and MaskablePPO each). So the
penalty goes into the reward instead, like ``kl_in="reward"`` of :mod:`agents.ppo`: on every
rollout step the :class:`KLRewardPenalty` callback subtracts ``kl_coef * w * KL`` of the
token just played from that step's reward, with ``KL`` the estimator ``kl_estimator`` of
KL(π ‖ π_ref) and ``w = kl_weights(kl_weighting, J, beta)``, ``J`` the reference's certainty
at ``certainty_temperature`` (see :mod:`agents.kl`). :class:`KLPPO`, :class:`KLA2C` and
:class:`KLMaskablePPO` add that callback by themselves whenever the policy's
``kl_weighting`` is not ``"none"``; with the plain algorithms, pass
``callback=KLRewardPenalty()`` to ``learn``. The episode rewards SB3 logs (``ep_rew_mean``,
from ``Monitor``) stay the task's; the callback logs ``kl/*`` means. The penalty costs one
reference forward per step (plus one policy forward for the ``"full"`` estimator).

**Saving.** ``model.save(path)`` stores all weights (LM, value head, reference) in the zip;
``PPO.load(path)`` (or ``KLPPO.load``, to keep the penalty) rebuilds the policy from the
saved ``policy_kwargs`` and then loads those weights. With ``lm_path`` the directory must
still exist at load time; an ``lm`` object is pickled into the zip's metadata as well, so
prefer ``lm_path`` for large models.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import VecEnv
from torch import nn
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

import arith_gym  # noqa: F401  (registers the environment)
from agents.kl import CERTAINTY_KINDS, KL_ESTIMATORS, WEIGHTINGS, certainty, kl_estimate, kl_weights
from agents.model import check_vocabulary, load_reference
from arith_gym.tokenizer import PAD_ID, VOCAB_SIZE

ENV_ID = "arith_gym/Addition-v0"

# --------------------------------------------------------------------------- environment


class ForbidPad(gym.Wrapper):
    """Adds ``action_masks()`` (for MaskablePPO): every token allowed except the pad token.

    Playing the pad ends an episode as wrong; masking it keeps episodes going until the
    answer line is written or the step limit is reached.
    """

    def action_masks(self) -> np.ndarray:
        mask = np.ones(VOCAB_SIZE, dtype=bool)
        mask[PAD_ID] = False
        return mask


def make_sb3_env(
    comfort_digits: int = 3,
    split: str = "plus1",
    n_envs: int = 1,
    seed: int | None = None,
    forbid_pad: bool = False,
    **env_kwargs: Any,
) -> VecEnv:
    """An SB3 ``VecEnv`` (``DummyVecEnv`` of ``Monitor``-wrapped envs) of ``arith_gym/Addition-v0``.

    ``forbid_pad=True`` wraps each env in :class:`ForbidPad` (action masks for MaskablePPO);
    ``env_kwargs`` go to the env (``reward_mode``, ``max_episode_steps``, ...).
    """
    return make_vec_env(
        ENV_ID,
        n_envs=n_envs,
        seed=seed,
        # SB3 asks for render_mode="rgb_array" unless told otherwise; this env renders text only.
        env_kwargs={"render_mode": None, **env_kwargs, "comfort_digits": comfort_digits, "split": split},
        wrapper_class=ForbidPad if forbid_pad else None,
    )


# --------------------------------------------------------------------------- policies


def _load_lm(source: PreTrainedModel | PretrainedConfig | str | Path, what: str) -> tuple[nn.Module, float]:
    """A private copy of ``source`` and its recorded temperature (1.0 when none is recorded).

    ``source``: a model object (deep-copied), a model directory (``load_reference``) or a
    transformers config (a fresh model; its weights are expected from a state dict).
    """
    if isinstance(source, (str, Path)):
        model, task = load_reference(source)
        temperature = task.temperature
    elif isinstance(source, PretrainedConfig):
        model, temperature = AutoModelForCausalLM.from_config(source), 1.0
    elif isinstance(source, nn.Module):
        model, temperature = copy.deepcopy(source), 1.0
    else:
        raise TypeError(f"{what} must be a model, a model directory or a config, got {type(source).__name__}")
    check_vocabulary(model)
    return model, temperature


def _enable_activation_checkpointing(model: PreTrainedModel) -> None:
    """Recompute the layers in the backward pass (transformers renamed the method in v5)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class _LMPolicyMixin:
    """What the plain and the maskable LM policies share; see :class:`LMActorCriticPolicy`."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        lm: PreTrainedModel | PretrainedConfig | None = None,
        lm_path: str | Path | None = None,
        temperature: float | None = None,
        value_hidden: tuple[int, ...] = (128, 128),
        kl_weighting: str = "none",
        kl_coef: float = 5.0,
        kl_estimator: str = "k2",
        beta: float = 150.0,
        weight_floor: float = 0.0,
        certainty_kind: str = "negentropy",
        certainty_temperature: float = 4.0,
        reference: PreTrainedModel | PretrainedConfig | str | Path | None = None,
        gradient_checkpointing: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete) or action_space.n != VOCAB_SIZE:
            raise ValueError(
                f"the action space must be Discrete({VOCAB_SIZE}) (one token), got {action_space}"
            )
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"the observation space must be a 1-D Box of token ids, got {observation_space}")
        if (lm is None) == (lm_path is None):
            raise ValueError("pass exactly one of lm (a model) and lm_path (a model directory)")
        if kl_weighting not in WEIGHTINGS:
            raise ValueError(f"unknown kl_weighting {kl_weighting!r}; expected one of {WEIGHTINGS}")
        if kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"unknown kl_estimator {kl_estimator!r}; expected one of {KL_ESTIMATORS}")
        if certainty_kind not in CERTAINTY_KINDS:
            raise ValueError(f"unknown certainty_kind {certainty_kind!r}; expected one of {CERTAINTY_KINDS}")
        if not kl_coef >= 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        if not certainty_temperature > 0:
            raise ValueError(f"certainty_temperature must be > 0, got {certainty_temperature}")
        # kl_weights validates beta and weight_floor (with a dummy certainty for "critical").
        kl_weights(kl_weighting, torch.ones(()) if kl_weighting == "critical" else None, beta, weight_floor)
        # SB3's own heads would re-initialise (ortho_init) or bypass the LM: refuse them.
        if kwargs.pop("ortho_init", False):
            raise ValueError("ortho_init=True would overwrite the pre-trained LM weights; leave it False")
        if kwargs.pop("net_arch", None):
            raise ValueError(
                "net_arch is not used: the LM is the actor; size the value head with value_hidden"
            )
        if kwargs.pop("use_sde", False):
            raise ValueError("use_sde does not apply to a discrete token policy")

        model, recorded = _load_lm(lm if lm is not None else lm_path, "lm")
        temperature = recorded if temperature is None else float(temperature)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        ref = None
        if reference is not None:
            ref = _load_lm(reference, "reference")[0]
        elif kl_weighting != "none":
            ref = copy.deepcopy(model)  # the initial LM, frozen
        if ref is not None:
            ref.requires_grad_(False).eval()

        self.temperature = temperature
        self.value_hidden = tuple(value_hidden)
        self.kl_weighting, self.kl_coef, self.kl_estimator = kl_weighting, float(kl_coef), kl_estimator
        self.beta, self.weight_floor = float(beta), float(weight_floor)
        self.certainty_kind, self.certainty_temperature = certainty_kind, float(certainty_temperature)
        self.gradient_checkpointing = bool(gradient_checkpointing)
        if self.gradient_checkpointing:
            # Only in training mode (SB3's update); rollouts run without gradients anyway.
            _enable_activation_checkpointing(model)
        # Modules cannot be attributes before nn.Module.__init__ (inside super().__init__);
        # _build, which that calls, registers them.
        self._pending_modules = (model, ref)
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch=[], ortho_init=False, **kwargs
        )

    # ------------------------------------------------------------------ construction

    def _build_mlp_extractor(self) -> None:
        """No SB3 MLP extractor: the LM extracts the features, for the actor and the critic."""

    def _build(self, lr_schedule: Schedule) -> None:
        """The LM, the frozen reference, the value head and the optimizer; no SB3 heads, no init."""
        self.lm, self.reference = self._pending_modules
        del self._pending_modules
        layers: list[nn.Module] = []
        width = self.lm.config.hidden_size
        for hidden in self.value_hidden:
            layers += [nn.Linear(width, hidden), self.activation_fn()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.value_net = nn.Sequential(*layers)
        trainable = [p for p in self.parameters() if p.requires_grad]  # all but the reference
        self.optimizer = self.optimizer_class(trainable, lr=lr_schedule(1), **self.optimizer_kwargs)

    def train(self, mode: bool = True):
        """Train/eval mode for the LM and value head; the reference always stays in eval mode."""
        super().train(mode)
        if self.reference is not None:
            self.reference.eval()
        return self

    def _get_constructor_parameters(self) -> dict[str, Any]:
        """For ``policy.save``/``load``: configs instead of models (the weights are in the state dict)."""
        data = super()._get_constructor_parameters()
        data.update(
            lm=self.lm.config,
            temperature=self.temperature,
            value_hidden=self.value_hidden,
            kl_weighting=self.kl_weighting,
            kl_coef=self.kl_coef,
            kl_estimator=self.kl_estimator,
            beta=self.beta,
            weight_floor=self.weight_floor,
            certainty_kind=self.certainty_kind,
            certainty_temperature=self.certainty_temperature,
            gradient_checkpointing=self.gradient_checkpointing,
            reference=None if self.reference is None else self.reference.config,
        )
        data.pop("use_sde", None)
        return data

    # ------------------------------------------------------------------ the LM at the last token

    @staticmethod
    def tokens(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``[B, W]`` (cut to the longest row) and lengths ``[B]`` of an observation batch."""
        ids = obs.round().long() if obs.is_floating_point() else obs.long()
        lengths = (ids != PAD_ID).sum(dim=1).clamp(min=1)
        return ids[:, : int(lengths.max())], lengths

    @staticmethod
    def last_token(
        model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, hidden: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``model``'s float logits ``[B, V]`` (and last hidden state ``[B, H]``) at each row's last token."""
        batch, width = ids.shape
        positions = torch.arange(width, device=ids.device).expand(batch, width)
        attention = (positions < lengths[:, None]).long()
        out = model(
            input_ids=ids, attention_mask=attention, position_ids=positions, output_hidden_states=hidden
        )
        rows, last = torch.arange(batch, device=ids.device), lengths - 1
        state = out.hidden_states[-1][rows, last] if hidden else None
        return out.logits[rows, last].float(), state

    def _distribution(self, logits: torch.Tensor, action_masks: Any = None) -> Distribution:
        """SB3's distribution for ``Categorical(logits=logits / T)``, masked if masks are given."""
        scaled = logits / self.temperature
        if action_masks is not None and not isinstance(self.action_dist, MaskableDistribution):
            allowed = torch.as_tensor(action_masks, device=scaled.device).reshape(scaled.shape).bool()
            scaled = scaled.masked_fill(~allowed, float("-inf"))
        distribution = self.action_dist.proba_distribution(action_logits=scaled)
        if action_masks is not None and isinstance(distribution, MaskableDistribution):
            distribution.apply_masking(action_masks)
        return distribution

    def _actor_critic(self, obs: torch.Tensor, action_masks: Any = None) -> tuple[Distribution, torch.Tensor]:
        ids, lengths = self.tokens(obs)
        logits, state = self.last_token(self.lm, ids, lengths)
        return self._distribution(logits, action_masks), self.value_net(state.float())

    # ------------------------------------------------------------------ SB3's policy API

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False, action_masks: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions ``[B]``, values ``[B, 1]`` and log-probs ``[B]`` (the rollout step)."""
        distribution, values = self._actor_critic(obs, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions.reshape((-1, *self.action_space.shape)), values, distribution.log_prob(actions)

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor, action_masks: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values ``[B, 1]``, log-probs ``[B]`` of ``actions`` and entropies ``[B]`` (the update)."""
        distribution, values = self._actor_critic(obs, action_masks)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: torch.Tensor, action_masks: Any = None) -> Distribution:
        ids, lengths = self.tokens(obs)
        return self._distribution(self.last_token(self.lm, ids, lengths, hidden=False)[0], action_masks)

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        ids, lengths = self.tokens(obs)
        return self.value_net(self.last_token(self.lm, ids, lengths)[1].float())

    # ------------------------------------------------------------------ KL to the reference

    @torch.no_grad()
    def kl_terms(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor | np.ndarray,
        logp: torch.Tensor | None = None,
        action_masks: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step KL estimate and KL weight ``[B]`` of ``actions`` played at ``obs``.

        ``logp`` (the policy's log-probs of ``actions``, as returned by ``forward``) saves a
        policy forward pass, except for the ``"full"`` estimator. Weights are 0 for
        ``kl_weighting="none"`` (then the KL estimate is 0 as well: no reference is run).
        """
        ids, lengths = self.tokens(obs)
        actions = torch.as_tensor(actions, device=ids.device).long().reshape(-1, 1)
        if self.kl_weighting == "none":
            zeros = torch.zeros(ids.shape[0], device=ids.device)
            return zeros, zeros
        ref_logits = self.last_token(self.reference, ids, lengths, hidden=False)[0]
        ref_log_probs = torch.log_softmax(ref_logits / self.temperature, dim=-1)
        log_probs = None
        if logp is None or self.kl_estimator == "full":
            logits = self.last_token(self.lm, ids, lengths, hidden=False)[0]
            # The distribution's logits are normalised (and masked, if masks are given).
            log_probs = self._distribution(logits, action_masks).distribution.logits
            logp = log_probs.gather(-1, actions).squeeze(-1)
        kl = kl_estimate(
            self.kl_estimator,
            logp.float().reshape(-1),
            ref_log_probs.gather(-1, actions).squeeze(-1),
            log_probs,
            ref_log_probs,
        )
        j = certainty(ref_logits, self.certainty_temperature, self.certainty_kind)
        weights = kl_weights(self.kl_weighting, j, self.beta, self.weight_floor)
        return kl, weights

    def kl_penalty(self, obs, actions, logp=None, action_masks=None) -> torch.Tensor:
        """``kl_coef * w * KL`` per step ``[B]``: what :class:`KLRewardPenalty` takes off the reward."""
        kl, weights = self.kl_terms(obs, actions, logp, action_masks)
        return self.kl_coef * weights * kl


class LMActorCriticPolicy(_LMPolicyMixin, ActorCriticPolicy):
    """SB3 actor-critic policy whose actor is a causal LM (for ``PPO`` and ``A2C``).

    ``policy_kwargs``:

    - ``lm`` (a model object, deep-copied) or ``lm_path`` (a model directory, loaded with
      :func:`agents.model.load_reference`): the pre-trained LM, arith_gym vocabulary;
    - ``temperature``: the policy samples and is trained at ``softmax(logits / T)``; default
      the model directory's recorded temperature, else 1.0;
    - ``value_hidden=(128, 128)``: the value MLP's hidden widths (``activation_fn``, default tanh);
    - KL to the reference (a reward penalty, see the module docstring): ``kl_weighting``
      (``none``, ``uniform``, ``critical``; default ``none``), ``kl_coef=5.0``,
      ``kl_estimator="k2"``, ``beta=150``, ``weight_floor=0``, ``certainty_kind="negentropy"``,
      ``certainty_temperature=4.0``, ``reference`` (model, directory or config; default a
      frozen deep copy of the initial LM);
    - ``gradient_checkpointing=False``: recompute the LM's layers in the backward pass
      instead of storing them. Every step of an SB3 minibatch is a whole context, so a
      minibatch of a few thousand steps needs this to fit in memory (about a third more
      compute).

    The usual SB3 optimizer arguments (``optimizer_class``, ``optimizer_kwargs``) apply.
    ``ortho_init=True``, ``net_arch`` and ``use_sde=True`` raise ``ValueError``.
    """


class MaskableLMActorCriticPolicy(_LMPolicyMixin, MaskableActorCriticPolicy):
    """:class:`LMActorCriticPolicy` for ``sb3_contrib.MaskablePPO`` (masks from e.g. :class:`ForbidPad`)."""


# --------------------------------------------------------------------------- KL penalty


class KLRewardPenalty(BaseCallback):
    """On every rollout step, takes the policy's ``kl_coef * w * KL`` off that step's reward.

    Works with PPO, A2C and MaskablePPO (it edits the ``rewards`` array of
    ``collect_rollouts`` in place, before it goes into the rollout buffer). Logs the means
    ``kl/estimate``, ``kl/weight`` and ``kl/penalty``.
    """

    def _on_step(self) -> bool:
        policy = self.model.policy
        if getattr(policy, "kl_weighting", "none") == "none":
            return True
        kl, weights = policy.kl_terms(
            self.locals["obs_tensor"],
            self.locals["actions"],
            self.locals.get("log_probs"),
            self.locals.get("action_masks"),
        )
        penalty = policy.kl_coef * weights * kl
        self.locals["rewards"] -= penalty.cpu().numpy().astype(self.locals["rewards"].dtype)
        self.logger.record_mean("kl/estimate", float(kl.mean()))
        self.logger.record_mean("kl/weight", float(weights.mean()))
        self.logger.record_mean("kl/penalty", float(penalty.mean()))
        return True


def with_kl_penalty(policy: nn.Module, callback: Any = None) -> Any:
    """``callback`` with :class:`KLRewardPenalty` in front, if ``policy``'s KL weighting is not none."""
    if getattr(policy, "kl_weighting", "none") == "none":
        return callback
    if callback is None:
        callbacks = []
    elif isinstance(callback, list):
        callbacks = list(callback)
    elif isinstance(callback, BaseCallback):
        callbacks = [callback]
    else:
        callbacks = [ConvertCallback(callback)]
    return [KLRewardPenalty(), *callbacks]


class _KLLearnMixin:
    def learn(self, total_timesteps: int, callback: Any = None, **kwargs: Any):
        """SB3's ``learn`` (keyword arguments only after ``callback``), with the KL reward penalty."""
        return super().learn(total_timesteps, callback=with_kl_penalty(self.policy, callback), **kwargs)


class KLPPO(_KLLearnMixin, PPO):
    """``PPO`` that applies the LM policy's KL penalty (:class:`KLRewardPenalty`) by itself."""


class KLA2C(_KLLearnMixin, A2C):
    """``A2C`` that applies the LM policy's KL penalty (:class:`KLRewardPenalty`) by itself."""


class KLMaskablePPO(_KLLearnMixin, MaskablePPO):
    """``MaskablePPO`` that applies the LM policy's KL penalty (:class:`KLRewardPenalty`) by itself."""


# --------------------------------------------------------------------------- speed


class _EpisodeCounter(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.episodes = 0

    def _on_step(self) -> bool:
        self.episodes += int(np.sum(self.locals["dones"]))
        return True


def sb3_vs_cached_seconds_per_episode(
    size: str = "micro",
    comfort_digits: int = 3,
    split: str = "plus1",
    episodes: int = 16,
    seed: int = 0,
    no_pad: bool = True,
) -> dict[str, float]:
    """Seconds per episode: an SB3 PPO rollout with :class:`LMActorCriticPolicy` vs
    :func:`agents.rollout.collect_rollout` (KV cache), same model, ``episodes`` envs in parallel.

    ``no_pad=True`` masks the pad logit of the (randomly initialised) model, as
    ``agents.bench`` does, so that episodes run their full length like a trained model's
    instead of ending at a random pad. ``collect_rollout`` always runs the reference model
    too; SB3 is timed without (``sb3``) and with a KL penalty (``sb3_kl``: one reference
    forward per step), with ``n_steps`` = the env's step limit (about one episode per env).
    """
    from agents.bench import NoPadLM, _policy
    from agents.episodes import make_vector_env
    from agents.model import build_model
    from agents.policy import LMPolicy
    from agents.rollout import collect_rollout

    torch.manual_seed(seed)
    lm = build_model(size, seed=seed).eval()
    if no_pad:
        lm = NoPadLM(lm).eval()
    results: dict[str, float] = {}

    env = make_vector_env(episodes, comfort_digits, split)
    policy = _policy(lm) if no_pad else LMPolicy(lm, temperature=1.0)
    started = time.perf_counter()
    rollout = collect_rollout(policy, lm, env, torch.Generator().manual_seed(seed), seed=seed)
    seconds = time.perf_counter() - started
    results["cached_seconds_per_episode"] = seconds / episodes
    results["cached_tokens_per_episode"] = rollout.num_tokens / episodes
    env.close()

    for name, weighting in (("sb3", "none"), ("sb3_kl", "uniform")):
        vec_env = make_sb3_env(comfort_digits, split, n_envs=episodes, seed=seed)
        steps = vec_env.get_attr("config")[0].max_episode_steps
        model = PPO(
            LMActorCriticPolicy,
            vec_env,
            n_steps=steps,
            batch_size=steps * episodes,
            seed=seed,
            device="cpu",
            policy_kwargs=dict(lm=lm, temperature=1.0, kl_weighting=weighting),
        )
        counter = _EpisodeCounter()
        _, callback = model._setup_learn(steps * episodes, with_kl_penalty(model.policy, [counter]))
        started = time.perf_counter()
        model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=steps)
        seconds = time.perf_counter() - started
        results[f"{name}_seconds_per_episode"] = seconds / max(counter.episodes, 1)
        results[f"{name}_tokens_per_episode"] = steps * episodes / max(counter.episodes, 1)
        vec_env.close()
    cached = results["cached_seconds_per_episode"]
    for name in ("sb3", "sb3_kl"):
        results[f"{name}_slowdown"] = results[f"{name}_seconds_per_episode"] / cached
    return results


# --------------------------------------------------------------------------- training from an RLConfig

SB3_ALGOS = ("sb3-ppo", "sb3-a2c")


class _EpisodeBudget(BaseCallback):
    """Stops training at the first rollout that would start with ``total`` episodes done, and
    evaluates the LM before the first rollout and whenever an update brings the episode count
    past the next multiple of ``every``, into ``metrics.csv``."""

    def __init__(self, evaluate: Any, log_row: Any, every: int, total: int) -> None:
        super().__init__()
        self.evaluate, self.log_row, self.every, self.total = evaluate, log_row, every, total
        self.rollouts, self.episodes, self.next_evaluation = 0, 0, 0
        self.spent = False
        self.started: float | None = None

    def _on_rollout_start(self) -> None:
        # Called before each rollout, i.e. after the previous rollout's update.
        self.spent = self.episodes >= self.total
        if not self.spent:  # the final row is logged by the caller, after learn() returns
            self.log(evaluate=self.episodes >= self.next_evaluation)

    def log(self, evaluate: bool) -> None:
        row: dict[str, float] = {"update": self.rollouts, "episodes": self.episodes}
        if self.started is not None:  # rollouts + updates since the last row, evaluations excluded
            row["update_seconds"] = time.perf_counter() - self.started
        if evaluate:
            row.update(self.evaluate())
            self.next_evaluation = (self.episodes // self.every + 1) * self.every
        if evaluate or self.rollouts == 0:
            self.log_row(row)
            self.started = time.perf_counter()

    def _on_step(self) -> bool:
        if self.spent:  # returning False ends learn() before this partial rollout trains
            return False
        self.episodes += int(np.sum(self.locals["dones"]))
        return True

    def _on_rollout_end(self) -> None:
        if not self.spent:
            self.rollouts += 1


def train_sb3(
    config: Any,
    run_dir: str | Path,
    reference_dir: str | Path,
    algo: str = "sb3-ppo",
    n_envs: int = 16,
    on_update: Any = None,
    max_batch_steps: int = 128,
) -> Path:
    """Fine-tune ``reference_dir`` with SB3's PPO or A2C and an :class:`LMActorCriticPolicy`,
    mapping an :class:`agents.config.RLConfig` onto SB3's arguments.

    The budget is ``config.total_episodes`` episodes: training stops at the first rollout
    boundary past it (``metrics.csv`` records the episodes actually finished). Both aim at
    as many gradient steps per episode as :mod:`agents.train`, on as many tokens, with Adam:

    - ``sb3-ppo``: each rollout holds about ``config.episodes_per_update`` episodes
      (``n_envs``, at most that many, envs times enough steps for their mean length),
      trained for ``config.update_epochs`` epochs of ``config.minibatches`` minibatches;
    - ``sb3-a2c``: A2C takes one gradient step per rollout, on the whole rollout, so its
      rollouts hold about ``episodes_per_update / minibatches`` episodes; Adam
      (``use_rms_prop=False``), not SB3's default RMSprop.

    But SB3 re-runs each step's whole context in the update, so a gradient step holds at
    most ``max_batch_steps`` steps (PPO minibatches, A2C rollouts), with gradient
    checkpointing: with minibatches of 8 episodes (about 1,250 steps of the shipped model's
    ``plus1`` task) a worker outgrew 14 GB and was killed. Under the cap SB3 takes more,
    smaller gradient steps per episode than :mod:`agents.train`.

    Evaluation is ``agents.evaluate.rl_evaluation``, as in ``agents.train``, every
    ``config.eval_every * config.episodes_per_update`` episodes (checked after each update)
    and at the end. The KL always goes in the reward (SB3 has no hook for a loss term),
    whatever ``config.kl_in`` says.

    Raises:
        ValueError: an unknown ``algo``, or settings SB3 cannot express (``oracle_critical``,
            ``entropy_topk``, KL-Cov).
    """
    from agents.evaluate import rl_evaluation
    from agents.train import append_row
    from arith_gym.env import EnvConfig
    from arith_gym.operands import sample_operands
    from arith_gym.scratchpad import target_text

    if algo not in SB3_ALGOS:
        raise ValueError(f"unknown SB3 algorithm {algo!r}; expected one of {SB3_ALGOS}")
    if config.kl_weighting not in WEIGHTINGS or config.pg_tokens != "all" or config.kl_cov_fraction > 0:
        raise ValueError(
            "SB3 runs support the KL weightings none/uniform/critical only "
            "(no oracle_critical, entropy_topk or kl_cov)"
        )
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    _, task = load_reference(reference_dir)
    temperature = config.temperature if config.temperature is not None else task.temperature
    (run / "config.json").write_text(config.with_overrides(temperature=temperature).to_json())
    (run / "reference.txt").write_text(str(Path(reference_dir).resolve()) + "\n")
    rng = np.random.default_rng(config.seed)
    mean_length = np.mean(
        [len(target_text(*sample_operands(rng, config.split, task.comfort_digits))) for _ in range(256)]
    )
    # No more envs than episodes per update: each env then ends about one episode per rollout.
    n_envs = min(n_envs, config.episodes_per_update)
    env = make_sb3_env(task.comfort_digits, config.split, n_envs=n_envs, seed=config.seed)
    policy_kwargs = dict(
        lm_path=str(reference_dir),
        temperature=temperature,
        value_hidden=config.value_hidden,
        kl_weighting=config.kl_weighting,
        kl_coef=config.kl_coef,
        kl_estimator=config.kl_estimator,
        beta=config.beta,
        weight_floor=config.weight_floor,
        certainty_kind=config.certainty_kind,
        certainty_temperature=config.certainty_temperature,
        gradient_checkpointing=True,
    )
    common = dict(
        learning_rate=config.lr,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        ent_coef=config.entropy_coef,
        vf_coef=config.value_coef,
        max_grad_norm=config.max_grad_norm,
        normalize_advantage=config.normalize_advantages,
        seed=config.seed,
        device="cpu",
        policy_kwargs=policy_kwargs,
    )
    if algo == "sb3-ppo":
        n_steps = int(np.ceil(config.episodes_per_update * mean_length / n_envs))
        model = KLPPO(
            LMActorCriticPolicy,
            env,
            n_steps=n_steps,
            batch_size=min(int(np.ceil(n_steps * n_envs / config.minibatches)), max_batch_steps),
            n_epochs=config.update_epochs,
            clip_range=config.clip_coef,
            **common,
        )
    else:
        n_steps = int(np.ceil(config.episodes_per_update / config.minibatches * mean_length / n_envs))
        n_steps = max(1, min(n_steps, max_batch_steps // n_envs))
        model = KLA2C(LMActorCriticPolicy, env, n_steps=n_steps, use_rms_prop=False, **common)

    def evaluate() -> dict[str, float]:
        lm = model.policy.lm
        lm.eval()
        metrics = rl_evaluation(
            lm,
            task.comfort_digits,
            config.split,
            temperature,
            config.eval_episodes,
            seed=_eval_seed(config.seed),
            greedy=config.eval_greedy,
        )
        model.policy.train()
        return metrics

    def log_row(row: dict[str, float]) -> None:
        append_row(run / "metrics.csv", row)
        if on_update is not None and row["update"] > 0:
            on_update(row)

    every = config.eval_every * config.episodes_per_update
    callback = _EpisodeBudget(evaluate, log_row, every, config.total_episodes)
    # The callback stops at the budget; SB3 wants a step count: a bound with every episode at
    # the step limit, plus the envs' unfinished episodes and one rollout of spill-over.
    step_limit = EnvConfig.from_kwargs(task.comfort_digits, config.split).max_episode_steps
    most_steps = (config.total_episodes + n_envs + config.episodes_per_update) * step_limit
    model.learn(total_timesteps=most_steps, callback=callback)
    callback.log(evaluate=True)  # after the last update
    model.save(run / "sb3_model.zip")
    env.close()
    return run


def _eval_seed(seed: int) -> int:
    from agents.train import EVAL_STREAM, derived_seed

    return derived_seed(seed, EVAL_STREAM)
