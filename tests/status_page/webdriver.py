"""A headless Chromium under selenium, driven line by line from
tests/status_page.rs.

Each stdin line is one JSON command; each answer is one JSON line on
stdout, {"ok": value} or {"err": "text"}. Commands:
  {"op": "open", "url": U}               load a page
  {"op": "eval", "js": S}                run `S` (a function body) and return its value
  {"op": "type", "css": C, "text": T}    type into the element
  {"op": "click", "css": C}              click the element
  {"op": "logs"}                         browser console entries since the last call
  {"op": "screenshot", "path": P}        a PNG of the window
  {"op": "quit"}

Offline by design: the chromedriver path is given through Service, so
selenium never asks Selenium Manager to download a driver.
Usage: webdriver.py CHROMIUM CHROMEDRIVER
"""

import json
import os
import sys

os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def main():
    chromium, chromedriver = sys.argv[1], sys.argv[2]
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    driver.set_page_load_timeout(15)
    driver.set_script_timeout(15)
    print(json.dumps({"ok": "ready"}), flush=True)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd.get("op")
            try:
                if op == "quit":
                    print(json.dumps({"ok": None}), flush=True)
                    break
                if op == "open":
                    driver.get(cmd["url"])
                    out = None
                elif op == "eval":
                    out = driver.execute_script(cmd["js"])
                elif op == "type":
                    driver.find_element(By.CSS_SELECTOR, cmd["css"]).send_keys(cmd["text"])
                    out = None
                elif op == "click":
                    driver.find_element(By.CSS_SELECTOR, cmd["css"]).click()
                    out = None
                elif op == "logs":
                    out = driver.get_log("browser")
                elif op == "screenshot":
                    out = driver.save_screenshot(cmd["path"])
                else:
                    raise ValueError("unknown op %r" % op)
                print(json.dumps({"ok": out}), flush=True)
            except Exception as e:  # answered, so the Rust side can report it
                print(json.dumps({"err": "%s: %s" % (type(e).__name__, e)}), flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
