"""The demo's process management: on every way out its children are stopped and its temporary directory removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A stand-in for the demo: a workspace, a child in it (a sleeper that records SIGTERM, as the agent flushes on it),
# then it waits to be stopped. It prints the workspace and the child's pid, then "ready".
SCRIPT = textwrap.dedent("""
    import sys, time
    from demo.processes import Child, Stopped, signals_raise, workspace
    child_code = ("import signal, sys, time; "
                  "signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[1], 'w').write('flushed'), sys.exit(0))); "
                  "time.sleep(120)")
    try:
        with signals_raise(), workspace() as work:
            with Child([sys.executable, "-c", child_code, sys.argv[1]]) as child:
                print(work, child.pid, flush=True)
                time.sleep(0.5)  # the child installs its handler
                print("ready", flush=True)
                if sys.argv[2] == "error":
                    raise RuntimeError("something broke")
                time.sleep(120)
    except KeyboardInterrupt:
        sys.exit(130)
    except Stopped as exc:
        sys.exit(128 + exc.signum)
""")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def start(tmp_path: Path, mode: str = "wait") -> tuple[subprocess.Popen[str], Path, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "flushed"), mode], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    work, pid = proc.stdout.readline().split()
    assert proc.stdout.readline().strip() == "ready"
    assert Path(work).is_dir() and alive(int(pid))
    return proc, Path(work), int(pid)


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


class TestDemoCleanup:
    @pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 128 + 15), (signal.SIGHUP, 128 + 1),
                                                  (signal.SIGINT, 130)])
    def test_signal_stops_the_child_and_removes_the_workspace(self, tmp_path, signum, code):
        """SIGTERM, SIGHUP or Ctrl-C to the demo: the child is stopped with SIGTERM (so the agent flushes), the
        temporary directory is gone, and the demo exits 128+signal."""
        proc, work, pid = start(tmp_path)
        proc.send_signal(signum)
        assert proc.wait(30) == code, proc.stderr.read()
        assert wait_gone(pid) and not work.exists()
        assert (tmp_path / "flushed").read_text() == "flushed"

    def test_error_stops_the_child_and_removes_the_workspace(self, tmp_path):
        """An exception in the demo still stops the child and removes the workspace."""
        proc, work, pid = start(tmp_path, "error")
        assert proc.wait(30) == 1
        assert "something broke" in proc.stderr.read()
        assert wait_gone(pid) and not work.exists()

    def test_child_dies_with_a_killed_demo(self, tmp_path):
        """SIGKILL leaves no chance to clean up: the kernel still stops the child (PR_SET_PDEATHSIG)."""
        proc, work, pid = start(tmp_path)
        proc.kill()
        proc.wait(30)
        assert wait_gone(pid)

    def test_child_has_its_own_session(self, tmp_path):
        """The child is not in the demo's process group: a terminal's Ctrl-C reaches the demo, which stops it."""
        proc, work, pid = start(tmp_path)
        try:
            assert os.getsid(pid) == pid != os.getsid(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    def test_demo_uses_the_helpers(self):
        """demo/__main__.py runs its story inside signals_raise, workspace and Child (no bare Popen, no mkdtemp)."""
        text = (REPO / "demo" / "__main__.py").read_text()
        assert "with signals_raise(), workspace() as work, SeaweedFS(" in text
        assert "with Child([exe]" in text
        assert "Popen(" not in text and "mkdtemp" not in text
