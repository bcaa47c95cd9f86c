"""The local engine: the pure core on validated inputs, in this process."""

from __future__ import annotations

from evaluator.core.poster import PosterResult, PosterSettings, evaluate_poster
from evaluator.errors import InputError
from evaluator.io.poster import PosterInputs


def score_poster(
    inputs: PosterInputs, settings: PosterSettings, *, judge_frames: bool
) -> PosterResult:
    """Score every video of ``inputs`` with the core (`evaluator.core.poster.evaluate_poster`).

    Args:
        inputs: the validated expert and prediction tables.
        settings: the checked matching / metric / sweep settings.
        judge_frames: also judge every considered frame (the HTML report's frame view).

    Returns:
        The core result.

    Raises:
        InputError: no video has enough expert frames to be scored.
    """
    result = evaluate_poster(
        inputs.experts, inputs.model, inputs.n_videos, settings, judge_frames=judge_frames
    )
    if result.metrics["n_videos_eligible"] == 0:
        most = int(result.n_expert_frames.max(initial=0))
        raise InputError(
            f"{inputs.expert_table.path}: no video has at least metrics.min_expert_frames="
            f"{settings.min_expert_frames} expert frames (the most any video has is {most}), so "
            f"there is nothing to score; lower metrics.min_expert_frames or check the file."
        )
    return result
