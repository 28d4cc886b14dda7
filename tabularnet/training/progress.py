"""Progress of the plain-PyTorch trainer: Rich bars (epochs and the current epoch's batches) when Rich is
installed, else one line per epoch on stderr."""

from __future__ import annotations

import sys

try:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
except ImportError:  # rich comes with lightning[pytorch-extra]; a plain line is enough without it
    Progress = None


def epoch_label(epoch: int, max_epochs: int | None) -> str:
    """``epoch 3/11``: the finished epoch counted from 0 and the last one, as Lightning's bar, the checkpoint names
    (``epoch=3-step=...``) and the summary's best epoch count them."""
    return f"epoch {epoch}/{max_epochs - 1}" if max_epochs is not None and max_epochs > 0 else f"epoch {epoch}"


class EpochProgress:
    """``with EpochProgress(max_epochs) as p: p.start_epoch(n_batches); p.advance(); p.end_epoch(line)``;
    with ``enabled=False`` every call does nothing."""

    def __init__(self, max_epochs: int, *, enabled: bool = True, rich: bool = True) -> None:
        self.max_epochs, self.enabled = max_epochs, enabled
        self.bars = None
        if enabled and rich and Progress is not None:
            self.bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[metrics]}"),
                console=Console(stderr=True),  # stdout stays for the user's own output
            )

    def __enter__(self) -> EpochProgress:
        if self.bars is not None:
            self.bars.start()
            self.epochs = self.bars.add_task("epochs", total=self.max_epochs, metrics="")
            self.batches = self.bars.add_task("batches", total=None, metrics="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bars is not None:
            self.bars.remove_task(self.batches)
            self.bars.stop()

    def start_epoch(self, n_batches: int | None) -> None:
        if self.bars is not None:
            self.bars.reset(self.batches, total=n_batches)

    def advance(self) -> None:
        if self.bars is not None:
            self.bars.advance(self.batches)

    def end_epoch(self, line: str) -> None:
        """Show the epoch's metrics (``line``): beside the epoch bar with Rich, else printed on stderr."""
        if self.bars is not None:
            self.bars.update(self.epochs, advance=1, metrics=line)
        elif self.enabled:
            print(line, file=sys.stderr)
