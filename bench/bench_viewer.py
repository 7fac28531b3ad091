"""The browser viewer's costs, measured on the test VM with a real Chromium (Playwright).

1. ``encodings``: how an update should travel. Real updates (the static scene's whole screen
   and the animation's damaged rectangles, grabbed through ``ryll.connect``) encoded as RAW,
   PNG (level 1 and 6) and JPEG (quality 85): ryll's encode time, bytes, the page's decode
   and draw time in Chromium, and the time per update on a loopback socket (measured: the
   bytes through a local WebSocket) and on a slow link (the bytes at 20 Mbit/s, plus the
   encode and the decode).
2. ``animation``: the test VM's 800x600 animation at 20 frames a second for SECONDS, ryll
   with one page open against ryll headless, alternating: the pictures the page showed per
   second against the guest's frames, and ryll's CPU (a share of one core) and the ratio.
3. ``latency``: a key pressed in the page (Space, every 250-450 ms) to the first drawn
   update after it, in the page, against ``ryll --headless --cadence``'s key-to-display-update
   figure on the same guest, and against ryll's own figure for the page's keys (what the page
   round trip adds).

Run: ``.venv/bin/python bench/bench_viewer.py [--parts encodings,animation,latency]
[--seconds 20]`` (one VM per part; about 5 minutes in all).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import simplejpeg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ryll  # noqa: E402
from ryll.channels.events import DisplayUpdated  # noqa: E402
from ryll.testvm import TestVM  # noqa: E402
from ryll.viewer.encode import encode_rect  # noqa: E402
from ryll.viewer.wire import Encoding  # noqa: E402

SLOW_LINK_BPS = 20e6 / 8  # 20 Mbit/s: a VPN, a remote office
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu"]


# --- 1. encodings -----------------------------------------------------------------------------


def sample_updates(seconds: float = 4.0) -> dict[str, list[np.ndarray]]:
    """RGBA updates as the viewer would grab them: the static screen, and the animation's
    damage."""
    out: dict[str, list[np.ndarray]] = {}
    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        vm.wait_frame(1, timeout=90)

        async def static() -> None:
            async with ryll.connect(f"127.0.0.1:{vm.port}") as v:
                await v.wait_for_display()
                await asyncio.sleep(1.0)
                out["static screen"] = [(await v.session.grab(0, rgba=True)).pixels]

        asyncio.run(static())
    with TestVM(vga="qxl", scene="animate", mode="800x600",
                extra_cmdline="ryll.seconds=120") as vm:
        vm.wait_frame(20, timeout=90)

        async def animation() -> None:
            async with ryll.connect(f"127.0.0.1:{vm.port}") as v:
                await v.wait_for_display()
                grabs: list[np.ndarray] = []
                async with v.session.events(DisplayUpdated) as events:
                    end = time.monotonic() + seconds
                    while time.monotonic() < end:
                        event = await asyncio.wait_for(events.get(), 5)
                        if isinstance(event, DisplayUpdated):
                            grab = await v.session.grab(0, event.rect, rgba=True)
                            grabs.append(grab.pixels)
                out["animation rects"] = grabs

        asyncio.run(animation())
    return out


def encode(pixels: np.ndarray, how: str) -> bytes:
    if how == "RAW":
        return bytes(encode_rect(pixels, Encoding.RAW))
    if how.startswith("PNG"):
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels, "RGBA").save(buf, format="PNG",
                                             compress_level=int(how.split()[1]))
        return buf.getvalue()
    return simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), quality=85,
                                  colorspace="RGBA", colorsubsampling="420")


PAGE_DECODE = """async ([kind, w, h, b64, n]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d', {alpha: false});
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (kind === 'RAW') {
      ctx.putImageData(new ImageData(new Uint8ClampedArray(bytes.buffer), w, h), 0, 0);
    } else {
      const type = kind === 'JPEG' ? 'image/jpeg' : 'image/png';
      const bitmap = await createImageBitmap(new Blob([bytes], {type}));
      ctx.drawImage(bitmap, 0, 0);
      bitmap.close();
    }
  }
  ctx.getImageData(0, 0, 1, 1);  // wait for the draws
  return (performance.now() - t0) / n;
}"""


async def loopback_ms(payloads: list[bytes]) -> float:
    """The payloads through an aiohttp WebSocket on 127.0.0.1, ms per payload."""
    from aiohttp import ClientSession, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        for p in payloads:
            await ws.send_bytes(p)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with ClientSession() as client:
        start = time.perf_counter()
        ws = await client.ws_connect(f"http://127.0.0.1:{port}/", max_msg_size=0)
        async for _ in ws:
            pass
        elapsed = time.perf_counter() - start
    await runner.cleanup()
    return 1000 * elapsed / len(payloads)


def bench_encodings() -> None:
    from playwright.sync_api import sync_playwright

    samples = sample_updates()
    kinds = ("RAW", "PNG 1", "PNG 6", "JPEG")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=CHROMIUM_ARGS)
        page = browser.new_page()
        for name, updates in samples.items():
            pixels = sum(u.shape[0] * u.shape[1] for u in updates)
            print(f"{name}: {len(updates)} updates, {pixels / len(updates) / 1000:.0f} "
                  "kpixels each on average")
            print(f"  {'':6} {'encode ms':>10} {'KiB':>9} {'ratio':>6} {'page ms':>8} "
                  f"{'loopback ms':>12} {'20 Mbit/s ms':>13}")
            for kind in kinds:
                encode(updates[0], kind)  # warm (imports, tables)
                rounds, start = 0, time.perf_counter()
                while rounds == 0 or time.perf_counter() - start < 0.5:
                    payloads = [encode(u, kind) for u in updates]
                    rounds += 1
                enc_ms = 1000 * (time.perf_counter() - start) / (rounds * len(updates))
                size = sum(len(p) for p in payloads) / len(updates)
                # The page's decode and draw, on up to 20 of the updates.
                picks = updates[:: max(1, len(updates) // 20)][:20]
                page_ms = statistics.mean(
                    page.evaluate(PAGE_DECODE, [kind.split()[0], u.shape[1], u.shape[0],
                                                base64.b64encode(encode(u, kind)).decode(), 5])
                    for u in picks)
                # Its own thread: Playwright's sync API keeps an event loop on this one.
                with ThreadPoolExecutor(1) as pool:
                    wire_ms = pool.submit(asyncio.run, loopback_ms(payloads)).result()
                slow_ms = enc_ms + 1000 * size / SLOW_LINK_BPS + page_ms
                raw = sum(u.nbytes for u in updates) / len(updates)
                print(f"  {kind:6} {enc_ms:10.2f} {size / 1024:9.1f} {raw / size:6.1f} "
                      f"{page_ms:8.2f} {enc_ms + wire_ms + page_ms:12.2f} {slow_ms:13.1f}")
        browser.close()
    print("  (loopback: encode + the bytes through a local WebSocket + the page; 20 Mbit/s: "
          "encode + bytes at that rate + the page)")


# --- a ryll subprocess and a page ---------------------------------------------------------------


@contextmanager
def ryll_proc(vm: TestVM, workdir: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str],
                                                                         str | None]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=workdir)
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        if (m := re.search(r"viewer at (\S+)", line)) is not None:
            url = m.group(1)
            break
        if line.startswith("ryll: connected"):
            break
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=30)


def cpu_s(proc: subprocess.Popen[str]) -> float:
    t = psutil.Process(proc.pid).cpu_times()
    return t.user + t.system


def frames_at(vm: TestVM) -> int:
    found = re.findall(r"ryll: frame (\d+)", vm.serial_text())
    return int(found[-1]) if found else 0


PAGE_FRAMES = "view.framesTotal"

# Which of the guest's frames the page showed: frame n of guest/drawer.c's animation has its
# box at (bounce(7n), bounce(5n)) with blue (3n & 255) inside, so each animation frame of the
# page names the guest frame on the canvas (read back whole, found near the last one seen).
PAGE_SEEN = """async ([W, H, seconds]) => {
  const ctx = view.displays.get(0).ctx;
  const bw = Math.floor(W / 8), bh = Math.floor(H / 8);
  const bandY0 = H - Math.floor(H / 10) - Math.floor(H / 64);
  const bounce = (t, span) => { const p = t % (2 * span); return p <= span ? p : 2 * span - p; };
  const R = Math.floor((bw - 8) * 255 / bw), G = Math.floor((bh - 8) * 255 / bh);
  const seen = new Set();
  let last = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await new Promise((r) => requestAnimationFrame(r));
    const img = ctx.getImageData(0, 0, W, H).data;
    const shows = (n) => {
      const x = bounce(n * 7, W - bw), y = bounce(n * 5, bandY0 - bh);
      const i = ((y + bh - 8) * W + (x + bw - 8)) * 4, e = ((y + 1) * W + x + 1) * 4;
      return img[i] === R && img[i + 1] === G && img[i + 2] === ((n * 3) & 255) &&
        img[e] === 255 && img[e + 1] === 255 && img[e + 2] === 255;
    };
    let found = 0;
    for (let n = Math.max(1, last); n < last + 40 && !found; n++) if (shows(n)) found = n;
    for (let n = 1; n < 200000 && !found; n++) if (shows(n)) found = n;
    if (found) { seen.add(found); last = found; }
  }
  const ns = [...seen].sort((a, b) => a - b);
  return ns.length ? [ns.length, ns[ns.length - 1] - ns[0] + 1] : [0, 0];
}"""


def bench_animation(seconds: float) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        workdir = Path(tmp)
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=CHROMIUM_ARGS)
        for streaming in ("off", "all"):
            with TestVM(vga="qxl", scene="animate", mode="800x600", streaming_video=streaming,
                        extra_cmdline=f"ryll.seconds={int(seconds * 6 + 120)}") as vm:
                vm.wait_frame(20, timeout=90)
                rows: dict[str, list[tuple[float, float]]] = {"headless": [], "one page": []}
                for _ in range(2):
                    for mode in rows:
                        args = ["--headless"] if mode == "headless" else ["--web"]
                        with ryll_proc(vm, workdir, *args) as (proc, url):
                            page = None
                            if url is not None:
                                page = browser.new_page(viewport={"width": 1000,
                                                                  "height": 760})
                                page.goto(url)
                                page.wait_for_selector("canvas.screen")
                            time.sleep(3.0)  # settled: the first picture, the streams
                            f0, c0 = frames_at(vm), cpu_s(proc)
                            p0 = page.evaluate(PAGE_FRAMES) if page else 0
                            start = time.monotonic()
                            if page is not None:
                                shown_n, spanned = page.evaluate(PAGE_SEEN, [800, 600, seconds])
                            else:
                                time.sleep(seconds)
                            wall = time.monotonic() - start
                            c1, f1 = cpu_s(proc), frames_at(vm)
                            p1 = page.evaluate(PAGE_FRAMES) if page else 0
                            if page is not None:
                                page.close()
                            guest_fps = (f1 - f0) / wall
                            shown = (p1 - p0) / wall if page else float("nan")
                            rows[mode].append(((c1 - c0) / wall, shown))
                            if mode == "one page":
                                print(f"  streaming-video={streaming}: guest {guest_fps:.1f} "
                                      f"fps; the page drew {shown:.1f} pictures/s and showed "
                                      f"{shown_n} of the guest's {spanned} frames in that "
                                      f"time ({spanned - shown_n} lost)")
                head = statistics.mean(c for c, _ in rows["headless"])
                web = statistics.mean(c for c, _ in rows["one page"])
                print(f"streaming-video={streaming}: ryll CPU headless {100 * head:.1f}%, "
                      f"with one page {100 * web:.1f}%: {web / head:.2f}x")
        browser.close()


# --- 3. latency -------------------------------------------------------------------------------

PAGE_LATENCY = """async (n) => {
  const out = [];
  const d = view.displays.get(0);
  for (let i = 0; i < n; i++) {
    const before = Number(d.box.dataset.updates || 0);
    const t0 = performance.now();
    document.dispatchEvent(new KeyboardEvent('keydown', {code: 'Space', bubbles: true}));
    document.dispatchEvent(new KeyboardEvent('keyup', {code: 'Space', bubbles: true}));
    while (Number(d.box.dataset.updates || 0) === before) {
      await new Promise((r) => setTimeout(r, 0));
      if (performance.now() - t0 > 2000) break;
    }
    out.push(performance.now() - t0);
    // Spaced at random: QEMU refreshes the display on its own timer, and keys at a fixed
    // period would all meet it at the same phase.
    await new Promise((r) => setTimeout(r, 250 + Math.random() * 200));
  }
  return out;
}"""


def bench_latency(samples: int = 40) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw, \
            TestVM(vga="qxl", scene="input", mode="640x480") as vm:
        workdir = Path(tmp)
        vm.wait_serial(r"ryll: input ready", timeout=120)
        summary = workdir / "summary.json"
        with ryll_proc(vm, workdir, "--headless", "--cadence", "--duration",
                       str(2 * samples + 4), "--summary-json", str(summary)) as (proc, _):
            proc.wait(timeout=4 * samples + 60)
        headless = json.loads(summary.read_text())["latency"]
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=CHROMIUM_ARGS)
        page_summary = workdir / "page-summary.json"
        with ryll_proc(vm, workdir, "--web", "--summary-json", str(page_summary)) as (proc,
                                                                                      url):
            assert url is not None
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.goto(url)
            page.wait_for_selector("canvas.screen")
            time.sleep(2.0)
            page.focus("#screens")
            page.evaluate("send({t: 'focus'})")
            in_page = page.evaluate(PAGE_LATENCY, samples)
        browser.close()
        ryll_side = json.loads(page_summary.read_text())["latency"]
    med = statistics.median(in_page)
    print(f"key to display update, headless --cadence: median {headless['median_ms']:.1f} ms "
          f"({headless['count']} samples)")
    print(f"key in the page to the update drawn in the page: median {med:.1f} ms, "
          f"p95 {sorted(in_page)[int(0.95 * (len(in_page) - 1))]:.1f} ms "
          f"({len(in_page)} samples): {med - headless['median_ms']:+.1f} ms")
    print(f"  the same keys inside ryll (key sent to display update): median "
          f"{ryll_side['median_ms']:.1f} ms: the page's round trip adds "
          f"{med - ryll_side['median_ms']:+.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="encodings,animation,latency")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="measured seconds per animation run")
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = set(parts) - {"encodings", "animation", "latency"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if "encodings" in parts:
        bench_encodings()
    if "animation" in parts:
        bench_animation(args.seconds)
    if "latency" in parts:
        bench_latency()


if __name__ == "__main__":
    main()
