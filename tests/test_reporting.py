"""What users look at: TensorBoard scalars, hparams and figures of a finished run, the summary, the HTML report,
the calibrated checkpoint, and the figure functions themselves."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_table
from PIL import Image
from tensorboard.plugins.hparams import plugin_data_pb2

from tabularnet.cli import main
from tabularnet.data.tabular_data import TabularData
from tabularnet.nn.mlp import MLP
from tabularnet.reporting.events import event_accumulators
from tabularnet.reporting.figures import (
    confusion_matrix_figure,
    learning_curves_figure,
    reliability_figure,
    roc_figure,
)
from tabularnet.reporting.report import write_report
from tabularnet.reporting.run import save_figures
from tabularnet.training.config import Recipe
from tabularnet.training.torch_trainer import TorchTrainer

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
FIGURES = {
    "learning_curves",
    "confusion_matrix_val",
    "confusion_matrix_test",
    "roc_val",
    "roc_test",
    "reliability_val",
    "reliability_test",
}


@pytest.fixture(scope="module")
def calibrated_run(table_files, tmp_path_factory) -> tuple[Path, str]:
    """A finished calibrated fit on the synthetic table: (run directory, what it printed)."""
    root = tmp_path_factory.mktemp("calibrated")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(
            [
                "fit",
                "--model=tabularnet.MLPLightningModule",
                "--model.hidden_dims=[16, 16]",
                "--model.calibrate=true",
                f"--data.train_path={table_files['train']}",
                f"--data.test_path={table_files['test']}",
                "--data.batch_size=32",
                f"--trainer.max_epochs={EPOCHS}",
                "--trainer.enable_progress_bar=false",
                f"--trainer.default_root_dir={root}",
                "--seed_everything=0",
            ]
        )
    return root / "lightning_logs" / "version_0", printed.getvalue()


@pytest.fixture(scope="module")
def events(calibrated_run):
    return event_accumulators(calibrated_run[0])


def test_event_files_have_the_per_epoch_scalars(events):
    scalars: dict[str, list] = {}
    for accumulator in events:
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(accumulator.Scalars(tag))
    for tag in ("train_loss", "lr"):
        assert len(scalars[tag]) == EPOCHS, tag
    for tag in ("val_loss", "val_acc", "val_auroc"):
        assert len(scalars[tag]) >= EPOCHS, tag  # + the best checkpoint's evaluation at the end
    assert all(event.value > 0 for event in scalars["lr"])
    assert {"test_acc", "test_auroc", "test_ece"} <= set(scalars)


def test_hparams_tab_has_the_hyperparameters_and_final_metrics(events, calibrated_run):
    metrics = json.loads((calibrated_run[0] / "metrics.json").read_text())
    contents = {}
    for accumulator in events:
        with contextlib.suppress(KeyError):
            contents.update(accumulator.PluginTagToContent("hparams"))
    experiment = plugin_data_pb2.HParamsPluginData.FromString(contents["_hparams_/experiment"]).experiment
    session = plugin_data_pb2.HParamsPluginData.FromString(contents["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    # the user's options only: not LightningCLI's _class_path/_instantiator, nor the sizes linked from the data
    assert not [name for name in hparams if name.startswith("_")], list(hparams)
    assert not {"n_num_features", "cat_cardinalities", "n_classes", "classes", "class_counts"} & set(hparams)
    assert {info.name for info in experiment.hparam_infos} == set(hparams)
    assert hparams["hidden_dims"].string_value == "[16, 16]"
    assert hparams["calibrate"].number_value == 1  # TensorBoard stores booleans as numbers
    assert hparams["batch_size"].number_value == 32  # the data module's too
    metric_tags = {info.name.tag for info in experiment.metric_infos}
    assert {"hp/val_acc", "hp/test_acc", "hp/test_auroc", "hp/temperature"} <= metric_tags
    final = {}
    for accumulator in events:
        for tag in accumulator.Tags()["scalars"]:
            if tag.startswith("hp/"):
                final[tag] = accumulator.Scalars(tag)[-1].value
    assert final["hp/test_acc"] == pytest.approx(metrics["test_acc"], abs=1e-5)


def test_event_files_have_the_figures(events, calibrated_run):
    images = {}
    for accumulator in events:
        for tag in accumulator.Tags()["images"]:
            images[tag] = accumulator.Images(tag)[-1]
    assert {f"figures/{name}" for name in FIGURES} <= set(images)
    picture = Image.open(io.BytesIO(images["figures/roc_test"].encoded_image_string))
    assert picture.size == (images["figures/roc_test"].width, images["figures/roc_test"].height)
    assert np.asarray(picture.convert("L")).std() > 10  # drawn, not blank
    assert {p.stem for p in (calibrated_run[0] / "figures").glob("*.png")} == FIGURES


def test_fit_prints_summary_and_where_the_logs_are(calibrated_run):
    run_dir, printed = calibrated_run
    assert "best checkpoint" in printed and "validation" in printed and "test" in printed
    assert f"best epoch: {json.loads((run_dir / 'metrics.json').read_text())['best_epoch']}" in printed
    assert "calibration: temperature" in printed
    timings = json.loads((run_dir / "timings.json").read_text())
    assert 0 < timings["train_seconds"] <= timings["fit_seconds"]
    assert "train_seconds" not in json.loads((run_dir / "metrics.json").read_text())  # metrics stay reproducible
    assert f"tensorboard --logdir {run_dir.parent}" in printed
    assert f"tabularnet report {run_dir}" in printed


def test_calibration_is_stored_in_the_best_checkpoint(calibrated_run):
    metrics = json.loads((calibrated_run[0] / "metrics.json").read_text())
    assert metrics["temperature"] > 0 and metrics["temperature"] != 1.0
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert float(checkpoint["state_dict"]["temperature"]) == pytest.approx(metrics["temperature"], abs=1e-5)
    assert metrics["val_ece"] == pytest.approx(metrics["val_ece_calibrated"], abs=1e-5)
    assert 0 <= metrics["test_ece_uncalibrated"] <= 1 and metrics["test_ece_uncalibrated"] != metrics["test_ece"]


def test_predict_from_checkpoint_alone_applies_the_temperature(calibrated_run, table_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    best = json.loads((calibrated_run[0] / "metrics.json").read_text())["best_checkpoint"]
    checkpoint = torch.load(best, weights_only=True)
    temperature = float(checkpoint["state_dict"]["temperature"])
    checkpoint["state_dict"]["temperature"] = torch.ones(())  # the same weights, uncalibrated
    torch.save(checkpoint, tmp_path / "uncalibrated.ckpt")
    for name, path in (("calibrated", best), ("uncalibrated", tmp_path / "uncalibrated.ckpt")):
        main(
            [
                "predict",
                "--ckpt_path",
                str(path),
                f"--data.predict_path={table_files['predict']}",
                f"--predictions_path={tmp_path / name}.csv",
            ]
        )

    def log_odds(name: str) -> np.ndarray:
        preds = pd.read_csv(tmp_path / f"{name}.csv")
        return np.log(preds["proba_yes"] / preds["proba_no"]).to_numpy()

    np.testing.assert_allclose(log_odds("calibrated"), log_odds("uncalibrated") / temperature, rtol=1e-4, atol=1e-4)


def test_test_subcommand_draws_the_test_figures(calibrated_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    best = json.loads((calibrated_run[0] / "metrics.json").read_text())["best_checkpoint"]
    main(["test", "--ckpt_path", best, "--trainer.enable_progress_bar=false"])
    figures = tmp_path / "lightning_logs" / "version_0" / "figures"
    assert {p.stem for p in figures.glob("*.png")} == {"confusion_matrix_test", "roc_test", "reliability_test"}


def test_calibrate_without_validation_data_is_a_one_line_error(table_files, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--model=tabularnet.MLPLightningModule",
                "--model.calibrate=true",
                f"--data.train_path={table_files['train']}",
                "--data.val_fraction=0",
                f"--trainer.default_root_dir={tmp_path}",
                "--trainer.max_epochs=1",
            ]
        )
    assert exit_info.value.code == 2
    assert "model.calibrate needs validation data" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- report
def test_report_embeds_metrics_config_and_every_figure(calibrated_run, tmp_path):
    run_dir = calibrated_run[0]
    out = tmp_path / "report.html"
    main(["report", str(run_dir), "--output", str(out)])
    page = out.read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    images = dict(re.findall(r'alt="([^"]+)"[^>]*src="data:image/png;base64,([^"]+)"', page))
    assert set(images) == FIGURES
    for data in images.values():
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 100
    assert f"{metrics['test_acc']:.4f}" in page and "temperature" in page and "time: " in page
    assert "hidden_dims" in page  # the config
    assert 'src="http' not in page and "<link" not in page  # self-contained


def test_report_of_a_missing_run_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    assert "run directory not found" in capsys.readouterr().err


def torn_writes(monkeypatch, method: str) -> list[Path]:
    """Make ``Path.<method>`` (write_bytes / write_text) write half its content and fail, as a full disk does;
    return the list of paths it was called on."""
    original, calls = getattr(Path, method), []

    def torn(self, data, *args, **kwargs):
        calls.append(self)
        original(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, method, torn)
    return calls


def test_failed_report_write_keeps_the_previous_report(calibrated_run, tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    main(["report", str(calibrated_run[0]), "--output", str(out)])
    previous = out.read_bytes()
    calls = torn_writes(monkeypatch, "write_text")
    with pytest.raises(OSError, match="No space left"):
        write_report(calibrated_run[0], out)
    assert calls  # the failure was injected into the write
    assert out.read_bytes() == previous  # not a torn page
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind


def test_failed_figure_write_keeps_the_previous_figure(tmp_path, monkeypatch):
    y, probs = np.array([0, 1, 1, 0]), np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]])
    (path,) = save_figures({"roc_val": roc_figure(y, probs, ["no", "yes"])}, tmp_path)
    previous = path.read_bytes()
    assert previous.startswith(b"\x89PNG")
    calls = torn_writes(monkeypatch, "write_bytes")
    with pytest.raises(OSError, match="No space left"):
        save_figures({"roc_val": roc_figure(y, probs[:, ::-1], ["no", "yes"])}, tmp_path)
    assert calls
    assert path.read_bytes() == previous
    assert [p.name for p in path.parent.iterdir()] == ["roc_val.png"]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(calibrated_run):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report_check.py"), "--run-dir", str(calibrated_run[0])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" ok") == len(FIGURES)


# -------------------------------------------------------------------------------------------------- figures
def test_multiclass_figures():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), 200)
    classes = ["a", "b", "c"]
    roc = roc_figure(y, probs, classes)
    assert len(roc.axes[0].get_lines()) == 1 + 3  # chance diagonal + one curve per class
    matrix = confusion_matrix_figure(y, probs, classes)
    assert sum(int(t.get_text()) for t in matrix.axes[0].texts) == 200
    reliability = reliability_figure(y, {"model": probs})
    assert "ECE" in reliability.axes[0].get_legend().get_texts()[1].get_text()


def test_learning_curves_draw_the_teacher_line():
    curves = {"train_loss": [(0, 0.7), (1, 0.6)], "val_loss": [(0, 0.65), (1, 0.6)], "val_acc": [(0, 0.7), (1, 0.8)]}
    figure = learning_curves_figure(curves, {"teacher_val_acc": 0.85, "teacher_val_logloss": 0.3})
    acc_lines = figure.axes[1].get_lines()
    assert any(list(line.get_ydata()) == [0.85, 0.85] for line in acc_lines)
    assert [text.get_text() for text in figure.axes[1].get_legend().get_texts()] == [
        "student val_acc",
        "teacher val_acc",
    ]


@pytest.mark.parametrize("epochs", [2, 3, 12])
def test_learning_curves_have_integer_epoch_ticks(epochs):
    curves = {
        tag: [(epoch, 1.0 / (epoch + 1)) for epoch in range(epochs)] for tag in ("train_loss", "val_loss", "val_acc")
    }
    figure = learning_curves_figure(curves)
    figure.canvas.draw()
    for ax in figure.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
        labels = [label.get_text() for label in ax.get_xticklabels() if label.get_text()]
        assert labels and all(re.fullmatch(r"[−-]?\d+", text) for text in labels), labels


@pytest.mark.parametrize("rich", [True, False])
def test_torch_trainer_progress(capsys, monkeypatch, rich):
    """``TorchTrainer(progress=True)``: with Rich, the epoch bar and the last epoch's metrics; without it, one line
    per epoch on stderr with the epoch's numbers."""
    import tabularnet.training.progress as progress_module

    monkeypatch.setenv("COLUMNS", "200")  # Rich's width off a terminal: the metrics column in full
    if not rich:
        monkeypatch.setattr(progress_module, "Progress", None)  # as without Rich installed
    dm = TabularData.from_frames(make_table(200, seed=0), target="target", batch_size=32)
    torch.manual_seed(0)
    net = MLP(n_num_features=dm.n_num_features, cat_cardinalities=dm.cat_cardinalities, d_out=2, hidden_dims=[8])
    trainer = TorchTrainer(Recipe.from_options(), max_epochs=2, progress=True)
    trainer.fit(net, dm.train_dataloader(), dm.val_dataloader())
    captured = capsys.readouterr()
    assert captured.out == ""  # progress goes to stderr: stdout stays the user's
    history = trainer.history
    lines = [
        f"epoch {epoch}/1  train_loss {history.train_loss[epoch]:.4f}  val_loss {history.val_loss[epoch]:.4f}  "
        f"val_acc {history.val_acc[epoch]:.4f}"
        for epoch in range(2)
    ]
    if rich:
        assert lines[1] in captured.err and re.search(r"epochs\s.*2/2", captured.err), captured.err
    else:
        printed = [line for line in captured.err.splitlines() if line.startswith("epoch ")]
        assert len(printed) == 2, captured.err
        for line, expected in zip(printed, lines):
            assert re.fullmatch(re.escape(expected) + r"  \(\d+\.\ds\)", line), line
