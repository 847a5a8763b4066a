"""Point 10: every example of the seeds runs with one click and shows the result the seed shows.

The page checks each result itself (the result box turns `data-ok="true"` when what arrived
matches the seed); the tests click Run and also read the text a person would read.
"""

from __future__ import annotations

import pytest
from e2etest import SLOW, App, expect_answer_on_timeline
from playwright.sync_api import Page, expect

# example id -> text that must be on screen in its result box
EXPECTED = {
    "getsum": "50005000",
    "sum": "4999950000",
    "compute": "结果: 4999999950000000",
    "compute-4e9": "结果: 7999999998000000000 (exact)",
    "spawn-ls": "子进程退出，退出码 0",
    "spawn-node-args": "child 6:",
    "exec-cat": "process.on",
    "execfile-node": "data:  v",
    "fork-five": ">>> close 事件 0",
    "seed003": "的stderr",
    "hello": "hello master process!",
    "fd3": "来自子进程消息 hello master process!",
    "signals": ">>> exit: null SIGKILL",
}


# Examples the backend cannot run yet, and the text the page shows when it refuses them.
NEEDS_BACKEND = {
    "fd3": "Could not run",  # POST /api/jobs has no `stdio` option for spawn yet
    "execfile-node": "refused by the server",  # the policy lets node run shipped programs only
}


def run_example(page: Page, example: str) -> None:
    section = page.locator(f"#ex-{example}")
    section.locator(f'button[data-run="{example}"]').click()
    result = section.locator(".result")
    if example in NEEDS_BACKEND:
        expect(result).not_to_have_text("starting…", timeout=SLOW)
        if NEEDS_BACKEND[example] in result.inner_text():
            pytest.xfail(f"backend: {result.inner_text()}")
    expect(result).to_have_attribute("data-ok", "true", timeout=60_000)
    expect(result).to_contain_text(EXPECTED[example])
    expect(section.locator(".ex-status")).to_contain_text("matches the seed")
    # Its code is shown beside it, in Node and in Python.
    expect(section.locator("pre.code")).to_have_count(2)


@pytest.fixture
def examples_page(app: App) -> Page:
    return app.open("/examples")


@pytest.mark.parametrize("example", list(EXPECTED))
def test_example_runs_and_shows_the_seeds_result(examples_page: Page, example: str) -> None:
    run_example(examples_page, example)
    # The live timeline shows this example's children.
    lanes = examples_page.locator("#ex-timeline .tl-lane")
    expect(lanes.nth(1)).to_be_attached(timeout=SLOW)


def test_getsum_on_the_timeline_and_over_http(examples_page: Page) -> None:
    page = examples_page
    run_example(page, "getsum")
    page.click("#ex-timeline .tl-fit-all")
    expect_answer_on_timeline(page, "50005000")
    section = page.locator("#ex-getsum")
    section.locator('button[data-endpoint="/getSum"]').click()
    expect(section.locator(".endpoint-result")).to_contain_text("200 “50005000”", timeout=SLOW)


@pytest.mark.parametrize(
    ("example", "endpoint", "body"),
    [
        ("sum", "/sum", "sumRes is 4999950000"),
        ("compute", "/compute?min=0&max=100000000", "结果: 4999999950000000"),
    ],
)
def test_seed_endpoints(examples_page: Page, example: str, endpoint: str, body: str) -> None:
    section = examples_page.locator(f"#ex-{example}")
    section.locator(f'button[data-endpoint="{endpoint}"]').click()
    expect(section.locator(".endpoint-result")).to_contain_text(f"200 “{body}”", timeout=SLOW)


def test_startup_cost_is_measured(examples_page: Page) -> None:
    page = examples_page
    run_example(page, "getsum")
    run_example(page, "hello")
    node_row = page.locator("#cost-body tr", has_text="Node children")
    # Time to spawn and to the first message, measured on this page's Node children.
    expect(node_row.locator("td").nth(2)).to_contain_text("ms", timeout=SLOW)
    expect(node_row.locator("td").nth(3)).to_contain_text("ms", timeout=SLOW)
