"""The KL weighting contract (agents/rl/weighting.py): read-only batches, declared needs, one registry."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from agents.rl.config import RLConfig
from agents.rl.rollout import Rollout
from agents.rl.weighting import (
    KL_WEIGHTINGS,
    KLWeighting,
    TokenBatch,
    check_weighting,
    compute_weights,
    register_kl_weighting,
)

MASK = torch.tensor([[True, True, False], [True, False, False]])
BATCH = TokenBatch(
    "agents", mask=MASK, actions=torch.zeros(2, 3, dtype=torch.long), certainty=torch.rand(2, 3)
)


def _register(name, fn, **kwargs):
    if name not in KL_WEIGHTINGS:
        register_kl_weighting(name, method=False, **kwargs)(fn)


def test_every_built_in_is_one_registered_object_of_the_protocol():
    for name in (
        "none",
        "uniform",
        "critical",
        "oracle_critical",
        "group_fork",
        "group_fork_critical",
        "value_jump",
    ):
        assert isinstance(KL_WEIGHTINGS[name], KLWeighting)
    assert KL_WEIGHTINGS["none"].zero and not KL_WEIGHTINGS["uniform"].zero
    assert KL_WEIGHTINGS["critical"].needs == frozenset({"certainty"})
    assert KL_WEIGHTINGS["group_fork"].needs == frozenset({"groups", "rewards"})


def test_weights_are_masked_and_broadcast():
    weights = compute_weights("uniform", BATCH, RLConfig(kl_weighting="uniform"))
    assert weights.tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    expected = BATCH.certainty**150 * MASK
    torch.testing.assert_close(compute_weights("critical", BATCH, RLConfig()), expected)


def test_a_batch_is_read_only_and_names_a_field_it_does_not_hold():
    with pytest.raises(AttributeError, match="read-only"):
        BATCH.certainty = torch.zeros(2, 3)
    with pytest.raises(AttributeError, match=r"holds no 'entropy': declare it in the weighting's needs"):
        _ = BATCH.entropy
    with pytest.raises(ValueError, match="unknown TokenBatch fields"):
        TokenBatch("agents", mask=MASK, actions=MASK.long(), colour=MASK)


def test_a_weighting_that_edits_the_batch_in_place_is_refused():
    def scribble(batch, config):
        batch.certainty.zero_()
        return torch.ones(())

    _register("test_scribble", scribble, needs=("certainty",))
    batch = TokenBatch("agents", mask=MASK, actions=MASK.long(), certainty=torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"edited the batch's \['certainty'\] in place"):
        compute_weights("test_scribble", batch, RLConfig())


def test_weights_of_the_wrong_shape_or_not_finite_are_refused():
    _register("test_wide", lambda batch, config: torch.ones(5, 7))
    with pytest.raises(ValueError, match=r"shape \(5, 7\), which do not broadcast to the batch's \(2, 3\)"):
        compute_weights("test_wide", BATCH, RLConfig())
    _register("test_nan", lambda batch, config: torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="returned non-finite weights"):
        compute_weights("test_nan", BATCH, RLConfig())


def test_needs_are_checked_against_what_a_backend_gives():
    with pytest.raises(
        ValueError, match=r"KL weighting 'value_jump' needs what the TRL backend cannot give \(values"
    ):
        check_weighting("value_jump", {"certainty", "groups", "rewards"}, "TRL backend")
    assert check_weighting("critical", {"certainty"}, "TRL backend") is KL_WEIGHTINGS["critical"]
    with pytest.raises(ValueError, match="needs unknown batch fields"):
        register_kl_weighting("test_bad_needs", needs=("colour",))
    with pytest.raises(ValueError, match="already registered"):
        register_kl_weighting("critical")(lambda batch, config: torch.ones(()))


def test_the_rollout_is_frozen_and_its_reference_scores_are_separate():
    assert dataclasses.is_dataclass(Rollout) and Rollout.__dataclass_params__.frozen
    fields = {field.name for field in dataclasses.fields(Rollout)}
    assert "reference" in fields and not {"ref_logp", "certainty", "ref_log_probs"} & fields
