"""The array view of a 10,000-child array: AWS calls per refresh, server time, and render time in a
real headless Chromium.

Runs a local endpoint (64 vCPUs) and an array of 10,000 trivial children (``true``), then a
retry-of-failed-children job of two indices tagged as its retry (as the operator submits it). While
the array runs and once everything is finished it reads the array view's data exactly as the plugin's
endpoint does (:func:`batch_fanout.ui.array.read_array_view`, through a counted boto3 client), and
then loads the view's own page and script into ``/usr/bin/chromium`` (headless, through
chromium-driver) with that data, timing until the 10,000 cells are on the page.

Usage: ``python benchmarks/ui_array_view.py [--size 10000]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

QUEUE = "batch-fanout-queue"


def read_view(batch: Any, job_id: str, finished: Any = None) -> tuple[dict[str, Any], float, int]:
    """One refresh as the endpoint does it: data, seconds, bytes of JSON.

    :param finished: the endpoint's store of finished jobs' children (``None``: a first view).
    """
    from batch_fanout.ui.array import CountingClient, read_array_view

    calls: Counter[str] = Counter()
    started = time.perf_counter()
    view = read_array_view(CountingClient(batch, calls), job_id, calls, finished=finished)
    body = json.dumps(view.to_json())
    return json.loads(body), time.perf_counter() - started, len(body)


def render_seconds(work: Path, data: dict[str, Any], repeats: int) -> list[float] | None:
    """Seconds from navigation start until every cell is on the page, in headless Chromium."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        print(
            "chromium or chromedriver missing: render time not measured (apt-get install chromium chromium-driver)"
        )
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from batch_fanout.ui.app import _page, _static

    site = work / "site"
    site.mkdir(exist_ok=True)
    (site / "data.json").write_text(json.dumps(data))
    page = _page(
        "bench",
        "<div id='status'></div><div id='counts'></div><div id='filters'></div><p id='jobs'></p>"
        "<div id='grid' class='grid'></div><section id='child' hidden></section>",
        script=_static("array.js"),
        data={"data_url": "data.json", "child_url": "child.json?x=1", "child": "", "refresh_seconds": 3600},
    )
    (site / "index.html").write_bytes(page.body)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={work / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(driver))
    expected = len(data["cells"])
    times = []
    try:
        for _ in range(repeats):
            browser.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            deadline = time.monotonic() + 60
            while browser.execute_script("return document.querySelectorAll('.cell').length") < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError("the cells did not appear within 60 s")
                time.sleep(0.01)
            times.append(browser.execute_script("return performance.now()") / 1000.0)
    finally:
        browser.quit()
        server.shutdown()
    return times


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ui-array-view-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    (work / "containers" / "noop").mkdir(parents=True)
    from batch_fanout.local.testing import running_endpoint

    with running_endpoint(work / "data", containers_dir=work / "containers", vcpus=64) as endpoint:
        batch = endpoint.client("batch")
        for name, command in (("noop-true", ["true"]), ("noop-false", ["false"])):
            batch.register_job_definition(
                jobDefinitionName=name,
                type="container",
                containerProperties={
                    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench/noop:1",
                    "command": command,
                    "resourceRequirements": [
                        {"type": "VCPU", "value": "0.25"},
                        {"type": "MEMORY", "value": "16"},
                    ],
                },
            )
        first = batch.submit_job(
            jobName="ui-bench",
            jobQueue=QUEUE,
            jobDefinition="noop-true",
            arrayProperties={"size": args.size},
        )["jobId"]
        # Refreshes while it runs (the page refreshes every 5 s while a job is not finished).
        running: list[tuple[float, dict[str, int], dict[str, int]]] = []
        while True:
            data, seconds, _ = read_view(batch, first)
            if not data["running"]:
                break
            running.append((seconds, data["calls"], data["counts"]))
            time.sleep(2)
        retry = batch.submit_job(
            jobName="ui-bench",
            jobQueue=QUEUE,
            jobDefinition="noop-false",
            arrayProperties={"size": 2},
            containerOverrides={
                "environment": [{"name": "BATCH_FANOUT_INDEX_MAP", "value": f"1,{args.size * 2 // 5}"}]
            },
            tags={"batch-fanout:retry-of": first},
        )["jobId"]
        while read_view(batch, retry)[0]["running"]:
            time.sleep(0.5)
        from batch_fanout.ui.array import FinishedChildren

        finished = [read_view(batch, retry) for _ in range(args.repeats)]
        store = FinishedChildren()
        refreshes = [read_view(batch, retry, store) for _ in range(args.repeats + 1)][1:]
    data = finished[-1][0]
    server_times = [seconds for _, seconds, _ in finished]
    print(f"array of {args.size:,} children, then a retry job of 2 of its indices (history of 2 jobs)")
    print(f"cells: {data['total']:,}; counts: {data['counts']}")
    if running:
        calls = [sum(c.values()) for _, c, _ in running]
        print(
            f"while running: {len(running)} refreshes, API calls per refresh {min(calls)}..{max(calls)} "
            f"(e.g. {running[len(running) // 2][1]}), server time median "
            f"{statistics.median(s for s, _, _ in running) * 1000:.0f} ms"
        )
    print(
        f"finished, first view: API calls {data['calls']} = {sum(data['calls'].values())}; server time "
        f"median {statistics.median(server_times) * 1000:.0f} ms (best {min(server_times) * 1000:.0f} ms); "
        f"JSON {finished[-1][2] / 1024:.0f} KiB"
    )
    print(
        f"finished, later refreshes (finished jobs' children kept): API calls {refreshes[-1][0]['calls']}; "
        f"server time median {statistics.median(s for _, s, _ in refreshes) * 1000:.0f} ms"
    )
    rendered = render_seconds(work, data, args.repeats)
    if rendered:
        print(
            f"headless Chromium, navigation start to {data['total']:,} cells on the page: median "
            f"{statistics.median(rendered) * 1000:.0f} ms (best {min(rendered) * 1000:.0f} ms)"
        )
        print(
            f"server + render, median: {(statistics.median(server_times) + statistics.median(rendered)):.2f} s "
            "(target under 2 s)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
