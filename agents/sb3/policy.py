"""Stable-Baselines3 actor-critic policies whose actor is a pre-trained causal LM.

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
tokens each, where :func:`agents.rl.rollout.collect_rollout` runs one cached token per step.
:func:`agents.bench.sb3_vs_cached_seconds_per_episode` measures the difference.

**Saving.** Keep the fine-tuned LM as a safetensors model directory
(``agents.lm.model.save_reference(policy.lm, ...)``; :func:`agents.sb3.train.train_sb3` writes one
to the run's ``checkpoint/``), which ``load_reference`` and every command load without running
code. ``model.save(path)`` also stores every weight in SB3's zip, and ``PPO.load(path)`` rebuilds
the policy from it, but it unpickles whatever the zip holds: load only a zip you made yourself.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from agents.kl import CERTAINTY_KINDS, KL_ESTIMATORS, certainty, check_prioritized, kl_estimate
from agents.lm.model import check_vocabulary, load_reference
from agents.rl.config import RLConfig
from agents.rl.policy import value_mlp
from agents.rl.weighting import KL_WEIGHTINGS, TokenBatch, check_weighting, compute_weights
from agents.sb3.kl_penalty import SB3_BATCH_FIELDS
from arith_gym.tokenizer import CHARACTERS, PAD_ID

KL_SETTINGS = (
    "kl_weighting",
    "kl_coef",
    "kl_estimator",
    "beta",
    "weight_floor",
    "certainty_kind",
    "certainty_temperature",
)
"""The policy's keywords of the KL to the reference, named as the RLConfig fields they mirror."""


def _load_lm(
    source: PreTrainedModel | PretrainedConfig | str | Path, what: str, vocab_size: int
) -> tuple[nn.Module, float]:
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
    check_vocabulary(model, vocab_size)
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
        if not isinstance(action_space, spaces.Discrete) or not 0 < action_space.n <= len(CHARACTERS):
            raise ValueError(
                f"the action space must be Discrete(V) (one character token, V <= {len(CHARACTERS)}), "
                f"got {action_space}"
            )
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"the observation space must be a 1-D Box of token ids, got {observation_space}")
        if (lm is None) == (lm_path is None):
            raise ValueError("pass exactly one of lm (a model) and lm_path (a model directory)")
        check_weighting(kl_weighting, SB3_BATCH_FIELDS, "SB3 backend")  # unknown names fail here too
        if kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"unknown kl_estimator {kl_estimator!r}; registered: {', '.join(KL_ESTIMATORS)}")
        if certainty_kind not in CERTAINTY_KINDS:
            raise ValueError(f"unknown certainty_kind {certainty_kind!r}; expected one of {CERTAINTY_KINDS}")
        if not kl_coef >= 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        if not certainty_temperature > 0:
            raise ValueError(f"certainty_temperature must be > 0, got {certainty_temperature}")
        check_prioritized(beta, weight_floor)
        # SB3's own heads would re-initialise (ortho_init) or bypass the LM: refuse them.
        if kwargs.pop("ortho_init", False):
            raise ValueError("ortho_init=True would overwrite the pre-trained LM weights; leave it False")
        if kwargs.pop("net_arch", None):
            raise ValueError(
                "net_arch is not used: the LM is the actor; size the value head with value_hidden"
            )
        if kwargs.pop("use_sde", False):
            raise ValueError("use_sde does not apply to a discrete token policy")

        vocab_size = int(action_space.n)  # the task's: its env's action space
        model, recorded = _load_lm(lm if lm is not None else lm_path, "lm", vocab_size)
        temperature = recorded if temperature is None else float(temperature)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        ref = None
        if reference is not None:
            ref = _load_lm(reference, "reference", vocab_size)[0]
        elif not KL_WEIGHTINGS[kl_weighting].zero:
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
        self.value_net = value_mlp(self.lm.config.hidden_size, self.value_hidden, self.activation_fn)
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
            **{name: getattr(self, name) for name in KL_SETTINGS},
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

    @property
    def weighting_config(self) -> RLConfig:
        """The settings the policy's KL weighting reads (:func:`agents.rl.weighting.compute_weights`)."""
        return RLConfig(temperature=self.temperature, **{name: getattr(self, name) for name in KL_SETTINGS})

    @torch.no_grad()
    def kl_terms(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor | np.ndarray,
        logp: torch.Tensor | None = None,
        action_masks: Any = None,
    ) -> dict[str, torch.Tensor]:
        """Per-step KL estimate ``kl`` ``[B]`` of ``actions`` played at ``obs``, with the ``actions``
        and what the KL weighting needs of the policy and the reference (``logp``, ``entropy``,
        ``ref_logp``, ``certainty``; see :mod:`agents.rl.weighting`).

        ``logp`` (the policy's log-probs of ``actions``, as returned by ``forward``) saves a
        policy forward pass, except for the ``"full"`` estimator and a weighting that reads the
        entropy. With a zero weighting (``none``) nothing is run and the KL is 0.
        """
        ids, lengths = self.tokens(obs)
        actions = torch.as_tensor(actions, device=ids.device).long().reshape(-1, 1)
        recorded = {"actions": actions.reshape(-1).cpu()}
        weighting = KL_WEIGHTINGS[self.kl_weighting]
        if weighting.zero:
            recorded["kl"] = torch.zeros(ids.shape[0])
            return recorded
        ref_logits = self.last_token(self.reference, ids, lengths, hidden=False)[0]
        ref_log_probs = torch.log_softmax(ref_logits / self.temperature, dim=-1)
        log_probs = None
        if logp is None or self.kl_estimator == "full" or "entropy" in weighting.needs:
            logits = self.last_token(self.lm, ids, lengths, hidden=False)[0]
            # The distribution's logits are normalised (and masked, if masks are given).
            log_probs = self._distribution(logits, action_masks).distribution.logits
            logp = log_probs.gather(-1, actions).squeeze(-1)
        ref_logp = ref_log_probs.gather(-1, actions).squeeze(-1)
        logp = logp.float().reshape(-1)
        recorded["kl"] = kl_estimate(self.kl_estimator, logp, ref_logp, log_probs, ref_log_probs).cpu()
        available = {
            "logp": lambda: logp,
            "ref_logp": lambda: ref_logp,
            "certainty": lambda: certainty(ref_logits, self.certainty_temperature, self.certainty_kind),
            "entropy": lambda: -(log_probs.exp() * log_probs.clamp(min=-1e30)).sum(-1),
        }
        for name in weighting.needs & available.keys():
            recorded[name] = available[name]().float().cpu()
        return recorded

    def kl_and_weights(
        self, obs: torch.Tensor, actions: torch.Tensor | np.ndarray, logp=None, action_masks=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step KL estimate and KL weight ``[B]`` of ``actions`` played at ``obs``, each step
        weighed on its own (as a one-token episode): what the penalty is for a weighting that scores
        each token alone (``uniform``, ``critical``); :class:`~agents.sb3.kl_penalty.KLRewardPenalty`
        weighs a whole rollout at once."""
        recorded = self.kl_terms(obs, actions, logp, action_masks)
        kl = recorded.pop("kl")
        columns = {name: values[:, None] for name, values in recorded.items()}
        batch = TokenBatch("SB3", mask=torch.ones(kl.shape[0], 1, dtype=torch.bool), **columns)
        return kl, compute_weights(self.kl_weighting, batch, self.weighting_config)[:, 0]

    def kl_penalty(self, obs, actions, logp=None, action_masks=None) -> torch.Tensor:
        """``kl_coef * w * KL`` per step ``[B]``, each step weighed on its own (:meth:`kl_and_weights`)."""
        kl, weights = self.kl_and_weights(obs, actions, logp, action_masks)
        return self.kl_coef * weights * kl


class LMActorCriticPolicy(_LMPolicyMixin, ActorCriticPolicy):
    """SB3 actor-critic policy whose actor is a causal LM (for ``PPO`` and ``A2C``).

    ``policy_kwargs``:

    - ``lm`` (a model object, deep-copied) or ``lm_path`` (a model directory, loaded with
      :func:`agents.lm.load_reference`): the pre-trained LM, arith_gym vocabulary;
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
