"""#20: `run --resume` against hostile and broken state. A checkpoint cannot run code, a failed
resume never loses one, killed writes are not published, a stuck read stops on SIGTERM, and a
full disk is one line."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from tiny import TINY_RECIPE
from typer.testing import CliRunner
from userdata import write_npz

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.paths import MARKER_TEXT, RUN_MARKER
from paiexport.recipe import Recipe
from paiexport.runs.pipeline import run_recipe
from paiexport.runs.resume import resumable_runs
from paiexport.sweep import run_one
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.resume_file import FORMAT


class Killed(KeyboardInterrupt):
    """Stands in for SIGKILL: nothing after it runs, the staging folder stays."""


class Planted:
    """Unpickling it runs code: it writes `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def tiny(**data: object) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(TINY_RECIPE))
    raw["train"]["epochs"] = 3
    raw["data"].update(data)
    raw["export"]["formats"], raw["bench"] = ["dense"], {"batch_sizes": [1], "warmup": 0, "iterations": 1}
    return raw


def interrupt(raw: dict, out: Path) -> Path:
    """Run `raw` into `out`, killed at its second metrics line (after epoch 1's checkpoint)."""
    write = MetricsLog.write

    def killing(self: MetricsLog, record: dict) -> None:
        write(self, record)
        if self.position == 2:
            raise Killed

    with pytest.MonkeyPatch.context() as m:
        m.setattr(MetricsLog, "write", killing)
        with pytest.raises(Killed):
            run_recipe(Recipe.model_validate(raw), out)
    (staging,) = out.parent.glob(f".{out.name}.partial-*")
    return staging


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", *map(str, args)])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """One interrupted run of `tiny()`; tests copy its staging folder."""
    return interrupt(tiny(), tmp_path_factory.mktemp("interrupted") / "run")


@pytest.fixture
def staged(interrupted, tmp_path, write_recipe) -> tuple[Path, Path, Path]:
    """(recipe file, --out, staging folder): a copy of the interrupted run, ready for --resume."""
    staging = tmp_path / interrupted.name
    shutil.copytree(interrupted, staging)
    return write_recipe(tiny()), tmp_path / "run", staging


def refused(staged: tuple[Path, Path, Path], *needles: str) -> None:
    """--resume exits 2 naming the resume file and the reason; every byte stays, unlocked."""
    recipe, out, staging = staged
    before = hashes(staging)
    code, output = cli(recipe, "--out", out, "--resume")
    assert code == 2, output
    line = " ".join(output.split())  # rich wraps long lines
    for needle in ("resume.pt", *needles):
        assert needle in line, output
    assert hashes(staging) == before
    assert resumable_runs(out) == [staging] and not out.exists()  # a later --resume finds it


@pytest.mark.parametrize("claimed", [FORMAT, 1])
def test_a_planted_resume_file_runs_no_code(staged, tmp_path, claimed):
    marker = tmp_path / "ran"
    torch.save(
        {"format": claimed, "finished": [Planted(marker)], "current": None},
        staged[2] / "checkpoints" / "resume.pt",
    )
    refused(staged, "holds exec, not plain data" if claimed == FORMAT else "another paiexport version")
    assert not marker.exists()


def test_a_truncated_resume_file_is_refused_and_kept(staged):
    path = staged[2] / "checkpoints" / "resume.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(staged, "damaged or truncated")


def test_a_resume_file_of_another_version_is_refused_and_kept(staged):
    torch.save({"format": 99, "finished": [], "current": None}, staged[2] / "checkpoints" / "resume.pt")
    refused(staged, "another paiexport version (format 99")


def test_a_saved_state_that_does_not_fit_the_model_is_refused_and_kept(staged):
    path = staged[2] / "checkpoints" / "resume.pt"
    saved = torch.load(path, weights_only=False)  # the test's own file
    phase = saved["current"] or saved["finished"][-1]
    name = next(iter(phase["model"]))
    phase["model"][name] = torch.zeros(3)
    torch.save(saved, path)
    refused(staged, "does not fit the model", name)


def test_a_resume_whose_data_file_is_gone_keeps_the_checkpoint(tmp_path, write_recipe):
    data = write_npz(tmp_path / "d.npz", n_test=40)
    raw = tiny(name="npz", path=str(data))
    run_recipe(Recipe.model_validate(raw), tmp_path / "ref")
    recipe, out = write_recipe(raw), tmp_path / "run"
    staging = interrupt(raw, out)
    before = hashes(staging)
    data.rename(tmp_path / "moved.npz")
    code, output = cli(recipe, "--out", out, "--resume")
    assert code == 2 and "data.path" in output, output
    assert hashes(staging) == before and resumable_runs(out) == [staging]
    (tmp_path / "moved.npz").rename(data)
    code, output = cli(recipe, "--out", out, "--resume")
    assert code == 0, output
    assert hashes(out)["model.onnx"] == hashes(tmp_path / "ref")["model.onnx"]
    assert not staging.exists()


def test_temporary_files_of_killed_writes_are_not_published(staged):
    recipe, out, staging = staged
    (staging / "checkpoints" / ".resume.pt.tmp-4242").write_bytes(b"half a checkpoint")
    (staging / ".masks.pt.tmp-77").write_bytes(b"half")
    code, output = cli(recipe, "--out", out, "--resume")
    assert code == 0, output
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_sweep_resume_refuses_a_planted_checkpoint(tmp_path):
    raw, folder = tiny(), tmp_path / "sweep" / "method.name=snip__seed=0"
    staging = folder.parent / f".{folder.name}.partial-999999999-abcd"
    (staging / "checkpoints").mkdir(parents=True)
    (staging / RUN_MARKER).write_text(MARKER_TEXT)
    (staging / "recipe.yaml").write_text(
        yaml.safe_dump(Recipe.model_validate(raw).to_dict(), sort_keys=False)
    )
    marker = tmp_path / "ran"
    torch.save(
        {"format": FORMAT, "finished": [Planted(marker)], "current": None},
        staging / "checkpoints" / "resume.pt",
    )
    before = hashes(staging)
    with pytest.raises(UserError, match=r"resume\.pt holds exec, not plain data"):
        run_one(raw, str(folder), None, True)
    assert not marker.exists() and hashes(staging) == before


def fifo_dataset(root: Path) -> Path:
    """A factory dataset whose samples after the first read a FIFO nobody writes (a stuck read).

    Image folders refuse FIFOs without opening them, so the stuck read here is the user's own code.
    """
    fifo = root / "stuck.fifo"
    os.mkfifo(fifo)
    (root / "fifodata.py").write_text(
        "import torch\n"
        "from torch.utils.data import Dataset\n\n"
        "class Stuck(Dataset):\n"
        "    targets = [i % 2 for i in range(16)]\n\n"
        "    def __len__(self):\n"
        "        return 16\n\n"
        "    def __getitem__(self, i):\n"
        "        if i > 0:\n"
        f"            with open({str(fifo)!r}, 'rb') as f:\n"
        "                f.read()\n"
        "        return torch.full((8,), float(i % 2)), i % 2\n\n"
        "def make():\n"
        "    return Stuck(), Stuck()\n"
    )
    return fifo


def _blocked_in_fifo(tid: int) -> bool:
    try:
        return Path(f"/proc/self/task/{tid}/wchan").read_text() in ("wait_for_partner", "fifo_open")
    except OSError:
        return False


def _feed(fifos: list[Path]) -> None:
    """Unblock a reader stuck in open(): it reads an empty file (the old code's only way out)."""
    for fifo in fifos:
        with contextlib.suppress(OSError):  # ENXIO: nobody is reading it
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_sigterm_stops_a_run_stuck_reading_a_fifo(tmp_path, write_recipe):
    fifos = [fifo_dataset(tmp_path)]
    raw = tiny(name="fifodata:make", path=None, batch_size=4)
    recipe, out, main = write_recipe(raw), tmp_path / "run", threading.main_thread()
    sent, done = [], threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not _blocked_in_fifo(main.native_id) and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.02)
        if _blocked_in_fifo(main.native_id):  # inside run_recipe: its handlers are installed
            signal.pthread_kill(main.ident, signal.SIGTERM)
            sent.append(time.monotonic())
        done.wait(5)
        while not done.is_set():  # the signal was ignored: never hang the suite
            _feed(fifos)
            time.sleep(0.1)

    previous = signal.signal(signal.SIGTERM, lambda *a: None)  # a late signal must not end pytest
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code, output = cli(recipe, "--out", out)
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGTERM, previous)
    assert sent, f"never blocked in the FIFO: {output}"
    assert code == 128 + signal.SIGTERM, output
    assert time.monotonic() - sent[0] < 4
    assert "nothing was trained" in output and "--resume" not in output
    assert not out.exists() and not list(tmp_path.glob(".run.partial-*"))


def no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_after_training_is_one_line_and_keeps_the_checkpoint(tmp_path, write_recipe, monkeypatch):
    recipe, out = write_recipe(tiny()), tmp_path / "run"
    with monkeypatch.context() as m:  # the disk fills while exporting
        m.setattr("paiexport.runs.ship.export_variants", no_space)
        code, output = cli(recipe, "--out", out)
    assert code == 1, output
    line = " ".join(output.split())
    assert f"--out {out}: no space left on the device; the training checkpoint is kept" in line
    assert not out.exists() and len(resumable_runs(out)) == 1
    code, output = cli(recipe, "--out", out, "--resume")
    assert code == 0 and (out / "model.onnx").is_file(), output


def test_a_full_disk_before_any_checkpoint_removes_the_staging_folder(tmp_path, write_recipe, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(MetricsLog, "write", no_space)
    code, output = cli(write_recipe(tiny()), "--out", out)
    assert code == 1, output
    assert f"--out {out}: no space left on the device; nothing was written" in " ".join(output.split())
    assert not out.exists() and not list(tmp_path.glob(".run.partial-*"))


@pytest.fixture(params=["64k", "300k"])  # full before the first checkpoint / after training (a run: ~400k)
def small_disk(tmp_path, request):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={request.param}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_disk_is_one_line(small_disk, write_recipe):
    out = small_disk / "run"
    code, output = cli(write_recipe(tiny()), "--out", out)
    assert code == 1, output
    line = " ".join(output.split())
    assert f"--out {out}: no space left on the device" in line
    assert not out.exists()
    kept = resumable_runs(out)
    assert ("--resume" in line) == bool(kept)
    assert [p.name for p in small_disk.iterdir()] == [p.name for p in kept]
