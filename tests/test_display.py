"""The run's display: one plain line per epoch off a terminal, a live stage line and epoch bar on one."""

from __future__ import annotations

import io

from rich.console import Console

from paiexport.display import Display, current


def record(epoch: int, seconds: float, acc: float = 0.5, loss: float = 1.23456) -> dict:
    return {"epoch": epoch, "val_acc": acc, "train_loss": loss, "seconds": seconds}


def test_off_a_terminal_each_epoch_is_one_line_with_its_own_time():
    out = io.StringIO()
    display = Display(Console(file=out, width=120))
    assert not display.live and display.progress is None
    with display.stage("training"), display.training(epochs=3, total_steps=6):
        display.step()
        display.epoch_done(record(1, 2.5))
        display.epoch_done(record(2, 4.0, acc=0.625, loss=0.5))  # seconds are cumulative
    assert out.getvalue().splitlines() == [
        "epoch 1/3  loss 1.2346  val acc 50.00%  2.5 s",
        "epoch 2/3  loss 0.5000  val acc 62.50%  1.5 s",
    ]


def test_on_a_terminal_the_bar_names_the_coming_epoch_and_the_last_accuracy():
    display = Display(Console(file=io.StringIO(), force_terminal=True, width=100))
    with display.stage("training"), display.training(epochs=3, total_steps=6):
        stage, bar = display.progress.tasks
        assert (stage.description, stage.total) == ("training…", None)
        assert (bar.description, bar.total) == ("  train epoch 1/3", 6)
        display.step()
        display.step()
        display.epoch_done(record(1, 2.5))
        assert bar.completed == 2 and bar.description == "  train epoch 2/3 · val acc 50.00% (epoch 1)"
        display.epoch_done(record(3, 7.0))
        assert bar.description == "  train epoch 3/3 · val acc 50.00% (epoch 3)"  # never epoch 4/3
    assert display.progress.tasks == [] and display.bar is None


def test_current_is_the_stages_display_and_a_silent_one_elsewhere():
    outside = current()
    assert outside.console.quiet and not outside.live
    display = Display(Console(file=io.StringIO()))
    with display.stage("export"):
        assert current() is display
    assert current() is not display
