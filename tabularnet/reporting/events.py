"""Reading a run's TensorBoard event files back with TensorBoard's own reader."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# keep every point: the default size guidance samples long scalar series down to 1,000 points
_SIZE_GUIDANCE = {"scalars": 0, "images": 0, "tensors": 0}


def event_accumulators(log_dir: str | Path) -> list[EventAccumulator]:
    """One loaded accumulator per ``events.out.tfevents.*`` file in ``log_dir``, oldest first."""
    files = sorted(Path(log_dir).glob("events.out.tfevents.*"), key=lambda p: p.name)
    accumulators = []
    for path in files:
        accumulator = EventAccumulator(str(path), size_guidance=_SIZE_GUIDANCE)
        accumulator.Reload()
        accumulators.append(accumulator)
    return accumulators


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` over all event files of ``log_dir``, in order of step."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for accumulator in event_accumulators(log_dir):
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return {tag: sorted(points) for tag, points in scalars.items()}


def epoch_curves(scalars: dict[str, list[tuple[int, float]]], tags: tuple[str, ...]) -> dict[str, list]:
    """The ``tags`` as ``[(epoch, value), ...]``: Lightning logs ``epoch`` at the step of every logged value.

    A tag logged more than once per epoch (the final evaluation of the best checkpoint) keeps its first value.
    """
    epoch_at = dict(scalars.get("epoch", []))
    curves = {}
    for tag in tags:
        points: dict[float, float] = {}
        for step, value in scalars.get(tag, []):
            points.setdefault(epoch_at.get(step, step), value)
        curves[tag] = sorted(points.items())
    return curves
