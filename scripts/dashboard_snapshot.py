"""The two halves of scripts/dashboard-snapshot that are easier in Python.

  traffic  mixed client traffic through the nginx edge for a fixed time
  render   every panel of the Grafana dashboard, queried from Prometheus, as one PNG

`traffic` needs only the standard library; `render` needs matplotlib (the script runs
it from the plot venv that bench/report uses).
"""

import argparse
import bisect
import http.client
import json
import math
import random
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime

# ---------------------------------------------------------------------------- traffic

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Mobile Safari/537.36",
]
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "NL"]

# Share of each action in the steady mix. Redirects dominate, as in production; the
# API side stays under nginx's 20 r/s per address once spread over the workers.
MIX = [
    ("redirect", 0.80),
    ("create", 0.055),
    ("stats", 0.05),
    ("not_found", 0.035),
    ("get", 0.02),
    ("list", 0.01),
    ("alias", 0.008),
    ("update", 0.006),
    ("invalid", 0.008),
    ("unauthorized", 0.008),
]
ZIPF_S = 1.1


class Codes:
    """Short codes seen so far; popularity falls with the order they were created in."""

    def __init__(self):
        self.lock = threading.Lock()
        self.codes = []
        self.cumulative = []

    def add(self, code):
        with self.lock:
            weight = 1.0 / (len(self.codes) + 1) ** ZIPF_S
            total = self.cumulative[-1] if self.cumulative else 0.0
            self.codes.append(code)
            self.cumulative.append(total + weight)

    def pick(self, rng):
        with self.lock:
            if not self.codes:
                return None
            i = bisect.bisect_left(self.cumulative, rng.random() * self.cumulative[-1])
            return self.codes[min(i, len(self.codes) - 1)]

    def recent(self, rng):
        with self.lock:
            if not self.codes:
                return None
            return self.codes[max(0, len(self.codes) - 1 - int(rng.expovariate(1 / 20)))]

    def __len__(self):
        return len(self.codes)


class Client:
    """One keep-alive connection from its own loopback address.

    Different 127.0.0.x sources make distinct visitors for the click stats and spread
    nginx's per-address limits the way many real clients would.
    """

    def __init__(self, host, port, source):
        self.host, self.port, self.source = host, port, source
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        self.host, self.port, timeout=10, source_address=(self.source, 0)
                    )
                self.conn.request(method, path, body, headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (OSError, http.client.HTTPException):
                # A keep-alive connection the server closed in between: one retry.
                self.close()
        return None, b""

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Traffic:
    def __init__(self, args):
        url = urllib.parse.urlsplit(args.base)
        self.host, self.port = url.hostname, url.port or 80
        self.key = args.key
        self.duration = args.duration
        self.rate = args.rate
        self.workers = args.workers
        self.codes = Codes()
        self.counts = {}
        self.counts_lock = threading.Lock()
        self.start = time.monotonic()
        self.stop = threading.Event()

    def count(self, action, status):
        with self.counts_lock:
            key = (action, status if status is not None else "error")
            self.counts[key] = self.counts.get(key, 0) + 1

    def auth(self):
        return {"Authorization": f"Bearer {self.key}"}

    def create(self, client, rng, action="create", alias=None):
        body = {"url": f"https://example.com/{rng.choice(['blog', 'shop', 'docs', 'news'])}/"
                       f"{rng.getrandbits(40):x}"}
        if alias:
            body["alias"] = alias
        if rng.random() < 0.3:
            body["tags"] = [rng.choice(["campaign", "newsletter", "social", "print"])]
        status, data = client.request("POST", "/api/v1/links", body, self.auth())
        self.count(action, status)
        if status == 201:
            self.codes.add(json.loads(data)["code"])

    def bulk(self, client, rng):
        items = [{"url": f"https://example.com/import/{rng.getrandbits(40):x}"}
                 for _ in range(rng.randint(20, 60))]
        status, data = client.request("POST", "/api/v1/links/bulk", {"items": items}, self.auth())
        self.count("bulk", status)
        if status is not None and status < 300:
            for result in json.loads(data).get("results", []):
                if result.get("link"):
                    self.codes.add(result["link"]["code"])

    def redirect(self, client, rng, code):
        headers = {"User-Agent": rng.choice(USER_AGENTS), "CF-IPCountry": rng.choice(COUNTRIES)}
        if rng.random() < 0.4:
            headers["Referer"] = rng.choice(["https://news.example.org/", "https://t.example/",
                                             "https://mail.example.net/"])
        status, _ = client.request("GET", f"/{code}", headers=headers)
        return status

    def act(self, action, client, rng):
        if action == "redirect":
            # Now and then a link just shared: the newest codes, cold in every cache.
            code = self.codes.recent(rng) if rng.random() < 0.08 else self.codes.pick(rng)
            self.count(action, self.redirect(client, rng, code))
        elif action == "not_found":
            code = "".join(rng.choice("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                           for _ in range(11))
            self.count(action, self.redirect(client, rng, code))
        elif action == "create":
            self.create(client, rng)
        elif action == "alias":
            self.create(client, rng, "alias", f"promo-{rng.getrandbits(32):x}")
        elif action == "invalid":
            status, _ = client.request("POST", "/api/v1/links", {"url": "not a url"}, self.auth())
            self.count(action, status)
        elif action == "unauthorized":
            status, _ = client.request("POST", "/api/v1/links", {"url": "https://example.com/x"},
                                       {"Authorization": "Bearer sk_not_a_real_key"})
            self.count(action, status)
        elif action == "stats":
            code = self.codes.pick(rng)
            query = "?granularity=hour" if rng.random() < 0.5 else ""
            status, _ = client.request("GET", f"/api/v1/links/{code}/stats{query}",
                                       headers=self.auth())
            self.count(action, status)
        elif action == "get":
            status, _ = client.request("GET", f"/api/v1/links/{self.codes.pick(rng)}",
                                       headers=self.auth())
            self.count(action, status)
        elif action == "list":
            status, _ = client.request("GET", "/api/v1/links?limit=20", headers=self.auth())
            self.count(action, status)
        elif action == "update":
            body = {"url": f"https://example.com/moved/{rng.getrandbits(40):x}"}
            status, _ = client.request("PATCH", f"/api/v1/links/{self.codes.pick(rng)}", body,
                                       self.auth())
            self.count(action, status)

    def level(self, elapsed):
        """Load over the window: a slow climb with a swell, like a morning."""
        x = elapsed / self.duration
        return 0.65 + 0.5 * x + 0.15 * math.sin(2 * math.pi * 2 * x)

    def worker(self, index):
        rng = random.Random()
        client = Client(self.host, self.port, f"127.0.0.{10 + index}")
        actions, weights = zip(*MIX)
        per_worker = self.rate / self.workers
        next_at = time.monotonic()
        next_bulk = self.start + rng.uniform(10, 40)
        while not self.stop.is_set():
            now = time.monotonic()
            elapsed = now - self.start
            if elapsed >= self.duration:
                break
            if index == 0 and now >= next_bulk:
                self.bulk(client, rng)
                next_bulk = now + rng.uniform(25, 45)
            self.act(rng.choices(actions, weights)[0], client, rng)
            next_at += rng.expovariate(per_worker * self.level(elapsed))
            # A worker that fell behind (a slow stretch) carries on at the rate instead
            # of firing the backlog at once.
            next_at = max(next_at, time.monotonic() - 1.0)
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        client.close()

    def scanner(self):
        """Someone walking random codes from one address, over the middle of the window:
        lookup's not-found limiter answers 429 once the burst is spent."""
        rng = random.Random()
        client = Client(self.host, self.port, "127.0.0.250")
        begin, end = self.start + 0.25 * self.duration, self.start + 0.6 * self.duration
        self.stop.wait(max(0.0, begin - time.monotonic()))
        while not self.stop.is_set() and time.monotonic() < end:
            code = "".join(rng.choice("abcdefghijkmnpqrstuvwxyz0123456789") for _ in range(8))
            self.count("scan", self.redirect(client, rng, code))
            self.stop.wait(rng.expovariate(8.0))
        client.close()

    def seed(self, n):
        """Links to redirect to before the timed window starts."""
        clients = [Client(self.host, self.port, f"127.0.0.{10 + i}") for i in range(self.workers)]
        rng = random.Random()

        def run(i):
            for _ in range(i, n, len(clients)):
                self.create(clients[i], rng, "seed")
            clients[i].close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(self.codes) < n // 2:
            sys.exit(f"traffic: only {len(self.codes)} of {n} seed links were created: "
                     f"{self.summary()}")

    def run(self):
        self.start = time.monotonic()
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                   for i in range(self.workers)]
        threads.append(threading.Thread(target=self.scanner, daemon=True))
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            self.stop.set()
            raise

    def summary(self):
        rows = {}
        for (action, status), n in sorted(self.counts.items(), key=lambda kv: str(kv[0])):
            rows.setdefault(action, []).append(f"{status}×{n}")
        return "; ".join(f"{a}: {' '.join(v)}" for a, v in rows.items())


def cmd_traffic(args):
    traffic = Traffic(args)
    traffic.seed(args.seed_links)
    print(f"traffic: {len(traffic.codes)} links seeded; {args.duration:.0f} s at "
          f"~{args.rate:.0f} req/s", file=sys.stderr, flush=True)
    traffic.run()
    total = sum(traffic.counts.values())
    print(f"traffic: {total} requests, {len(traffic.codes)} links; {traffic.summary()}",
          file=sys.stderr)


# ----------------------------------------------------------------------------- render

def substitute(expr, variables, rate_interval, step):
    """Grafana's template variables and its built-in interval macros."""
    expr = expr.replace("$__rate_interval", rate_interval)
    expr = expr.replace("${__rate_interval}", rate_interval)
    for name in ("$__interval", "${__interval}"):
        expr = expr.replace(name, f"{step}s")
    for name, value in variables.items():
        expr = re.sub(r"\$\{" + name + r"(?::[a-z]+)?\}|\[\[" + name + r"\]\]|\$" + name + r"\b",
                      lambda _m, v=value: v, expr)
    if "$" in re.sub(r"\$\d", "", expr.replace("$$", "")):
        raise SystemExit(f"render: a variable is left in: {expr}")
    return expr


def query_range(prom, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{params}", timeout=60) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise SystemExit(f"render: Prometheus refused {expr}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    if fmt and fmt != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt).strip()
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return "{" + labels + "}"


def format_value(value, unit):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "s":
        if value == 0:
            return "0"
        if abs(value) < 1e-3:
            return f"{value * 1e6:.3g} µs"
        if abs(value) < 1:
            return f"{value * 1e3:.3g} ms"
        return f"{value:.3g} s"
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB"):
            if abs(value) < 1024 or suffix == "GiB":
                return f"{value:.3g} {suffix}"
            value /= 1024
    suffix = {"reqps": " req/s", "ops": "/s"}.get(unit, "")
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}k{suffix}"
    return f"{value:.3g}{suffix}"


def panels_in_order(dashboard):
    """Rows and panels as Grafana lays them out: top to bottom, then left to right."""
    flat = []
    for panel in dashboard["panels"]:
        flat.append(panel)
        if panel.get("type") == "row":
            flat.extend(panel.get("panels", []))
    flat.sort(key=lambda p: (p.get("gridPos", {}).get("y", 0), p.get("gridPos", {}).get("x", 0)))
    sections, current = [], None
    for panel in flat:
        if panel.get("type") == "row":
            current = (panel.get("title", ""), [])
            sections.append(current)
        else:
            if current is None:
                current = ("", [])
                sections.append(current)
            current[1].append(panel)
    return sections


def fetch(panel, args, variables):
    series = []
    for target in panel.get("targets", []):
        if target.get("hide") or not target.get("expr"):
            continue
        expr = substitute(target["expr"], variables, args.rate_interval, args.step)
        for result in query_range(args.prom, expr, args.start, args.end, args.step):
            points = [(float(t), float(v)) for t, v in result["values"]]
            points = [(t, v) for t, v in points if not math.isnan(v) and not math.isinf(v)]
            if points:
                series.append((legend(target.get("legendFormat"), result["metric"]), points))
    return series


LEGEND_MAX = 6


def draw_timeseries(ax, panel, series, start, colors):
    import matplotlib.ticker as ticker

    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    # The busiest series first, so the legend's cut keeps what matters.
    series = sorted(series, key=lambda s: -sum(abs(v) for _, v in s[1]) / len(s[1]))
    for i, (name, points) in enumerate(series):
        xs = [(t - start) / 60 for t, _ in points]
        ys = [v for _, v in points]
        color = colors[i % len(colors)]
        ax.plot(xs, ys, color=color, linewidth=1.3, label=name)
        ax.fill_between(xs, ys, color=color, alpha=0.06, linewidth=0)
    if defaults.get("min") is not None:
        ax.set_ylim(bottom=defaults["min"])
    if defaults.get("max") is not None:
        ax.set_ylim(top=defaults["max"])
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: format_value(v, unit)))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(5))
    shown = LEGEND_MAX
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > shown:
        handles, labels = handles[:shown], labels[:shown]
        labels[-1] = f"{labels[-1]}   (+{len(series) - shown} more)"
    ax.legend(handles, [lb[:52] for lb in labels], loc="upper left", bbox_to_anchor=(0, -0.15),
              ncol=2, fontsize=7.5, frameon=False, handlelength=1.2, columnspacing=1.2,
              borderaxespad=0)


def draw_state_timeline(ax, panel, series, start, end, step):
    import matplotlib.patches as mpatches

    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    states = {}
    for mapping in defaults.get("mappings", []):
        if mapping.get("type") == "value":
            for value, opt in mapping.get("options", {}).items():
                states[float(value)] = (opt.get("text", value), opt.get("color", "grey"))
    palette = {"green": "#56a64b", "yellow": "#f2cc0c", "red": "#e02f44", "orange": "#ff9830"}
    series = sorted(series)
    for row, (name, points) in enumerate(series):
        for t, v in points:
            text, color = states.get(v, (format_value(v, "short"), "grey"))
            ax.barh(row, step / 60, left=(t - start) / 60, height=0.7,
                    color=palette.get(color, color), linewidth=0)
    ax.set_yticks(range(len(series)), [name for name, _ in series], fontsize=8)
    ax.set_ylim(-0.6, len(series) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, (end - start) / 60)
    ax.grid(False)
    handles = [mpatches.Patch(color=palette.get(c, c), label=t) for _, (t, c) in sorted(states.items())]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.16), ncol=len(handles),
              fontsize=7.5, frameon=False, borderaxespad=0)


def draw_stat(ax, panel, series):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    ax.axis("off")
    for i, (name, points) in enumerate(series[:4]):
        y = 0.62 - i * 0.3 if len(series) > 1 else 0.5
        ax.text(0.5, y, format_value(points[-1][1], unit), ha="center", va="center",
                fontsize=30 if len(series) == 1 else 18, fontweight="bold", color="#1f60c4",
                transform=ax.transAxes)
        if len(series) > 1:
            ax.text(0.5, y - 0.12, name, ha="center", fontsize=8, transform=ax.transAxes)


def cmd_render(args):
    import matplotlib
    import matplotlib.lines

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(args.dashboard) as f:
        dashboard = json.load(f)
    variables = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name = var["name"]
        if name in args.var:
            variables[name] = args.var[name]
        elif var.get("includeAll"):
            variables[name] = var.get("allValue") or ".*"
        elif var.get("type") == "datasource":
            variables[name] = "prometheus"
        else:
            raise SystemExit(f"render: no value for the dashboard variable ${name} (--var)")

    sections = [(title, [(panel, fetch(panel, args, variables)) for panel in panels])
                for title, panels in panels_in_order(dashboard)]

    # Laid out in inches rather than with a GridSpec: the legends under the plots differ
    # in height from row to row, and the section headers are thin.
    cols, dpi = args.columns, args.dpi
    width = args.width / dpi
    left, right, gap = 0.62, 0.2, 0.78
    col_w = (width - left - right - (cols - 1) * gap) / cols
    top, header_h, title_h, plot_h, axis_h, line_h, after = 0.75, 0.5, 0.3, 2.0, 0.38, 0.16, 0.22

    def legend_lines(panel, series):
        if not series or panel.get("type") in ("stat", "gauge"):
            return 0
        if panel.get("type") == "state-timeline":
            return 1
        return math.ceil(min(len(series), LEGEND_MAX) / 2)

    layout, y = [], top
    for title, panels in sections:
        layout.append(("header", title, y))
        y += header_h
        for first in range(0, len(panels), cols):
            chunk = panels[first:first + cols]
            lines = max(legend_lines(p, s) for p, s in chunk)
            for i, (panel, series) in enumerate(chunk):
                layout.append(("panel", (panel, series), y + title_h, left + i * (col_w + gap)))
            y += title_h + plot_h + axis_h + lines * line_h + after
    height = y + 0.1

    fig = plt.figure(figsize=(width, height), dpi=dpi, facecolor="white")
    window = (args.end - args.start) / 60
    stamp = (f"{datetime.fromtimestamp(args.start):%Y-%m-%d %H:%M:%S} to "
             f"{datetime.fromtimestamp(args.end):%H:%M:%S}")
    fig.text(left / width, 1 - 0.42 / height, dashboard.get("title", "Dashboard"),
             fontsize=17, fontweight="bold", va="baseline")
    fig.text(left / width, 1 - 0.64 / height,
             f"{stamp}; {args.subtitle}" if args.subtitle else stamp,
             fontsize=10, color="#555555", va="baseline")
    colors = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9",
              "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17"]
    empty, flat = [], []
    for item in layout:
        if item[0] == "header":
            _, title, y = item
            fig.text(left / width, 1 - (y + 0.32) / height, title, fontsize=13.5,
                     fontweight="bold", color="#333333")
            fig.add_artist(matplotlib.lines.Line2D(
                [left / width, 1 - right / width], [1 - (y + 0.4) / height] * 2,
                color="#cccccc", linewidth=1))
            continue
        _, (panel, series), y, x = item
        ax = fig.add_axes([x / width, 1 - (y + plot_h) / height, col_w / width, plot_h / height])
        ax.set_title(panel.get("title", ""), loc="left", fontsize=10.5, fontweight="bold", pad=6)
        ax.tick_params(labelsize=8)
        ax.grid(True, color="#e6e6e6", linewidth=0.6)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
        kind = panel.get("type")
        if not series:
            empty.append(panel.get("title", "?"))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_facecolor("#f4f4f4")
            ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=18,
                    color="#888888", transform=ax.transAxes)
            continue
        if kind in ("stat", "gauge"):
            draw_stat(ax, panel, series)
            continue
        if kind == "state-timeline":
            draw_state_timeline(ax, panel, series, args.start, args.end, args.step)
        else:
            draw_timeseries(ax, panel, series, args.start, colors)
            if all(v == 0 for _, points in series for _, v in points):
                flat.append(panel.get("title", "?"))
                ax.set_ylim(0, 1)
                ax.text(0.98, 0.9, "0 throughout", ha="right", va="top", fontsize=9,
                        color="#888888", transform=ax.transAxes)
        ax.set_xlim(0, window)
        ax.set_xlabel("minutes", fontsize=7.5, labelpad=0, loc="right")

    fig.savefig(args.out, dpi=dpi, facecolor="white")
    total = sum(len(p) for _, p in sections)
    print(f"render: {total} panels into {args.out}", file=sys.stderr)
    if flat:
        print(f"render: {len(flat)} panel(s) at 0 all through the window:",
              file=sys.stderr)
        for title in flat:
            print(f"  - {title}", file=sys.stderr)
    if empty:
        print(f"render: {len(empty)} panel(s) without data:", file=sys.stderr)
        for title in empty:
            print(f"  - {title}", file=sys.stderr)
    else:
        print("render: every panel had data", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("traffic")
    t.add_argument("--base", required=True, help="the edge, e.g. http://127.0.0.1:8000")
    t.add_argument("--key", required=True, help="an API key")
    t.add_argument("--duration", type=float, default=180)
    t.add_argument("--rate", type=float, default=70, help="mean requests per second")
    t.add_argument("--workers", type=int, default=8)
    t.add_argument("--seed-links", type=int, default=200)

    r = sub.add_parser("render")
    r.add_argument("--prom", required=True, help="Prometheus base URL")
    r.add_argument("--dashboard", required=True)
    r.add_argument("--start", type=float, required=True, help="Unix seconds")
    r.add_argument("--end", type=float, required=True, help="Unix seconds")
    r.add_argument("--step", type=int, default=5, help="seconds between points")
    r.add_argument("--rate-interval", default="30s", help="what $__rate_interval becomes")
    r.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a dashboard variable's value (the multi-value ones default to all)")
    r.add_argument("--out", required=True)
    r.add_argument("--width", type=int, default=1600, help="pixels")
    r.add_argument("--dpi", type=int, default=100)
    r.add_argument("--columns", type=int, default=3)
    r.add_argument("--subtitle", default="", help="shown under the title")

    args = parser.parse_args()
    if args.command == "traffic":
        cmd_traffic(args)
    else:
        args.var = dict(v.split("=", 1) for v in args.var)
        cmd_render(args)


if __name__ == "__main__":
    main()
