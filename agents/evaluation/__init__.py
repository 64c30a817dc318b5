"""agents.evaluation: measuring a model, never training one.

- :mod:`~agents.evaluation.accuracy`: accuracy with Wilson intervals, length tables, RL evaluations;
- :mod:`~agents.evaluation.teacher_forcing`: p(right token) at the critical tokens and elsewhere;
- :mod:`~agents.evaluation.stats`: means and paired differences across seeds (t intervals);
- :mod:`~agents.evaluation.certainty_gap`: the paper's Table 1 (J at critical tokens minus elsewhere);
- :mod:`~agents.evaluation.finder`: a template-free critical-token finder (forced mistakes);
- :mod:`~agents.evaluation.continuations`: branches of an episode, judged by the env (any codec);
- :mod:`~agents.evaluation.criticality` (with :mod:`~agents.evaluation.criticality_table` and
  :mod:`~agents.evaluation.headroom`): the ground truth of which tokens decide success;
- :mod:`~agents.evaluation.selector_metrics`: critical-token selectors scored against it;
- :mod:`~agents.evaluation.planted`: a model with a known answer, to check the ground truth.
"""

from agents.evaluation.accuracy import (
    Accuracy,
    format_length_table,
    length_table,
    policy_accuracy,
    rl_evaluation,
    wilson_interval,
)
from agents.evaluation.certainty_gap import CertaintyGap, certainty_gap, format_gap
from agents.evaluation.finder import FinderReport, find_critical_tokens, format_finder
from agents.evaluation.stats import Estimate, mean_ci, paired_difference
from agents.evaluation.teacher_forcing import (
    TargetProbs,
    critical_probabilities,
    critical_report,
    summarize_target_probs,
    target_token_probs,
)

__all__ = [
    "Accuracy",
    "CertaintyGap",
    "Estimate",
    "FinderReport",
    "TargetProbs",
    "certainty_gap",
    "critical_probabilities",
    "critical_report",
    "find_critical_tokens",
    "format_finder",
    "format_gap",
    "format_length_table",
    "length_table",
    "mean_ci",
    "paired_difference",
    "policy_accuracy",
    "rl_evaluation",
    "summarize_target_probs",
    "target_token_probs",
    "wilson_interval",
]
