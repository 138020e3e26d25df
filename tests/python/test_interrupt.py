"""Ctrl-C stops a long call with KeyboardInterrupt, and the GIL is free while the engine runs."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import taep
from conftest import SMALL

# A run of about a minute, in chunks of 4096 paths (each a few milliseconds); it says when it has
# started, then waits to be interrupted.
LONG_RUN = textwrap.dedent(
    """
    import sys, taep
    started = False
    def progress(info):
        global started
        if not started:
            started = True
            print("started", flush=True)
    try:
        taep.{call}
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    print("finished", flush=True)
    """
)

CONFIG = {"schedule": {"steps": 200}, "run": {"paths": 10**8, "chunk_paths": 4096, "backend": "cpu"}}


def interrupt(call):
    script = LONG_RUN.format(call=call)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 3, (out, err)
    assert out.strip() == "interrupted"
    assert elapsed < 10
    return elapsed


def test_ctrl_c_stops_run():
    interrupt(f"run({CONFIG!r}, progress=progress)")


def test_ctrl_c_stops_paths_and_training():
    interrupt(f"paths({CONFIG!r}, 0, 10**7, run__chunk_paths=4096, progress=progress)")
    train = {"optimizer": {"steps": 10**7, "batch": 256}, "network": {"hidden": [32, 32]}, "run": {"log_every": 10}}
    interrupt(f"train({train!r}, progress=progress)")


def test_ctrl_c_without_progress_callback():
    # The signal is seen at the next chunk whether or not a callback was given; "started" is
    # printed by a thread here, once the run is under way.
    script = textwrap.dedent(
        f"""
        import sys, threading, time, taep
        threading.Timer(0.5, lambda: print("started", flush=True)).start()
        try:
            taep.run({CONFIG!r})
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 3 and out.strip() == "interrupted"


def test_gil_is_released():
    config = dict(SMALL, run=dict(SMALL["run"], paths=200000))
    ticks, result = 0, {}
    worker = threading.Thread(target=lambda: result.update(doc=taep.run(config)))
    start = time.monotonic()
    worker.start()
    while worker.is_alive():  # pure Python: it advances only while the run has let go of the GIL
        ticks += 1
        time.sleep(0.001)
    elapsed = time.monotonic() - start
    worker.join()
    # The run takes about half a second on two cores, so hundreds of ticks; were the GIL held
    # through it, the loop would get at most a tick or two in before and after.
    assert ticks >= min(20, elapsed / 0.01), (ticks, elapsed)
    assert result["doc"]["taep"]["count"] == 200000


def test_progress_comes_from_the_calling_thread():
    config = dict(SMALL, run=dict(SMALL["run"], chunk_paths=4096))
    callers = []
    worker = threading.Thread(
        target=lambda: taep.run(config, progress=lambda info: callers.append(threading.get_ident())))
    worker.start()
    worker.join()
    assert set(callers) == {worker.ident} and len(callers) >= 2


def test_two_threads_at_once():
    configs = [dict(SMALL, run=dict(SMALL["run"], seed=s)) for s in (1, 2)]
    results = [None, None]

    def work(i):
        results[i] = taep.run(configs[i])["taep"]

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [taep.run(c)["taep"] for c in configs]
