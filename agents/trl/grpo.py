"""Any registered KL weighting for TRL's ``GRPOTrainer``, for any transformers causal LM.

:class:`WeightedKLGRPOTrainer` changes one thing in TRL's GRPO loss: the KL term of each
completion token is multiplied by a weight ``w`` from a registered KL weighting
(:mod:`agents.rl.weighting`: ``uniform``: 1, TRL's own loss; ``critical``: ``J^beta`` with J the
reference's certainty at that token, taken at ``certainty_temperature``; ``none``: 0; a plug-in's).
Everything else is TRL's: generation, rewards, advantages, clipping, the KL estimator (k3) and
the loss aggregation of its ``loss_type``.

How: each generated batch becomes a :class:`~agents.rl.weighting.TokenBatch` (the completion
tokens, the groups of ``num_generations`` completions of one prompt, the rewards at each
completion's last token, the advantages, and, when the weighting reads them, one forward of the
reference (certainty) and of the policy (log-probs, entropy), and the env's critical labels of
each completion replayed in the task's env (``critical_labels``)); the weights are stored with the
batch as ``kl_weights``. At the loss, TRL computes its loss with ``beta = 0``
(no KL), and the weighted KL is added aggregated exactly as TRL aggregates its per-token loss
for that ``loss_type`` (the aggregations are linear, so this equals TRL's loss with ``w * KL``
in place of ``KL``; with ``w = 1`` it is TRL's loss, which a test checks).
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer

from agents.kl import certainty, kl_k3
from agents.rl.config import RLConfig
from agents.rl.weighting import KL_WEIGHTINGS, TokenBatch, check_weighting, compute_weights
from agents.trl.task import CriticalLabels, positions_from_attention_mask

SUPPORTED_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo")
TRL_BATCH_FIELDS = frozenset({"logp", "entropy", "ref_logp", "certainty", "rewards", "groups", "advantages"})
"""What a TRL generation batch gives a KL weighting (no critic; the env's critical labels only with
``critical_labels``: :data:`TRL_TASK_FIELDS`)."""
TRL_TASK_FIELDS = TRL_BATCH_FIELDS | {"critical"}
"""What it gives when the trainer replays completions in the task's env (``critical_labels``)."""


class WeightedKLGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with a per-token KL weight (see the module docstring).

    Args:
        kl_weighting: a registered KL weighting (:data:`agents.rl.weighting.KL_WEIGHTINGS`).
        kl_beta: the exponent beta of ``J^beta`` (TRL's ``beta`` stays the KL coefficient).
        certainty_kind: ``negentropy`` or ``max_prob`` (:func:`agents.kl.certainty`).
        certainty_temperature: the temperature at which the reference's certainty is taken.
        weight_floor: the smallest weight (:func:`agents.kl.prioritized_weights`).
        weighting_config: the settings the weighting reads (default: an ``RLConfig`` of the
            arguments above); overrides them when given.
        critical_labels: the env's critical-token labels of each completion
            (:class:`agents.trl.task.CriticalLabels`), for a weighting that reads them; the train
            dataset then needs its ``operands`` column (:func:`agents.trl.task.problem_dataset`).
        Everything else goes to ``GRPOTrainer``.
    """

    def __init__(
        self,
        *args: Any,
        kl_weighting: str = "critical",
        kl_beta: float = 150.0,
        certainty_kind: str = "negentropy",
        certainty_temperature: float = 1.0,
        weight_floor: float = 0.0,
        weighting_config: RLConfig | None = None,
        critical_labels: CriticalLabels | None = None,
        **kwargs: Any,
    ) -> None:
        if weighting_config is None:  # bad settings fail here, before TRL starts
            weighting_config = RLConfig(
                kl_weighting=kl_weighting,
                beta=kl_beta,
                weight_floor=weight_floor,
                certainty_kind=certainty_kind,
                certainty_temperature=certainty_temperature,
            )
        provides = TRL_BATCH_FIELDS if critical_labels is None else TRL_TASK_FIELDS
        check_weighting(weighting_config.kl_weighting, provides, "TRL backend")
        super().__init__(*args, **kwargs)
        if self.loss_type not in SUPPORTED_LOSS_TYPES:
            raise ValueError(
                f"loss_type {self.loss_type!r} is not supported; use one of {SUPPORTED_LOSS_TYPES}"
            )
        columns = getattr(self.train_dataset, "column_names", None)
        if critical_labels is not None and columns is not None and "operands" not in columns:
            raise ValueError(
                "critical_labels replays each completion's problem: the train dataset needs an "
                "'operands' column (agents.trl.problem_dataset has it)"
            )
        if self.ref_model is not None:  # TRL loads it afresh from the model's path: without our hook
            positions_from_attention_mask(self.ref_model)
        self.weighting_config = weighting_config
        self.kl_weighting = weighting_config.kl_weighting
        self.critical_labels = critical_labels
        self._rewards: torch.Tensor | None = None
        self._critical: torch.Tensor | None = None

    # ----------------------------------------------------------------- the weights

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Kept for a weighting that reads the rewards (the reward functions' weighted sum, as TRL's).
        weights = self.reward_weights.to(rewards_per_func.device)
        self._rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        return rewards_per_func

    @torch.no_grad()
    def token_batch(self, batch: dict[str, torch.Tensor]) -> TokenBatch:
        """A generated batch as the weighting sees it (only the fields it ``needs`` are computed)."""
        completion_ids = batch["completion_ids"]
        mask = batch["completion_mask"].bool()
        needs = KL_WEIGHTINGS[self.kl_weighting].needs
        fields: dict[str, torch.Tensor] = {}
        config = self.weighting_config
        if needs & {"certainty", "ref_logp"}:
            reference = self.ref_model if self.ref_model is not None else self.model
            logits = self._completion_logits(reference, batch)
            fields["certainty"] = certainty(logits, config.certainty_temperature, config.certainty_kind)
            log_probs = torch.log_softmax(logits / self.temperature, dim=-1)
            fields["ref_logp"] = log_probs.gather(-1, completion_ids[..., None]).squeeze(-1)
        if needs & {"logp", "entropy"}:
            log_probs = torch.log_softmax(
                self._completion_logits(self.model, batch) / self.temperature, dim=-1
            )
            fields["logp"] = log_probs.gather(-1, completion_ids[..., None]).squeeze(-1)
            fields["entropy"] = -(log_probs.exp() * log_probs).sum(-1)
        if "groups" in needs:
            rows = torch.arange(completion_ids.shape[0], device=completion_ids.device)
            fields["groups"] = rows // self.num_generations
        if "rewards" in needs:
            rewards = torch.zeros(mask.shape, device=mask.device)
            last = (mask.sum(dim=1) - 1).clamp(min=0)
            episode = self._rewards.to(mask.device)[-mask.shape[0] :]  # this process's completions
            rewards[torch.arange(mask.shape[0], device=mask.device), last] = episode.float()
            fields["rewards"] = rewards * mask
        if "advantages" in needs:
            fields["advantages"] = batch["advantages"].float().unsqueeze(1).expand(mask.shape) * mask
        if "critical" in needs:
            fields["critical"] = self._critical.to(mask.device) & mask
        return TokenBatch(
            "TRL", mask=mask, actions=completion_ids, **{k: fields[k] for k in needs & fields.keys()}
        )

    def _completion_logits(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``model``'s float logits ``[B, T, V]`` at each completion token of ``batch``."""
        prompt_ids, completion_ids = batch["prompt_ids"], batch["completion_ids"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits
        # The logits at the last prompt token predict the first completion token, and so on.
        return logits[:, prompt_ids.shape[1] - 1 : -1].float()

    @torch.no_grad()
    def token_kl_weights(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, T]`` KL weights of a generated batch's completion tokens (0 off the completion mask)."""
        return compute_weights(self.kl_weighting, self.token_batch(batch), self.weighting_config)

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if self.critical_labels is not None and "critical" in KL_WEIGHTINGS[self.kl_weighting].needs:
            # This process's rows, in the order they were generated (one per input row). A row's
            # replay ends at its end-of-sequence token, so the padding after it is never critical.
            labels = [
                self.critical_labels(row["operands"], ids)
                for row, ids in zip(inputs, batch["completion_ids"].tolist(), strict=True)
            ]
            self._critical = torch.tensor(labels, dtype=torch.bool).reshape(batch["completion_ids"].shape)
        if self.beta != 0.0:
            batch["kl_weights"] = self.token_kl_weights(batch)
        return batch

    # ----------------------------------------------------------------- the loss

    def _compute_loss(self, model, inputs):
        weights = inputs.get("kl_weights")
        if self.beta == 0.0 or weights is None:
            return super()._compute_loss(model, inputs)
        captured: list[torch.Tensor] = []
        score = self._get_per_token_logps_and_entropies

        def score_and_keep(*args, **kwargs):
            out = score(*args, **kwargs)
            captured.append(out[0])  # the policy's per-token log-probs, with their gradient
            return out

        beta, self.beta = self.beta, 0.0
        self._get_per_token_logps_and_entropies = score_and_keep
        try:
            loss = super()._compute_loss(model, inputs)  # TRL's loss without its KL term
        finally:
            self.beta = beta
            del self._get_per_token_logps_and_entropies
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        logps = captured[0]
        per_token_kl = kl_k3(logps, inputs["ref_per_token_logps"])  # TRL's estimator
        if self.args.use_bias_correction_kl:  # TRL's default: times the (differentiable) importance ratio
            per_token_kl = per_token_kl * self._importance_ratio(logps, inputs, mask)
        loss = loss + beta * self._aggregate(weights * per_token_kl, mask, inputs)
        mode = "train" if self.model.training else "eval"
        masked_mean = lambda x: ((x * mask).sum() / mask.sum().clamp(min=1.0)).item()  # noqa: E731
        self._metrics[mode]["kl"].append(masked_mean(per_token_kl.detach()))
        self._metrics[mode]["weighted_kl"].append(masked_mean((weights * per_token_kl).detach()))
        self._metrics[mode]["mean_kl_weight"].append(masked_mean(weights))
        return loss

    def _importance_ratio(self, logps: torch.Tensor, inputs: dict, mask: torch.Tensor) -> torch.Tensor:
        """TRL's ``coef_1``: the token (or length-normalised sequence) ratio to the sampling policy."""
        old = inputs.get("old_per_token_logps")
        log_ratio = logps - (logps.detach() if old is None else old)
        if self.importance_sampling_level == "sequence":
            return ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).exp().unsqueeze(-1)
        return log_ratio.exp()

    def _aggregate(self, per_token: torch.Tensor, mask: torch.Tensor, inputs: dict) -> torch.Tensor:
        """``per_token`` aggregated as TRL 1.16 aggregates its per-token loss for ``self.loss_type``."""
        training = self.model.training
        accumulation = self.current_gradient_accumulation_steps if training else 1.0
        if self.loss_type == "grpo":
            return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accumulation
        if self.loss_type == "bnpo":
            return (per_token * mask).sum() / mask.sum().clamp(min=1.0) / accumulation
        if self.loss_type == "dr_grpo":
            return (per_token * mask).sum() / (per_token.size(0) * self.max_completion_length) / accumulation
        normalizer = (
            inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
        )  # dapo, cispo
        if training:
            normalizer = (
                normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            )
        return (per_token * mask).sum() / normalizer
