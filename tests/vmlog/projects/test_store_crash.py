"""kill -9 at random instants of save/restore/rm on a stopped VM's layers: repair, then every state
saved before the crash is still byte-identical (and restores so)."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
from chain_helpers import same_content, snapshot_raw, write_pattern

from vmlog import fsutil
from vmlog.errors import InvalidInput
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.projects.repair import check_project
from vmlog.projects.store import ProjectFiles

TRIALS = 30


def _journal(path: Path, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _record_saved(files: ProjectFiles, sid: str, refs_dir: Path, journal: Path) -> None:
    layer = files.layers.path(files.states()[sid].layers["system"])
    tmp = refs_dir / f"{sid}.raw.part"
    snapshot_raw(layer, tmp)
    fsutil.fsync_file(tmp)
    os.rename(tmp, refs_dir / f"{sid}.raw")
    _journal(journal, f"saved {sid}")


def _churn(root: Path, image: Path, refs_dir: Path, journal: Path, seed: int) -> None:
    """Runs in a child process (its own process group, so its qemu-img children die with it)."""
    os.setsid()
    rng = random.Random(seed)
    files = ProjectFiles(root, lambda sha: image)
    chain = OverlayChain(None)
    while True:
        project = files.load()
        live = files.layers.path(project.live["system"])
        write_pattern(live, rng.randrange(1, 255), rng.randrange(0, 64) * 65536, 65536)
        op = rng.choice(["save", "save", "restore", "rm"])
        states = files.states()
        _journal(journal, f"begin {op}")
        if op == "save" or not states:
            sid = chain.save(files, name=None, message="churn", author="t@h", memory=False).id
            _record_saved(files, sid, refs_dir, journal)
        elif op == "restore":
            if chain.live_has_changes(files):
                sid = chain.save(
                    files, name=None, message="auto-saved before restore", author="t@h", memory=False
                ).id
                _record_saved(files, sid, refs_dir, journal)
            target = files.states()[rng.choice(sorted(states))]
            _journal(journal, f"restoring {target.id}")
            chain.restore(files, target)
        else:
            victim = states[rng.choice(sorted(states))]
            _journal(journal, f"removing {victim.id}")
            try:
                chain.remove(files, victim)
            except InvalidInput:
                _journal(journal, f"kept {victim.id}")
        _journal(journal, f"done {op}")


def _kill_inside_an_operation(journal: Path, after: float, rng: random.Random) -> None:
    """Wait ``after`` seconds, then until the child has begun a store operation, then a few ms more."""
    time.sleep(after)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        lines = journal.read_text().splitlines() if journal.exists() else []
        if lines and lines[-1].startswith("begin "):
            break
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.04))


def _killed_mid_operation(journal: Path) -> bool:
    """Whether the child's last journal line shows an operation begun and not done when the kill came."""
    lines = journal.read_text().splitlines() if journal.exists() else []
    return bool(lines) and not lines[-1].startswith(("done ", "trial "))


def _read_journal(journal: Path) -> tuple[list[str], set[str]]:
    saved: list[str] = []
    removing: set[str] = set()
    if not journal.exists():
        return saved, removing
    for line in journal.read_text().splitlines():
        kind, _, sid = line.partition(" ")
        if kind == "saved" and len(sid) == 16:
            saved.append(sid)
        elif kind == "removing" and len(sid) == 16:
            removing.add(sid)
    return saved, removing


def _verify(files: ProjectFiles, refs_dir: Path, journal: Path) -> int:
    saved, removing = _read_journal(journal)
    states = files.states()
    checked = 0
    for sid in saved:
        if sid not in states:
            assert sid in removing, f"state {sid} vanished without being removed"
            continue
        layer = files.layers.path(states[sid].layers["system"])
        assert same_content(layer, refs_dir / f"{sid}.raw"), f"state {sid} changed"
        checked += 1
    return checked


@pytest.mark.vm  # the killed processes share one real libvirt daemon
def test_kill_minus_nine_during_save_restore_rm(project_files: ProjectFiles, ctx, tmp_path: Path) -> None:
    project = project_files.load()
    image = ctx.images.get(project.roots["system"].image_sha256).path
    refs_dir = tmp_path / "refs"
    refs_dir.mkdir()
    journal = tmp_path / "journal"
    rng = random.Random(1234)
    mp = multiprocessing.get_context("fork")
    repaired_something = 0
    killed_mid_operation = 0
    checked = 0
    for trial in range(TRIALS):
        child = mp.Process(target=_churn, args=(project_files.root, image, refs_dir, journal, trial))
        child.start()
        _kill_inside_an_operation(journal, rng.uniform(0.05, 1.0), rng)
        try:
            os.killpg(child.pid, signal.SIGKILL)  # the child and its qemu-img, like a power cut
        except ProcessLookupError:  # not yet its own group leader
            os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode is not None and child.exitcode != 0, "the churn loop stopped by itself"
        killed_mid_operation += _killed_mid_operation(journal)
        findings = check_project(project_files, repair=True)
        _journal(journal, f"trial {trial} repaired: {[f.problem for f in findings]}")
        repaired_something += bool(findings)
        assert all(f.repaired for f in findings if "lost" not in f.problem), findings
        assert check_project(project_files) == [], f"trial {trial}: still inconsistent after repair"
        checked = _verify(project_files, refs_dir, journal)
    assert checked >= 3, "the churn saved too few states to prove anything"
    assert killed_mid_operation >= TRIALS // 3, "too few kills landed mid-operation to prove anything"
    # (how many left something to repair depends on where they landed: the store's own order of writes
    # leaves most interrupted operations consistent, so only the count above is asserted)
    print(f"{killed_mid_operation}/{TRIALS} kills mid-operation, {repaired_something} left something to repair")
    # every surviving state restores byte-identically
    chain = OverlayChain(None)
    saved, _ = _read_journal(journal)
    states = project_files.states()
    for sid in saved:
        if sid in states:
            chain.restore(project_files, states[sid])
            live = project_files.layers.path(project_files.load().live["system"])
            assert same_content(live, refs_dir / f"{sid}.raw")
