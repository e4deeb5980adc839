"""UploadPool: daemon workers, results and exceptions handed back, a shutdown that can stop waiting."""

from __future__ import annotations

import threading

import pytest
from logshield_agent._pool import UploadPool


class Boom(BaseException):
    pass


def fail() -> None:
    raise Boom


class TestUploadPool:
    def test_results_and_exceptions(self):
        """A job's result or exception (even a BaseException) comes back through its future."""
        pool = UploadPool(2, name="test-pool")
        assert pool.submit(lambda a, b: a + b, 2, 3).result(5) == 5
        with pytest.raises(Boom):
            pool.submit(fail).result(5)
        assert pool.shutdown(timeout=5) == 0

    def test_shutdown_stops_waiting_and_cancels_queued_jobs(self):
        """A job that hangs is left behind after the timeout (its thread is a daemon); queued jobs are cancelled."""
        release = threading.Event()
        pool = UploadPool(1, name="test-pool")
        hanging = pool.submit(release.wait, 30)
        queued = pool.submit(lambda: "never")
        while not hanging.running():
            threading.Event().wait(0.01)
        assert pool.shutdown(timeout=0.1) == 1
        assert queued.cancelled() and all(t.daemon for t in pool._threads)
        release.set()
        assert hanging.result(5) is True
        with pytest.raises(RuntimeError):
            pool.submit(lambda: None)
        assert pool.shutdown(timeout=5) == 0

    def test_a_finished_job_is_not_kept_alive(self):
        """Once its result is handed over, a job's arguments (an upload's batch) are released by the worker."""
        import gc
        import weakref

        class Batch:
            pass

        batch = Batch()
        ref = weakref.ref(batch)
        pool = UploadPool(1, name="test-pool")
        future = pool.submit(lambda b: None, batch)
        future.result(5)
        del batch, future
        for _ in range(100):
            gc.collect()
            if ref() is None:
                break
            threading.Event().wait(0.01)
        assert ref() is None
        assert pool.shutdown(timeout=5) == 0
