"""Errors of the embed package that a user can act on."""

from __future__ import annotations


class FrameReadError(ValueError):
    """An image or video frame could not be read.

    Attributes:
        index: Position of the offending frame in the caller's input list (``-1`` if unknown).
        path: The file that could not be read.
    """

    def __init__(self, message: str, *, index: int = -1, path: str = "") -> None:
        super().__init__(message)
        self.index = index
        self.path = path

    def __reduce__(self):  # keeps .index and .path when the error crosses a process boundary
        return (_rebuild_frame_read_error, (str(self), self.index, self.path))


def _rebuild_frame_read_error(message: str, index: int, path: str) -> FrameReadError:
    return FrameReadError(message, index=index, path=path)


WEIGHTS_HELP = (
    "Supply weights one of these ways: set embedder.weights_path=/path/to/state_dict.pt "
    "(a state dict saved with torch.save(model.state_dict(), ...)); or pre-populate the torch hub "
    "cache at $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints) with the "
    "checkpoint file; or set embedder.weights=null to use random weights on purpose (results are "
    "then meaningless except for testing)."
)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were requested but can be neither downloaded nor found locally."""
