#!/usr/bin/env python3
"""Combined benchmark report from the result files of bench/redirect, bench/creates
and bench/clicks.

    bench/report [--results DIR] [--out-json FILE] [--docs DIR] [--stamp UTC_TIMESTAMP] [INPUT.json...]

Writes one JSON (every scenario with the reference measured in the same run, and
the goals), docs/perf/latest.md and PNG plots. Normally run through bench/report,
which provides matplotlib; the mapping part needs only the standard library, and
matplotlib is imported only when the plots are drawn.

Every figure is taken as the source reports it. The only figures computed here are
an RSS estimate scaled to 1M links (when a run cached fewer, and said so) and
whether a goal is met.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "perf"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
KINDS = ("redirect", "creates", "clicks")
ONE_MILLION = 1_000_000

PLOT_FILES = {
    "throughput": "throughput.png",
    "latency": "latency.png",
    "rounds": "rounds.png",
    "creates": "creates.png",
    "scale": "scale.png",
}


class InputError(Exception):
    """A result file that cannot be read or does not have the expected shape."""


# ---------------------------------------------------------------------------
# Reading a source with typed look-ups


class Source:
    """One parsed result file. Look-ups give None for an absent key and raise
    InputError for a value of the wrong type, so a malformed file is never
    mistaken for a missing figure."""

    def __init__(self, name: str, kind: str, data: dict):
        self.name = name
        self.kind = kind
        self.data = data

    def _get(self, path: tuple[str, ...]):
        node = self.data
        for i, key in enumerate(path):
            if node is None:
                return None
            if not isinstance(node, dict):
                raise self._error(path[:i], "an object", node)
            node = node.get(key)
        return node

    def _error(self, path, expected, value) -> InputError:
        shown = json.dumps(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        where = ".".join(path) or "top level"
        return InputError(f"{self.name}: {where}: expected {expected}, found {shown}")

    def num(self, *path: str) -> float | int | None:
        value = self._get(path)
        if value is None:
            return None
        # bool is an int in Python; a true/false where a figure belongs is malformed.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._error(path, "a number", value)
        return value

    def _typed(self, path: tuple, kind: type, what: str):
        value = self._get(path)
        if value is not None and not isinstance(value, kind):
            raise self._error(path, what, value)
        return value

    def obj(self, *path: str) -> dict | None:
        return self._typed(path, dict, "an object")

    def flag(self, *path: str) -> bool | None:
        return self._typed(path, bool, "true or false")

    def text(self, *path: str) -> str | None:
        return self._typed(path, str, "a string")

    def nums(self, *path: str, nulls: bool = False) -> list | None:
        """A list of numbers; with nulls, items may be null (a figure the source
        could not compute for that entry)."""
        value = self._get(path)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._error(path, "a list of numbers", value)
        for i, item in enumerate(value):
            if item is None and nulls:
                continue
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise self._error(path + (str(i),), "a number", item)
        return value

    def objs(self, *path: str) -> list | None:
        value = self._get(path)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._error(path, "a list of objects", value)
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self._error(path + (str(i),), "an object", item)
        return value

    def sub(self, *path: str) -> "Source | None":
        """The object at path as a Source of its own (errors keep the full path)."""
        value = self.obj(*path)
        if value is None:
            return None
        prefix = ".".join((getattr(self, "prefix", ""),) + path).lstrip(".")
        return _SubSource(self.name, self.kind, value, prefix)


class _SubSource(Source):
    def __init__(self, name, kind, data, prefix):
        super().__init__(name, kind, data)
        self.prefix = prefix

    def _error(self, path, expected, value):
        return super()._error((self.prefix,) + tuple(path), expected, value)


def detect_kind(data, name: str = "input") -> str:
    """Which benchmark wrote a result, from its top-level keys (file names lie once
    copied or renamed)."""
    if not isinstance(data, dict):
        raise InputError(f"{name}: expected a JSON object at the top level, found {type(data).__name__}")
    # A combined report repeats the redirect ratios at its top level.
    if "generated_at" in data and "sources" in data and "goals" in data:
        raise InputError(f"{name}: this is a combined report (bench/report's output), not a benchmark result")
    found = []
    if "hot_redirect_vs_bare_actix" in data or ("scenarios" in data and "references" in data):
        found.append("redirect")
    if "pgbench_ceiling_tps" in data or "ratio_creates_to_pgbench" in data:
        found.append("creates")
    if "apply" in data and "lag" in data:
        found.append("clicks")
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(
            f"{name}: not a benchmark result: expected a top-level key "
            "hot_redirect_vs_bare_actix (bench/redirect), pgbench_ceiling_tps "
            "(bench/creates) or apply and lag (bench/clicks)"
        )
    raise InputError(f"{name}: looks like more than one kind of result ({', '.join(found)})")


def parse_source(name: str, text: str) -> Source:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{name}: not valid JSON: {e}") from None
    return Source(name, detect_kind(data, name), data)


# ---------------------------------------------------------------------------
# Mapping: sources -> scenarios


def no_reference(note: str) -> dict:
    return {"name": None, "scenario": None, "req_per_sec": None, "p99_ms": None, "note": note}


def reference_to(scenarios: dict, key: str, **extra) -> dict:
    """The reference object for a scenario compared with scenarios[key]."""
    ref = scenarios.get(key)
    if ref is None:
        return no_reference(f"{key} not in this run")
    out = {
        "name": ref["label"],
        "scenario": key,
        "req_per_sec": ref["req_per_sec"],
        "p99_ms": ref["p99_ms"],
    }
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _closed_loop(src: Source, label: str, settings: dict) -> dict | None:
    if src is None:
        return None
    rounds = settings.get("closed_loop_repeats")
    duration = settings.get("closed_loop_duration_s")
    conns = settings.get("connections")
    load = "closed loop (wrk -t1"
    load += f" -c{conns}" if conns is not None else ""
    if rounds is not None and duration is not None:
        load += f", {rounds} rounds × {duration} s; figures of the median round"
    load += ")"
    return {
        "label": label,
        "loop": "closed",
        "load": load,
        "req_per_sec": src.num("req_per_sec"),
        "p50_ms": src.num("latency_ms", "p50"),
        "p99_ms": src.num("latency_ms", "p99"),
        "p99_9_ms": src.num("latency_ms", "p99_9"),
        "runs_req_per_sec": src.nums("runs_req_per_sec"),
        "all_redirects": src.flag("all_redirects"),
        "cpu_us_per_request": src.obj("cpu_us_per_request"),
        "tiers": src.obj("tiers"),
    }


def _open_loop(src: Source, label: str) -> dict | None:
    if src is None:
        return None
    target = src.num("target_rate")
    achieved = src.num("achieved_rate")
    held = None
    if target is not None and achieved is not None:
        # The bench scripts' own rule for an open-loop figure to count.
        held = achieved >= 0.98 * target
    return {
        "label": label,
        "loop": "open",
        "load": f"open loop (oha -q {target:g} --latency-correction)" if target is not None else "open loop",
        "req_per_sec": achieved,
        "target_rate": target,
        "rate_held": held,
        "p50_ms": src.num("latency_ms", "p50"),
        "p99_ms": src.num("latency_ms", "p99"),
        "p99_9_ms": src.num("latency_ms", "p99_9"),
        "p99_99_ms": src.num("latency_ms", "p99_99"),
        "all_redirects": src.flag("all_redirects"),
        "cpu_us_per_request": src.obj("cpu_us_per_request"),
        "tiers": src.obj("tiers"),
    }


def map_redirect(src: Source) -> tuple[dict, dict]:
    """Scenarios of a bench/redirect result, and its top-level ratios."""
    settings = src.obj("settings") or {}
    out: dict = {}

    def put(key, entry):
        if entry is not None:
            entry["source"] = src.name
            out[key] = entry

    # References first: the other scenarios point at them.
    put("bare_actix_closed", _closed_loop(src.sub("references", "bare_actix", "closed_loop"),
                                          "bare actix-web fixed 302, closed loop", settings))
    put("nginx_closed", _closed_loop(src.sub("references", "nginx", "closed_loop"),
                                     "nginx return 302, closed loop", settings))
    put("bare_actix_open", _open_loop(src.sub("references", "bare_actix", "open_loop"),
                                      "bare actix-web fixed 302, open loop"))
    put("nginx_open", _open_loop(src.sub("references", "nginx", "open_loop"),
                                 "nginx return 302, open loop"))
    if "bare_actix_closed" in out:
        out["bare_actix_closed"]["reference"] = reference_to(out, "nginx_closed")
    if "nginx_closed" in out:
        out["nginx_closed"]["reference"] = reference_to(out, "bare_actix_closed")
    if "bare_actix_open" in out:
        out["bare_actix_open"]["reference"] = reference_to(out, "nginx_open")
    if "nginx_open" in out:
        out["nginx_open"]["reference"] = reference_to(out, "bare_actix_open")

    vs_bare = src.num("hot_redirect_vs_bare_actix")
    vs_nginx = src.num("hot_redirect_vs_nginx")
    basis = "median of the per-round req/s ratios"

    hot = _closed_loop(src.sub("scenarios", "hot", "closed_loop"), "lookup L1 hit (hot), closed loop", settings)
    if hot is not None:
        hot["reference"] = reference_to(out, "bare_actix_closed", ratio=vs_bare, ratio_basis=basis)
        hot["also_compared_with"] = [reference_to(out, "nginx_closed", ratio=vs_nginx, ratio_basis=basis)]
        hot["rounds"] = {
            "hot_vs_bare_actix": src.nums("ratios", "hot_vs_bare_actix_per_round"),
            "hot_vs_nginx": src.nums("ratios", "hot_vs_nginx_per_round"),
        }
        hot["ratio_of_medians"] = src.obj("ratios", "of_medians")
        hot["server_cpu_per_request_ratio"] = src.obj("ratios", "server_cpu_per_request")
    put("hot_l1_closed", hot)

    hot_open = _open_loop(src.sub("scenarios", "hot", "open_loop"), "lookup L1 hit (hot), open loop")
    if hot_open is not None:
        hot_open["reference"] = reference_to(out, "bare_actix_open")
        hot_open["also_compared_with"] = [reference_to(out, "nginx_open")]
    put("hot_l1_open", hot_open)

    off = _closed_loop(src.sub("diagnostics", "hot_clicks_off", "closed_loop"),
                       "lookup L1 hit, counting off (diagnostic), closed loop", settings)
    if off is not None:
        off["reference"] = reference_to(out, "bare_actix_closed",
                                        ratio=src.num("diagnostics", "hot_clicks_off_vs_bare_actix"),
                                        ratio_basis=basis)
        off["also_compared_with"] = [
            reference_to(out, "nginx_closed", ratio=src.num("diagnostics", "hot_clicks_off_vs_nginx"),
                         ratio_basis=basis)
        ]
        off["counting_on_vs_off_per_round"] = src.nums("diagnostics", "counting_on_vs_off_per_round")
        off["counting_throughput_cost"] = src.num("diagnostics", "counting_throughput_cost")
        off["counting_cpu_per_request_on_vs_off_per_round"] = src.nums(
            "diagnostics", "counting_cpu_per_request_on_vs_off_per_round")
        off["counting_cpu_per_request_cost"] = src.num("diagnostics", "counting_cpu_per_request_cost")
    put("hot_counting_off_closed", off)

    off_open = _open_loop(src.sub("diagnostics", "hot_clicks_off", "open_loop"),
                          "lookup L1 hit, counting off (diagnostic), open loop")
    if off_open is not None:
        off_open["reference"] = reference_to(out, "bare_actix_open")
    put("hot_counting_off_open", off_open)

    for tier, label in (("l2_only", "lookup L2 only (Redis Cluster)"),
                        ("replica_only", "lookup replica only (PostgreSQL)")):
        closed = _closed_loop(src.sub("scenarios", tier, "closed_loop"), f"{label}, closed loop", settings)
        if closed is not None:
            closed["reference"] = reference_to(out, "bare_actix_closed")
        put(f"{tier}_closed", closed)
        opened = _open_loop(src.sub("scenarios", tier, "open_loop"), f"{label}, open loop")
        if opened is not None:
            ref = out.get("bare_actix_open")
            note = None
            if (ref is not None and None not in (ref.get("target_rate"), opened.get("target_rate"))
                    and ref["target_rate"] != opened["target_rate"]):
                note = (f"the reference ran at {ref['target_rate']:g} req/s, this tier at "
                        f"{opened['target_rate']:g} req/s")
            opened["reference"] = reference_to(out, "bare_actix_open", note=note)
        put(f"{tier}_open", opened)

    map_edge(src, out, put, settings, basis)
    map_zipf(src, out, put, settings, basis)
    map_scale(src, out, put)

    rss = src.sub("rss")
    if rss is not None:
        put("rss_idle", {
            "label": "lookup RSS idle",
            "req_per_sec": None, "p50_ms": None, "p99_ms": None, "p99_9_ms": None,
            "rss_mb": rss.num("idle_mb"),
            "rss_kb": rss.num("idle_kb"),
            "reference": no_reference("no reference process is measured for memory"),
        })
        put("rss_with_links", map_rss_links(rss))

    top = {"hot_redirect_vs_bare_actix": vs_bare, "hot_redirect_vs_nginx": vs_nginx}
    return out, top


def map_edge(src: Source, out: dict, put, settings: dict, basis: str) -> None:
    """lookup-service behind nginx with the repository's edge config."""
    closed = _closed_loop(src.sub("scenarios", "edge", "closed_loop"),
                          "lookup through nginx (edge config), closed loop", settings)
    if closed is not None:
        closed["reference"] = reference_to(out, "nginx_closed", ratio=src.num("edge", "edge_vs_nginx"),
                                           ratio_basis=basis)
        closed["also_compared_with"] = [
            reference_to(out, "hot_l1_closed", ratio=src.num("edge", "edge_vs_direct"), ratio_basis=basis,
                         note="the same lookup-service without nginx in front")
        ]
        closed["rounds"] = {
            "edge_vs_nginx": src.nums("edge", "edge_vs_nginx_per_round"),
            "edge_vs_direct": src.nums("edge", "edge_vs_direct_per_round"),
        }
        closed["note"] = src.text("edge", "note")
    put("edge_closed", closed)

    opened = _open_loop(src.sub("scenarios", "edge", "open_loop"), "lookup through nginx (edge config), open loop")
    if opened is not None:
        opened["reference"] = reference_to(out, "nginx_open")
        opened["also_compared_with"] = [reference_to(out, "hot_l1_open")]
        opened["note"] = src.text("edge", "note")
    put("edge_open", opened)


def _hit_ratio(src: Source | None) -> dict | None:
    if src is None:
        return None
    return {tier: src.num(tier) for tier in ("l1", "l2", "database")}


def map_zipf(src: Source, out: dict, put, settings: dict, basis: str) -> None:
    """lookup-service under a Zipf popularity mix, against bare actix-web driven by
    the same wrk script (drawing a code per request costs wrk more than cycling)."""
    put("bare_actix_zipf_closed", _closed_loop(src.sub("zipf", "reference_bare_actix", "closed_loop"),
                                               "bare actix-web fixed 302, Zipf wrk script, closed loop", settings))
    if "bare_actix_zipf_closed" in out:
        out["bare_actix_zipf_closed"]["reference"] = reference_to(
            out, "bare_actix_closed", note="the same server driven by the hot-codes script")

    links = src.num("zipf", "links")
    exponent = src.num("zipf", "exponent")
    what = "lookup Zipf mix"
    if links is not None:
        what += f" over {_fmt_num(links)} links"
    if exponent is not None:
        what += f" (s={exponent:g})"
    details = {
        "exponent": exponent,
        "links": links,
        "draws_for_oha": src.num("zipf", "draws_for_oha"),
        "warmup_s": src.num("zipf", "warmup_s"),
        "best_possible_hits": src.text("zipf", "best_possible_hits"),
        "l1_entries_after": src.num("zipf", "l1_entries_after"),
        "rss_kb_after": src.num("zipf", "rss_kb_after"),
        "note": src.text("zipf", "note"),
    }

    closed = _closed_loop(src.sub("scenarios", "zipf", "closed_loop"), f"{what}, closed loop", settings)
    if closed is not None:
        closed["reference"] = reference_to(out, "bare_actix_zipf_closed", ratio=src.num("zipf", "zipf_vs_bare_actix"),
                                           ratio_basis=basis)
        closed["rounds"] = {"zipf_vs_bare_actix": src.nums("zipf", "zipf_vs_bare_actix_per_round")}
        closed["hit_ratio"] = _hit_ratio(src.sub("zipf", "hit_ratio_closed_loop"))
        closed["zipf"] = details
    put("zipf_closed", closed)

    opened = _open_loop(src.sub("scenarios", "zipf", "open_loop"), f"{what}, open loop")
    if opened is not None:
        opened["reference"] = reference_to(
            out, "bare_actix_open", note="the reference answered the hot codes' URLs: a fixed 302 whatever the path")
        opened["hit_ratio"] = _hit_ratio(src.sub("zipf", "hit_ratio_open_loop"))
        opened["zipf"] = details
    put("zipf_open", opened)


P99_RATIO_BASIS = "p99 at this size over p99 of the same tier at the smallest size (latency, not req/s)"


def map_scale(src: Source, out: dict, put) -> None:
    """One open-loop scenario per tier and size, and a summary ("scale") that the
    flatness goal is set against. The smallest size is the source's first point,
    the base of its own relative figures."""
    scale = src.sub("scale")
    rows = (scale.objs("points") if scale is not None else None) or []
    if not rows:
        return
    points = []
    for i, row in enumerate(rows):
        p = _SubSource(src.name, src.kind, row, f"scale.points.{i}")
        links = p.num("links")
        if links is None:
            # The size names the scenario: a point without one cannot be placed.
            raise p._error(("links",), "a number", None)
        points.append((p, int(links)))
    smallest = points[0][1]
    for tier, what in (("hot", "hot (L1)"), ("cold", "cold (replica)")):
        rel = scale.nums(f"{tier}_p99_vs_smallest", nulls=True) or []
        for i, (p, links) in enumerate(points):
            entry = _open_loop(p.sub(tier), f"scale: {what} p99 at {_fmt_num(links)} links")
            if entry is None:
                continue
            ratio = rel[i] if i < len(rel) else None
            entry.update({
                "links": links,
                "copy_s": p.num("copy_s"),
                "replicated_s": p.num("replicated_s"),
                "table_mb": p.num("table_mb"),
                "p99_vs_smallest": ratio,
            })
            if i == 0:
                entry["reference"] = no_reference("the smallest size: the reference of the larger ones")
            else:
                entry["reference"] = reference_to(out, f"scale_{tier}_{smallest}", ratio=ratio, ratio_of="p99",
                                                  ratio_basis=P99_RATIO_BASIS)
            put(f"scale_{tier}_{links}", entry)

    base_hot = out.get(f"scale_hot_{smallest}") or {}
    base_cold = out.get(f"scale_cold_{smallest}") or {}
    last = points[-1][1]
    span = f"from {_fmt_num(smallest)} to {_fmt_num(last)}" if len(points) > 1 else f"at {_fmt_num(smallest)}"
    put("scale", {
        "label": f"scale: hot and cold p99 {span} stored links",
        "req_per_sec": None, "p50_ms": None, "p99_ms": None, "p99_9_ms": None,
        "points": [{"links": links, "copy_s": p.num("copy_s"), "replicated_s": p.num("replicated_s"),
                    "table_mb": p.num("table_mb"),
                    "hot": f"scale_hot_{links}" if f"scale_hot_{links}" in out else None,
                    "cold": f"scale_cold_{links}" if f"scale_cold_{links}" in out else None}
                   for p, links in points],
        "cold_codes_per_size": scale.num("cold_codes_per_size"),
        "hot_p99_vs_smallest": scale.nums("hot_p99_vs_smallest", nulls=True),
        "cold_p99_vs_smallest": scale.nums("cold_p99_vs_smallest", nulls=True),
        "largest_p99_deviation": scale.num("largest_p99_deviation"),
        "note": scale.text("note"),
        "reference": {
            "name": f"the smallest size ({_fmt_num(smallest)} links)",
            "scenario": f"scale_hot_{smallest}",
            "scenarios": [f"scale_hot_{smallest}", f"scale_cold_{smallest}"],
            "req_per_sec": None,
            "p99_ms": None,
            "hot_p99_ms": base_hot.get("p99_ms"),
            "cold_p99_ms": base_cold.get("p99_ms"),
            "figure": f"hot p99 {fmt_ms(base_hot.get('p99_ms'))}, cold p99 {fmt_ms(base_cold.get('p99_ms'))}",
            "note": "each size's p99 is set against the same tier's p99 here (latency, not req/s)",
        },
    })


def map_rss_links(rss: Source) -> dict:
    idle_kb = rss.num("idle_kb")
    warm_kb = rss.num("after_warm_kb")
    entries = rss.num("l1_entries")
    entry = {
        "label": "lookup RSS with links in L1",
        "req_per_sec": None, "p50_ms": None, "p99_ms": None, "p99_9_ms": None,
        "rss_mb": rss.num("after_warm_mb"),
        "rss_kb": warm_kb,
        "peak_kb": rss.num("peak_kb"),
        "links_warmed": rss.num("links_warmed"),
        "l1_entries": entries,
        "rss_bytes_per_entry": rss.num("rss_bytes_per_entry"),
        "l1_weighted_bytes_per_entry": rss.num("l1_weighted_bytes_per_entry"),
        "entries_default_bound_holds": rss.num("entries_default_bound_holds"),
        "rss_mb_at_1m": None,
        "rss_mb_at_1m_basis": None,
        "reference": no_reference("no reference process is measured for memory"),
    }
    entry.update(rss_at_one_million(idle_kb, warm_kb, entries, entry["rss_mb"]))
    return entry


def rss_at_one_million(idle_kb, warm_kb, entries, measured_mb) -> dict:
    """RSS with 1M links in L1: as measured when the run held at least that many,
    else idle plus the measured growth per entry times 1M (MB = 10^6 bytes)."""
    if entries is None or measured_mb is None:
        return {"rss_mb_at_1m": None, "rss_mb_at_1m_basis": "no L1 entry count or RSS in the source"}
    if entries >= ONE_MILLION:
        return {"rss_mb_at_1m": measured_mb, "rss_mb_at_1m_basis": "measured"}
    if idle_kb is None or warm_kb is None or entries <= 0:
        return {"rss_mb_at_1m": None, "rss_mb_at_1m_basis": "cannot scale: no idle/warm RSS in KiB"}
    per_entry = (warm_kb - idle_kb) * 1024 / entries
    scaled = (idle_kb * 1024 + per_entry * ONE_MILLION) / 1e6
    return {
        "rss_mb_at_1m": round(scaled, 3),
        "rss_mb_at_1m_basis": (f"scaled: {int(entries):,} entries cached; idle RSS + "
                               f"{per_entry:.0f} bytes per entry × 1,000,000"),
    }


def map_creates(src: Source) -> dict:
    out: dict = {}
    ceiling = src.num("pgbench_ceiling_tps")
    ceiling_conns = src.num("pgbench_ceiling_connections")
    pgbench_by_conns = {}
    ceiling_latency = None
    for i, row in enumerate(src.objs("pgbench_insert") or []):
        r = _SubSource(src.name, src.kind, row, f"pgbench_insert.{i}")
        pgbench_by_conns[r.num("connections")] = r.num("tps")
        if r.num("connections") == ceiling_conns:
            ceiling_latency = r.num("latency_avg_ms")

    levels = []
    for i, row in enumerate(src.objs("creates") or []):
        r = _SubSource(src.name, src.kind, row, f"creates.{i}")
        conns = r.num("connections")
        levels.append({
            "connections": conns,
            "creates_per_sec": r.num("creates_per_sec"),
            "p50_ms": r.num("latency_ms", "p50"),
            "p99_ms": r.num("latency_ms", "p99"),
            "all_201": r.flag("all_201"),
            "pgbench_tps_same_connections": pgbench_by_conns.get(conns),
        })

    reference = {
        "name": "pgbench single-row INSERT ceiling (best over connection counts)",
        "scenario": None,
        "req_per_sec": ceiling,
        "p99_ms": None,
        "connections": ceiling_conns,
        "latency_avg_ms": ceiling_latency,
        "ratio": src.num("ratio_creates_to_pgbench"),
        "ratio_basis": "best creates/s over the pgbench ceiling",
        "unit": "tps",
        "note": "pgbench reports no p99, only the mean latency",
    }
    if ceiling is not None or src.num("creates_per_sec") is not None:
        out["creates"] = {
            "label": "durable creates (POST /api/v1/links), best connection count",
            "source": src.name,
            "loop": "closed",
            "load": "closed loop (wrk -t2 -c C)",
            "req_per_sec": src.num("creates_per_sec"),
            "best_connections": src.num("creates_best_connections"),
            "p50_ms": src.num("creates_latency_ms", "p50"),
            "p99_ms": src.num("creates_latency_ms", "p99"),
            "p99_9_ms": None,
            "cpu_us_per_create": src.obj("creates_cpu_us_per_create"),
            "levels": levels,
            "reference": reference,
        }

    criterion_note = "criterion micro-benchmark (cargo bench -p domain --bench ids); no reference in the same run"
    quiet = src.flag("criterion_on_quiet_machine")
    if src.obj("snowflake") is not None:
        out["snowflake_ids"] = {
            "label": "Snowflake id generation",
            "source": src.name,
            "req_per_sec": None, "p50_ms": None, "p99_ms": None, "p99_9_ms": None,
            "ids_per_sec": src.num("snowflake", "ids_per_sec"),
            "next_id_ns": src.num("snowflake", "next_id_ns"),
            "criterion_on_quiet_machine": quiet,
            "reference": no_reference(criterion_note),
        }
    if src.obj("codec") is not None:
        for op in ("encode", "decode"):
            out[f"code_{op}"] = {
                "label": f"code {op} (CodeCodec)",
                "source": src.name,
                "req_per_sec": None, "p50_ms": None, "p99_ms": None, "p99_9_ms": None,
                "ns": src.num("codec", f"{op}_ns"),
                "criterion_on_quiet_machine": quiet,
                "reference": no_reference(criterion_note),
            }
    return out


def map_clicks(src: Source) -> dict:
    out: dict = {}
    apply = src.sub("apply")
    if apply is not None:
        out["stats_apply"] = {
            "label": "stats-service apply rate (queued click batches)",
            "source": src.name,
            "req_per_sec": None, "p50_ms": None, "p99_ms": None, "p99_9_ms": None,
            "clicks_per_sec": apply.num("clicks_per_s"),
            "clicks": apply.num("clicks"),
            "batches": apply.num("batches"),
            "seconds": apply.num("seconds"),
            "counters_exact": apply.flag("counters_exact"),
            "cpu_s": apply.obj("cpu_s"),
            "settings": apply.text("settings"),
            "reference": no_reference("no reference measured in this run"),
        }
    lag = src.sub("lag")
    if lag is not None:
        out["click_queue_delay"] = {
            "label": "click queue delay (batch cut to applied)",
            "source": src.name,
            # The source has histogram bucket bounds in seconds, not percentiles in
            # ms: they are kept as such below rather than passed off as p50/p99.
            "req_per_sec": None, "p50_ms": None, "p99_ms": None, "p99_9_ms": None,
            "load_req_per_sec": lag.num("achieved_rate"),
            "target_rate": lag.num("target_rate"),
            "delay_s": {
                "mean": lag.num("delay_s", "mean"),
                "p50_at_most": lag.num("delay_s", "p50_at_most"),
                "p99_at_most": lag.num("delay_s", "p99_at_most"),
            },
            "counted_exact": lag.flag("exact"),
            "drained_s_after_load": lag.num("drained_s_after_load"),
            "note": lag.text("note"),
            "reference": no_reference("no reference measured in this run"),
        }
    return out


# ---------------------------------------------------------------------------
# Goals


def _fmt_num(v, digits=3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.{digits}f}".rstrip("0").rstrip(".")


def fmt_rate(v) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_ms(v) -> str:
    return "n/a" if v is None else f"{_fmt_num(v)} ms"


def _goal(gid, name, scenario, goal, target, value, met, figure, source, note=None) -> dict:
    g = {
        "id": gid,
        "name": name,
        "scenario": scenario,
        "figure": figure,
        "value": value,
        "goal": goal,
        "target": target,
        "met": met,
        "source": source,
    }
    if note:
        g["note"] = note
    return g


def _missing(gid, name, scenario, goal, target, why) -> dict:
    return _goal(gid, name, scenario, goal, target, None, None, f"no figure: {why}", None)


def _open_p99_goal(gid, name, scen, key, limit_ms, required_rate=None) -> dict:
    goal = f"p99 ≤ {limit_ms:g} ms" + (f" at {required_rate:,} req/s open loop" if required_rate else
                                        " open loop")
    s = scen.get(key)
    if s is None or s.get("p99_ms") is None:
        return _missing(gid, name, key, goal, limit_ms, f"no {key} in the sources")
    p99 = s["p99_ms"]
    figure = (f"p99 {fmt_ms(p99)} (p50 {fmt_ms(s.get('p50_ms'))}, p99.9 {fmt_ms(s.get('p99_9_ms'))}) "
              f"at {fmt_rate(s.get('req_per_sec'))} req/s")
    if s.get("target_rate") is not None:
        figure += f" (target {fmt_rate(s['target_rate'])})"
    problems = []
    if s.get("rate_held") is False:
        problems.append("rate not held (< 98% of target)")
    if s.get("all_redirects") is False:
        problems.append("not every answer was a 302")
    met = p99 <= limit_ms and not problems
    note = None
    if required_rate is not None and s.get("target_rate") not in (None, required_rate):
        met = None
        note = f"run at {s['target_rate']:g} req/s, the goal is at {required_rate:,} req/s"
    if problems:
        figure += "; " + ", ".join(problems)
    return _goal(gid, name, key, goal, limit_ms, p99, met, figure, s["source"], note)


SCALE_TOLERANCE = 0.1


def _scale_goal(scen: dict) -> dict:
    """Hot and cold p99 stay within ±10% of the smallest size's as stored links grow.
    The deviation is the source's own figure (largest over both tiers and all sizes)."""
    goal = "p99 within ±10% of the smallest size's (hot and cold)"
    sc = scen.get("scale")
    if sc is None:
        return _missing("scale_flatness", "hot and cold p99 within ±10% as stored links grow", "scale", goal,
                        SCALE_TOLERANCE, "the redirect result has no scale section")
    sizes = [p["links"] for p in sc["points"]]
    span = (f"from {_fmt_num(sizes[0])} to {_fmt_num(sizes[-1])}" if len(sizes) > 1
            else f"at {_fmt_num(sizes[0])}")
    name = f"hot and cold p99 within ±10% {span} links"
    dev = sc.get("largest_p99_deviation")
    if dev is None:
        return _missing("scale_flatness", name, "scale", goal, SCALE_TOLERANCE,
                        "the scale section has no largest_p99_deviation")
    tiers = []
    problems = []
    for tier in ("hot", "cold"):
        runs = [scen.get(p[tier]) if p[tier] else None for p in sc["points"]]
        p99s = " / ".join(fmt_ms(r.get("p99_ms")).removesuffix(" ms") if r else "n/a" for r in runs)
        tiers.append(f"{tier} p99 {p99s} ms")
        for p, r in zip(sc["points"], runs):
            at = f"at {_fmt_num(p['links'])} links"
            if r is None:
                problems.append(f"no {tier} run {at}")
            elif r.get("all_redirects") is False:
                problems.append(f"not every {tier} answer was a 302 {at}")
            elif r.get("rate_held") is False:
                # A p99 at a rate the generator could not hold is not the same load.
                problems.append(f"{tier} rate not held {at}")
    figure = (f"largest deviation {dev * 100:.1f}%; {', '.join(tiers)} at "
              f"{' / '.join(_fmt_num(s) for s in sizes)} links")
    met = dev <= SCALE_TOLERANCE and not problems
    note = None
    if len(sizes) < 2:
        # One size compares nothing: the deviation is zero by construction.
        met = None
        note = "only one size was measured"
    if problems:
        figure += "; " + ", ".join(problems)
    return _goal("scale_flatness", name, "scale", goal, SCALE_TOLERANCE, dev, met, figure, sc["source"], note)


def build_goals(scen: dict, top: dict) -> list[dict]:
    goals = []
    hot = scen.get("hot_l1_closed")
    for gid, ref_key, ref_label, target in (("hot_vs_bare_actix", "hot_redirect_vs_bare_actix", "bare actix-web", 0.9),
                                            ("hot_vs_nginx", "hot_redirect_vs_nginx", "nginx", 0.8)):
        name = f"hot redirect ≥ {target}× {ref_label} (req/s)"
        goal = f"≥ {target}× {ref_label} req/s"
        value = top.get(ref_key)
        if value is None:
            goals.append(_missing(gid, name, "hot_l1_closed", goal, target, "no redirect result"))
            continue
        figure = f"{value:.3f}×"
        rounds = ((hot or {}).get("rounds") or {}).get(gid)
        if rounds and len(rounds) == 1:
            figure += " (one round)"
        elif rounds:
            figure += f" (median of {len(rounds)} per-round ratios, range {min(rounds):.3f}–{max(rounds):.3f})"
        else:
            figure += " (median of the per-round ratios)"
        if hot and hot.get("req_per_sec") is not None:
            figure += f"; lookup {fmt_rate(hot['req_per_sec'])} req/s, p99 {fmt_ms(hot.get('p99_ms'))} (median round)"
        goals.append(_goal(gid, name, "hot_l1_closed", goal, target, value, value >= target, figure,
                           hot["source"] if hot else None))

    goals.append(_open_p99_goal("hot_p99_open", "hot p99 ≤ 1 ms at 10k req/s open loop", scen,
                                "hot_l1_open", 1, required_rate=10000))
    goals.append(_open_p99_goal("l2_p99_open", "L2-only p99 ≤ 2 ms (open loop)", scen, "l2_only_open", 2))
    goals.append(_open_p99_goal("replica_p99_open", "replica-only p99 ≤ 5 ms (open loop)", scen,
                                "replica_only_open", 5))
    goals.append(_scale_goal(scen))

    cr = scen.get("creates")
    name = "creates ≥ 5,000/s"
    if cr is None or cr.get("req_per_sec") is None:
        goals.append(_missing("creates_rate", name, "creates", "≥ 5,000 creates/s", 5000, "no creates result"))
    else:
        v = cr["req_per_sec"]
        goals.append(_goal("creates_rate", name, "creates", "≥ 5,000 creates/s", 5000, v, v >= 5000,
                           f"{fmt_rate(v)} creates/s at {_fmt_num(cr.get('best_connections'))} connections",
                           cr["source"]))
    name = "creates ≥ 0.7× pgbench INSERT ceiling"
    ratio = cr["reference"].get("ratio") if cr else None
    if ratio is None:
        goals.append(_missing("creates_vs_pgbench", name, "creates", "≥ 0.7× pgbench ceiling", 0.7, "no creates ratio"))
    else:
        goals.append(_goal("creates_vs_pgbench", name, "creates", "≥ 0.7× pgbench ceiling", 0.7, ratio, ratio >= 0.7,
                           f"{ratio:.3f}× ({fmt_rate(cr['req_per_sec'])} vs {fmt_rate(cr['reference']['req_per_sec'])}"
                           " tps)", cr["source"]))

    sf = scen.get("snowflake_ids")
    name = "Snowflake ≥ 4.0M ids/s"
    if sf is None or sf.get("ids_per_sec") is None:
        goals.append(_missing("snowflake", name, "snowflake_ids", "≥ 4.0M ids/s", 4e6, "no criterion figure"))
    else:
        v = sf["ids_per_sec"]
        note = "criterion ran on a busy machine" if sf.get("criterion_on_quiet_machine") is False else None
        goals.append(_goal("snowflake", name, "snowflake_ids", "≥ 4.0M ids/s", 4e6, v, v >= 4e6,
                           f"{v / 1e6:.3f}M ids/s (next_id {_fmt_num(sf.get('next_id_ns'), 1)} ns)",
                           sf["source"], note))

    off = scen.get("hot_counting_off_closed")
    name = "click counting overhead < 3% of hot throughput"
    cost = off.get("counting_throughput_cost") if off else None
    if cost is None:
        goals.append(_missing("counting_overhead", name, "hot_counting_off_closed", "< 3% of hot req/s", 0.03,
                              "the redirect result has no counting_throughput_cost"))
    else:
        rounds = off.get("counting_on_vs_off_per_round")
        fig = f"{cost * 100:.1f}%"
        if rounds:
            fig += f" (1 − median of {len(rounds)} per-round on/off req/s ratios)"
        if off.get("req_per_sec") is not None:
            fig += f"; counting off {fmt_rate(off['req_per_sec'])} req/s (median round)"
        goals.append(_goal("counting_overhead", name, "hot_counting_off_closed", "< 3% of hot req/s", 0.03, cost, cost < 0.03,
                           fig, off["source"]))

    rl = scen.get("rss_with_links")
    name = "lookup RSS ≤ 300 MB with 1M links in L1"
    if rl is None or rl.get("rss_mb_at_1m") is None:
        why = (rl or {}).get("rss_mb_at_1m_basis") or "no RSS figures"
        goals.append(_missing("rss_1m", name, "rss_with_links", "≤ 300 MB with 1M links in L1", 300, why))
    else:
        v = rl["rss_mb_at_1m"]
        if rl["rss_mb_at_1m_basis"] == "measured":
            fig = f"{_fmt_num(v)} MB with {_fmt_num(rl['l1_entries'])} entries in L1 (measured)"
            if rl.get("rss_bytes_per_entry") is not None:
                fig += f"; {_fmt_num(rl['rss_bytes_per_entry'])} B of RSS per entry"
        else:
            fig = (f"~{_fmt_num(v)} MB estimated for 1M ({rl['rss_mb_at_1m_basis']}); "
                   f"measured {_fmt_num(rl['rss_mb'])} MB with {_fmt_num(rl['l1_entries'])}")
        goals.append(_goal("rss_1m", name, "rss_with_links", "≤ 300 MB with 1M links in L1", 300, v, v <= 300, fig, rl["source"]))

    ri = scen.get("rss_idle")
    name = "lookup RSS idle ≤ 20 MB"
    if ri is None or ri.get("rss_mb") is None:
        goals.append(_missing("rss_idle", name, "rss_idle", "≤ 20 MB idle", 20, "no idle RSS"))
    else:
        v = ri["rss_mb"]
        goals.append(_goal("rss_idle", name, "rss_idle", "≤ 20 MB idle", 20, v, v <= 20, f"{_fmt_num(v)} MB",
                           ri["source"]))

    sa = scen.get("stats_apply")
    name = "stats apply ≥ 100k clicks/s"
    if sa is None or sa.get("clicks_per_sec") is None:
        goals.append(_missing("stats_apply", name, "stats_apply", "≥ 100,000 clicks/s", 100000, "no clicks result"))
    else:
        v = sa["clicks_per_sec"]
        met = v >= 100000 and sa.get("counters_exact") is not False
        fig = f"{fmt_rate(v)} clicks/s"
        if sa.get("counters_exact") is False:
            fig += "; counters did not add up"
        goals.append(_goal("stats_apply", name, "stats_apply", "≥ 100,000 clicks/s", 100000, v, met, fig,
                           sa["source"]))

    qd = scen.get("click_queue_delay")
    name = "click queue delay p99 < 2 s"
    bound = qd["delay_s"].get("p99_at_most") if qd else None
    if bound is None:
        goals.append(_missing("queue_delay", name, "click_queue_delay", "p99 < 2 s", 2, "no clicks lag figure"))
    else:
        note = None
        if bound < 2:
            met = True
        else:
            # Only the bucket's upper bound is known: the p99 may still be below 2 s.
            met = None
            note = "the source gives only a histogram bucket bound at or above the goal"
        if qd.get("counted_exact") is False:
            met = False
        fig = f"p99 ≤ {_fmt_num(bound)} s (histogram bucket bound), mean {_fmt_num(qd['delay_s'].get('mean'))} s"
        goals.append(_goal("queue_delay", name, "click_queue_delay", "p99 < 2 s", 2, bound, met, fig,
                           qd["source"], note))
    for g in goals:
        g["reference"] = goal_reference(g, scen)
    return goals


def goal_reference(g: dict, scen: dict) -> dict:
    """The reference a goal's figure is set against: its scenario's, except where
    the goal names another (nginx; counting on vs off)."""
    s = scen.get(g["scenario"])
    if g["id"] == "counting_overhead":
        return reference_to(scen, "hot_l1_closed",
                            note="counting on, same rounds") if s else no_reference("no redirect result")
    if s is None:
        return no_reference(f"no {g['scenario']} in the sources")
    if g["id"] == "hot_vs_nginx":
        for ref in s.get("also_compared_with") or []:
            if ref.get("scenario") == "nginx_closed":
                return ref
    return s["reference"]


# Which goal of a bench/redirect result's own list each goal corresponds to.
_SOURCE_GOAL_PATTERNS = {
    "hot_vs_bare_actix": r"^hot redirect .*bare actix",
    "hot_vs_nginx": r"^hot redirect .*nginx",
    "hot_p99_open": r"^hot p99",
    "l2_p99_open": r"^L2-only p99",
    "replica_p99_open": r"^replica-only p99",
    "counting_overhead": r"^click counting",
    "rss_1m": r"RSS .*1000000 links",
    "scale_flatness": r"^hot and cold p99 within",
}


def attach_source_goals(goals: list[dict], sources: list[Source]) -> list[str]:
    """Puts each source's own verdict beside ours; returns the disagreements, which
    point at a mapping error or a changed result format."""
    warnings = []
    by_id = {g["id"]: g for g in goals}
    for src in sources:
        own = []
        if src.kind == "redirect":
            for i, row in enumerate(src.objs("goals") or []):
                r = _SubSource(src.name, src.kind, row, f"goals.{i}")
                own.append((r.text("goal") or "", r.num("value"), r.flag("met")))
        elif src.kind == "creates" and src.obj("goal") is not None:
            text = (f"creates_per_sec >= {_fmt_num(src.num('goal', 'creates_per_sec_min'))} and ratio >= "
                    f"{_fmt_num(src.num('goal', 'ratio_min'))}")
            met = src.flag("goal", "met")
            for gid in ("creates_rate", "creates_vs_pgbench"):
                if gid in by_id:
                    by_id[gid]["source_goal"] = {"text": text, "met": met, "combined": True}
                    # The combined verdict is false when either part is; it can only
                    # contradict ours when it says met and ours does not.
                    if met is True and by_id[gid]["met"] is False:
                        warnings.append(f"{gid}: {src.name} says met, this report says not met")
            continue
        for text, value, met in own:
            for gid, pattern in _SOURCE_GOAL_PATTERNS.items():
                if gid in by_id and re.search(pattern, text):
                    g = by_id[gid]
                    g["source_goal"] = {"text": text, "value": value, "met": met}
                    if isinstance(met, bool) and isinstance(g["met"], bool) and met != g["met"]:
                        warnings.append(f"{gid}: {src.name} says {'met' if met else 'not met'} ({text}), "
                                        f"this report says {'met' if g['met'] else 'not met'}")
    return warnings


# ---------------------------------------------------------------------------
# The combined report

# A trailing * stands for one scenario per stored-links size, smallest first.
SCENARIO_ORDER = [
    "hot_l1_closed", "hot_l1_open", "hot_counting_off_closed", "hot_counting_off_open",
    "edge_closed", "edge_open", "zipf_closed", "zipf_open",
    "l2_only_closed", "l2_only_open", "replica_only_closed", "replica_only_open",
    "scale", "scale_hot_*", "scale_cold_*",
    "bare_actix_closed", "bare_actix_open", "bare_actix_zipf_closed", "nginx_closed", "nginx_open",
    "creates", "snowflake_ids", "code_encode", "code_decode",
    "stats_apply", "click_queue_delay", "rss_idle", "rss_with_links",
]


def ordered_keys(keys) -> list[str]:
    """keys in SCENARIO_ORDER's order; keys it does not name are left out."""
    keys = set(keys)
    out = []
    for entry in SCENARIO_ORDER:
        if entry.endswith("*"):
            prefix = entry[:-1]
            sized = [k for k in keys if k.startswith(prefix) and k[len(prefix):].isdigit()]
            out += sorted(sized, key=lambda k: int(k[len(prefix):]))
        elif entry in keys:
            out.append(entry)
    return out


def source_details(src: Source) -> dict:
    d = src.data
    out = {"kind": src.kind}
    for key in ("timestamp_utc", "quick", "quiet_at_start", "disturbed_measurements", "machine", "sharing",
                "settings", "criterion_on_quiet_machine", "postgres"):
        if key in d:
            out[key] = d[key]
    if isinstance(d.get("source"), dict):
        out["commit"] = d["source"].get("commit")
        out["uncommitted_changes"] = d["source"].get("uncommitted_changes_outside_bench")
    elif "commit" in d:
        out["commit"] = d["commit"]
        out["uncommitted_changes"] = d.get("dirty_outside_bench")
    if "commands" in d:
        out["commands"] = d["commands"]
    if "command" in d:
        out["command"] = d["command"]
    return out


def build_report(sources: list[Source], stamp: str, command: str) -> dict:
    kinds = [s.kind for s in sources]
    for kind in KINDS:
        if kinds.count(kind) > 1:
            names = ", ".join(s.name for s in sources if s.kind == kind)
            raise InputError(f"more than one {kind} result given ({names}): give one of each kind")
    scen: dict = {}
    top = {"hot_redirect_vs_bare_actix": None, "hot_redirect_vs_nginx": None}
    for src in sources:
        if src.kind == "redirect":
            mapped, top = map_redirect(src)
        elif src.kind == "creates":
            mapped = map_creates(src)
        else:
            mapped = map_clicks(src)
        scen.update(mapped)
    scen = {k: scen[k] for k in ordered_keys(scen)}

    goals = build_goals(scen, top)
    warnings = attach_source_goals(goals, sources)

    machine = None
    for kind in KINDS:
        for src in sources:
            if src.kind == kind and src.data.get("machine") is not None and machine is None:
                machine = src.data["machine"]
    generated = dt.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=dt.timezone.utc)
    return {
        "generated_at": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stamp": stamp,
        "command": command,
        "sources": [s.name for s in sources],
        "source_details": {s.name: source_details(s) for s in sources},
        "machine": machine,
        "hot_redirect_vs_bare_actix": top["hot_redirect_vs_bare_actix"],
        "hot_redirect_vs_nginx": top["hot_redirect_vs_nginx"],
        "hot_redirect_ratio_basis": "median of the per-round req/s ratios (lookup L1 hit over the reference)",
        "goals_summary": {
            "met": sum(1 for g in goals if g["met"] is True),
            "not_met": sum(1 for g in goals if g["met"] is False),
            "unknown": sum(1 for g in goals if g["met"] is None),
        },
        "goals": goals,
        "scenarios": scen,
        "warnings": warnings,
    }


# ---------------------------------------------------------------------------
# Markdown


def scenario_figure(key: str, s: dict) -> str:
    if key == "stats_apply":
        return f"{fmt_rate(s.get('clicks_per_sec'))} clicks/s ({_fmt_num(s.get('clicks'))} clicks)"
    if key == "click_queue_delay":
        d = s["delay_s"]
        return (f"p50 ≤ {_fmt_num(d.get('p50_at_most'))} s, p99 ≤ {_fmt_num(d.get('p99_at_most'))} s, "
                f"mean {_fmt_num(d.get('mean'))} s at {fmt_rate(s.get('load_req_per_sec'))} redirects/s")
    if key == "snowflake_ids":
        v = s.get("ids_per_sec")
        return "n/a" if v is None else f"{v / 1e6:.3f}M ids/s"
    if key in ("code_encode", "code_decode"):
        return f"{_fmt_num(s.get('ns'), 1)} ns"
    if key == "rss_idle":
        return f"{_fmt_num(s.get('rss_mb'))} MB"
    if key == "rss_with_links":
        return f"{_fmt_num(s.get('rss_mb'))} MB with {_fmt_num(s.get('l1_entries'))} entries in L1"
    if key == "scale":
        dev = s.get("largest_p99_deviation")
        return "n/a" if dev is None else f"largest p99 deviation {dev * 100:.1f}%"
    parts = [f"{fmt_rate(s.get('req_per_sec'))} req/s"]
    if key == "creates":
        parts = [f"{fmt_rate(s.get('req_per_sec'))} creates/s at {_fmt_num(s.get('best_connections'))} conns"]
    lat = [f"{label} {fmt_ms(s.get(field))}" for label, field in
           (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p99_9_ms")) if s.get(field) is not None]
    return ", ".join(parts + lat)


def reference_text(ref: dict | None) -> str:
    if not ref or ref.get("name") is None:
        return "—"
    if ref.get("figure") is not None:
        # A reference that is not one server's req/s (the scale sizes' hot and cold p99).
        text = f"{ref['name']}: {ref['figure']}"
    else:
        text = f"{ref['name']}: {fmt_rate(ref.get('req_per_sec'))} {ref.get('unit', 'req/s')}"
        if ref.get("p99_ms") is not None:
            text += f", p99 {fmt_ms(ref['p99_ms'])}"
    if ref.get("ratio") is not None:
        if ref.get("ratio_of") == "p99":
            text += f"; p99 ratio {ref['ratio']:.3f}× (latency, not req/s)"
        else:
            text += f"; ratio {ref['ratio']:.3f}×"
    return text


def met_text(met) -> str:
    return {True: "yes", False: "**no**", None: "unknown"}[met]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def source_notes(report: dict) -> list[str]:
    """What a reader should know before trusting a source's figures."""
    notes = []
    for name in report["sources"]:
        d = report["source_details"][name]
        if d.get("quick"):
            notes.append(f"`{name}` is a quick (smoke) run: shorter and fewer measurements than a full run.")
        if d.get("quiet_at_start") is False:
            notes.append(f"`{name}`: the machine was not quiet when the run started.")
        if d.get("disturbed_measurements"):
            notes.append(f"`{name}`: {d['disturbed_measurements']} measurement(s) flagged as disturbed by other load.")
        if d.get("criterion_on_quiet_machine") is False:
            notes.append(f"`{name}`: the criterion figures were taken on a busy machine.")
        if d.get("uncommitted_changes"):
            notes.append(f"`{name}`: measured with uncommitted changes outside bench/ on top of its commit.")
    return notes


def markdown(report: dict, plot_notes: dict[str, str | None], json_paths: list[str] | None = None) -> str:
    scen = report["scenarios"]
    details = report["source_details"]
    described = []
    for name in report["sources"]:
        d = details[name]
        bits = [d["kind"]]
        if d.get("timestamp_utc"):
            bits.append(f"run {d['timestamp_utc']}")
        if d.get("same_as"):
            bits.append(f"= {d['same_as']}")
        if d.get("commit"):
            bits.append(f"commit {d['commit'][:7]}")
        if d.get("quick"):
            bits.append("**quick run**")
        described.append(f"`{name}` ({', '.join(bits)})")
    intro = ("Every figure is as the source reports it; a reference is measured on the same machine in the same run. "
             "Ratios are req/s of lookup-service over the reference, the median of the per-round ratios.")
    if "scale" in scen:
        intro += (" The scale rows are the exception: their ratio is of p99 latency, a size's p99 over the same "
                  "tier's p99 at the smallest size.")
    lines = [
        f"Generated by `{report['command']}` at {report['generated_at']} from {', '.join(described) or 'no sources'}.",
        "",
        intro,
        "",
        "| what | figure | reference in the same run | goal | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    goals_by_scenario: dict[str, list] = {}
    for g in report["goals"]:
        goals_by_scenario.setdefault(g["scenario"], []).append(g)
    shown = set()
    for key in ordered_keys(set(scen) | set(goals_by_scenario)):
        goals = goals_by_scenario.get(key, [])
        s = scen.get(key)
        if s is None and not goals:
            continue
        if goals:
            for g in goals:
                shown.add(g["id"])
                label = s["label"] if s else g["name"]
                ref = reference_text(g.get("reference"))
                figure = g["figure"]
                if g.get("note"):
                    figure += f" ({g['note']})"
                lines.append(f"| {_cell(label)} | {_cell(figure)} | {_cell(ref)} | {_cell(g['goal'])} | "
                             f"{met_text(g['met'])} |")
        else:
            kind = "reference" if key.startswith(("bare_actix", "nginx")) else "no goal"
            if key.startswith("hot_counting_off"):
                kind = "diagnostic"
            if key.startswith("scale_"):
                smallest = scen["scale"]["points"][0]["links"] if "scale" in scen else None
                kind = "reference of the larger sizes" if s.get("links") == smallest else "see the scale goal"
            ref = reference_text(s.get("reference"))
            for other in s.get("also_compared_with") or []:
                if other.get("ratio") is not None:
                    ref += f" · also {reference_text(other)}"
            lines.append(f"| {_cell(s['label'])} | {_cell(scenario_figure(key, s))} | {_cell(ref)} | — ({kind}) | — |")
    for g in report["goals"]:
        if g["id"] not in shown:
            lines.append(f"| {_cell(g['name'])} | {_cell(g['figure'])} | — | {_cell(g['goal'])} | "
                         f"{met_text(g['met'])} |")
    s = report["goals_summary"]
    lines += ["", f"Goals: {s['met']} met, {s['not_met']} not met, {s['unknown']} unknown."]
    if json_paths:
        lines += ["", f"All figures, per-round and per-level detail and the exact commands: "
                      f"{', '.join(f'`{p}`' for p in json_paths)}."]
    notes = source_notes(report)
    if notes:
        lines += ["", "Notes on the sources:", ""] + [f"- {n}" for n in notes]
    if report["warnings"]:
        lines += ["", "Disagreements with the sources' own verdicts:", ""]
        lines += [f"- {w}" for w in report["warnings"]]
    lines += zipf_markdown(scen)
    lines += scale_markdown(scen)
    lines += ["", "## Plots", ""]
    for plot, filename in PLOT_FILES.items():
        note = plot_notes.get(plot)
        if note:
            lines.append(f"- `{filename}` not drawn: {note}.")
        else:
            lines.append(f"![{plot}]({filename})")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _share(v) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}%"


def zipf_markdown(scen: dict) -> list[str]:
    """Which tier answered the Zipf mix: what a deployed L1 bound gives under skewed
    traffic, which the hot and tier scenarios do not show."""
    runs = [(loop, scen[key]) for key, loop in (("zipf_closed", "closed loop"), ("zipf_open", "open loop"))
            if scen.get(key) and scen[key].get("hit_ratio")]
    if not runs:
        return []
    z = runs[0][1]["zipf"]
    what = "Codes drawn with Zipf popularity"
    if z.get("exponent") is not None:
        what += f" (s={z['exponent']:g})"
    if z.get("links") is not None:
        what += f" over {_fmt_num(z['links'])} links"
    lines = ["", "## Zipf mix: which tier answered", "",
             f"{what}, a fresh lookup-service with the default L1 bound and Redis holding every link; "
             "shares of the requests by lookup-service's tier counters.", "",
             "| run | L1 | L2 (Redis) | database |", "| --- | --- | --- | --- |"]
    for loop, s in runs:
        h = s["hit_ratio"]
        lines.append(f"| {loop} | {_share(h.get('l1'))} | {_share(h.get('l2'))} | {_share(h.get('database'))} |")
    after = []
    if z.get("l1_entries_after") is not None:
        after.append(f"L1 held {_fmt_num(z['l1_entries_after'])} entries")
    if z.get("rss_kb_after") is not None:
        after.append(f"VmRSS was {_fmt_num(z['rss_kb_after'])} KiB")
    text = ""
    if after:
        text = f"Afterwards {' and '.join(after)}."
    if z.get("best_possible_hits"):
        text += f" The draws, as the generator summarised them: {_cell(z['best_possible_hits'])}."
    if text:
        lines += ["", text.strip()]
    return lines


def scale_markdown(scen: dict) -> list[str]:
    sc = scen.get("scale")
    if sc is None:
        return []
    rates = []
    for tier, what in (("hot", "hot: L1 hits"),
                       ("cold", "cold: L1 and Redis off, every redirect read from the replica")):
        key = next((p[tier] for p in sc["points"] if p[tier]), None)
        rate = scen[key].get("target_rate") if key else None
        rates.append(what + (f", at {fmt_rate(rate)} req/s" if rate is not None else ""))
    lines = ["", "## Scale: p99 as stored links grow", "",
             f"Open loop; {'; '.join(rates)}. Each size is a fresh database loaded with COPY. "
             "“vs smallest” is the size's p99 over the same tier's p99 at the smallest size (latency, not req/s); "
             f"the goal is each within ±{SCALE_TOLERANCE * 100:g}%.", "",
             "| stored links | COPY | on the replica after | table with indexes | hot p99 | vs smallest "
             "| cold p99 | vs smallest |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def secs(v):
        return "n/a" if v is None else f"{_fmt_num(v)} s"

    def tier(key):
        s = scen.get(key) if key else None
        if s is None:
            return "n/a", "n/a"
        rel = s.get("p99_vs_smallest")
        return fmt_ms(s.get("p99_ms")), "n/a" if rel is None else f"{rel:.3f}×"

    for p in sc["points"]:
        hot_p99, hot_rel = tier(p["hot"])
        cold_p99, cold_rel = tier(p["cold"])
        mib = "n/a" if p.get("table_mb") is None else f"{_fmt_num(p['table_mb'], 1)} MiB"
        lines.append(f"| {_fmt_num(p['links'])} | {secs(p.get('copy_s'))} | {secs(p.get('replicated_s'))} | {mib} "
                     f"| {hot_p99} | {hot_rel} | {cold_p99} | {cold_rel} |")
    return lines


# ---------------------------------------------------------------------------
# Plot data (pure; the drawing below needs matplotlib)


def throughput_data(report: dict) -> tuple[list | None, str | None]:
    scen = report["scenarios"]
    need = ("bare_actix_closed", "nginx_closed", "hot_l1_closed")
    missing = [k for k in need if scen.get(k, {}).get("req_per_sec") is None]
    if missing:
        return None, f"no closed-loop req/s for {', '.join(missing)}"
    short = {"bare_actix_closed": "bare actix", "nginx_closed": "nginx", "hot_l1_closed": "direct",
             "bare_actix_zipf_closed": "bare actix"}
    bars = []
    # Group "hot": the 1,000 hot codes' script, which the goal lines are about;
    # group "zipf": the Zipf script, with its own reference.
    for key, label, group in (("bare_actix_closed", "bare actix-web\nfixed 302", "hot"),
                              ("nginx_closed", "nginx\nreturn 302", "hot"),
                              ("hot_l1_closed", "lookup-service\nL1 hit", "hot"),
                              ("hot_counting_off_closed", "lookup-service\nL1 hit,\ncounting off", "hot"),
                              ("edge_closed", "lookup-service\nthrough nginx\n(edge config)", "hot"),
                              ("bare_actix_zipf_closed", "bare actix-web\nfixed 302", "zipf"),
                              ("zipf_closed", "lookup-service\nZipf mix", "zipf")):
        s = scen.get(key)
        if s is None or s.get("req_per_sec") is None:
            continue
        ratios = []
        if key.startswith(("hot", "edge", "zipf")):
            for ref in [s.get("reference")] + list(s.get("also_compared_with") or []):
                if ref and ref.get("ratio") is not None:
                    ratios.append(f"{ref['ratio']:.3f}× {short.get(ref['scenario'], ref['scenario'])}")
        bars.append({"key": key, "label": label, "group": group, "req_per_sec": s["req_per_sec"],
                     "runs": s.get("runs_req_per_sec") or [], "ratio_text": "\n".join(ratios)})
    return bars, None


def latency_data(report: dict) -> tuple[list | None, str | None]:
    scen = report["scenarios"]
    goals_ms = {"hot_l1_open": 1, "l2_only_open": 2, "replica_only_open": 5}
    rows = []
    for key, label in (("bare_actix_open", "bare actix-web"), ("nginx_open", "nginx"),
                       ("hot_l1_open", "lookup L1 hit"), ("hot_counting_off_open", "lookup L1 hit,\ncounting off"),
                       ("edge_open", "lookup through\nnginx (edge)"), ("zipf_open", "lookup\nZipf mix"),
                       ("l2_only_open", "lookup L2 only"), ("replica_only_open", "lookup replica only")):
        s = scen.get(key)
        if s is None or s.get("p99_ms") is None:
            continue
        rate = s.get("target_rate")
        rows.append({"key": key, "label": f"{label}\n@ {fmt_rate(rate)} req/s",
                     "p50": s.get("p50_ms"), "p99": s.get("p99_ms"), "p99_9": s.get("p99_9_ms"),
                     "goal_ms": goals_ms.get(key)})
    if not rows:
        return None, "no open-loop latency figures"
    return rows, None


def rounds_data(report: dict) -> tuple[dict | None, str | None]:
    hot = report["scenarios"].get("hot_l1_closed")
    rounds = (hot or {}).get("rounds") or {}
    bare, nginx = rounds.get("hot_vs_bare_actix"), rounds.get("hot_vs_nginx")
    if not bare or not nginx:
        return None, "the redirect result has no per-round ratios"
    return {"hot_vs_bare_actix": bare, "hot_vs_nginx": nginx,
            "median_vs_bare_actix": report.get("hot_redirect_vs_bare_actix"),
            "median_vs_nginx": report.get("hot_redirect_vs_nginx")}, None


def scale_data(report: dict) -> tuple[dict | None, str | None]:
    scen = report["scenarios"]
    sc = scen.get("scale")
    if sc is None:
        return None, "the redirect result has no scale section"
    tiers = {}
    for tier in ("hot", "cold"):
        runs = [(p["links"], scen[p[tier]]) for p in sc["points"]
                if p[tier] and scen[p[tier]].get("p99_ms") is not None]
        if not runs:
            continue
        first = sc["points"][0][tier]
        tiers[tier] = {
            "links": [links for links, _ in runs],
            "p99": [s["p99_ms"] for _, s in runs],
            "vs_smallest": [s.get("p99_vs_smallest") for _, s in runs],
            "flagged": [s.get("rate_held") is False or s.get("all_redirects") is False for _, s in runs],
            "rate": runs[0][1].get("target_rate"),
            # The band is around the smallest size's p99, as the goal is.
            "base": scen[first]["p99_ms"] if first else None,
        }
    if not tiers:
        return None, "the scale points have no p99"
    return {"tiers": tiers, "points": sc["points"], "deviation": sc.get("largest_p99_deviation")}, None


def creates_data(report: dict) -> tuple[dict | None, str | None]:
    cr = report["scenarios"].get("creates")
    if cr is None or not cr.get("levels") or cr["reference"].get("req_per_sec") is None:
        return None, "no creates result with per-level figures and a pgbench ceiling"
    return {"levels": cr["levels"], "ceiling": cr["reference"]["req_per_sec"],
            "ceiling_connections": cr["reference"].get("connections"), "ratio": cr["reference"].get("ratio")}, None


# ---------------------------------------------------------------------------
# Drawing

FIGSIZE = (12, 7)
DPI = 100


def draw_plots(report: dict, docs: Path) -> dict[str, str | None]:
    """Draws every plot it has data for; returns plot -> why it was skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.titlesize": 14, "axes.titleweight": "bold",
                         "axes.grid": True, "grid.alpha": 0.3, "axes.axisbelow": True})
    notes: dict[str, str | None] = {}
    for plot, (getter, drawer) in {
        "throughput": (throughput_data, _draw_throughput),
        "latency": (latency_data, _draw_latency),
        "rounds": (rounds_data, _draw_rounds),
        "creates": (creates_data, _draw_creates),
        "scale": (scale_data, _draw_scale),
    }.items():
        path = docs / PLOT_FILES[plot]
        data, why = getter(report)
        if data is None:
            notes[plot] = why
            # A picture left from an earlier report would contradict the table.
            path.unlink(missing_ok=True)
            continue
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
        drawer(ax, data, report)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI, metadata={"Software": None})
        plt.close(fig)
        notes[plot] = None
    return notes


def _subtitle(report: dict) -> str:
    return f"report {report['stamp']} · {', '.join(Path(s).name for s in report['sources'])}"


def _draw_throughput(ax, bars, report):
    colors = {"bare_actix_closed": "#7f7f7f", "nginx_closed": "#bcbd22",
              "hot_l1_closed": "#1f77b4", "hot_counting_off_closed": "#9ecae1", "edge_closed": "#9467bd",
              "bare_actix_zipf_closed": "#7f7f7f", "zipf_closed": "#2ca02c"}
    # A gap between the groups: they ran different wrk scripts.
    xs, x = [], 0.0
    for i, b in enumerate(bars):
        if i and b["group"] != bars[i - 1]["group"]:
            x += 0.6
        xs.append(x)
        x += 1
    values = [b["req_per_sec"] for b in bars]
    ax.bar(xs, values, color=[colors[b["key"]] for b in bars], width=0.6)
    for x, b in zip(xs, bars):
        if b["runs"]:
            lo, hi = min(b["runs"]), max(b["runs"])
            ax.errorbar(x, b["req_per_sec"], yerr=[[b["req_per_sec"] - lo], [hi - b["req_per_sec"]]],
                        color="black", capsize=6, lw=1)
        ax.text(x, b["req_per_sec"] * 0.5, f"{b['req_per_sec']:,.0f}\nreq/s", ha="center", va="center",
                color="white", fontweight="bold")
        if b["ratio_text"]:
            ax.text(x, max(b["runs"] or [b["req_per_sec"]]) * 1.02, b["ratio_text"], ha="center", va="bottom",
                    fontweight="bold", bbox={"boxstyle": "round", "fc": "white", "ec": "#999999"})
    scen = report["scenarios"]
    bare, nginx = scen["bare_actix_closed"]["req_per_sec"], scen["nginx_closed"]["req_per_sec"]
    hot_xs = [x for x, b in zip(xs, bars) if b["group"] == "hot"]
    # The goals are about the hot codes: their lines stop at that group.
    left, right = min(hot_xs) - 0.45, max(hot_xs) + 0.45
    ax.hlines(0.9 * bare, left, right, color="#d62728", ls="--", lw=1.5,
              label="goal: 0.9 × bare actix-web (median req/s)")
    ax.hlines(0.8 * nginx, left, right, color="#ff7f0e", ls=":", lw=2, label="goal: 0.8 × nginx (median req/s)")
    zipf_xs = [x for x, b in zip(xs, bars) if b["group"] == "zipf"]
    # Room above the bars for the group captions and the legend.
    top = max(max(b["runs"] or [b["req_per_sec"]]) for b in bars) * (1.45 if zipf_xs else 1.2)
    if zipf_xs:
        ax.axvline((max(hot_xs) + min(zipf_xs)) / 2, color="#999999", lw=1)
        ax.text((min(hot_xs) + max(hot_xs)) / 2, top * 0.97, "hot codes, cycled (all L1 hits)",
                ha="center", va="top", color="#555555", fontstyle="italic")
        ax.text((min(zipf_xs) + max(zipf_xs)) / 2, top * 0.97, "Zipf mix (same\nwrk script for both)",
                ha="center", va="top", color="#555555", fontstyle="italic")
    ax.set_xticks(xs, [b["label"] for b in bars])
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylabel("requests per second (req/s)")
    ax.set_ylim(0, top)
    ax.yaxis.set_major_formatter(_thousands())
    ax.set_title("Redirect throughput, closed loop (wrk, 1 server worker on core 0)\n"
                 "bars: median round · whiskers: min-max of rounds · ratio: median of per-round ratios")
    if zipf_xs:
        from matplotlib.transforms import blended_transform_factory

        # Centred over the hot group (x in data), under its caption (y in axes).
        ax.legend(loc="upper center", bbox_to_anchor=((left + right) / 2, 0.91),
                  bbox_transform=blended_transform_factory(ax.transData, ax.transAxes))
    else:
        ax.legend(loc="upper right")
    _footer(ax, report)


def _draw_latency(ax, rows, report):
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    x = np.arange(len(rows))
    width = 0.26
    series = (("p50", "p50", "#9ecae1"), ("p99", "p99", "#3182bd"), ("p99_9", "p99.9", "#08519c"))
    for i, (field, label, color) in enumerate(series):
        vals = [r[field] if r[field] is not None else np.nan for r in rows]
        pos = x + (i - 1) * width
        ax.bar(pos, vals, width, label=label, color=color)
        for p, v in zip(pos, vals):
            if not np.isnan(v):
                ax.text(p, v * 1.08, _fmt_num(v, 2), ha="center", va="bottom", fontsize=8)
    first = True
    for xi, r in zip(x, rows):
        if r["goal_ms"] is not None:
            ax.hlines(r["goal_ms"], xi - 1.6 * width, xi + 1.6 * width, colors="#d62728", linestyles="--", lw=2,
                      label="goal: p99 at most" if first else None)
            ax.text(xi + 1.6 * width, r["goal_ms"], f" {r['goal_ms']:g} ms", color="#d62728", va="center",
                    fontsize=9)
            first = False
    ax.set_yscale("log")
    lows = [r[f] for r in rows for f in ("p50", "p99", "p99_9") if r[f] is not None]
    ax.set_ylim(min(lows) / 2, max(lows + [r["goal_ms"] or 0 for r in rows]) * 2)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xticks(x, [r["label"] for r in rows])
    if len(rows) > 6:
        ax.tick_params(axis="x", labelsize=9)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Open-loop redirect latency (oha, latency-corrected: measured from each request's scheduled time)")
    ax.legend(loc="upper left")
    _footer(ax, report)


def _draw_rounds(ax, data, report):
    n = len(data["hot_vs_bare_actix"])
    xs = list(range(1, n + 1))
    ax.plot(xs, data["hot_vs_bare_actix"], "o-", color="#1f77b4", lw=2, ms=8,
            label=f"lookup ÷ bare actix-web (median {data['median_vs_bare_actix']:.3f})")
    ax.plot(xs, data["hot_vs_nginx"], "s-", color="#2ca02c", lw=2, ms=8,
            label=f"lookup ÷ nginx (median {data['median_vs_nginx']:.3f})")
    ax.axhline(0.9, color="#1f77b4", ls="--", lw=1.5, label="goal vs bare actix-web: 0.9")
    ax.axhline(0.8, color="#2ca02c", ls=":", lw=2, label="goal vs nginx: 0.8")
    for x, a, b in zip(xs, data["hot_vs_bare_actix"], data["hot_vs_nginx"]):
        # The higher point's label goes above and the lower one's below, so close
        # values stay legible.
        up_a = a >= b
        ax.annotate(f"{a:.3f}", (x, a), textcoords="offset points", xytext=(0, 9 if up_a else -18), ha="center",
                    color="#1f77b4", fontweight="bold")
        ax.annotate(f"{b:.3f}", (x, b), textcoords="offset points", xytext=(0, -18 if up_a else 9), ha="center",
                    color="#2ca02c", fontweight="bold")
    values = data["hot_vs_bare_actix"] + data["hot_vs_nginx"] + [0.8, 0.9]
    ax.set_ylim(min(values) - 0.08, max(values) + 0.08)
    ax.set_xticks(xs)
    ax.set_xlim(0.5, n + 0.5)
    ax.set_xlabel("closed-loop round (servers interleaved within each round)")
    ax.set_ylabel("ratio of req/s (lookup L1 hit ÷ reference)")
    ax.set_title("Hot redirect vs references, per round")
    ax.legend(loc="lower right")
    _footer(ax, report)


def _draw_creates(ax, data, report):
    import numpy as np

    levels = data["levels"]
    x = np.arange(len(levels))
    width = 0.38
    svc = [lv["creates_per_sec"] or 0 for lv in levels]
    pg = [lv["pgbench_tps_same_connections"] or np.nan for lv in levels]
    ax.bar(x - width / 2, svc, width, color="#1f77b4", label="create-service, creates/s (wrk)")
    ax.bar(x + width / 2, pg, width, color="#bdbdbd", label="pgbench single-row INSERT, tps (same connections)")
    for xi, v in zip(x, svc):
        ax.text(xi - width / 2, v * 1.01, f"{v:,.0f}", ha="center", va="bottom", fontweight="bold")
    for xi, v in zip(x, pg):
        if not np.isnan(v):
            ax.text(xi + width / 2, v * 1.01, f"{v:,.0f}", ha="center", va="bottom")
    ceiling = data["ceiling"]
    ax.axhline(ceiling, color="black", lw=1.5, label=f"pgbench ceiling {ceiling:,.0f} tps")
    ax.axhline(0.7 * ceiling, color="#d62728", ls="--", lw=1.5, label=f"goal: 0.7 × ceiling = {0.7 * ceiling:,.0f}/s")
    ax.axhline(5000, color="#ff7f0e", ls=":", lw=2, label="goal: 5,000 creates/s")
    ax.set_xticks(x, [f"{_fmt_num(lv['connections'])} connections" for lv in levels])
    ax.set_xlabel("client connections")
    ax.set_ylabel("durable creates per second (creates/s, tps)")
    ax.yaxis.set_major_formatter(_thousands())
    ax.set_ylim(0, max(svc + [ceiling] + [v for v in pg if not np.isnan(v)]) * 1.2)
    title = "Durable creates vs the pgbench INSERT ceiling (PostgreSQL 15, fsync on)"
    if data.get("ratio") is not None:
        title += f"\nbest level: {data['ratio']:.3f}× the ceiling"
    ax.set_title(title)
    ax.legend(loc="upper left")
    _footer(ax, report)


def _draw_scale(ax, data, report):
    from matplotlib.ticker import FuncFormatter, NullFormatter

    styles = {"hot": ("o-", "#1f77b4", "hot (L1 hits)"), "cold": ("s-", "#d62728", "cold (replica reads)")}
    all_links = [p["links"] for p in data["points"]]
    lo, hi = min(all_links) / 1.6, max(all_links) * 1.6
    values = []
    for tier, d in data["tiers"].items():
        marker, color, what = styles[tier]
        rate = f" @ {fmt_rate(d['rate'])} req/s" if d["rate"] is not None else ""
        ax.plot(d["links"], d["p99"], marker, color=color, lw=2, ms=8, label=f"{what} p99{rate}")
        values += d["p99"]
        if d["base"] is not None:
            ax.fill_between([lo, hi], d["base"] * (1 - SCALE_TOLERANCE), d["base"] * (1 + SCALE_TOLERANCE),
                            color=color, alpha=0.12, lw=0,
                            label=f"±{SCALE_TOLERANCE * 100:g}% of the {tier} p99 at {_fmt_num(all_links[0])} links")
            values.append(d["base"] * (1 + SCALE_TOLERANCE))
        for x, y, rel, flagged in zip(d["links"], d["p99"], d["vs_smallest"], d["flagged"]):
            text = f"{_fmt_num(y, 2)} ms"
            if rel is not None:
                text += f" ({rel:.3f}×)"
            if flagged:
                text += "\nrate not held or not all 302"
            # A backdrop keeps the figure legible where a line or the band runs behind it.
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 10), ha="center", color=color,
                        fontweight="bold", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none",
                                                 "alpha": 0.8})
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, max(values) * 1.35)
    ax.set_xticks(all_links)
    labels = []
    for p in data["points"]:
        label = f"{_fmt_num(p['links'])}"
        if p.get("table_mb") is not None:
            label += f"\n{_fmt_num(p['table_mb'], 1)} MiB table"
        labels.append(label)
    ax.set_xticklabels(labels)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("stored links (log scale; a fresh database per size, loaded with COPY)")
    ax.set_ylabel("p99 latency (ms)")
    title = "Redirect p99 as stored links grow (oha open loop, latency-corrected)"
    if data.get("deviation") is not None:
        title += (f"\nlargest deviation from the smallest size: {data['deviation'] * 100:.1f}% "
                  f"(goal: within ±{SCALE_TOLERANCE * 100:g}%)")
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=2)
    _footer(ax, report)


def _thousands():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:,.0f}")


def _footer(ax, report):
    ax.annotate(_subtitle(report), xy=(1, 0), xycoords="figure fraction", xytext=(-6, 4),
                textcoords="offset points", ha="right", va="bottom", fontsize=8, color="#666666")


# ---------------------------------------------------------------------------
# Command line


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path.resolve())


def default_inputs(results: Path) -> list[Path]:
    return [p for p in (results / f"{k}-latest.json" for k in KINDS) if p.is_file()]


def identical_stamped(path: Path) -> str | None:
    """For a *-latest.json, the timestamped result it is a copy of, which is what a
    later reader can still find once -latest moves on."""
    m = re.fullmatch(r"(redirect|creates|clicks)-latest\.json", path.name)
    if not m:
        return None
    content = path.read_bytes()
    for other in sorted(path.parent.glob(f"{m.group(1)}-*.json"), reverse=True):
        if other.name != path.name and other.read_bytes() == content:
            return other.name
    return None


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help="where the default inputs are read and the report is written (default: bench/results)")
    p.add_argument("--out-json", type=Path, help="write the combined JSON here only (not <stamp>.json, latest.json)")
    p.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="where latest.md and the plots go (default: docs/perf)")
    p.add_argument("--stamp", help="UTC timestamp %%Y%%m%%dT%%H%%M%%SZ naming the report (default: now)")
    p.add_argument("inputs", nargs="*", type=Path, help="result files (default: the *-latest.json in --results)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    stamp = args.stamp or dt.datetime.now(dt.timezone.utc).strftime(STAMP_FORMAT)
    try:
        if dt.datetime.strptime(stamp, STAMP_FORMAT).strftime(STAMP_FORMAT) != stamp:
            raise ValueError
    except ValueError:
        print(f"bench/report: --stamp {stamp!r} is not a UTC timestamp like 20261202T050937Z", file=sys.stderr)
        return 2

    inputs = args.inputs or default_inputs(args.results)
    if not inputs:
        print(f"bench/report: no inputs given and no *-latest.json in {args.results}", file=sys.stderr)
        return 2
    try:
        sources = []
        for path in inputs:
            name = display_path(path)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"{name}: cannot read: {e}") from None
            sources.append(parse_source(name, text))
        report = build_report(sources, stamp, shlex.join(["bench/report"] + list(argv)))
    except InputError as e:
        print(f"bench/report: malformed input: {e}", file=sys.stderr)
        return 1
    for path, src in zip(inputs, sources):
        same = identical_stamped(path)
        if same:
            report["source_details"][src.name]["same_as"] = same

    if args.out_json:
        targets = [args.out_json]
    else:
        args.results.mkdir(parents=True, exist_ok=True)
        targets = [args.results / f"{stamp}.json", args.results / "latest.json"]

    args.docs.mkdir(parents=True, exist_ok=True)
    notes = draw_plots(report, args.docs)
    report["plots"] = {plot: (None if notes[plot] else display_path(args.docs / f)) for plot, f in PLOT_FILES.items()}
    report["plots_skipped"] = {plot: why for plot, why in notes.items() if why}
    md = markdown(report, notes, [display_path(t) for t in targets])
    (args.docs / "latest.md").write_text(md, encoding="utf-8")

    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    for target in targets:
        target.write_text(text, encoding="utf-8")

    for w in report["warnings"]:
        print(f"bench/report: warning: {w}", file=sys.stderr)
    print(f"wrote {', '.join(display_path(t) for t in targets)} and {display_path(args.docs / 'latest.md')}")
    for g in report["goals"]:
        print(f"  {met_text(g['met']).strip('*'):7} {g['name']}: {g['figure']}")
    for plot, why in notes.items():
        if why:
            print(f"  plot {plot} skipped: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
