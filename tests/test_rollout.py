"""Decoding and rollouts (agents/lm/decoding.py, lm/episodes.py, rl/rollout.py, rl/policy.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from agents.kl import certainty
from agents.lm.decoding import GREEDY, CachedDecoder, NaiveDecoder, choose_tokens, left_pad
from agents.lm.episodes import make_vector_env, play_episodes
from agents.lm.gpt2_decoding import GPT2Decoder
from agents.lm.model import CheckpointError, build_model
from agents.rl.policy import LMPolicy
from agents.rl.rollout import collect_rollout
from arith_gym.scratchpad import critical_tokens, prompt_text, target_text
from arith_gym.tokenizer import PAD_ID, VOCAB_SIZE, encode
from arith_gym.vector_env import CRITICAL_KIND_CODES

# ----------------------------------------------------------------------------- left_pad


def test_left_pad_layout():
    prompts = [np.array([5, 6, 7]), np.array([8]), np.array([1, 2])]
    ids, attention, positions = left_pad(prompts)
    assert ids.tolist() == [[5, 6, 7], [PAD_ID, PAD_ID, 8], [PAD_ID, 1, 2]]
    assert attention.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    # Real tokens count from 0 whatever the padding; padding positions are clamped to 0.
    assert positions.tolist() == [[0, 1, 2], [0, 0, 0], [0, 0, 1]]
    assert ids.dtype == attention.dtype == positions.dtype == torch.long


@pytest.mark.parametrize("prompts", [[], [np.array([1]), np.array([], dtype=np.int64)]])
def test_left_pad_rejects_empty(prompts):
    with pytest.raises(ValueError):
        left_pad(prompts)


# ----------------------------------------------------------------------------- decoders

PROMPTS = [encode(prompt_text(a, b)) for a, b in [(7, 5), (4821, 39), (0, 66), (123456, 7)]]


def _decode(decoder_type, model, steps=20, seed=0):
    """Logits at every step for a fixed random token sequence (the same for every decoder)."""
    tokens = torch.randint(
        0, VOCAB_SIZE - 1, (steps, len(PROMPTS)), generator=torch.Generator().manual_seed(seed)
    )
    decoder = decoder_type(model)
    with torch.no_grad():
        logits = [decoder.start(PROMPTS).logits[:, -1]]
        for t in range(steps):
            logits.append(decoder.step(tokens[t]).logits[:, -1])
    return torch.stack(logits, dim=1), tokens


@pytest.mark.parametrize("cached_type", [CachedDecoder, GPT2Decoder])
def test_cached_and_naive_decoders_agree(micro_model, cached_type):
    cached, _ = _decode(cached_type, micro_model)
    naive, _ = _decode(NaiveDecoder, micro_model)
    assert cached.shape == (len(PROMPTS), 21, VOCAB_SIZE)
    torch.testing.assert_close(cached, naive, atol=1e-4, rtol=0)


def test_a_rows_logits_do_not_depend_on_the_batch_padding(micro_model):
    batched, tokens = _decode(CachedDecoder, micro_model)
    for row, prompt in enumerate(PROMPTS):
        ids = torch.cat([torch.as_tensor(prompt), tokens[:, row]])[None]
        with torch.no_grad():
            alone = micro_model(input_ids=ids).logits[0, len(prompt) - 1 :]
        torch.testing.assert_close(batched[row], alone, atol=1e-4, rtol=0)


def test_step_before_start_is_an_error(micro_model):
    with pytest.raises(RuntimeError, match="start"):
        CachedDecoder(micro_model).step(torch.zeros(1, dtype=torch.long))


def test_choose_tokens_greedy_and_sampled():
    logits = torch.tensor([[0.0, 5.0, 1.0], [9.0, 0.0, 0.0]])
    assert choose_tokens(logits, GREEDY, None).tolist() == [1, 0]
    assert GREEDY == 0  # the usual convention: temperature 0 is greedy
    for bad in (None, -1.0, float("nan")):
        with pytest.raises(ValueError, match="0 for greedy decoding"):
            choose_tokens(logits, bad, None)
    peaked = torch.tensor([[0.0, 100.0, 0.0]] * 50)
    sampled = choose_tokens(peaked, 1.0, torch.Generator().manual_seed(0))
    assert sampled.tolist() == [1] * 50
    flat = torch.zeros(2000, 3)
    counts = torch.bincount(choose_tokens(flat, 1.0, torch.Generator().manual_seed(0)), minlength=3)
    assert (counts > 500).all()


# ----------------------------------------------------------------------------- a teacher LM


class TeacherLM(nn.Module):
    """A micro LM whose logits are overridden to play fixed token sequences, one per row.

    Row i plays ``sequences[i][k]`` at its k-th generated token (a one-token-per-call counter,
    which is what both decoders do), then the pad token.
    """

    def __init__(self, lm: GPT2LMHeadModel, sequences: list[list[int]]) -> None:
        super().__init__()
        self.lm = lm
        self.config = lm.config
        self.sequences = sequences
        self.calls = 0

    def get_input_embeddings(self) -> nn.Module:
        return self.lm.get_input_embeddings()

    def forward(self, **kwargs):
        out = self.lm(**kwargs)
        k = self.calls
        self.calls += 1
        logits = torch.zeros_like(out.logits[:, -1])
        for row, sequence in enumerate(self.sequences):
            logits[row, sequence[k] if k < len(sequence) else PAD_ID] = 60.0
        out.logits = out.logits.clone()
        out.logits[:, -1] = logits
        return out


def _teacher_policy(sequences, seed=0):
    lm = build_model("micro", seed=seed).eval()
    policy = LMPolicy(lm, temperature=1.0)
    policy.lm = TeacherLM(lm, sequences)
    return policy


# ----------------------------------------------------------------------------- rollouts


def _random_rollout(cached, seed=0, batch=6, steps=24, greedy=False, drop_finished=True):
    torch.manual_seed(0)
    policy = LMPolicy(build_model("micro", seed=0).eval(), temperature=1.0)
    reference = build_model("micro", seed=1).eval()
    env = make_vector_env(batch, 1, "plus1", max_episode_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    return collect_rollout(
        policy,
        reference,
        env,
        generator,
        seed=seed,
        cached=cached,
        greedy=greedy,
        drop_finished=drop_finished,
    )


@pytest.fixture(scope="module")
def rollouts():
    return _random_rollout(cached=True), _random_rollout(cached=False)


def test_cached_and_naive_rollouts_agree(rollouts):
    cached, naive = rollouts
    assert torch.equal(cached.actions, naive.actions)
    assert torch.equal(cached.mask, naive.mask)
    for name in ("logp", "ref_logp", "values", "entropy", "certainty"):
        torch.testing.assert_close(getattr(cached, name), getattr(naive, name), atol=1e-4, rtol=0)
    torch.testing.assert_close(cached.log_probs, naive.log_probs, atol=1e-4, rtol=0)
    assert np.array_equal(cached.correct, naive.correct)


def _reference_token_by_token(rollout, reference, temperature, certainty_temperature=4.0):
    """What the reference gives each action stepped beside the policy with a KV cache (the old way)."""
    decoder = CachedDecoder(reference)
    logits = [decoder.start(rollout.prompts()).logits[:, -1].float()]
    for t in range(rollout.actions.shape[1] - 1):
        logits.append(decoder.step(rollout.actions[:, t]).logits[:, -1].float())
    logits = torch.stack(logits, dim=1)
    log_probs = torch.log_softmax(logits / temperature, dim=-1)
    logp = log_probs.gather(-1, rollout.actions[..., None]).squeeze(-1) * rollout.mask
    return log_probs, logp, certainty(logits, certainty_temperature) * rollout.mask


def test_one_reference_forward_equals_stepping_the_reference(rollouts):
    cached, _ = rollouts
    reference = build_model("micro", seed=1).eval()  # _random_rollout's reference
    with torch.no_grad():
        log_probs, logp, j = _reference_token_by_token(cached, reference, temperature=1.0)
    mask = cached.mask[..., None]
    torch.testing.assert_close(cached.ref_log_probs * mask, log_probs * mask, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached.ref_logp, logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached.certainty, j, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cached", [True, False])
def test_dropping_finished_rows_plays_the_same_episodes(cached):
    kept = _random_rollout(cached=cached, seed=5, batch=16, steps=40, drop_finished=False)
    dropped = _random_rollout(cached=cached, seed=5, batch=16, steps=40)
    assert torch.equal(kept.actions, dropped.actions) and torch.equal(kept.mask, dropped.mask)
    live = kept.mask
    # The same tokens; values to float rounding (a smaller batch may take another matmul kernel).
    for name in ("logp", "values", "entropy", "ref_logp", "certainty", "rewards"):
        torch.testing.assert_close(getattr(kept, name), getattr(dropped, name), atol=1e-6, rtol=0, msg=name)
    torch.testing.assert_close(kept.log_probs[live], dropped.log_probs[live], atol=1e-6, rtol=0)
    assert np.array_equal(kept.correct, dropped.correct)


def test_play_episodes_drops_finished_rows_without_changing_them(micro_model):
    problems = [(a, b) for a in range(3, 9) for b in (7, 95, 4)]
    outcomes = [
        play_episodes(
            micro_model, problems, 1, "plus1", 1.0, torch.Generator().manual_seed(0), drop_finished=drop
        )
        for drop in (False, True)
    ]
    assert np.array_equal(outcomes[0][0], outcomes[1][0]) and outcomes[0][1] == outcomes[1][1]


def test_rollout_masks_dones_and_rewards_are_consistent(rollouts):
    r, _ = rollouts
    batch, length = r.actions.shape
    assert r.mask.shape == r.logp.shape == r.rewards.shape == r.dones.shape == (batch, length)
    assert r.log_probs.shape == r.ref_log_probs.shape == (batch, length, VOCAB_SIZE)
    assert r.critical_labels.shape == (batch, length, 4)
    lengths = r.mask.sum(dim=1)
    assert int(lengths.max()) == length  # trimmed to the longest episode
    for row in range(batch):
        n = int(lengths[row])
        assert n >= 1
        # Live exactly up to the episode's end, done at its last token only.
        assert r.mask[row, :n].all() and not r.mask[row, n:].any()
        assert r.dones[row].nonzero().flatten().tolist() == [n - 1]
        assert (r.rewards[row, : n - 1] == 0).all() and (r.rewards[row, n:] == 0).all()
        assert r.rewards[row, n - 1].item() == float(r.correct[row])
        assert (r.actions[row, n:] == PAD_ID).all()
        assert (r.logp[row, n:] == 0).all()
        # An episode ends at the pad token or at the step limit (random micro models are wrong).
        assert r.actions[row, n - 1] == PAD_ID or n == 24
    assert r.num_tokens == int(lengths.sum())
    # logp is the log-prob of the action under the tempered distribution.
    gathered = r.log_probs.gather(-1, r.actions[..., None]).squeeze(-1)
    torch.testing.assert_close(gathered * r.mask, r.logp, atol=1e-6, rtol=0)
    assert ((r.certainty >= 0) & (r.certainty <= 1)).all()
    # The policy and reference differ here, and the rollout says so.
    assert not torch.allclose(r.logp, r.ref_logp)


def test_rollouts_are_reproducible_and_greedy_is_argmax():
    a, b = _random_rollout(cached=True, seed=3), _random_rollout(cached=True, seed=3)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.logp, b.logp)
    greedy = _random_rollout(cached=True, seed=3, greedy=True)
    best = greedy.log_probs.argmax(dim=-1)
    assert torch.equal(torch.where(greedy.mask, best, PAD_ID), greedy.actions)


def test_critical_labels_come_from_the_env():
    # comfort_digits=1 with 2-digit operands: the scratchpad has critical tokens.
    problems = [(57, 35), (8, 64), (57, 35)]
    targets = [encode(target_text(a, b)).tolist() for a, b in problems]
    # Row 2 leaves the track at its first token: it must get no critical label at all (its
    # result line is still right, and only the result line is judged).
    wrong = list(targets[2])
    wrong[0] = encode("1")[0]
    sequences = [targets[0], targets[1], wrong]
    policy = _teacher_policy(sequences)
    env = make_vector_env(len(problems), 1, "plus1")
    rollout = collect_rollout(
        policy, build_model("micro", seed=1).eval(), env, torch.Generator().manual_seed(0),
        options={"operands": problems}, drop_finished=False,  # the teacher counts calls per row
    )  # fmt: skip
    assert rollout.correct.tolist() == [True, True, True]
    for row in (0, 1):
        (a, b), n = problems[row], len(targets[row])
        assert rollout.actions[row, :n].tolist() == targets[row]
        assert int(rollout.mask[row].sum()) == n
        assert rollout.rewards[row, n - 1] == 1.0 and rollout.rewards[row].sum() == 1.0
        expected = {t.position: t for t in critical_tokens(a, b, 1)}
        assert expected, "the problem must have critical tokens"
        assert rollout.critical[row].nonzero().flatten().tolist() == sorted(expected)
        for position, token in expected.items():
            labels = rollout.critical_labels[row, position].tolist()
            assert labels == [token.line, token.operand, token.index, CRITICAL_KIND_CODES[token.kind]]
        others = ~rollout.critical[row]
        assert (rollout.critical_labels[row][others] == -1).all()
    assert not rollout.critical[2].any()
    assert (rollout.critical_labels[2] == -1).all()


def test_play_episodes_judges_with_the_env():
    problems = [(3, 4), (9, 9), (1, 0)]
    sequences = [encode(target_text(a, b)).tolist() for a, b in problems]
    sequences[1] = encode(target_text(9, 8)).tolist()  # a well-formed wrong answer
    teacher = _teacher_policy(sequences).lm  # it counts calls per row: every row stays to the end
    correct, texts = play_episodes(teacher, problems, 1, "comfort", GREEDY, drop_finished=False)
    assert correct.tolist() == [True, False, True]
    assert texts[0] == target_text(3, 4) and texts[1] == target_text(9, 8)


def test_policy_rejects_another_vocabulary_and_bad_temperature():
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(CheckpointError):
        LMPolicy(gpt2)
    with pytest.raises(ValueError, match="temperature"):
        LMPolicy(build_model("micro"), temperature=0.0)


def test_policy_log_probs_are_tempered(micro_model):
    policy = LMPolicy(micro_model, temperature=2.0)
    logits = torch.tensor([[0.0, 2.0, 4.0]])
    torch.testing.assert_close(policy.log_probs(logits), torch.log_softmax(logits / 2.0, dim=-1))
    ids, attention, positions = left_pad(PROMPTS[:2])
    out = policy(ids, attention, positions)
    assert out.logits.shape == (2, ids.shape[1], VOCAB_SIZE)
    assert out.values.shape == (2, ids.shape[1])
