import os
import stat
import subprocess
import sys
import time

import pytest

from fashion_lib.io import atomic_dir, atomic_write, read_text, remove_orphans


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as f:
        f.write("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no temp file left behind


def test_atomic_write_rejects_append(tmp_path):
    with pytest.raises(ValueError, match="mode must be"), atomic_write(tmp_path / "x", "a"):
        pass


def test_atomic_dir_never_leaves_a_half_written_folder(tmp_path):
    target = tmp_path / "dataset"
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as d:
        (d / "b.txt").write_text("2")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with atomic_dir(target) as d:
        (d / "c.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_written_files_and_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f.txt") as f:
            f.write("x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "a").write_text("1")
        os.umask(0o077)
        with atomic_write(tmp_path / "private.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644  # mkstemp alone gives 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # exited and reaped: no process has this pid (barring immediate reuse)


def test_orphans_of_an_interrupted_write_are_removed_by_the_next_write(tmp_path):
    from fashion_lib.io import _host

    target = tmp_path / "checkpoint.pt"
    host, dead = _host(), _dead_pid()
    orphan = tmp_path / f".checkpoint.pt.{host}.{dead}.k2j4x9q1.tmp"  # a kill -9 during a write
    orphan_dir = tmp_path / f".checkpoint.pt.{host}.{dead}.abc_1234.tmp"
    live = tmp_path / f".checkpoint.pt.{host}.{os.getpid()}.zzzz0000.tmp"  # a writer that is still running
    remote_fresh = tmp_path / ".checkpoint.pt.otherhost.1.aaaa1111.tmp"  # another host's writer, still writing
    remote_stale = tmp_path / ".checkpoint.pt.otherhost.2.bbbb2222.tmp"  # another host's, untouched for 2 hours
    foreign = [tmp_path / ".checkpoint.pt.swp", tmp_path / f".other.pt.{host}.{dead}.cccc3333.tmp",
               tmp_path / f".checkpoint.pt.{host}.{dead}.tmp", tmp_path / "notes.tmp"]  # not our pattern
    for p in (orphan, live, remote_fresh, remote_stale, *foreign):
        p.write_bytes(b"partial")
    orphan_dir.mkdir()
    (orphan_dir / "x").write_text("1")
    two_hours_ago = time.time() - 7200
    os.utime(remote_stale, (two_hours_ago, two_hours_ago))
    with atomic_write(target, "wb") as f:
        f.write(b"new")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"checkpoint.pt", live.name, remote_fresh.name, *(p.name for p in foreign)}
    assert remove_orphans(target) == []  # nothing more to remove


def test_read_text_names_the_file_byte_offset_and_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes("a,b\nné,\xff".encode().replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(ValueError, match=r"train.csv: byte 8 \(line 2\): ff is not valid UTF-8"):
        read_text(path)
    path.write_bytes("\ufeffa,b\n".encode())
    assert read_text(path, encoding="utf-8-sig") == "a,b\n"


def test_atomic_dir_recovers_a_replacement_killed_between_its_two_renames(tmp_path):
    target = tmp_path / "run"
    with atomic_dir(target) as d:
        (d / "weights").write_text("v1")
    # killed after "run" became ".run.old" and before the new folder took its name
    os.replace(target, tmp_path / ".run.old")
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as d:  # the next writer is interrupted too
        (d / "weights").write_text("half")
        raise KeyboardInterrupt
    assert (target / "weights").read_text() == "v1"  # the last complete version is back
    assert not (tmp_path / ".run.old").exists()
    (tmp_path / ".run.old").mkdir()  # a leftover beside a complete folder is removed by the next write
    with atomic_dir(target) as d:
        (d / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
