"""Click-to-remove end to end in a real browser: ``ns-train`` with the viewer, headless Chromium, Playwright.

The test starts ``ns-train spin-inpaint-small`` with the viewer on loopback and no prompt file, waits for the
reconstruction, opens the viewer in Debian's Chromium (driven by Playwright; no browser download), looks through
training view 0, switches the panel to Positive, clicks on the object where it sees it on the canvas, presses
Segment, and checks what the server did: the prompt file in the run folder holds the click (on the object in the
ground truth), the initial masks match the ground-truth masks, and the object is tinted in the rendered overlay.
A screenshot of the panel and the overlay is written to ``tests/artifacts/viewer_click_to_remove.png``.

Every step waits for a state the page shows, never for a fixed time: the click is made once the canvas shows the
object and the browser has been told that click mode is on (the canvas cursor is "pointer" and the panel says
"Mode: Positive"); before that, viser's browser treats a click as a camera click and never sends it. On a failure
the page's screenshot, the server's log (with the panel's timestamped trace of mode changes, pointer messages and
clicks) and the test's own timestamped steps are saved as ``tests/artifacts/viewer_failure.{png,server.log,test.log}``
(and the compared canvases as ``viewer_failure.{before,after}.png`` when the overlay check fails).

The browser must start: without Chromium or Playwright the test fails, saying how to install them
(``scripts/setup.sh`` does).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import BIN, REPO
from PIL import Image

from spin_nerfstudio.evaluation.metrics import mask_scores

CHROMIUM = os.environ.get("SPIN_NERF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-gl=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "tests" / "artifacts"
FAILURE = ARTIFACTS / "viewer_failure"
RECONSTRUCT, MASK_STEPS = 150, 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser():
    """Headless Chromium through Playwright; a clear failure (not a skip) when it cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs Playwright for Python: pip install playwright (scripts/setup.sh does)")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"the browser test needs Chromium at {CHROMIUM}: apt-get install -y chromium (scripts/setup.sh)")
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as err:  # noqa: BLE001 - any launch failure must fail the test with its reason
        pw.stop()
        pytest.fail(f"headless Chromium ({CHROMIUM}) did not start: {str(err).splitlines()[0]}")
    yield chromium
    chromium.close()
    pw.stop()


class Training:
    """``ns-train`` in the background, its log in a file."""

    def __init__(self, scene: Path, out: Path, port: int) -> None:
        self.log = out / "train.log"
        self.run_dir = out / "browser" / "spin-inpaint-small" / "run"
        env = dict(os.environ, SPIN_NERF_NO_DOWNLOAD="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        env["SPIN_NERF_VIEWER_TRACE"] = "1"  # the panel logs mode changes, pointer messages and clicks
        args = [
            BIN / "ns-train", "spin-inpaint-small", "--data", scene, "--output-dir", out,
            "--experiment-name", "browser", "--timestamp", "run", "--machine.device-type", "cpu",
            "--vis", "viewer", "--viewer.websocket-host", "127.0.0.1", "--viewer.websocket-port", port,
            "--max-num-iterations", 100_000, "--pipeline.reconstruct-steps", RECONSTRUCT,
            "--pipeline.mask-steps", MASK_STEPS,
        ]  # fmt: skip
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [str(a) for a in args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=out, start_new_session=True
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, timeout: float) -> None:
        end = time.time() + timeout
        while what not in self.text():
            if self.proc.poll() is not None:
                pytest.fail(f"ns-train exited ({self.proc.returncode}) before '{what}':\n{self.text()[-3000:]}")
            if time.time() > end:
                pytest.fail(f"no '{what}' from ns-train within {timeout:.0f} s:\n{self.text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def canvas_rgb(page) -> tuple:
    """The 3D canvas left of the control panel as float RGB, and its top-left corner in page pixels."""
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(np.float32) / 255
    box = page.locator("canvas").first.bounding_box()
    right = int(page.get_by_role("button", name="Segment").bounding_box()["x"]) - 30  # the panel overlays the canvas
    x0, y0 = int(box["x"]), int(box["y"])
    return shot[y0 : int(box["y"] + box["height"]), x0:right], (x0, y0)


def object_colour(rgb: np.ndarray) -> np.ndarray:
    """The generated object's saturated red / orange / yellow (the background textures are muted)."""
    return (rgb[..., 0] > 0.5) & (rgb[..., 0] - rgb[..., 2] > 0.35)


def wait_until(predicate, timeout: float, what: str, poll: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def resolution(page) -> int:
    """Width of the last render the viewer sent, from nerfstudio's stats line."""
    m = re.search(r"Resolution: (\d+)x(\d+)px", page.get_by_text("Resolution:").inner_text())
    return int(m.group(1)) if m else 0


def status(page) -> str:
    return page.locator("p", has_text="Stage:").last.inner_text()


def click_mode_on(page) -> bool:
    """Whether viser's browser sends clicks: it sets the 3D canvas's cursor to "pointer" when the server enables
    pointer events (and back when it disables them)."""
    return page.evaluate("() => [...document.querySelectorAll('canvas')].some(c => c.style.cursor === 'pointer')")


class Steps:
    """The test's own steps with timestamps (to line up with the server's trace), and what it leaves on failure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.write_text("")

    def __call__(self, what: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"test {time.time():.3f} {what}\n")

    def save_failure(self, page, train: "Training") -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if page is not None:
            try:
                page.screenshot(path=str(FAILURE.with_suffix(".png")))
            except Exception as err:  # noqa: BLE001 - the logs are still worth saving
                self(f"no screenshot: {err}")
        FAILURE.with_suffix(".server.log").write_text(train.text())
        FAILURE.with_suffix(".test.log").write_text(self.path.read_text())


def test_click_segment_in_headless_chromium(tiny_scene, tmp_path, browser):
    start = time.time()
    port = free_port()
    train = Training(tiny_scene, tmp_path, port)
    note, page = Steps(tmp_path / "test.log"), None
    for old in ARTIFACTS.glob(FAILURE.name + ".*"):
        old.unlink()
    try:
        train.wait_for("waiting for clicks on the object in the viewer", timeout=600)
        note("reconstructed")
        phases = {"reconstructed": time.time() - start}
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"http://127.0.0.1:{port}")
        page.get_by_text("Object removal").wait_for(timeout=60_000)
        page.get_by_role("button", name="Fast").click()  # nerfstudio's own control: smaller renders while training
        page.get_by_role("button", name="Go to training view").click()  # the slider is at view 0
        before, origin = wait_until(
            lambda: (lambda c: c if object_colour(c[0]).sum() > 500 else None)(canvas_rgb(page)),
            90,
            "the object on the canvas",
        )
        # Click mode Positive, then a click on the object where the canvas shows it, once the browser knows.
        phases["object on canvas"] = time.time() - start
        note("object on canvas")
        page.get_by_label("Click mode").click()
        page.get_by_role("option", name="Positive").click()
        note("Positive picked")
        wait_until(lambda: click_mode_on(page), 60, "the browser to get click mode from the server", poll=0.1)
        note("canvas cursor is pointer")
        wait_until(lambda: "Mode: Positive" in status(page), 60, "the panel to show click mode Positive", poll=0.1)
        note("panel shows Mode: Positive")
        obj = object_colour(before)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(obj.astype(np.uint8))
        obj = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        depth_in = cv2.distanceTransform(obj.astype(np.uint8), cv2.DIST_L2, 5)
        cy, cx = np.unravel_index(np.argmax(depth_in), depth_in.shape)
        page.mouse.click(origin[0] + int(cx), origin[1] + int(cy))
        note(f"mouse clicked at canvas pixel ({cx}, {cy})")
        wait_until(lambda: "1 positive, 0 negative" in status(page), 180, "the panel to count the click", poll=0.1)
        note("panel counts the click")

        phases["click registered"] = time.time() - start
        # The server registered the point: the run's prompt file has it, on the object in the ground truth.
        prompts = json.loads((train.run_dir / "prompts.json").read_text())["prompts"]
        assert sum(len(p["positive"]) for p in prompts) == 1 and prompts[0]["positive_3d"]
        image = prompts[0]["image"]
        # the prompt goes to the training view the user looked through (view 0), not to another view seeing the point
        assert image == sorted(q.name for q in (tiny_scene / "images").glob("*.png"))[0], image
        gt_mask = np.asarray(Image.open(tiny_scene / "masks" / image)) > 127
        x, y = map(int, prompts[0]["positive"][0])
        assert gt_mask[y, x], (image, x, y)
        tf = json.loads((train.run_dir / "dataparser_transforms.json").read_text())
        T, s = np.array(tf["transform"]), float(tf["scale"])
        p = np.linalg.solve(T[:, :3], np.array(prompts[0]["positive_3d"][0]) / s - T[:, 3])
        box = json.loads((tiny_scene / "scene.json").read_text())["object_bounds"]
        outside = np.maximum(np.maximum(np.array(box["min"]) - p, p - np.array(box["max"])), 0.0)
        assert np.linalg.norm(outside) < 0.25, p  # on the 0.44 x 0.44 x 0.52 box, up to the tiny model's depth

        # Segment: the pipeline segments at its next step; the initial masks match the ground truth.
        page.get_by_role("button", name="Segment").click()
        note("Segment pressed")
        wait_until(lambda: (train.run_dir / "initial_masks" / "_complete.json").is_file(), 180, "the initial masks")
        phases["segmented"] = time.time() - start
        names = sorted(q.name for q in (tiny_scene / "masks").glob("*.png"))
        gt = [np.asarray(Image.open(tiny_scene / "masks" / q)) > 127 for q in names]
        initial = [np.asarray(Image.open(train.run_dir / "initial_masks" / q)) > 0 for q in names]
        ious = [mask_scores(a, b)[0] for a, b in zip(initial, gt)]
        clicked = names.index(image)
        assert (initial[clicked] & gt[clicked]).sum() >= 0.8 * gt[clicked].sum()
        assert np.mean(ious) > 0.6, ious
        wait_until(lambda: "Segmented: clicks in" in status(page), 30, "the panel to report the segmentation")

        # Once the mask head has had its steps, the viewer (switched to rgb_object_overlay) tints the object.
        def fitted() -> bool:
            m = re.search(r"step (\d+), mask head until step (\d+)", status(page))
            return bool(m) and int(m.group(1)) >= int(m.group(2))

        wait_until(fitted, 300, "the mask head steps")
        phases["mask head fitted"] = time.time() - start
        assert page.get_by_label("Output type").input_value() == "rgb_object_overlay"
        page.get_by_role("button", name="Go to training view").click()  # a fresh render from the same viewpoint
        ring = cv2.dilate(obj.astype(np.uint8), np.ones((25, 25), np.uint8)) == 0

        compared = {}

        def tinted():
            if resolution(page) < 200:  # wait for the full-resolution render (Fast: 256 px), not the preview
                return None
            after, _ = canvas_rgb(page)
            if resolution(page) < 200:  # a preview arrived meanwhile: the grab may be a blurred low-res frame
                return None
            compared["after"] = after
            gain = (after[..., 2] - after[..., 0]) - (before[..., 2] - before[..., 0])  # blue minus red, vs before
            inside, away = float((gain[obj] > 0.3).mean()), float(np.abs(gain[ring]).mean())
            compared["figures"] = (inside, away)
            # the object tinted and the background around it not: one full-resolution frame must show both
            return (inside, away) if inside > 0.7 and away < 0.1 else None

        try:
            inside, away = wait_until(tinted, 90, "the tinted object overlay (object tinted, background not)", poll=1.0)
        except BaseException:
            if "after" in compared:  # keep the last two canvases compared (the failure screenshot is a later render)
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                for name, rgb in (("before", before), ("after", compared["after"])):
                    Image.fromarray((rgb * 255).astype(np.uint8)).save(FAILURE.with_suffix(f".{name}.png"))
                print("browser test: last overlay figures (inside, away):", compared.get("figures"))
            raise
        assert away < 0.1, away
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer_click_to_remove.png"))
        assert "Segmented: step" in status(page) and "1 positive" in status(page)
        phases["overlay seen"] = time.time() - start
        print(
            "browser test:",
            {k: round(v) for k, v in phases.items()},
            f"mask IoU {np.mean(ious):.3f}, overlay {inside:.2f}",
        )
    except BaseException:
        note("failed")
        note.save_failure(page, train)
        raise
    finally:
        train.stop()
