"""``runtime-metrics.json``: this process's CPU and memory, whole and per thread, sampled over
a window (2 s, as the Rust ryll does), so a report says whether ryll itself was starved or
spinning when the problem happened.

psutil gives the CPU times of the process and of each thread and the memory figures on every
platform it supports; thread names come from ``/proc/self/task/<tid>/comm`` on Linux (and
from Python's own threads, by native id, elsewhere). Blocking: run it in a worker thread.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path

SAMPLE_S = 2.0


def _thread_names() -> dict[int, str]:
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    task = Path("/proc/self/task")
    if task.is_dir():
        for entry in task.iterdir():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            tid = int(entry.name)
            # Python's name is the more telling one where there is one (asyncio_0...).
            names.setdefault(tid, comm)
    return names


def sample(window_s: float = SAMPLE_S) -> dict[str, object]:
    """CPU share (percent of one core) and memory of the process and its threads over
    ``window_s`` seconds; ``available: false`` with the reason where psutil cannot say."""
    try:
        import psutil

        proc = psutil.Process(os.getpid())
        wall0 = time.monotonic()
        cpu0 = proc.cpu_times()
        threads0 = {t.id: t.user_time + t.system_time for t in proc.threads()}
        time.sleep(window_s)
        wall = max(time.monotonic() - wall0, 1e-6)
        cpu1 = proc.cpu_times()
        threads1 = proc.threads()
        memory = proc.memory_info()
    except Exception as exc:  # psutil missing, or a platform it cannot read
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}",
                "platform": platform.system()}
    names = _thread_names()
    threads = []
    for t in threads1:
        used = t.user_time + t.system_time - threads0.get(t.id, 0.0)
        threads.append({
            "tid": t.id,
            "name": names.get(t.id, "?"),
            "cpu_percent": round(100.0 * used / wall, 2),
            "user_s": round(t.user_time, 3),
            "system_s": round(t.system_time, 3),
        })
    threads.sort(key=lambda t: -float(t["cpu_percent"]))  # type: ignore[arg-type]
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "available": True,
        "platform": platform.system(),
        "window_s": round(wall, 3),
        "process": {
            "pid": proc.pid,
            "cpu_percent": round(100.0 * used / wall, 2),
            "user_s": round(cpu1.user, 3),
            "system_s": round(cpu1.system, 3),
            "rss_bytes": memory.rss,
            "vms_bytes": memory.vms,
            "threads": len(threads),
        },
        "threads": threads,
    }
