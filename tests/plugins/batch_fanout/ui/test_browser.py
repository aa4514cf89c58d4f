"""The views in a real browser: Debian's Chromium (headless, through chromium-driver and selenium)
against a real Airflow (``airflow api-server``, scheduler and DAG processor started here on
127.0.0.1 and a free port, Simple auth manager), running ``batch_fanout_stage_by_stage`` on the local endpoint.

The test logs in through Airflow's login form, triggers ``batch_fanout_stage_by_stage`` through its
trigger form with a failure injected on stress-ng index 1 (stage by stage, so the task's retry reruns only that child and the run
completes with its report), opens the array view of the stress-ng task and sees every index's state
and the failed attempt's log line, opens the report view and sees its plots, and checks that no link
on the task page points at the AWS console.

``BATCH_FANOUT_SCREENSHOTS=<folder>`` saves the two views as PNG there (the README's pictures).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from batch_fanout.local.testing import wait_for

# The pipeline in its stage-by-stage form: a failed child is rerun alone by the task's own retry.
DAG_ID = "batch_fanout_stage_by_stage"

REPO_ROOT = Path(__file__).resolve().parents[4]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "browser-test-password"
RUN_TIMEOUT = 600.0
# Every DAG in dags/; the test fails if the DAG processor finds another, or one of these scheduled.
PROJECT_DAG_IDS = (
    "batch_fanout",
    "batch_fanout_stage_by_stage",
    "job_dependency_graph",
    "job_dependency_graph_stage_by_stage",
    "shortest_path_all_pairs",
    "stress_ng_leader_follower",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="Debian's chromium and chromium-driver are not installed (make system-packages installs them)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory: pytest.TempPathFactory, batch_endpoint: Any) -> Iterator[dict[str, Any]]:
    """A real Airflow on 127.0.0.1: API server, scheduler (LocalExecutor) and DAG processor, with its
    own metadata database, the project's DAGs, and the connection to the session's local endpoint."""
    home = tmp_path_factory.mktemp("browser-airflow")
    # Shown on the report view's pictures: a short neutral folder name.
    results = Path(tempfile.mkdtemp(prefix="batch-fanout-")) / ".results"
    results.mkdir()
    port = free_port()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "browser-test-jwt-secret-of-enough-length-for-hs512-0123456789abcdef",
        "AIRFLOW__API__SECRET_KEY": "browser-test-secret-key",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW_CONN_BATCH_FANOUT_AWS": json.dumps(batch_endpoint.connection()),
        "AIRFLOW_VAR_BATCH_FANOUT_RESULTS_URI": results.as_uri(),
        "AIRFLOW_VAR_BATCH_FANOUT_IMAGE_REGISTRY": "local",
        "AIRFLOW_VAR_BATCH_FANOUT_IMAGE_TAG": "latest",
        # As `make airflow` sets it: four processes share the SQLite file.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "batch_fanout.metadata_database.SQLITE_CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "batch_fanout.metadata_database.SQLITE_CONNECT_ARGS",
        # A server error shows its cause in the test's failure, not only in api-server.log.
        "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
        # On demand only: no scheduled run competes with the one the test triggers (the test checks).
        **{f"BATCH_FANOUT_SCHEDULE_{dag_id.upper()}": "none" for dag_id in PROJECT_DAG_IDS},
    }
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run(
        [*airflow, "pools", "set", "batch_submissions", "8", "Batch submissions"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    processes = []
    logs = []
    try:
        for name, command in (
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]),
            # No log servers: they would listen on every interface; the task logs are files here.
            ("scheduler", ["scheduler", "--skip-serve-logs"]),
            ("dag-processor", ["dag-processor"]),
        ):
            log = open(home / f"{name}.log", "wb")  # noqa: SIM115  (closed in finally)
            logs.append(log)
            processes.append(
                subprocess.Popen([*airflow, *command], env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(answers, 180, "the API server to answer")
        yield {"base": base, "home": home, "results": results}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
        shutil.rmtree(results.parent, ignore_errors=True)


def api(server: dict[str, Any], path: str, token: str) -> Any:
    request = urllib.request.Request(f"{server['base']}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_run_with_a_failed_child_in_the_array_and_report_views(
    airflow_server: dict[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base = airflow_server["base"]
    wait = WebDriverWait(browser, 60)
    screenshots = os.environ.get("BATCH_FANOUT_SCREENSHOTS")

    # Log in through Airflow's own login form.
    browser.get(f"{base}/")
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda driver: any(cookie["name"] == "_token" for cookie in driver.get_cookies()))
    token = next(cookie["value"] for cookie in browser.get_cookies() if cookie["name"] == "_token")

    # The DAG processor has parsed every DAG, and none of them is scheduled: the run the test triggers
    # is the only one.
    def parsed_dags() -> dict[str, Any]:
        dags = api(airflow_server, "/api/v2/dags?limit=100", token)["dags"]
        parsed = {dag["dag_id"]: dag for dag in dags if dag["is_paused"] is False}
        return parsed if set(PROJECT_DAG_IDS) <= set(parsed) else {}

    dags = wait_for(parsed_dags, 180, f"the DAG processor to parse {', '.join(PROJECT_DAG_IDS)}", interval=1)
    assert sorted(dags) == sorted(PROJECT_DAG_IDS)
    assert {dag_id: dag["timetable_summary"] for dag_id, dag in dags.items()} == dict.fromkeys(dags)
    # Then trigger it through the DAG's trigger form, as a user does: a small run, with a failure
    # injected on stress-ng index 1, under a run id the test chooses.
    run_id = "browser_test_run"
    form = {"tests": 2, "stress_duration": 1, "grid": "24x24", "fail_once_indices": "1"}
    browser.get(f"{base}/dags/{DAG_ID}")
    wait.until(
        lambda driver: next(
            (
                button
                for button in driver.find_elements(By.TAG_NAME, "button")
                if button.text.strip() == "Trigger"
            ),
            None,
        )
    ).click()
    dialog = wait.until(
        lambda driver: next(
            (d for d in driver.find_elements(By.CSS_SELECTOR, "[role=dialog]") if "Run Parameters" in d.text),
            None,
        )
    )

    def param_field(name: str) -> Any:
        # Number params are spin boxes named by their buttons; the others are inputs with the param's id.
        increment = dialog.find_elements(By.ID, f"number-input:element_{name}:inc")
        if increment:
            return dialog.find_element(By.ID, increment[0].get_attribute("aria-controls"))
        return dialog.find_element(By.ID, f"element_{name}")

    def type_into(box: Any, value: object) -> None:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(value))

    for name, value in form.items():
        type_into(param_field(name), value)
    advanced = dialog.find_element(By.CSS_SELECTOR, "[id$=':trigger:advancedOptions']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", advanced)
    advanced.click()
    type_into(
        wait.until(lambda _: (box := dialog.find_element(By.NAME, "dagRunId")).is_displayed() and box), run_id
    )
    dialog.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]").click()
    # The UI opens the new run's page.
    wait.until(lambda driver: driver.current_url.endswith(f"/dags/{DAG_ID}/runs/{run_id}"))
    run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
    run = api(airflow_server, run_path, token)
    assert run["run_type"] == "manual"
    assert {name: run["conf"][name] for name in form} == form

    def finished() -> str | None:
        state = api(airflow_server, run_path, token)["state"]
        return state if state in ("success", "failed") else None

    assert wait_for(finished, RUN_TIMEOUT, f"run {run_id} to finish", interval=2) == "success"
    task_id = "run_stress_ng"
    ti = api(airflow_server, f"{run_path}/taskInstances/{task_id}", token)
    assert ti["try_number"] == 2  # the injected failure failed the first try; the retry reran index 1

    # The array view, as the tab of the task instance page shows it (its frame).
    run_segment = quote(run_id, safe="")
    browser.get(f"{base}/dags/{DAG_ID}/runs/{run_segment}/tasks/{task_id}/plugin/batch-fanout-array")
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Batch array']")))
    browser.switch_to.frame(frame)
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".cell")) == 2)
    cells = {
        cell.get_attribute("data-index"): cell for cell in browser.find_elements(By.CSS_SELECTOR, ".cell")
    }
    assert {index: cell.get_attribute("data-state") for index, cell in cells.items()} == {
        "0": "SUCCEEDED",
        "1": "SUCCEEDED",
    }
    assert "runs 2" in cells["1"].get_attribute("title") and "runs 1" in cells["0"].get_attribute("title")
    assert "SUCCEEDED 2" in browser.find_element(By.ID, "counts").text
    cells["1"].click()
    earlier = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#child a[data-job]")))
    assert "FAILED" in earlier.text
    earlier.click()
    log = wait.until(
        lambda driver: (
            (box := driver.find_elements(By.CSS_SELECTOR, "#child pre.log"))
            and "injected failure" in box[0].text
            and box[0]
        )
    )
    assert "logical index 1" in log.text
    assert "Log: /aws/batch/job / " in browser.find_element(By.CSS_SELECTOR, "#child .stream").text
    if screenshots:
        browser.switch_to.default_content()
        Path(screenshots).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(screenshots) / "array-view.png"))

    # The report view, the tab of the DAG run page: the report's plots are shown.
    browser.switch_to.default_content()
    browser.get(f"{base}/dags/{DAG_ID}/runs/{run_segment}/plugin/batch-fanout-report")
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Run report']")))
    browser.switch_to.frame(frame)
    files = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.files")))
    assert "stress.csv" in files.text and "report.json" in files.text
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe.report"))
    images = wait.until(lambda driver: driver.find_elements(By.TAG_NAME, "img"))
    assert wait.until(
        lambda driver: all(driver.execute_script("return arguments[0].naturalWidth", i) for i in images)
    )
    assert any("stress" in (image.get_attribute("alt") or "") for image in images)
    if screenshots:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", images[0])
        browser.switch_to.default_content()
        browser.save_screenshot(str(Path(screenshots) / "report-view.png"))

    # The task page: its extra links lead to the views, and none to the AWS console.
    browser.switch_to.default_content()
    browser.get(f"{base}/dags/{DAG_ID}/runs/{run_segment}/tasks/{task_id}/details")
    array_link = wait.until(ec.presence_of_element_located((By.XPATH, "//a[contains(., 'Array View')]")))
    assert f"/batch-fanout/array/{DAG_ID}/" in (array_link.get_attribute("href") or "")
    hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
    assert any(f"/batch-fanout/report/{DAG_ID}/" in href for href in hrefs)
    assert not [href for href in hrefs if "console.aws" in href or "amazonaws.com" in href], hrefs
