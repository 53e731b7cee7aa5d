"""The status pages in Debian's Chromium, headless, driven by Selenium 4.

tests/browser/run.sh starts two servers on 127.0.0.1 and calls this with their URLs:
--base, an open server (fleet, host and commit pages), and --auth-base, one with --tokens
and --read-requires-token (the sign-in flow; its tokens come in BROWSER_READ_TOKEN and
BROWSER_WRITE_TOKEN). This script seeds both over the JSON API, then checks the pages as a
person would use them: clicks, typing, forms. After every page load it reads Chromium's
console (no SEVERE entry: a CSP violation would be one) and network log (nothing fetched
from anywhere but the servers). axe-core (--axe, the npm package's axe.min.js) checks
accessibility. With --screenshots DIR it writes fleet.png and host.png there.

Prints one line per check, then a summary; exits 1 when any check failed.
"""

import argparse
import hashlib
import json
import os
import re
import struct
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT = 10  # seconds an explicit wait may take
COOKIE = "gitops_status_token"
XSS = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
XSS_FILE = "/etc/nginx/conf.d/<img src=x onerror=\"document.title='pwned'\">.conf"
LOOK = {
    "synced": "✓ synced",
    "out_of_sync": "⚠ out of sync",
    "failed": "✗ failed",
    "unknown": "? unknown",
    None: "· no status",
}
# A transition's "from" for a host's first report.
FROM = {**LOOK, None: "· first report"}


def sha(text):
    """A realistic 40-hex commit id, the same on every run."""
    return hashlib.sha1(text.encode()).hexdigest()


def stamp(at):
    """RFC 3339 as a client sends it."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def shown(at):
    """A time as the pages show it (the server's canonical form: milliseconds, Z)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def human_duration(seconds):
    """The pages' durations: the two largest units (src/ui/mod.rs human_duration)."""
    seconds = max(0, int(seconds))
    days, hours, minutes, secs = (
        seconds // 86400,
        seconds // 3600 % 24,
        seconds // 60 % 60,
        seconds % 60,
    )
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# ---------------------------------------------------------------------------------------
# The seeded fleet


@dataclass
class Report:
    kind: str  # pipeline | cron
    group: str
    host: str
    status: str
    at: datetime
    files: list = field(default_factory=list)
    commit: str = None
    branch: str = None
    validation_status: str = None
    validation_message: str = None

    def body(self):
        body = {
            "server_group": self.group,
            "host": self.host,
            "status": self.status,
            "changed_files": list(self.files),
        }
        if self.kind == "pipeline":
            body.update(
                {
                    "project_name": "gitops-for-servers",
                    "repo_name": self.group.split("-")[0],
                    "server_type": self.group.split("-")[0],
                    "environment": "prod",
                    "commit_sha": self.commit,
                    "branch": self.branch,
                    "validation_status": self.validation_status,
                    "validation_message": self.validation_message,
                    "updated_by": "woodpecker",
                    "last_pipeline_run": stamp(self.at),
                }
            )
        else:
            body["last_cron_check"] = stamp(self.at)
        return body


R1, R2, R_BAD = sha("rsyslog 1"), sha("rsyslog 2"), sha("rsyslog bad")
N1, N2 = sha("nginx 1"), sha("nginx 2")
S1 = sha("splunk 1")
PASSED_RSYSLOG = "rsyslogd -N1: rsyslog syntax validation passed"


def rsyslog_01_story(now):
    """One host's long, varied history (the host screenshot): 60 reports 15 minutes apart,
    mostly synced, drifts that were put right, a failed deploy, one unknown check."""
    group, host = "rsyslog-prod", "rsyslog-01"
    start = now - timedelta(minutes=4 + 15 * 59)
    reports = []
    for i in range(60):
        at = start + timedelta(minutes=15 * i)
        if i == 0:
            r = Report("pipeline", group, host, "synced", at, [], R1, "main", "passed", PASSED_RSYSLOG)
        elif i in (8, 9):
            r = Report("cron", group, host, "out_of_sync", at, ["/etc/rsyslog.d/50-default.conf"])
        elif i == 10:
            r = Report(
                "cron", group, host, "out_of_sync", at,
                ["/etc/rsyslog.d/50-default.conf", "/etc/rsyslog.d/60-local.conf"],
            )
        elif i == 11:
            r = Report("pipeline", group, host, "synced", at, [], R1, "main", "passed", PASSED_RSYSLOG)
        elif i in (22, 23):
            r = Report(
                "cron", group, host, "out_of_sync", at,
                ["/etc/rsyslog.conf", "/etc/rsyslog.d/30-remote.conf"],
            )
        elif i == 35:
            r = Report(
                "pipeline", group, host, "failed", at, ["/etc/rsyslog.d/40-forward.conf"],
                R_BAD, "main", "failed",
                "rsyslogd: error during parsing file /etc/rsyslog.d/40-forward.conf, "
                "on or before line 7: invalid character '}' in object definition",
            )
        elif i == 36:
            r = Report("pipeline", group, host, "synced", at, [], R2, "main", "passed", PASSED_RSYSLOG)
        elif i in (47, 48):
            r = Report("cron", group, host, "out_of_sync", at, ["/etc/rsyslog.d/50-default.conf"])
        elif i == 52:
            r = Report("cron", group, host, "unknown", at, [])
        else:
            r = Report("cron", group, host, "synced", at, [])
        reports.append(r)
    return reports


def fleet_reports(now):
    ago = lambda **kw: now - timedelta(**kw)  # noqa: E731
    many = [f"/opt/splunk/etc/apps/search/local/savedsearches_{n:02}.conf" for n in range(1, 25)]
    reports = rsyslog_01_story(now)
    reports += [
        Report("pipeline", "rsyslog-prod", "rsyslog-02", "synced", ago(hours=3, minutes=40), [],
               R2, "main", "passed", PASSED_RSYSLOG),
        Report("cron", "rsyslog-prod", "rsyslog-02", "synced", ago(hours=2), []),
        Report("cron", "rsyslog-prod", "rsyslog-02", "out_of_sync", ago(minutes=35),
               ["/etc/rsyslog.d/50-default.conf", "/etc/logrotate.d/rsyslog"]),
        Report("cron", "rsyslog-prod", "rsyslog-02", "out_of_sync", ago(minutes=5),
               ["/etc/rsyslog.d/50-default.conf", "/etc/logrotate.d/rsyslog"]),
        Report("pipeline", "rsyslog-prod", "rsyslog-03", "synced", ago(hours=14), [],
               R1, "main", "passed", PASSED_RSYSLOG),
        Report("cron", "rsyslog-prod", "rsyslog-03", "synced", ago(minutes=6), []),
        Report("pipeline", "rsyslog-prod", "rsyslog-04", "synced", ago(hours=14, minutes=2), [],
               R1, "main", "passed", PASSED_RSYSLOG),
        Report("pipeline", "rsyslog-prod", "rsyslog-04", "failed", ago(hours=3, minutes=35),
               ["/etc/rsyslog.d/70-elastic.conf"], R2, "main", "failed",
               "rsyslogd -N1: could not load module 'omelasticsearch': cannot open shared object file"),
        Report("cron", "rsyslog-prod", "rsyslog-04", "failed", ago(minutes=7),
               ["/etc/rsyslog.d/70-elastic.conf"]),
        Report("pipeline", "nginx-prod", "web-01", "synced", ago(minutes=50), [],
               N2, "main", "passed", "nginx: configuration file /etc/nginx/nginx.conf test is successful"),
        Report("cron", "nginx-prod", "web-01", "synced", ago(minutes=3), []),
        Report("pipeline", "nginx-prod", "web-02", "synced", ago(days=2, hours=1), [],
               N1, "main", "passed", "nginx: configuration file /etc/nginx/nginx.conf test is successful"),
        Report("cron", "nginx-prod", "web-02", "synced", ago(minutes=9), []),
        # Markup where a pipeline or a drift check may put text: it must stay text.
        Report("pipeline", "nginx-prod", "web-03", "synced", ago(minutes=48), [],
               N2, "main", "warning", XSS),
        Report("cron", "nginx-prod", "web-03", "out_of_sync", ago(minutes=2),
               ["/etc/nginx/conf.d/upstream.conf", XSS_FILE]),
        Report("pipeline", "nginx-prod", "web-04", "synced", ago(minutes=47), [],
               N2, "main", "passed", "nginx: configuration file /etc/nginx/nginx.conf test is successful"),
        Report("cron", "nginx-prod", "web-04", "unknown", ago(minutes=8), []),
        Report("pipeline", "splunk-prod", "splunk-idx-01", "synced", ago(hours=5), [],
               S1, "release/9.2", "passed", "btool check: no problems"),
        Report("cron", "splunk-prod", "splunk-idx-01", "synced", ago(minutes=20), []),
        Report("pipeline", "splunk-prod", "splunk-idx-02", "synced", ago(hours=5, minutes=1), [],
               S1, "release/9.2", "passed", "btool check: no problems"),
        Report("cron", "splunk-prod", "splunk-idx-02", "out_of_sync", ago(minutes=18), many),
        Report("pipeline", "splunk-prod", "splunk-hf-01", "failed", ago(hours=4), ["/opt/splunk/etc/apps/outputs/local/outputs.conf"],
               S1, "release/9.2", "failed",
               "btool check: Invalid key in stanza [tcpout:indexers] in "
               "/opt/splunk/etc/apps/outputs/local/outputs.conf, line 4: compressed_ssl"),
        Report("pipeline", "splunk-prod", "splunk-sh-01", "synced", ago(hours=4, minutes=10), [],
               S1, "release/9.2", "passed", "btool check: no problems"),
    ]
    reports.sort(key=lambda r: r.at)
    return reports


@dataclass
class Host:
    group: str
    host: str
    reports: list

    @property
    def last(self):
        return self.reports[-1]

    @property
    def status(self):
        return self.last.status

    @property
    def deployment(self):
        return [r for r in self.reports if r.kind == "pipeline"][-1]

    @property
    def commit(self):
        return self.deployment.commit

    @property
    def status_since(self):
        since = self.last.at
        for r in reversed(self.reports):
            if r.status != self.status:
                break
            since = r.at
        return since

    def stale(self, stale_groups):
        return self.group in stale_groups and any(r.kind == "cron" for r in self.reports)

    def transitions(self):
        """(at, from, to, kind, the commit deployed then) oldest first."""
        out, previous, commit = [], None, None
        for r in self.reports:
            if r.kind == "pipeline":
                commit = r.commit
            if r.status != previous:
                out.append((r.at, previous, r.status, r.kind, commit))
                previous = r.status
        return out

    def text_matches(self, q):
        q = q.lower()
        return any(q in (v or "").lower() for v in (self.host, self.group, self.commit, self.deployment.branch))


def hosts_of(reports):
    hosts = {}
    for r in reports:
        hosts.setdefault((r.group, r.host), Host(r.group, r.host, [])).reports.append(r)
    return [hosts[k] for k in sorted(hosts)]


def post(base, path, body, token=None):
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def get_json(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return json.load(response)


def seed(base, reports, token=None):
    created = set()
    for r in reports:
        status, answer = post(base, f"/status/{r.kind}", r.body(), token)
        expected = 200 if (r.group, r.host) in created or r.kind == "cron" else 201
        assert status == expected, f"seeding {base}: POST /status/{r.kind} {r.body()} answered {status}, expected {expected}: {answer}"
        created.add((r.group, r.host))


# ---------------------------------------------------------------------------------------
# The browser


class Browser:
    def __init__(self, args):
        self.args = args
        self.allowed_origins = {args.base, args.auth_base}
        with open(args.axe, encoding="utf-8") as f:
            self.axe_source = f.read()
        self.profile = tempfile.TemporaryDirectory(prefix="gitops-status-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for arg in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps",
            f"--user-data-dir={self.profile.name}", "--window-size=1280,1000",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        # Both paths given: Selenium Manager is never asked (it would download a browser).
        service = Service(executable_path="/usr/bin/chromedriver")
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_script_timeout(30)
        self.driver.set_page_load_timeout(20)
        self.requests = []  # (page label, url)
        self.console = []  # (page label, entry) of every SEVERE entry not expected
        self.timings = []  # (page label, dict)
        self.loads = 0
        self.startup = 0  # chrome:// loads of Chromium's own start page
        self.console_other = {}  # message: count, of the entries below SEVERE

    def started(self):
        """What Chromium logged before the first page: its own start page."""
        self.network("Chromium's start page")
        self.check_console("Chromium's start page")

    def quit(self):
        try:
            self.driver.quit()
        finally:
            self.profile.cleanup()

    # -- page loads ------------------------------------------------------------------

    def get(self, url, label, status=200):
        self.driver.get(url)
        return self.settled(label, status)

    def click(self, element, label, status=200, url_contains=None):
        """Clicks something that navigates, and waits for the new page."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        return self.after_navigation(old, label, status, url_contains)

    def enter(self, element, label, status=200, url_contains=None):
        """Presses Enter in a form field (submits its form), and waits for the new page."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        element.send_keys(Keys.ENTER)
        return self.after_navigation(old, label, status, url_contains)

    def after_navigation(self, old, label, status, url_contains):
        wait = WebDriverWait(self.driver, WAIT)
        wait.until(EC.staleness_of(old), f"{label}: the page did not change")
        if url_contains:
            wait.until(EC.url_contains(url_contains), f"{label}: the URL never contained {url_contains!r}: {self.driver.current_url}")
        return self.settled(label, status)

    def settled(self, label, status):
        """Waits for the load, then checks the document's status, the console and the
        network log, and keeps the timing. Returns the document statuses seen (redirects
        first)."""
        WebDriverWait(self.driver, WAIT).until(
            lambda d: d.execute_script("return document.readyState") == "complete",
            f"{label}: never finished loading",
        )
        self.loads += 1
        statuses = self.network(label)
        assert statuses, f"{label}: no document response in Chromium's network log"
        assert statuses[-1] == status, f"{label}: the page answered {statuses[-1]}, expected {status} (document statuses: {statuses})"
        self.check_console(label, expected_status=status)
        timing = self.driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0]; return n ? n.toJSON() : null;"
        )
        if timing:
            self.timings.append((label, timing))
        return statuses

    def network(self, label):
        """Reads the performance log: every request's URL (kept for the final check) and
        the statuses of the document responses, redirects included."""
        statuses = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                # Debian's Chromium opens its new tab page (chrome://new-tab-page-third-party/)
                # at start; it goes on loading its parts (chrome:// URLs, served from inside
                # the browser) into the first page loads. Only those are set aside: anything
                # else it fetched would leave the machine and is checked like every request.
                if url.startswith("chrome://") and params.get("documentURL", "").startswith("chrome://"):
                    self.startup += 1
                    continue
                self.requests.append((label, url))
                redirect = params.get("redirectResponse")
                if params.get("type") == "Document" and redirect and redirect["url"].startswith("http"):
                    statuses.append(redirect["status"])
            elif method == "Network.responseReceived" and params.get("type") == "Document":
                if params["response"]["url"].startswith("http"):
                    statuses.append(params["response"]["status"])
        return statuses

    def check_console(self, label, expected_status=200):
        """No SEVERE entry. The one a page answered with an error status brings (Chromium
        logs "Failed to load resource: … status of 401" for the sign-in page) is expected
        when that status is."""
        problems = []
        here = self.driver.current_url
        for entry in self.driver.get_log("browser"):
            if entry["level"] != "SEVERE":
                key = f"{entry['level']} {entry['message']}"
                self.console_other[key] = self.console_other.get(key, 0) + 1
                continue
            text = entry["message"]
            if (
                expected_status != 200
                and entry.get("source") == "network"
                and f"status of {expected_status}" in text
                and text.startswith(here.split("#")[0])
            ):
                continue
            problems.append(text)
            self.console.append((label, text))
        assert not problems, f"{label}: Chromium's console has SEVERE entries: {problems}"

    # -- reading pages ----------------------------------------------------------------

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def table(self, caption):
        """The body rows of the table whose caption starts with `caption`, as cell texts."""
        rows = self.js(
            """
            const table = Array.from(document.querySelectorAll('table')).find(
                t => t.caption && t.caption.textContent.trim().startsWith(arguments[0]));
            if (!table) return null;
            return Array.from(table.tBodies[0].rows).map(
                tr => Array.from(tr.cells).map(td => td.innerText.replace(/\\s+/g, ' ').trim()));
            """,
            caption,
        )
        return rows

    def text(self, selector):
        return " ".join(self.driver.find_element(By.CSS_SELECTOR, selector).text.split())

    def fleet_rows(self):
        rows = self.table("Hosts")
        assert rows is not None, f"no table captioned 'Hosts' on {self.driver.current_url}"
        return rows

    def axe(self, label):
        """Runs axe-core on the page; returns its violations and incomplete results.

        The pages' Content-Security-Policy allows no script at all, but WebDriver's
        execute_script runs through DevTools (Runtime.evaluate), which the CSP does not
        govern, so Page.setBypassCSP is not needed: the pages are checked under their real
        policy, and a violation axe caused would show in the console check after it."""
        self.js(self.axe_source)
        result = self.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const why = n => n ? [].concat(n.any, n.all, n.none).map(c => c.message).join('; ') : '';
            const brief = v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
                                 target: v.nodes.length ? v.nodes[0].target.join(' ') : '',
                                 html: v.nodes.length ? v.nodes[0].html.slice(0, 160) : '',
                                 why: why(v.nodes[0])});
            axe.run(document, {resultTypes: ['violations', 'incomplete']})
               .then(r => done({version: axe.version, violations: r.violations.map(brief),
                                incomplete: r.incomplete.map(brief), passes: r.passes.length}))
               .catch(e => done({error: String(e)}));
            """
        )
        assert "error" not in result, f"{label}: axe.run failed: {result['error']}"
        self.check_console(f"{label} (axe)")
        self.network(f"{label} (axe)")
        return result

    def screenshot(self, path):
        """The page at 1280 px wide and as tall as its content (at most 2400 px)."""
        self.js("window.scrollTo(0, 0)")
        height = min(2400, self.js("return document.documentElement.scrollHeight"))
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        try:
            assert self.driver.save_screenshot(path), f"could not write {path}"
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        with open(path, "rb") as f:
            head = f.read(24)
        assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
        width, tall = struct.unpack(">II", head[16:24])
        size = os.path.getsize(path)
        assert width == 1280, f"{path} is {width} px wide, expected 1280"
        assert size > 20_000, f"{path} is only {size} bytes: a blank page?"
        return f"{os.path.basename(path)} {width}x{tall}, {size // 1024} KiB"


# ---------------------------------------------------------------------------------------
# The checks


class Checks:
    def __init__(self, browser, args, hosts, stale_groups, auth_hosts):
        self.b = browser
        self.d = browser.driver
        self.args = args
        self.hosts = hosts
        self.stale_groups = stale_groups
        self.auth_hosts = auth_hosts
        self.axe_results = []  # (page, result)

    def host(self, name):
        return next(h for h in self.hosts if h.host == name)

    def expected_row(self, h):
        return [
            h.group,
            h.host,
            LOOK[h.status],
            "⏱ stale" if h.stale(self.stale_groups) else "no",
            shown(h.status_since),
            h.commit[:12],
            h.deployment.branch,
            str(len(h.last.files)),
        ]

    @staticmethod
    def comparable(row):
        """A fleet row without its last report time (the server's receive time)."""
        return row[:7] + row[8:]

    # -- fleet -------------------------------------------------------------------------

    def fleet_shows_the_seeded_hosts_and_counts(self):
        self.b.get(self.args.base + "/ui/", "fleet")
        assert self.d.find_element(By.TAG_NAME, "h1").text == "Fleet", "the fleet page has no 'Fleet' heading"
        rows = self.b.fleet_rows()
        expected = [self.expected_row(h) for h in self.hosts]
        got = [self.comparable(r) for r in rows]
        assert got == expected, "the fleet table differs from the seeded hosts:\n" + "\n".join(
            f"  got      {g}\n  expected {e}" for g, e in zip(got + [None] * len(expected), expected + [None] * len(got)) if g != e
        )
        count = lambda s: sum(h.status == s for h in self.hosts)  # noqa: E731
        stale = sum(h.stale(self.stale_groups) for h in self.hosts)
        counts = (
            f"{len(self.hosts)} hosts: ✓ {count('synced')} synced, ⚠ {count('out_of_sync')} out of sync, "
            f"✗ {count('failed')} failed, ? {count('unknown')} unknown; ⏱ {stale} stale."
        )
        shown_counts = self.b.text("section.counts")
        assert shown_counts == counts, f"counts: got {shown_counts!r}, expected {counts!r}"
        info = self.b.text("p.page-info")
        assert info.startswith(f"Hosts 1–{len(self.hosts)} of {len(self.hosts)}."), f"page info: {info!r}"
        links = self.b.js("return Array.from(document.querySelectorAll('tbody a[href^=\"/ui/hosts/\"]')).map(a => a.getAttribute('href'))")
        assert links == [f"/ui/hosts/{h.group}/{h.host}" for h in self.hosts], f"host links: {links}"
        if self.args.screenshots:
            self.fleet_shot = self.b.screenshot(os.path.join(self.args.screenshots, "fleet.png"))
        # It says it reloads itself every 30 s (reload.js shows the notice), and it does: with
        # refresh=10 the page is loaded anew, filters kept. "stop reloading" ends it.
        assert self.b.js("return document.querySelector('meta[http-equiv=refresh]')") is None, "a meta refresh"
        notice = self.d.find_element(By.ID, "reload")
        assert notice.is_displayed() and "every 30 s" in notice.text, f"reload notice: {notice.text!r}"
        self.b.get(self.args.base + "/ui/?status=failed&refresh=10", "fleet ?refresh=10")
        old = self.d.find_element(By.TAG_NAME, "html")
        WebDriverWait(self.d, 20).until(EC.staleness_of(old), "the page did not reload itself within 20 s")
        self.b.settled("fleet ?refresh=10 (reloaded by itself)", 200)
        assert "status=failed" in self.d.current_url, f"the reload lost the filter: {self.d.current_url}"
        stop = self.d.find_element(By.LINK_TEXT, "stop reloading")
        self.b.click(stop, "fleet ?refresh=0", url_contains="refresh=0")
        assert self.b.js("return document.scripts.length") == 0, "a script on a page asked not to reload"
        kept = self.d.find_element(By.CSS_SELECTOR, "form[role=search] input[name=refresh]").get_attribute("value")
        assert kept == "0", f"the filter form drops the choice: refresh={kept!r}"
        self.d.find_element(By.LINK_TEXT, "Reload this view every 30 s")
        return f"{len(rows)} rows as seeded; {counts}; reloads itself (seen with refresh=10) until told to stop"

    def filter_by_status_through_the_form(self):
        self.b.get(self.args.base + "/ui/", "fleet")
        Select(self.d.find_element(By.NAME, "status")).select_by_value("failed")
        button = self.d.find_element(By.XPATH, "//form[@role='search']//button[normalize-space()='Filter']")
        self.b.click(button, "fleet ?status=failed", url_contains="status=failed")
        assert "status=failed" in self.d.current_url, f"URL {self.d.current_url} lacks status=failed"
        expected = [self.expected_row(h) for h in self.hosts if h.status == "failed"]
        got = [self.comparable(r) for r in self.b.fleet_rows()]
        assert got == expected, f"filtered by failed: got {got}, expected {expected}"
        selected = Select(self.d.find_element(By.NAME, "status")).first_selected_option.get_attribute("value")
        assert selected == "failed", f"the status select shows {selected!r} after filtering"
        self.filtered_url = self.d.current_url
        return f"{len(got)} failed hosts ({', '.join(r[1] for r in got)}), URL {urlsplit(self.d.current_url).query}"

    def filter_by_text_through_the_form(self):
        self.b.get(self.args.base + "/ui/?status=failed", "fleet ?status=failed")
        self.b.click(self.d.find_element(By.LINK_TEXT, "Clear"), "fleet (cleared)")
        assert urlsplit(self.d.current_url).query == "", f"Clear left {self.d.current_url}"
        q = self.d.find_element(By.NAME, "q")
        q.send_keys("splunk-idx")
        self.b.enter(q, "fleet ?q=splunk-idx", url_contains="q=splunk-idx")
        expected = [self.expected_row(h) for h in self.hosts if h.text_matches("splunk-idx")]
        got = [self.comparable(r) for r in self.b.fleet_rows()]
        assert len(expected) == 2 and got == expected, f"text filter splunk-idx: got {got}, expected {expected}"
        value = self.d.find_element(By.NAME, "q").get_attribute("value")
        assert value == "splunk-idx", f"the q field shows {value!r} after filtering"
        return f"q=splunk-idx shows {', '.join(r[1] for r in got)}"

    def sorting_by_a_column_header(self):
        self.b.get(self.args.base + "/ui/", "fleet")
        before = [r[1] for r in self.b.fleet_rows()]
        assert before == [h.host for h in self.hosts], f"default order (group, host): {before}"
        self.b.click(self.d.find_element(By.LINK_TEXT, "Host"), "fleet ?sort=host", url_contains="sort=host")
        ascending = [r[1] for r in self.b.fleet_rows()]
        assert ascending == sorted(before), f"after clicking Host: {ascending}, expected {sorted(before)}"
        assert ascending != before, "sorting by host did not change the order"
        sort = self.b.js("return Array.from(document.querySelectorAll('th[aria-sort]')).map(th => th.innerText.trim() + '=' + th.getAttribute('aria-sort'))")
        assert sort == ["Host=ascending"], f"aria-sort after the first click: {sort}"
        self.b.click(self.d.find_element(By.LINK_TEXT, "Host"), "fleet ?sort=host&order=desc", url_contains="order=desc")
        descending = [r[1] for r in self.b.fleet_rows()]
        assert descending == sorted(before, reverse=True), f"after clicking Host again: {descending}"
        return f"Host header: ascending {ascending[:3]}…, again: descending {descending[:3]}…"

    # -- host and commit -------------------------------------------------------------

    def host_page_timeline_transitions_and_raw_body(self):
        h = self.host("rsyslog-01")
        self.b.get(self.args.base + "/ui/", "fleet")
        self.b.click(self.d.find_element(By.LINK_TEXT, "rsyslog-01"), "host rsyslog-01", url_contains="/ui/hosts/rsyslog-prod/rsyslog-01")
        heading = " ".join(self.d.find_element(By.TAG_NAME, "h1").text.split())
        assert heading == f"rsyslog-01 {LOOK[h.status]}", f"heading {heading!r}"
        ticks = self.b.js("return Array.from(document.querySelectorAll('ol.timeline > li.tick')).map(li => li.className)")
        expected_ticks = [f"tick b-{r.status}" for r in h.reports]
        assert len(ticks) == len(expected_ticks) == 60, f"{len(ticks)} ticks, expected {len(expected_ticks)}"
        assert ticks == expected_ticks, "tick order (oldest first) differs: " + ", ".join(
            f"#{i}: {g} != {e}" for i, (g, e) in enumerate(zip(ticks, expected_ticks)) if g != e
        )
        transitions = list(reversed(h.transitions()))  # newest first, as the page
        rows = self.b.table("Changes of status, newest first")
        assert rows is not None, "no transitions table"
        assert len(rows) == len(transitions), f"{len(rows)} transition rows, expected {len(transitions)}"
        for i, (row, (at, old, new, kind, commit)) in enumerate(zip(rows, transitions)):
            lasted = (
                human_duration((transitions[i - 1][0] - at).total_seconds()) if i else None
            )
            assert row[0] == shown(at), f"transition {i}: at {row[0]}, expected {shown(at)}"
            assert row[1] == FROM[old] and row[2] == LOOK[new], f"transition {i}: {row[1]} → {row[2]}, expected {FROM[old]} → {LOOK[new]}"
            assert row[4] == kind, f"transition {i}: kind {row[4]}, expected {kind}"
            if lasted:
                assert row[3] == lasted, f"transition {i}: lasted {row[3]!r}, expected {lasted!r}"
            else:
                assert row[3].endswith(" so far"), f"newest transition lasted {row[3]!r}"
            assert row[5] == (commit or "")[:12], f"transition {i}: commit {row[5]!r}, expected {(commit or '')[:12]!r}"
        history = self.b.table("Reports as received")
        assert history is not None and len(history) == 25, f"history rows: {None if history is None else len(history)}, expected 25"
        newest = h.reports[-1]
        assert history[0][2] == shown(newest.at) and history[0][3] == newest.kind, f"newest history row {history[0]}"
        # The raw bodies: closed until their summary is clicked, then the JSON as sent.
        opened = []
        for row_index, report in ((0, h.reports[-1]), (24, h.reports[-25])):
            details = self.d.find_elements(By.CSS_SELECTOR, "table tbody tr details")[row_index]
            pre = details.find_element(By.TAG_NAME, "pre")
            assert not pre.is_displayed(), f"history row {row_index + 1}: the raw body shows before it is opened"
            details.find_element(By.TAG_NAME, "summary").click()
            WebDriverWait(self.d, WAIT).until(lambda d: pre.is_displayed(), f"history row {row_index + 1}: the raw body did not open")
            body = json.loads(pre.text)
            assert body == report.body(), f"history row {row_index + 1}: raw body {body}, expected {report.body()}"
            opened.append(f"#{row_index + 1} {report.kind} {report.status}")
        self.b.check_console("host rsyslog-01 (details opened)")
        if self.args.screenshots:
            # From the top (the timeline), freshly loaded, with the newest raw body open.
            self.b.get(self.args.base + "/ui/hosts/rsyslog-prod/rsyslog-01", "host rsyslog-01 (screenshot)")
            details = self.d.find_element(By.CSS_SELECTOR, "table tbody tr details")
            details.find_element(By.TAG_NAME, "summary").click()
            WebDriverWait(self.d, WAIT).until(lambda d: details.get_attribute("open") is not None, "the raw body did not open")
            self.host_shot = self.b.screenshot(os.path.join(self.args.screenshots, "host.png"))
        return (
            f"{len(ticks)} ticks in order, {len(rows)} transitions "
            f"({FROM[transitions[-1][1]]} → … → {LOOK[transitions[0][2]]}), raw bodies of {', '.join(opened)} are the JSON sent"
        )

    def commit_page_lists_who_runs_it(self):
        h = self.host("rsyslog-01")
        self.b.get(self.args.base + "/ui/hosts/rsyslog-prod/rsyslog-01", "host rsyslog-01")
        link = self.d.find_element(By.XPATH, "//dt[normalize-space()='Commit']/following-sibling::dd[1]/a")
        assert link.text == h.commit, f"the host's commit link says {link.text!r}, expected {h.commit}"
        self.b.click(link, "commit", url_contains=f"/ui/commits/{h.commit}")
        group_hosts = [x for x in self.hosts if x.group == h.group]
        running = sorted(x.host for x in group_hosts if x.commit == h.commit)
        waiting = sorted((x.host, x.commit[:12]) for x in group_hosts if x.commit != h.commit)
        got_waiting = sorted((r[0], r[2]) for r in self.b.table("Not yet on this commit") or [])
        got_running = sorted(r[0] for r in self.b.table("Running it") or [])
        assert got_waiting == waiting, f"'Not yet on this commit': {got_waiting}, expected {waiting}"
        assert got_running == running, f"'Running it': {got_running}, expected {running}"
        summary = self.b.text("main > p:nth-of-type(2)")
        expected = f"{len(running)} of {len(group_hosts)} hosts in the groups that reported it run it."
        assert summary.startswith(expected), f"summary {summary!r}, expected {expected!r}"
        return f"{h.group}: running {', '.join(running)}; not yet: {', '.join(w[0] for w in waiting)}"

    def hostile_report_renders_as_text(self):
        self.b.get(self.args.base + "/ui/hosts/nginx-prod/web-03", "host web-03 (markup in a report)")
        message = self.d.find_element(By.XPATH, "//dt[normalize-space()='Validation message']/following-sibling::dd[1]")
        assert message.text == XSS, f"the validation message shows {message.text!r}, expected the literal {XSS!r}"
        files = [li.text for li in self.d.find_elements(By.CSS_SELECTOR, "ul.files li")]
        assert XSS_FILE in files, f"changed files shown: {files}"
        scripts, images, elements = self.b.js(
            "return [document.scripts.length, document.images.length, document.querySelectorAll('script, img, [onerror]').length]"
        )
        assert scripts == 0, f"{scripts} <script> elements in the page"
        assert images == 0, f"{images} <img> elements in the page"
        assert elements == 0, f"{elements} script/img/onerror elements in the page"
        title = self.d.title
        assert title == "nginx-prod/web-03 · gitops-status", f"title is {title!r}"
        bodies = [json.loads(text) for text in self.b.js("return Array.from(document.querySelectorAll('details pre')).map(p => p.textContent)")]
        assert any(b.get("validation_message") == XSS for b in bodies), f"no raw body holds the message as sent: {bodies}"
        assert any(XSS_FILE in b.get("changed_files", []) for b in bodies), f"no raw body holds the file name as sent: {bodies}"
        return "validation message and file name shown literally; 0 scripts, 0 images, title intact"

    # -- accessibility ---------------------------------------------------------------

    def accessibility_axe(self):
        pages = [
            ("fleet", self.args.base + "/ui/", 200),
            ("fleet ?status=failed", self.args.base + "/ui/?status=failed&sort=host&order=desc", 200),
            ("host rsyslog-01", self.args.base + "/ui/hosts/rsyslog-prod/rsyslog-01", 200),
            ("host splunk-idx-02 (24 changed files)", self.args.base + "/ui/hosts/splunk-prod/splunk-idx-02", 200),
            ("commit", self.args.base + f"/ui/commits/{R2}", 200),
            ("sign-in", self.args.auth_base + "/ui/", 401),
        ]
        serious = []
        for label, url, status in pages:
            try:
                self.b.get(url, label, status)
                result = self.b.axe(label)
            except AssertionError as err:  # a page that did not load well: the others still run
                serious.append(str(err))
                continue
            self.axe_results.append((label, result))
            for v in result["violations"]:
                line = f"{label}: {v['impact']} {v['id']}: {v['help']} ({v['nodes']} nodes; first: {v['target']}: {v['html']})"
                print(f"     axe violation  {line}", flush=True)
                if v["impact"] in ("serious", "critical"):
                    serious.append(line)
            for v in result["incomplete"]:
                print(
                    f"     axe needs review  {label}: {v['impact']} {v['id']}: {v['help']} "
                    f"({v['nodes']} nodes; first: {v['target']}: {v['why']})",
                    flush=True,
                )
        assert not serious, "serious or critical violations, or pages that failed:\n  " + "\n  ".join(serious)
        total = sum(len(r["violations"]) for _, r in self.axe_results)
        version = self.axe_results[0][1]["version"]
        return (
            f"axe-core {version} on {len(pages)} pages: no serious or critical violation "
            f"({total} minor or moderate)"
        )

    # -- sign-in ---------------------------------------------------------------------

    def token_flow(self):
        base = self.args.auth_base
        page = "/ui/hosts/rsyslog-prod/rsyslog-01"
        self.b.get(base + page, "sign-in (asked for a host page)", 401)
        assert self.d.find_element(By.TAG_NAME, "h1").text == "Sign in", "no sign-in heading"
        assert self.b.table("Reports as received") is None, "the host's history shows without a token"
        assert "rsyslog-01" not in self.d.find_element(By.TAG_NAME, "main").text, "the host's name shows without a token"
        form = self.d.find_element(By.CSS_SELECTOR, "form[action='/ui/sign-in']")
        assert form.get_attribute("method") == "post", "the sign-in form does not POST"
        token = form.find_element(By.NAME, "token")
        assert token.get_attribute("type") == "password", "the token field is not a password field"
        label = self.d.find_element(By.CSS_SELECTOR, f"label[for='{token.get_attribute('id')}']").text
        assert label == "Read token", f"the token field's label is {label!r}"
        nxt = form.find_element(By.NAME, "next")
        assert nxt.get_attribute("type") == "hidden" and nxt.get_attribute("value") == page, f"next is {nxt.get_attribute('value')!r}"

        token.send_keys("not-a-token-" + "0" * 31)
        self.b.click(form.find_element(By.XPATH, ".//button[normalize-space()='Sign in']"), "sign-in (wrong token)", 401)
        error = self.d.find_element(By.CSS_SELECTOR, "[role=alert]").text
        assert "That token is not known" in error, f"after a wrong token the page says {error!r}"
        assert not [c for c in self.d.get_cookies() if c["name"] == COOKIE], f"a cookie after a wrong token: {self.d.get_cookies()}"

        token = self.d.find_element(By.NAME, "token")
        token.send_keys(os.environ["BROWSER_READ_TOKEN"])
        statuses = self.b.click(self.d.find_element(By.XPATH, "//button[normalize-space()='Sign in']"), "host rsyslog-01 (signed in)", 200, url_contains=page)
        assert urlsplit(self.d.current_url).path == page, f"signed in, the browser is at {self.d.current_url}"
        assert 303 in statuses, f"the sign-in answered {statuses}, expected a 303 back to the page"
        assert self.d.find_element(By.TAG_NAME, "h1").text.startswith("rsyslog-01"), "signed in, the host page has no host heading"
        history = self.b.table("Reports as received")
        expected_rows = len(next(h for h in self.auth_hosts if h.host == "rsyslog-01").reports)
        assert history is not None and len(history) == expected_rows, f"signed in, history rows: {history}"
        cookies = [c for c in self.d.get_cookies() if c["name"] == COOKIE]
        assert len(cookies) == 1, f"cookies after signing in: {self.d.get_cookies()}"
        cookie = cookies[0]
        assert cookie.get("httpOnly") is True, f"the cookie is not httpOnly: {cookie}"
        assert cookie.get("sameSite") == "Strict", f"the cookie's sameSite is {cookie.get('sameSite')}: {cookie}"
        assert cookie.get("path") == "/ui/", f"the cookie's path is {cookie.get('path')}"
        assert cookie.get("value") == os.environ["BROWSER_READ_TOKEN"], "the cookie does not hold the token typed"
        script_cookies = self.b.js("return document.cookie")
        assert COOKIE not in script_cookies and os.environ["BROWSER_READ_TOKEN"] not in script_cookies, "document.cookie shows the token"

        self.b.get(base + "/ui/", "fleet (signed in)")
        assert self.d.find_element(By.TAG_NAME, "h1").text == "Fleet", "signed in, /ui/ asked again"
        rows = self.b.fleet_rows()
        assert [r[1] for r in rows] == [h.host for h in self.auth_hosts], f"signed-in fleet rows {rows}"
        sign_out = self.d.find_element(By.XPATH, "//form[@action='/ui/sign-out']//button[normalize-space()='Sign out']")
        self.b.click(sign_out, "sign-in (signed out)", 401)
        assert self.d.find_element(By.TAG_NAME, "h1").text == "Sign in", "after signing out the fleet still shows"
        assert not [c for c in self.d.get_cookies() if c["name"] == COOKIE], f"the cookie survives signing out: {self.d.get_cookies()}"
        return (
            "sign-in form (401) → wrong token: error, no cookie → read token: 303 back to the host page; "
            "cookie HttpOnly, SameSite=Strict, Path=/ui/, not in document.cookie; fleet without asking; sign out → asked again"
        )

    # -- every page load -------------------------------------------------------------

    def no_console_errors(self):
        self.b.check_console("last page")
        assert not self.b.console, f"SEVERE console entries: {self.b.console}"
        return f"no SEVERE entry after {self.b.loads} page loads"

    def no_request_leaves_127_0_0_1(self):
        self.b.network("last page")
        elsewhere = []
        for label, url in self.b.requests:
            if url.startswith(("data:", "about:")):
                continue
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" not in self.b.allowed_origins:
                elsewhere.append(f"{label}: {url}")
        assert not elsewhere, "requests to elsewhere:\n  " + "\n  ".join(elsewhere)
        local = [u for _, u in self.b.requests if not u.startswith(("data:", "about:"))]
        origins = sorted({urlsplit(u).netloc for u in local})
        return (
            f"{len(local)} requests, all to {' and '.join(origins)} "
            f"({len(self.b.requests) - len(local)} data:/about: URLs; "
            f"{self.b.startup} chrome:// loads of Chromium's own start page set aside)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the open server, http://127.0.0.1:PORT")
    parser.add_argument("--auth-base", required=True, help="the server with --read-requires-token")
    parser.add_argument("--axe", required=True, help="axe-core's axe.min.js")
    parser.add_argument("--screenshots", help="write fleet.png and host.png here")
    args = parser.parse_args()

    now = datetime.now(timezone.utc).replace(microsecond=0)
    reports = fleet_reports(now)
    hosts = hosts_of(reports)
    seed(args.base, reports)
    # The second server: a deploy of rsyslog-01 and the drift checks after it, and web-01.
    story = [r for r in reports if r.host == "rsyslog-01"]
    auth_reports = sorted(story[36:44] + [r for r in reports if r.host == "web-01"], key=lambda r: r.at)
    auth_hosts = hosts_of(auth_reports)
    seed(args.auth_base, auth_reports, os.environ["BROWSER_WRITE_TOKEN"])
    # run.sh gives splunk-prod 2 s before a host is stale: wait until its drift checks are.
    stale_groups = {"splunk-prod"}
    stale = sum(h.stale(stale_groups) for h in hosts)
    deadline = time.monotonic() + 15
    while get_json(args.base, "/summary").get("stale") != stale:
        assert time.monotonic() < deadline, f"/summary never counted {stale} stale hosts: {get_json(args.base, '/summary')}"
        time.sleep(0.2)
    print(f"seeded {len(reports)} reports of {len(hosts)} hosts ({args.base}), {len(auth_reports)} of {len(auth_hosts)} ({args.auth_base})", flush=True)

    started = time.monotonic()
    browser = Browser(args)
    passed, failed = [], []
    try:
        browser.started()
        version = browser.driver.capabilities.get("browserVersion")
        print(f"Chromium {version}, chromedriver {browser.driver.capabilities.get('chrome', {}).get('chromedriverVersion', '?').split()[0]}", flush=True)
        checks = Checks(browser, args, hosts, stale_groups, auth_hosts)
        for name in (
            "fleet_shows_the_seeded_hosts_and_counts",
            "filter_by_status_through_the_form",
            "filter_by_text_through_the_form",
            "sorting_by_a_column_header",
            "host_page_timeline_transitions_and_raw_body",
            "commit_page_lists_who_runs_it",
            "hostile_report_renders_as_text",
            "accessibility_axe",
            "token_flow",
            "no_console_errors",
            "no_request_leaves_127_0_0_1",
        ):
            try:
                detail = getattr(checks, name)()
                passed.append(name)
                print(f"ok   {name}: {detail}", flush=True)
            except Exception as err:  # noqa: BLE001 - one check's failure must not hide the others'
                failed.append(name)
                text = str(err) if isinstance(err, AssertionError) else f"{type(err).__name__}: {err}"
                print(f"FAIL {name}: {text}", flush=True)
                if not isinstance(err, (AssertionError, WebDriverException)):
                    traceback.print_exc()
        if args.screenshots:
            for attr in ("fleet_shot", "host_shot"):
                if hasattr(checks, attr):
                    print(f"screenshot {getattr(checks, attr)} in {args.screenshots}", flush=True)
    finally:
        browser.quit()

    print()
    for message, count in sorted(browser.console_other.items()):
        print(f"console (not an error, {count}x): {message}")
    print(f"summary: {len(passed)} of {len(passed) + len(failed)} checks passed, {len(failed)} failed"
          f"{' (' + ', '.join(failed) + ')' if failed else ''}; {browser.loads} page loads, "
          f"{len(browser.requests)} requests, {time.monotonic() - started:.1f} s in the browser")
    print("page timings as Chromium reports them (Navigation Timing, ms):")
    print(f"  {'page':44} {'request→response end':>21} {'DOMContentLoaded':>17} {'load end':>9}")
    for label, t in browser.timings:
        server = t["responseEnd"] - t["requestStart"]
        print(f"  {label[:44]:44} {server:21.1f} {t['domContentLoadedEventEnd']:17.1f} {t['loadEventEnd']:9.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
