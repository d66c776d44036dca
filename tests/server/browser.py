"""Headless Chromium on the console: one page logged in as a user, browser errors collected."""

from __future__ import annotations

from typing import Any


def logged_in_page(browser: Any, url: str, username: str, password: str, errors: list[str], *,
                   width: int = 1280, height: int = 900) -> Any:
    """A new page (its own context: its own session cookie) logged in at `url`/ui/login; console errors and page
    errors are appended to `errors`."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/ui/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#submit")
    page.wait_for_url(f"{url}/ui")
    return page
