"""The memory target: parsing sizes, the machine-derived default, the CLI."""

from __future__ import annotations

import os

import numpy as np
import pytest

from igneous.errors import UserError
from igneous.memory import default_memory_target, machine_memory, parse_memory
from tests.volumes import make_layer


@pytest.mark.parametrize("text,expected", [
    ("4e9", 4_000_000_000), ("3.5G", 3_500_000_000), ("512MiB", 512 * 2**20),
    ("2GB", 2_000_000_000), ("1.5 gib", int(1.5 * 2**30)), (3.5e9, 3_500_000_000), ("100", 100),
])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "4X", "-1G", "0"])
def test_parse_memory_refuses(text):
    with pytest.raises(UserError):
        parse_memory(text)


def test_default_is_a_quarter_of_this_machine(monkeypatch):
    monkeypatch.delenv("IGNEOUS_MEMORY_TARGET", raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < machine_memory() <= physical
    assert default_memory_target() == max(256 * 2**20, int(machine_memory() * 0.25))
    monkeypatch.setenv("IGNEOUS_MEMORY_TARGET", "1.25G")
    assert default_memory_target() == 1_250_000_000


def test_memory_option_shapes_tasks(tmp_path, igneous):
    """A smaller --memory gives smaller (more) tasks; both give the same pyramid."""
    data = np.random.RandomState(0).randint(0, 255, (256, 256, 16)).astype(np.uint8)
    for memory in ("64M", "1M"):
        path = make_layer(f"{tmp_path}/img-{memory}", data, chunk=(32, 32, 16))
        igneous("image", "downsample", path, "--num-mips", "3", "--memory", memory,
                "--queue", str(tmp_path / f"q-{memory}"), check=True)
    from igneous.queues import open_queue

    big = open_queue(str(tmp_path / "q-64M")).counts().pending
    small = open_queue(str(tmp_path / "q-1M")).counts().pending
    assert small > big >= 1


def test_memory_option_refuses_nonsense(tmp_path, igneous):
    data = np.zeros((32, 32, 8), np.uint8)
    path = make_layer(f"{tmp_path}/img", data)
    proc = igneous("image", "downsample", path, "--memory", "lots")
    assert proc.returncode == 2 and "not understood" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [
    ("mesh", "forge"), ("skeleton", "forge"), ("image", "voxels", "count"),
    ("image", "ccl", "faces"),
])
def test_every_planner_fits_tasks_to_memory(tmp_path, igneous, command):
    """A --memory too small for the default task shape shrinks the shape (and
    says so); a large one keeps it."""
    from igneous.queues import open_queue

    seg = (np.arange(128**3, dtype=np.uint32).reshape((128,) * 3) // 5000 % 7).astype(np.uint32)
    counts = {}
    for memory in ("64G", "8M"):
        path = make_layer(f"{tmp_path}/seg-{memory}", seg, chunk=(32, 32, 32),
                          layer_type="segmentation")
        queue = tmp_path / f"q-{memory}"
        proc = igneous(*command, path, "--memory", memory, "--queue", queue, check=True)
        counts[memory] = open_queue(str(queue)).counts().pending
        assert ("to fit the memory target" in proc.stderr) == (memory == "8M")
    assert counts["64G"] == 1 and counts["8M"] > 1
