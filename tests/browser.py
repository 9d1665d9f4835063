"""Drive a real headless Chromium from tests: screenshots and what a page's images did.

    from browser import find_chromium, screenshot, page_report
    chromium = find_chromium()             # path, or None (tests then skip)
    screenshot("page.html", "page.png", width=1280, height=900)
    report = page_report("page.html")      # every <img>: did it decode? what was fetched?
    assert report.images and not report.broken

For pages served over HTTP (``pgallery serve``), :func:`webdriver` starts the same Chromium
under Selenium, through Debian's ``chromium-driver`` (never a driver or browser download:
Selenium Manager is told to stay offline and is given both paths)::

    from browser import webdriver, find_chromedriver
    with webdriver(width=1280, height=900) as driver:     # skip the test if it is None
        driver.get("http://127.0.0.1:8000/")

No client library is needed for files: ``page_report`` injects a small inline script into a COPY of the
page (the original is never changed) that, on window load, writes a JSON report into the DOM;
Chromium's ``--dump-dom`` prints that DOM and the report is read back. If the page has a
Content-Security-Policy meta tag, only its script-src is widened to that one script (by hash),
so the images are still checked under the page's own policy.

Each run gets a fresh temporary profile directory and no network-y background services.
Run as a script to screenshot any page: ``python tests/browser.py page.html page.png``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 90  # seconds for one browser run (a cold start on a busy 2-core machine is slow)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)

REPORT_ID = "__browser_report__"
SPARE_ROWS = 256  # extra window height for screenshot(), cropped off (one raster tile row)

# Runs on window load; reads every <img>, the resources fetched and any CSP violation.
_REPORT_SCRIPT = (
    "(function(){var v=[];"
    "document.addEventListener('securitypolicyviolation',function(e){"
    "v.push(e.violatedDirective+' '+e.blockedURI)});"
    "window.addEventListener('load',function(){"
    "var imgs=Array.prototype.map.call(document.images,function(i){return{"
    "src:(i.currentSrc||i.src).slice(0,64),alt:i.alt,complete:i.complete,"
    "naturalWidth:i.naturalWidth,naturalHeight:i.naturalHeight}});"
    "var res=performance.getEntriesByType('resource').map(function(e){return e.name});"
    "var out=document.createElement('pre');out.id='" + REPORT_ID + "';"
    "out.textContent=JSON.stringify({title:document.title,images:imgs,resources:res,"
    "csp_violations:v,scripts:document.scripts.length});document.body.appendChild(out)})})();"
)


class BrowserError(RuntimeError):
    """Chromium could not be run, or gave no usable answer."""


@dataclass
class PageReport:
    """What the browser saw: one dict per <img>, resources fetched, CSP violations.

    ``resources`` comes from the Resource Timing API, which records http(s) loads but not
    file:// ones; a page with a Content-Security-Policy reports any blocked load in
    ``csp_violations`` whatever its scheme ("img-src file": Chromium names only the scheme
    of a blocked file:// URL).
    """

    title: str
    images: list[dict] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    scripts: int = 0  # <script> elements in the page, the injected probe included

    @property
    def broken(self) -> list[dict]:
        """Images that did not decode (naturalWidth 0 or never completed)."""
        return [i for i in self.images if not i["complete"] or i["naturalWidth"] <= 0]


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary ($CHROMIUM first, then the usual names), or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit and Path(explicit).is_file():
        return explicit
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError("Chromium is not installed (run .ci/install-chromium.sh)")
    with tempfile.TemporaryDirectory(prefix="pgallery-chromium-") as profile:
        command = [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, cwd=profile)
        except subprocess.TimeoutExpired as exc:
            raise BrowserError(f"Chromium did not finish within {timeout} s") from exc


def _capture(html_path: Path, png_path: Path, width: int, height: int) -> bytes:
    if png_path.exists():
        png_path.unlink()
    result = _run([f"--screenshot={png_path}", f"--window-size={width},{height}",
                   "--run-all-compositor-stages-before-draw", html_path.as_uri()])
    if not png_path.is_file() or png_path.stat().st_size == 0:
        raise BrowserError(f"no screenshot was written (exit {result.returncode}):\n"
                           f"{result.stderr[-2000:]}")
    return png_path.read_bytes()


def screenshot(html_path: str | Path, png_path: str | Path, width: int = 1280,
               height: int = 900) -> Path:
    """Load ``html_path`` from a file:// URL and save a width x height PNG of the viewport.

    Headless Chromium now and then captures before the bottom row of raster tiles is drawn
    (a blank band at the foot of the picture, about one run in five here), so the window is
    made one tile row taller and the picture cropped back to width x height.
    """
    from PIL import Image  # a dependency of pgallery itself

    html_path, png_path = Path(html_path).resolve(), Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    _capture(html_path, png_path, width, height + SPARE_ROWS)
    with Image.open(png_path) as shot:
        shot.load()
    if shot.size != (width, height + SPARE_ROWS):
        raise BrowserError(f"the screenshot is {shot.size}, not {(width, height + SPARE_ROWS)}")
    shot.crop((0, 0, width, height)).save(png_path, "PNG")
    return png_path


def _inject(page: str, script: str) -> str:
    """The page with ``script`` before </head>, its CSP (if any) allowing just that script."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()

    def widen(match: re.Match) -> str:
        policy = html.unescape(match.group(2))
        directives = [d.strip() for d in policy.split(";")
                      if d.strip() and not d.strip().lower().startswith("script-src")]
        directives.append(f"script-src 'sha256-{digest}'")
        return match.group(1) + html.escape("; ".join(directives), quote=True) + match.group(3)

    page = re.sub(r'(<meta\s+http-equiv="Content-Security-Policy"\s+content=")([^"]*)(")',
                  widen, page, flags=re.IGNORECASE)
    tag = f"<script>{script}</script>"
    if re.search(r"</head>", page, flags=re.IGNORECASE):
        return re.sub(r"</head>", lambda _m: tag + "</head>", page, count=1, flags=re.IGNORECASE)
    return tag + page


def page_report(html_path: str | Path) -> PageReport:
    """Load a copy of ``html_path`` (same directory, so relative links behave the same) and
    report, after the load event, every image's decoded size and every resource fetched."""
    html_path = Path(html_path).resolve()
    page = html_path.read_text(encoding="utf-8")
    probe = html_path.with_name(f".{html_path.stem}.probe{html_path.suffix}")
    probe.write_text(_inject(page, _REPORT_SCRIPT), encoding="utf-8")
    try:
        result = _run(["--dump-dom", "--virtual-time-budget=5000", probe.as_uri()])
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(rf'<pre id="{REPORT_ID}">(.*?)</pre>', result.stdout, flags=re.DOTALL)
    if not found:
        raise BrowserError("the page never reported (did it load? did a script error stop "
                           f"it?) exit {result.returncode}:\n{result.stderr[-2000:]}")
    data = json.loads(html.unescape(found.group(1)))
    return PageReport(title=data["title"], images=data["images"], resources=data["resources"],
                      csp_violations=data["csp_violations"], scripts=data["scripts"])


def find_chromedriver() -> str | None:
    """Path of Debian's chromedriver ($CHROMEDRIVER first), or None."""
    explicit = os.environ.get("CHROMEDRIVER")
    if explicit and Path(explicit).is_file():
        return explicit
    for candidate in ("/usr/bin/chromedriver", shutil.which("chromedriver")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def selenium_missing() -> str | None:
    """Why a Selenium test cannot run here, or None when it can."""
    if find_chromium() is None:
        return "Chromium is not installed (run .ci/install-chromium.sh)"
    if find_chromedriver() is None:
        return "chromedriver is not installed (run .ci/install-chromium.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e .[test])"
    return None


class webdriver:
    """``with webdriver() as driver:`` a headless Chromium under Selenium, with a fresh
    profile, the same quiet flags as the file-based helpers, and the browser's console log
    kept (``driver.get_log("browser")``)."""

    def __init__(self, width: int = 1280, height: int = 900):
        self.width, self.height = width, height
        self.profile = None
        self.driver = None

    def __enter__(self):
        from selenium import webdriver as selenium_webdriver
        from selenium.webdriver.chrome.service import Service

        os.environ["SE_OFFLINE"] = "true"          # Selenium Manager: never download
        self.profile = tempfile.mkdtemp(prefix="pgallery-selenium-")
        options = selenium_webdriver.ChromeOptions()
        options.binary_location = find_chromium()
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={self.width},{self.height}")
        options.set_capability("goog:loggingOptions", {"browser": "ALL"})
        service = Service(executable_path=find_chromedriver())
        self.driver = selenium_webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(TIMEOUT)
        return self.driver

    def __exit__(self, *exc):
        try:
            if self.driver is not None:
                self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 4):
        print("usage: python tests/browser.py PAGE.html OUT.png [WIDTH HEIGHT]", file=sys.stderr)
        return 2
    size = (int(argv[2]), int(argv[3])) if len(argv) == 4 else (1280, 900)
    try:
        out = screenshot(argv[0], argv[1], *size)
        report = page_report(argv[0])
    except BrowserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: {out.stat().st_size} bytes; {len(report.images)} images, "
          f"{len(report.broken)} broken, {len(report.resources)} resources fetched")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
