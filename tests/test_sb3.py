"""Stable-Baselines3 policies around the LM (agents/sb3.py): micro models, comfort_digits=1 envs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from torch import nn

from agents.lm.model import CheckpointError, TaskInfo, build_model, save_reference
from agents.rl.config import RLConfig
from agents.sb3 import (
    KLPPO,
    ForbidPad,
    KLRewardPenalty,
    LMActorCriticPolicy,
    MaskableLMActorCriticPolicy,
    make_sb3_env,
    with_kl_penalty,
)
from arith_gym import encode
from arith_gym.env import AdditionEnv
from arith_gym.tokenizer import PAD_ID, VOCAB_SIZE

DIGITS = 1
STEPS = 24  # max_episode_steps of the test envs


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _env(n_envs=2, seed=0, **kwargs):
    return make_sb3_env(DIGITS, "plus1", n_envs=n_envs, seed=seed, max_episode_steps=STEPS, **kwargs)


def _ppo(lm, env=None, algo=PPO, policy=LMActorCriticPolicy, n_steps=8, learning_rate=3e-4, **policy_kwargs):
    env = _env() if env is None else env
    return algo(
        policy,
        env,
        n_steps=n_steps,
        batch_size=8,
        n_epochs=1,
        learning_rate=learning_rate,
        seed=0,
        device="cpu",
        policy_kwargs=dict(lm=lm, **policy_kwargs),
    )


def _buffer(model):
    """Observations [N, L], actions [N] and rewards [N] of the last rollout, after the update.

    The update flattens the buffer's observations and actions env by env ([n_envs * n_steps]);
    the rewards stay [n_steps, n_envs] and are flattened the same way here.
    """
    buffer = model.rollout_buffer
    obs = torch.as_tensor(buffer.observations).reshape(-1, buffer.obs_shape[0])
    actions = torch.as_tensor(buffer.actions).reshape(-1).long()
    return obs, actions, buffer.rewards.swapaxes(0, 1).reshape(-1)


def _contexts(seed=0, batch=7):
    """Observations [B, context_length] of prompts plus partial targets of different lengths."""
    env = AdditionEnv(comfort_digits=DIGITS, split="plus1", max_episode_steps=STEPS)
    rng = np.random.default_rng(seed)
    obs = np.full((batch, env.config.context_length), PAD_ID, dtype=np.int64)
    rows = []
    for row in range(batch):
        _, info = env.reset(seed=seed + row)
        target = encode(info["target"])[:STEPS]
        # Row 0: the prompt alone; row 1: prompt + the longest text the env allows.
        keep = 0 if row == 0 else STEPS if row == 1 else int(rng.integers(1, STEPS))
        ids = np.concatenate([encode(info["prompt"]), target[:keep]])
        obs[row, : len(ids)] = ids
        rows.append(ids)
    return torch.as_tensor(obs, dtype=torch.float32), rows


def _lm_log_probs(lm, rows, temperature):
    """log softmax(logits / T) of ``lm`` at the last token of each unpadded row, one row at a time."""
    with torch.no_grad():
        return torch.stack(
            [
                torch.log_softmax(lm(input_ids=torch.as_tensor(ids)[None]).logits[0, -1] / temperature, -1)
                for ids in rows
            ]
        )


class PadLover(nn.Module):
    """A causal LM that strongly prefers the pad token (to test that masks hold)."""

    def __init__(self, lm):
        super().__init__()
        self.lm, self.config = lm, lm.config

    def get_input_embeddings(self):
        return self.lm.get_input_embeddings()

    def forward(self, **kwargs):
        out = self.lm(**kwargs)
        out.logits[..., PAD_ID] += 10.0
        return out


# ----------------------------------------------------------------------------- the policy


def test_initial_distribution_is_the_lms_next_token_distribution(micro_model):
    model = _ppo(micro_model, temperature=2.0)
    policy = model.policy
    obs, rows = _contexts()
    expected = _lm_log_probs(micro_model, rows, 2.0)
    with torch.no_grad():
        # (SB3 reuses one distribution object per policy: keep the tensor, not the object.)
        probs = policy.get_distribution(obs).distribution.probs
        torch.testing.assert_close(probs, expected.exp(), atol=1e-5, rtol=0)
        # forward, evaluate_actions and predict_values agree with it and with each other.
        actions, values, logp = policy(obs)
        values2, logp2, entropy = policy.evaluate_actions(obs, actions)
        torch.testing.assert_close(logp, expected.gather(1, actions[:, None]).squeeze(1), atol=1e-5, rtol=0)
        torch.testing.assert_close(logp2, logp)
        torch.testing.assert_close(values2, values)
        torch.testing.assert_close(policy.predict_values(obs), values)
        torch.testing.assert_close(entropy, -(expected.exp() * expected).sum(-1), atol=1e-5, rtol=0)
        # A row's result does not depend on the rest of its batch (padding is invisible).
        alone = policy.get_distribution(obs[2:3]).distribution.probs
        torch.testing.assert_close(alone[0], probs[2], atol=1e-6, rtol=0)
    assert values.shape == (len(rows), 1) and actions.shape == (len(rows),)


def test_gradient_checkpointing_gives_the_same_update_gradients(micro_model):
    obs, rows = _contexts()
    grads = []
    for checkpointing in (False, True):
        policy = _ppo(micro_model, gradient_checkpointing=checkpointing).policy
        policy.set_training_mode(True)
        actions = torch.arange(len(rows)) % VOCAB_SIZE
        values, logp, entropy = policy.evaluate_actions(obs, actions)
        (values.sum() + logp.sum() + entropy.sum()).backward()
        grads.append({name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None})
    assert any(getattr(module, "gradient_checkpointing", False) for module in policy.lm.modules())
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_lm_weights_untouched_by_construction_and_all_in_the_optimizer(micro_model):
    source = copy.deepcopy(micro_model.state_dict())
    policy = _ppo(micro_model).policy
    assert not policy.ortho_init
    for name, tensor in policy.lm.state_dict().items():
        torch.testing.assert_close(tensor, source[name], rtol=0, atol=0, msg=name)
    assert policy.lm is not micro_model  # the policy trains its own copy
    optimized = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in optimized for p in policy.lm.parameters())
    assert all(id(p) in optimized for p in policy.value_net.parameters())


def test_temperature_defaults_to_the_model_directorys(tmp_path, micro_model):
    path = save_reference(micro_model, tmp_path / "ref", TaskInfo(comfort_digits=DIGITS, temperature=2.0))
    policy = _ppo(None, lm_path=str(path)).policy
    assert policy.temperature == 2.0
    assert _ppo(micro_model).policy.temperature == 1.0


# ----------------------------------------------------------------------------- algorithms


def test_ppo_rollout_log_probs_are_the_lms_and_one_update_runs(micro_model):
    model = _ppo(micro_model, learning_rate=1e-3)
    before = copy.deepcopy(model.policy)
    model.learn(total_timesteps=16)  # one rollout of 8 steps x 2 envs, one update
    assert model._n_updates == 1
    obs, actions, _ = _buffer(model)
    rows = [o[o != PAD_ID].long().numpy() for o in obs]
    direct = _lm_log_probs(micro_model, rows, 1.0).gather(1, actions[:, None]).squeeze(1)
    recorded = torch.as_tensor(model.rollout_buffer.log_probs).reshape(-1)
    torch.testing.assert_close(recorded, direct, atol=1e-5, rtol=0)
    with torch.no_grad():
        _, logp, _ = before.evaluate_actions(obs, actions)
    torch.testing.assert_close(logp, direct, atol=1e-5, rtol=0)
    pairs = zip(model.policy.lm.parameters(), before.lm.parameters(), strict=True)
    assert any(not torch.equal(after, initial) for after, initial in pairs)


def test_a2c_runs_one_update(micro_model):
    model = A2C(
        LMActorCriticPolicy, _env(), n_steps=4, seed=0, device="cpu", policy_kwargs=dict(lm=micro_model)
    )
    model.learn(total_timesteps=8)
    assert model._n_updates == 1
    assert not torch.equal(model.policy.lm.lm_head.weight, micro_model.lm_head.weight)


def test_save_and_load_keep_the_action_probabilities(micro_model, tmp_path):
    model = _ppo(micro_model, temperature=1.5, learning_rate=1e-3)
    model.learn(total_timesteps=16)
    obs, _ = _contexts(seed=3)
    with torch.no_grad():
        probs = model.policy.get_distribution(obs).distribution.probs
        values = model.policy.predict_values(obs)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    model.policy.save(tmp_path / "policy.pth")
    alone = LMActorCriticPolicy.load(tmp_path / "policy.pth", device="cpu")
    for policy in (loaded.policy, alone):
        assert isinstance(policy, LMActorCriticPolicy) and policy.temperature == 1.5
        with torch.no_grad():
            torch.testing.assert_close(
                policy.get_distribution(obs).distribution.probs, probs, atol=1e-6, rtol=0
            )
            torch.testing.assert_close(policy.predict_values(obs), values, atol=1e-6, rtol=0)


def test_maskable_ppo_never_plays_the_pad_and_trains(micro_model):
    lm = PadLover(micro_model)
    model = _ppo(
        lm, env=_env(forbid_pad=True), algo=MaskablePPO, policy=MaskableLMActorCriticPolicy, n_steps=16
    )
    obs, _ = _contexts()
    masks = np.stack([ForbidPad(AdditionEnv(comfort_digits=DIGITS)).action_masks()] * len(obs))
    with torch.no_grad():
        assert (model.policy.get_distribution(obs).distribution.probs[:, PAD_ID] > 0.5).all()
        masked = model.policy.get_distribution(obs, masks).distribution.probs
    assert (masked[:, PAD_ID] == 0).all()
    torch.testing.assert_close(masked.sum(-1), torch.ones(len(obs)))
    model.learn(total_timesteps=32)
    assert model._n_updates == 1
    assert (model.rollout_buffer.actions != PAD_ID).all()
    assert not model.rollout_buffer.action_masks[..., PAD_ID].any()


def test_plain_policy_also_honours_masks(micro_model):
    policy = _ppo(PadLover(micro_model)).policy
    obs, _ = _contexts()
    masks = np.ones((len(obs), VOCAB_SIZE), dtype=bool)
    masks[:, PAD_ID] = False
    with torch.no_grad():
        actions, _, _ = policy(obs, action_masks=masks)
        assert (policy.get_distribution(obs, masks).distribution.probs[:, PAD_ID] == 0).all()
    assert (actions != PAD_ID).all()


# ----------------------------------------------------------------------------- KL penalty


def test_no_kl_weighting_means_no_reference_and_no_penalty(micro_model):
    model = _ppo(micro_model, algo=KLPPO)
    assert model.policy.reference is None
    obs, _ = _contexts()
    actions = torch.zeros(len(obs), dtype=torch.long)
    assert (model.policy.kl_penalty(obs, actions) == 0).all()
    sentinel = KLRewardPenalty()
    assert with_kl_penalty(model.policy, sentinel) is sentinel
    model.learn(total_timesteps=16)
    # Binary rewards, episodes far from their step limit: only 0 or 1, never a penalty.
    assert np.isin(model.rollout_buffer.rewards, (0.0, 1.0)).all()


def test_uniform_kl_is_zero_at_the_start_and_positive_once_the_policy_moved(micro_model):
    model = _ppo(micro_model, algo=KLPPO, kl_weighting="uniform", learning_rate=1e-2)
    policy = model.policy
    assert policy.reference is not None
    assert not any(p.requires_grad for p in policy.reference.parameters())
    model.learn(total_timesteps=16)
    obs, actions, rewards = _buffer(model)
    # The rollout ran before the update: policy == reference, so no penalty yet.
    assert np.abs(rewards[rewards != 1.0]).max() < 1e-8
    kl, weights = policy.kl_and_weights(obs, actions)
    assert (weights == 1).all() and kl.mean() > 1e-6
    assert not policy.reference.training  # SB3's train mode does not reach the reference


@pytest.mark.parametrize("estimator", ["k2", "full"])
def test_kl_penalty_is_taken_off_each_steps_reward(micro_model, estimator):
    reference = build_model("micro", seed=1)
    model = _ppo(
        micro_model,
        algo=KLPPO,
        kl_weighting="uniform",
        kl_coef=0.5,
        kl_estimator=estimator,
        reference=reference,
    )
    before = copy.deepcopy(model.policy)
    model.learn(total_timesteps=16)
    obs, actions, rewards = _buffer(model)
    penalty = before.kl_penalty(obs, actions).numpy()
    assert (penalty > 0).all()
    env_rewards = rewards + penalty
    np.testing.assert_allclose(env_rewards, np.round(env_rewards), atol=1e-5)  # 0 or 1 before the penalty


def test_critical_weights_come_from_the_reference_certainty(micro_model):
    policy = _ppo(
        micro_model, kl_weighting="critical", beta=1.0, reference=build_model("micro", seed=1)
    ).policy
    obs, _ = _contexts()
    kl, weights = policy.kl_and_weights(obs, torch.zeros(len(obs), dtype=torch.long))
    assert ((weights > 0) & (weights < 1)).all() and (kl > 0).all()


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kl_weighting="prioritised"), "unknown KL weighting"),
        (dict(kl_estimator="k4"), "unknown kl_estimator"),
        (dict(ortho_init=True), "ortho_init"),
        (dict(net_arch=[64]), "net_arch"),
        (dict(temperature=0.0), "temperature"),
        (dict(kl_weighting="critical", beta=-1.0), "beta"),
    ],
)
def test_bad_policy_kwargs_raise(micro_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _ppo(micro_model, **kwargs)


def test_vocabulary_mismatch_and_missing_lm_raise(micro_model):
    from transformers import GPT2Config, GPT2LMHeadModel

    other = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_layer=1, n_embd=8, n_head=1))
    with pytest.raises(CheckpointError, match="vocabulary"):
        _ppo(other)
    with pytest.raises(CheckpointError, match="vocabulary"):
        _ppo(micro_model, kl_weighting="uniform", reference=other)
    with pytest.raises(ValueError, match="exactly one of lm"):
        PPO(LMActorCriticPolicy, _env(), device="cpu")
    with pytest.raises(ValueError, match="MaskableActorCriticPolicy"):
        _ppo(micro_model, algo=MaskablePPO)  # the plain policy cannot serve MaskablePPO


def test_every_rl_setting_has_an_sb3_mapping(monkeypatch):
    import dataclasses

    from agents.sb3 import train as sb3_train

    sb3_train.check_mapping()  # the real RLConfig: every field placed once

    @dataclasses.dataclass(frozen=True)
    class Extended(RLConfig):
        new_setting: float = 0.0

    monkeypatch.setattr(sb3_train, "RLConfig", Extended)
    with pytest.raises(RuntimeError, match="unmapped {'new_setting'}"):
        sb3_train.check_mapping()


def test_sb3_refuses_settings_it_cannot_express():
    from agents.sb3.train import check_sb3_config

    with pytest.raises(ValueError, match="adaptive_kl_target=0.1"):
        check_sb3_config(RLConfig(adaptive_kl_target=0.1), "sb3-ppo")
    for weighting in ("group_fork", "group_fork_critical"):  # one problem per episode: no groups
        with pytest.raises(
            ValueError, match=f"KL weighting '{weighting}' needs what the SB3 backend cannot give"
        ):
            check_sb3_config(RLConfig(kl_weighting=weighting), "sb3-ppo")
    for weighting in ("oracle_critical", "value_jump", "critical"):
        check_sb3_config(RLConfig(kl_weighting=weighting), "sb3-ppo")
    with pytest.raises(ValueError, match="unknown SB3 algorithm"):
        check_sb3_config(RLConfig(), "sb3-sac")


def test_sb3_vs_cached_benchmark_times_one_rollout_each():
    from agents.bench import sb3_vs_cached_seconds_per_episode

    result = sb3_vs_cached_seconds_per_episode(size="micro", comfort_digits=1, episodes=2)
    for name in ("cached", "sb3", "sb3_kl"):
        assert result[f"{name}_seconds_per_episode"] > 0 and result[f"{name}_tokens_per_episode"] > 0
    assert result["sb3_slowdown"] == result["sb3_seconds_per_episode"] / result["cached_seconds_per_episode"]
