"""Run the fuzz targets: ``python -m fuzz.driver TARGET... --seconds N [--atheris]``,
``--all``, ``--list``, ``--replay FILE...``.

Each target runs in a worker process watched by this one (the supervisor): a native crash
(a signal) or a hang inside compiled code, which no Python timer can interrupt, ends only the
worker; the supervisor saves the input in flight (the worker keeps it in a shared file) as the
reproducer and starts a new worker for the rest of the time. With ``--atheris`` the worker
runs atheris/libFuzzer over the instrumented ryll package; without it, the fallback engine of
fuzz/engine.py. Either way, at the end: one summary line per target (inputs run, crashes,
peak RSS, slowest input) and exit status 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CRASH_DIR = REPO / "fuzz" / "crashes"
MAX_INPUT = 1 << 20  # fuzz.engine.MAX_INPUT (not imported: this module must not import ryll)
# The shared state of one worker: the monotonic time its current input started (0: between
# inputs), inputs run, failing inputs, distinct crashes, peak RSS (KiB), slowest input (ms),
# the length of the current input; then the input itself.
STATE = struct.Struct("<dQQQQdI4x")


def atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


class StateFile:
    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = path
        size = STATE.size + MAX_INPUT
        if create:
            with path.open("wb") as f:
                f.truncate(size)
        self._f = path.open("r+b")
        self._m = mmap.mmap(self._f.fileno(), size)

    def begin(self, data: bytes) -> None:
        data = data[:MAX_INPUT]
        self._m[STATE.size:STATE.size + len(data)] = data
        struct.pack_into("<I", self._m, 48, len(data))
        struct.pack_into("<d", self._m, 0, time.monotonic())

    def end(self, inputs: int, failures: int, unique: int, rss_kib: int, slowest: float) -> None:
        struct.pack_into("<dQQQQd", self._m, 0, 0.0, inputs, failures, unique, rss_kib, slowest)

    def read(self) -> tuple[float, int, int, int, int, float, int]:
        return STATE.unpack_from(self._m, 0)

    def in_flight(self) -> bytes:
        n = self.read()[6]
        return bytes(self._m[STATE.size:STATE.size + n])

    def close(self) -> None:
        self._m.close()
        self._f.close()


# --- the worker -----------------------------------------------------------------------------


def _write_result(path: Path, result: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def _result(stats: Any, engine: str) -> dict[str, Any]:
    return {
        "engine": engine, "inputs": stats.inputs, "failures": stats.failures,
        "crashes": [{"signature": c.signature, "kind": c.kind, "path": str(c.path or ""),
                     "size": c.size} for c in stats.crashes],
        "peak_rss_kib": stats.peak_rss_kib, "slowest_ms": stats.slowest_ms,
        "corpus": stats.corpus, "features": stats.features,
    }


def _known(args: argparse.Namespace) -> dict[str, Path]:
    if not args.known:
        return {}
    return {sig: Path(p) for sig, p in json.loads(Path(args.known).read_text()).items()}


def run_worker(args: argparse.Namespace) -> int:
    state = StateFile(Path(args.state))
    result_path = Path(args.state).with_suffix(".json")
    if args.atheris:
        return _atheris_worker(args, state, result_path)
    from fuzz.engine import Stats, fuzz
    from fuzz.registry import TARGETS

    target = TARGETS[args.worker]
    known = _known(args)

    def hook(data: bytes | None, stats: Stats) -> None:
        if data is not None:
            state.begin(data)
        else:
            state.end(stats.inputs, stats.failures, len(stats.crashes), stats.peak_rss_kib,
                      stats.slowest_ms)

    stats = fuzz(args.worker, target.one_input, target.seeds(), args.seconds, seed=args.seed,
                 timeout=args.timeout, rss_limit_mb=args.rss_limit_mb, hook=hook,
                 echo=lambda text: print(text, flush=True), known=known)
    hook(None, stats)
    _write_result(result_path, _result(stats, "fallback"))
    return 1 if stats.crashes else 0


def _atheris_worker(args: argparse.Namespace, state: StateFile, result_path: Path) -> int:
    import atheris

    with atheris.instrument_imports(include=["ryll"]):
        from fuzz.registry import TARGETS
    from fuzz.contract import quiet_ryll_logs
    from fuzz.engine import (
        Crash,
        Runner,
        SlowInputs,
        Stats,
        peak_rss_kib,
        save_crash,
    )

    target = TARGETS[args.worker]
    known = _known(args)
    seeds = target.seeds()
    corpus = Path(args.corpus)
    for data in seeds:
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    runner = Runner(target.one_input, timeout=0, rss_limit_mb=args.rss_limit_mb)
    stats = Stats(args.worker)
    signatures: set[str] = set()
    last_write = [0.0]
    warm_up = 2 * len(seeds) + 20
    slowest = SlowInputs()
    slow_dir = Path(args.state).with_suffix(".slow")
    slow_dir.mkdir(exist_ok=True)
    quiet_ryll_logs().__enter__()  # for the life of the process: libFuzzer exits it

    def publish(force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last_write[0] > 1.0:
            last_write[0] = now
            _write_result(result_path, _result(stats, "atheris"))

    def one(data: bytes) -> None:
        state.begin(data)
        out = runner.run(data)
        stats.inputs += 1
        stats.peak_rss_kib = max(stats.peak_rss_kib, peak_rss_kib())
        # Not the first pass over the corpus (first calls, imports); the supervisor re-times
        # the slowest without instrumentation.
        if stats.inputs > warm_up and out.ok and slowest.offer(out.elapsed, data):
            stats.slowest_ms = slowest.items[-1][0] * 1000
            for i, (_, item) in enumerate(slowest.items):
                (slow_dir / f"{i}.bin").write_bytes(item)
        if not out.ok:
            stats.failures += 1
            if out.signature not in signatures:
                signatures.add(out.signature)
                path = known.get(out.signature) or save_crash(args.worker, data)
                stats.crashes.append(Crash(out.signature, out.kind, path, len(data), out.report))
                print(f"[{args.worker}] CRASH {out.signature} ({len(data)} bytes): {path}\n"
                      f"{out.report.rstrip()}", flush=True)
                publish(True)
        state.end(stats.inputs, stats.failures, len(stats.crashes), stats.peak_rss_kib,
                  stats.slowest_ms)
        publish()

    max_len = min(MAX_INPUT, max([4096, *(2 * len(s) for s in seeds)]))
    argv = [sys.argv[0], f"-max_total_time={max(1, int(args.seconds))}",
            f"-timeout={max(1, math.ceil(args.timeout))}", f"-rss_limit_mb={args.rss_limit_mb}",
            f"-seed={args.seed + 1}", f"-max_len={max_len}", f"-artifact_prefix={args.artifacts}/",
            "-print_final_stats=1", str(corpus)]
    atheris.Setup(argv, one)
    publish(True)
    atheris.Fuzz()  # exits the process at the end (libFuzzer), never returns
    return 0


# --- the supervisor -------------------------------------------------------------------------


@dataclass
class Summary:
    target: str
    engine: str
    inputs: int = 0
    failures: int = 0
    crashes: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_kib: int = 0
    slowest_ms: float = 0.0
    seconds: float = 0.0
    workers: int = 0
    features: int = 0  # fallback: line pairs covered (the last worker's)

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


# Signatures of the failures only a supervisor sees. What tells two segfaults apart is not
# known here, so each of these is saved once per run (and not again while a reproducer of it
# still fails).
NATIVE = "native crash"
LIBFUZZER_KINDS = {"crash": NATIVE, "timeout": "hang", "oom": "rss", "leak": "leak"}


def _save_reproducer(target: str, data: bytes) -> Path:
    CRASH_DIR.mkdir(parents=True, exist_ok=True)
    path = CRASH_DIR / f"{target}-{hashlib.sha1(data).hexdigest()}.bin"
    path.write_bytes(data)
    return path


def _native_failure(summary: Summary, known: dict[str, str], signature: str, detail: str,
                    data: bytes) -> None:
    summary.failures += 1
    target = summary.target
    if any(c["signature"] == signature for c in summary.crashes):
        print(f"[{target}] {signature} again ({detail}, {len(data)} bytes)", flush=True)
    elif signature in known:
        summary.crashes.append({"signature": signature, "kind": signature,
                                "path": known[signature], "size": len(data)})
        print(f"[{target}] known crash {signature}: {known[signature]}", flush=True)
    else:
        path = _save_reproducer(target, data)
        summary.crashes.append({"signature": signature, "kind": signature, "path": str(path),
                                "size": len(data)})
        print(f"[{target}] CRASH {signature} ({detail}, {len(data)} bytes): {path}", flush=True)


def print_signatures(paths: list[str]) -> int:
    """For --signatures: ``START path`` before each reproducer, then ``SIG path<TAB>sig`` if
    it still fails (nothing if it passes), flushed, so a reproducer that kills the process
    is the last one started."""
    from fuzz.engine import replay
    from fuzz.registry import TARGETS

    for name in paths:
        path = Path(name)
        print(f"START {path}", flush=True)
        outcome = replay(TARGETS[path.name.split("-", 1)[0]].one_input, path.read_bytes())
        if not outcome.ok:
            print(f"SIG {path}\t{outcome.signature}", flush=True)
    return 0


def known_signatures(target: str, hard_timeout: float) -> dict[str, str]:
    """Signature -> reproducer of the files of fuzz/crashes/ for ``target`` that still fail,
    replayed in child processes: one that dies is known by its signal (or as a hang)."""
    todo = sorted(str(p) for p in CRASH_DIR.glob(f"{target}-*.bin")) if CRASH_DIR.is_dir() else []
    known: dict[str, str] = {}
    while todo:
        cmd = [sys.executable, "-m", "fuzz.driver", "--signatures", *todo]
        try:
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                  timeout=hard_timeout * len(todo) + 60)
            out, rc = done.stdout, done.returncode
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or b""
            out, rc = raw.decode() if isinstance(raw, bytes) else raw, None
        started = []
        for line in out.splitlines():
            if line.startswith("START "):
                started.append(line[6:])
            elif line.startswith("SIG "):
                path, sig = line[4:].split("\t", 1)
                known.setdefault(sig, path)
        if rc == 0:
            break
        if not started:  # the replayer itself failed: leave the rest unknown
            break
        culprit = started[-1]
        known.setdefault("hang" if rc is None else NATIVE, culprit)
        todo = todo[todo.index(culprit) + 1:]
    return known


def supervise(target: str, args: argparse.Namespace) -> Summary:
    engine = "atheris" if args.atheris else "fallback"
    summary = Summary(target, engine)
    start = time.monotonic()
    deadline = start + args.seconds
    hard_timeout = max(10.0, 5 * args.timeout)
    work = Path(tempfile.mkdtemp(prefix=f"ryll-fuzz-{target}-"))
    retimed = 0.0
    known = known_signatures(target, hard_timeout)
    known_file = work / "known.json"
    known_file.write_text(json.dumps(known))
    try:
        while True:
            remaining = deadline - time.monotonic()
            if summary.workers and remaining < 1:
                break
            summary.workers += 1
            state_path = work / f"state{summary.workers}"
            state = StateFile(state_path, create=True)
            corpus, artifacts = work / "corpus", work / f"artifacts{summary.workers}"
            corpus.mkdir(exist_ok=True)
            artifacts.mkdir()
            cmd = [sys.executable, "-m", "fuzz.driver", "--worker", target, "--state",
                   str(state_path), "--seconds", f"{max(remaining, 1):.1f}",
                   "--seed", str(args.seed + summary.workers - 1), "--timeout", str(args.timeout),
                   "--rss-limit-mb", str(args.rss_limit_mb), "--corpus", str(corpus),
                   "--artifacts", str(artifacts), "--known", str(known_file)]
            if args.atheris:
                cmd.append("--atheris")
            log = (work / f"libfuzzer{summary.workers}.log").open("wb") if args.atheris else None
            proc = subprocess.Popen(cmd, cwd=REPO, stderr=log)
            hung = overran = False
            while proc.poll() is None:
                time.sleep(0.2)
                started, now = state.read()[0], time.monotonic()
                if started and now - started > hard_timeout:
                    hung = True  # one input, stuck where no Python timer reaches
                    proc.kill()
                elif now > deadline + 120 + hard_timeout:
                    overran = True  # the worker itself ran far over its time: not a finding
                    proc.kill()
            rc = proc.wait()
            if overran and not hung:
                print(f"[{target}] worker overran its time and was stopped", flush=True)
                rc = 0
            if log is not None:
                log.close()
            _, inputs, failures, _, rss, slowest, _ = state.read()
            result_path = state_path.with_suffix(".json")
            result = json.loads(result_path.read_text()) if result_path.exists() else {}
            summary.inputs += max(inputs, result.get("inputs", 0))
            summary.failures += max(failures, result.get("failures", 0))
            summary.peak_rss_kib = max(summary.peak_rss_kib, rss, result.get("peak_rss_kib", 0))
            summary.slowest_ms = max(summary.slowest_ms, slowest, result.get("slowest_ms", 0.0))
            summary.features = result.get("features", summary.features)
            listed = {c["signature"] for c in summary.crashes}
            summary.crashes += [c for c in result.get("crashes", [])
                                if c["signature"] not in listed]
            # libFuzzer's artifacts: crash-*, timeout-*, oom-*, leak-* (slow-unit-*: a report)
            found = [a for a in sorted(artifacts.iterdir())
                     if a.name.rsplit("-", 1)[0] in LIBFUZZER_KINDS]
            for art in found:
                kind = art.name.rsplit("-", 1)[0]
                _native_failure(summary, known, LIBFUZZER_KINDS[kind], f"libFuzzer {kind}",
                                art.read_bytes())
            abnormal = hung or rc < 0 or (args.atheris and found)
            if (hung or rc < 0) and not found:
                detail = f"over {hard_timeout:.0f} s" if hung else f"signal {-rc}"
                _native_failure(summary, known, "hang" if hung else NATIVE, detail,
                                state.in_flight())
            state.close()
            slow = sorted(state_path.with_suffix(".slow").glob("*.bin"))
            if slow:  # atheris: the slowest inputs again, uninstrumented
                timed = subprocess.run([sys.executable, "-m", "fuzz.driver", "--retime", target,
                                        *map(str, slow)], cwd=REPO, capture_output=True,
                                       text=True, timeout=600)
                if timed.returncode == 0 and timed.stdout.strip():
                    retimed = max(retimed, float(timed.stdout.split()[-1]))
            if log is not None and (abnormal or rc not in (0, 1)):
                tail = (work / f"libfuzzer{summary.workers}.log").read_bytes()[-3000:]
                sys.stdout.write(tail.decode("utf-8", "replace"))
            if not abnormal:
                if rc not in (0, 1) and not args.atheris:
                    print(f"[{target}] worker failed with exit status {rc}", flush=True)
                    summary.crashes.append({"signature": f"worker exit {rc}", "kind": "error",
                                            "path": "", "size": 0})
                break
            if summary.workers >= 25:
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.atheris:  # the instrumented timings are noise (collections, libFuzzer's own work)
        summary.slowest_ms = retimed
    summary.seconds = time.monotonic() - start
    return summary


def print_summaries(summaries: list[Summary], markdown: bool) -> None:
    if markdown:
        print("| target | engine | inputs | crashes | peak RSS (MiB) | slowest input (ms) |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for s in summaries:
            print(f"| {s.target} | {s.engine} | {s.inputs} | {len(s.crashes)} | "
                  f"{s.peak_rss_mib:.0f} | {s.slowest_ms:.1f} |")
    else:
        for s in summaries:
            print(f"{s.target:16s} {s.engine:8s} inputs {s.inputs:9d}  crashes "
                  f"{len(s.crashes):3d} ({s.failures} inputs)  peak RSS {s.peak_rss_mib:6.0f} MiB"
                  f"  slowest {s.slowest_ms:8.1f} ms  ({s.seconds:.0f} s"
                  + (f", {s.features} line pairs)" if s.features else ")"))
    for s in summaries:
        for c in s.crashes:
            print(f"  {s.target}: {c['signature']} -> {c['path']}")


def replay_files(paths: list[str]) -> int:
    from fuzz.engine import replay
    from fuzz.registry import TARGETS

    bad = 0
    for name in paths:
        path = Path(name)
        target = path.name.split("-", 1)[0]
        out = replay(TARGETS[target].one_input, path.read_bytes())
        print(f"{path}: {'ok' if out.ok else out.signature} ({out.elapsed * 1000:.1f} ms)")
        if not out.ok:
            bad += 1
            print(out.report)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz.driver", description=__doc__.split("\n")[0])
    ap.add_argument("targets", nargs="*", help="target names (see --list)")
    ap.add_argument("--all", action="store_true", help="every target, one after the other")
    ap.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    ap.add_argument("--atheris", action="store_true", help="use atheris (libFuzzer)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=2.0, help="per input, seconds (default 2)")
    ap.add_argument("--rss-limit-mb", type=int, default=3072)
    ap.add_argument("--markdown", action="store_true", help="the summary as a Markdown table")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    ap.add_argument("--replay", action="store_true",
                    help="run the given crash files (fuzz/crashes/<target>-<sha1>.bin) once")
    ap.add_argument("--retime", help=argparse.SUPPRESS)
    ap.add_argument("--signatures", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--known", help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--state", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--artifacts", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.replay:
        return replay_files(args.targets)
    if args.signatures:
        return print_signatures(args.targets)
    if args.retime:
        from fuzz.engine import retime
        from fuzz.registry import TARGETS as ALL

        inputs = [Path(p).read_bytes() for p in args.targets]
        print(f"{retime(ALL[args.retime].one_input, inputs):.3f}")
        return 0
    from fuzz.registry import TARGETS

    if args.list:
        for name, t in TARGETS.items():
            print(f"{name:16s} {t.description}")
        return 0
    names = list(TARGETS) if args.all else args.targets
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not names:
        ap.error(f"unknown targets {unknown}" if unknown else "name targets or pass --all")
    if args.atheris and not atheris_available():
        ap.error("atheris is not installed (pip install atheris), run without --atheris")
    summaries = []
    try:
        for name in names:
            summaries.append(supervise(name, args))
            print_summaries(summaries[-1:], False)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    print()
    print_summaries(summaries, args.markdown)
    return 1 if any(s.crashes for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())

