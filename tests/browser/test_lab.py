"""The run widget in a real JupyterLab, driven by Playwright in headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import ARTIFACTS, CHROMIUM_ARGS, ROOT, Lab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

WAIT_MS = 60_000
"""Upper bound of any single wait in the browser."""


def test_step_approve_and_stop_in_jupyterlab(chromium: Path, jupyterlab: Lab) -> None:
    """Run all, Step shows the next step, Approve shows the tool result, Stop stops the run."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", jupyterlab.root / "quickstart.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS,
                                    timeout=WAIT_MS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.set_default_timeout(WAIT_MS)
            page.goto(jupyterlab.page_url("quickstart.ipynb"), timeout=WAIT_MS)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=WAIT_MS)
            page.wait_for_selector("text=Kernel status: Idle", state="attached", timeout=WAIT_MS)

            widget = page.locator(".anb-run-widget").first
            # A Run All sent while the kernel connection settles can be dropped: retry (bounded).
            for _attempt in range(4):
                page.locator(".jp-Notebook").first.click()
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
                try:
                    widget.wait_for(state="visible", timeout=20_000)
                    break
                except PlaywrightTimeout:
                    continue
            expect(widget).to_be_visible(timeout=WAIT_MS)
            # Run all finished: the cost-versus-quality plot is the last image output.
            expect(page.locator(".jp-OutputArea-output img").last).to_be_visible(timeout=WAIT_MS)
            widget.scroll_into_view_if_needed()
            expect(widget).to_contain_text("ready")
            widget.screenshot(path=str(ARTIFACTS / "lab-1-ready.png"))

            widget.locator("button.anb-btn-step").click()
            expect(widget.locator('.anb-step[data-step="1"]')).to_be_visible(timeout=WAIT_MS)
            card = widget.locator(".anb-approval")
            expect(card).to_be_visible(timeout=WAIT_MS)
            expect(card).to_contain_text("save_note")
            widget.screenshot(path=str(ARTIFACTS / "lab-2-approval.png"))

            card.locator("button.anb-btn-approve").click()
            expect(widget.locator(".anb-result", has_text="saved:")).to_be_visible(
                timeout=WAIT_MS)
            expect(widget.locator('.anb-step[data-step="3"]')).to_be_visible()
            widget.screenshot(path=str(ARTIFACTS / "lab-3-approved.png"))

            widget.locator("button.anb-btn-stop").click()
            expect(widget.locator(".anb-head").first).to_contain_text("stopped",
                                                                       timeout=WAIT_MS)
            expect(widget.locator(".anb-tree")).to_be_visible(timeout=WAIT_MS)
            widget.screenshot(path=str(ARTIFACTS / "lab-4-stopped.png"))
            page.screenshot(path=str(ARTIFACTS / "lab-page.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "lab-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
