"""``probe train NAME``: reproduce an embedded model's shipped weights."""

from __future__ import annotations

from pathlib import Path

import torch

from probe import __version__, zoo
from probe.cli.common import echo_done, progress_bar
from probe.gallery import Gallery, check_out_dir


def run(name: str, epochs: int | None, seed: int, out: Path | None, force: bool) -> None:
    """``probe train``'s work, on the options click parsed (see :mod:`probe.cli.commands.train`)."""
    spec = zoo.get_spec(name)
    destination = check_out_dir(out, Path("runs") / f"train-{name}", force=force)
    total = epochs or spec.epochs
    losses: list[float] = []
    with progress_bar(total, f"train {name}") as bar:
        def progress(epoch: int, epochs_total: int, loss: float) -> None:
            losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")

        report = zoo.train(name, seed=seed, epochs=epochs, progress=progress)
    weights_file = f"{name}.pt"

    def write(folder: Path) -> None:
        torch.save(report.state_dict, folder / weights_file)
        gallery = Gallery(folder, command="train", title=f"probe train {name}", version=__version__,
                          fields={"model": name, "seed": seed, "epochs": report.epochs})
        if losses:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            figure, axis = plt.subplots(figsize=(5, 3))
            axis.plot(range(1, len(losses) + 1), losses, marker="o")
            axis.set_xlabel("epoch")
            axis.set_ylabel("training loss")
            axis.set_title(f"{name}: held-out accuracy {report.test_accuracy:.2%}")
            gallery.add_extra("loss.png", "training loss per epoch", figure=figure)
            plt.close(figure)
        gallery.write(weights=weights_file, train_accuracy=report.train_accuracy,
                      test_accuracy=report.test_accuracy, seconds=report.seconds)

    folder = destination.write(write)  # an old NAME.pt stays until the new gallery is complete
    echo_done(folder, f"{name}: held-out accuracy {report.test_accuracy:.2%} "
                      f"(train {report.train_accuracy:.2%}) in {report.seconds:.1f}s -> {folder / weights_file}")
