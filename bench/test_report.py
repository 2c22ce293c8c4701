"""Tests of bench/report.py's mapping (no matplotlib needed):

    python3 -m unittest discover -s bench -p 'test_report.py'
"""

import contextlib
import copy
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402


def closed(req, p99, runs=None):
    return {"req_per_sec": req, "runs_req_per_sec": runs or [req],
            "latency_ms": {"p50": 0.2, "p99": p99, "p99_9": 9.0}, "all_redirects": True}


def opened(rate, p99, achieved=None, p99_9=5.0):
    return {"target_rate": rate, "achieved_rate": achieved if achieved is not None else rate - 1,
            "latency_ms": {"p50": 0.2, "p90": 0.4, "p99": p99, "p99_9": p99_9}, "all_redirects": True}


# Figures chosen so that each ratio differs from anything computable from the
# req/s (1000/1250 = 0.8, not 0.85): the report must copy, not recompute.
REDIRECT = {
    "timestamp_utc": "20260101T000000Z",
    "quick": False,
    "machine": {"nproc": 2},
    "settings": {"closed_loop_repeats": 3, "closed_loop_duration_s": 10, "connections": 32},
    "hot_redirect_vs_bare_actix": 0.85,
    "hot_redirect_vs_nginx": 0.95,
    "ratios": {"hot_vs_bare_actix_per_round": [0.8, 0.85, 0.9], "hot_vs_nginx_per_round": [0.9, 0.95, 1.0]},
    "references": {
        "bare_actix": {"closed_loop": closed(1250, 2.0), "open_loop": opened(10000, 0.9)},
        "nginx": {"closed_loop": closed(1100, 1.5), "open_loop": opened(10000, 0.8)},
    },
    "scenarios": {
        "hot": {"closed_loop": closed(1000, 2.5), "open_loop": opened(10000, 0.95)},
        "l2_only": {"closed_loop": closed(300, 7.0), "open_loop": opened(2000, 2.5)},
        "replica_only": {"closed_loop": closed(200, 9.0), "open_loop": opened(2000, 4.0)},
    },
    "diagnostics": {"hot_clicks_off": {"closed_loop": closed(1020, 2.4)},
                    "counting_on_vs_off_per_round": [0.97, 0.98, 0.99], "counting_throughput_cost": 0.02},
    "rss": {"idle_kb": 10000, "idle_mb": 10.24, "after_warm_kb": 400000, "after_warm_mb": 409.6,
            "links_warmed": 500000, "l1_entries": 500000, "rss_bytes_per_entry": 799},
    "goals": [{"goal": "hot redirect >= 0.9x bare actix-web req/s", "target": 0.9, "value": 0.85, "met": False}],
    "commands": {"wrk": "wrk -t1 -c32"},
}

CREATES = {
    "timestamp_utc": "20260101T010000Z",
    "pgbench_ceiling_tps": 10000.0,
    "pgbench_ceiling_connections": 32,
    "pgbench_insert": [{"connections": 8, "tps": 9000.0, "latency_avg_ms": 0.9},
                       {"connections": 32, "tps": 10000.0, "latency_avg_ms": 3.2}],
    "creates_per_sec": 6000.0,
    "creates_best_connections": 32,
    "creates_latency_ms": {"p50": 2.0, "p99": 5.0},
    "creates": [{"connections": 8, "creates_per_sec": 4000.0, "latency_ms": {"p50": 1.0, "p99": 2.0}},
                {"connections": 32, "creates_per_sec": 6000.0, "latency_ms": {"p50": 2.0, "p99": 5.0}}],
    "ratio_creates_to_pgbench": 0.6,
    "goal": {"creates_per_sec_min": 5000, "ratio_min": 0.7, "met": False},
    "snowflake": {"next_id_ns": 240.0, "ids_per_sec": 4100000.0},
    "codec": {"encode_ns": 60.0, "decode_ns": 70.0},
    "commands": {"wrk": "wrk -t2 -c C"},
}

CLICKS = {
    "commit": "abc1234",
    "machine": "2 cores",
    "command": "bench/clicks",
    "apply": {"clicks": 1000, "clicks_per_s": 90000, "counters_exact": True},
    "lag": {"target_rate": 10000, "achieved_rate": 9990, "exact": True,
            "delay_s": {"mean": 0.4, "p50_at_most": 0.5, "p99_at_most": 1}},
}


def src(name, data):
    return report.parse_source(name, json.dumps(data))


def build(*pairs, stamp="20260102T030405Z"):
    return report.build_report([src(n, d) for n, d in pairs], stamp, "bench/report")


def goal(rep, gid):
    return next(g for g in rep["goals"] if g["id"] == gid)


class DetectKind(unittest.TestCase):
    def test_kind_comes_from_content_not_name(self):
        self.assertEqual(src("redirect-latest.json", CREATES).kind, "creates")
        self.assertEqual(src("x.json", REDIRECT).kind, "redirect")
        self.assertEqual(src("x.json", CLICKS).kind, "clicks")

    def test_unknown_and_combined_are_rejected(self):
        with self.assertRaisesRegex(report.InputError, "not a benchmark result"):
            src("x.json", {"foo": 1})
        combined = build(("r.json", REDIRECT))
        with self.assertRaisesRegex(report.InputError, "combined report"):
            src("latest.json", combined)

    def test_malformed_json_and_types(self):
        with self.assertRaisesRegex(report.InputError, "not valid JSON"):
            report.parse_source("x.json", "{oops")
        with self.assertRaisesRegex(report.InputError, "top level"):
            report.parse_source("x.json", "[]")
        bad = copy.deepcopy(REDIRECT)
        bad["scenarios"]["hot"]["open_loop"]["latency_ms"]["p99"] = "1 ms"
        with self.assertRaisesRegex(report.InputError, r"scenarios\.hot\.open_loop\.latency_ms\.p99"):
            build(("r.json", bad))
        bad = copy.deepcopy(CREATES)
        bad["creates_per_sec"] = True
        with self.assertRaisesRegex(report.InputError, "creates_per_sec: expected a number"):
            build(("c.json", bad))

    def test_two_results_of_one_kind(self):
        with self.assertRaisesRegex(report.InputError, "more than one clicks"):
            build(("a.json", CLICKS), ("b.json", CLICKS))


class Mapping(unittest.TestCase):
    def setUp(self):
        self.rep = build(("r.json", REDIRECT), ("c.json", CREATES), ("k.json", CLICKS))
        self.scen = self.rep["scenarios"]

    def test_top_level(self):
        for key in ("hot_redirect_vs_bare_actix", "hot_redirect_vs_nginx", "generated_at", "sources",
                    "machine", "scenarios", "goals"):
            self.assertIn(key, self.rep)
        self.assertEqual(self.rep["hot_redirect_vs_bare_actix"], 0.85)
        self.assertEqual(self.rep["hot_redirect_vs_nginx"], 0.95)
        self.assertEqual(self.rep["generated_at"], "2026-01-02T03:04:05Z")
        self.assertEqual(self.rep["sources"], ["r.json", "c.json", "k.json"])
        self.assertEqual(self.rep["machine"], {"nproc": 2})
        self.assertEqual(self.rep["source_details"]["c.json"]["commands"], {"wrk": "wrk -t2 -c C"})
        self.assertEqual(self.rep["source_details"]["k.json"]["command"], "bench/clicks")

    def test_scenarios_and_references(self):
        hot = self.scen["hot_l1_closed"]
        self.assertEqual((hot["req_per_sec"], hot["p99_ms"], hot["p99_9_ms"]), (1000, 2.5, 9.0))
        self.assertEqual(hot["reference"]["scenario"], "bare_actix_closed")
        self.assertEqual(hot["reference"]["req_per_sec"], 1250)
        self.assertEqual(hot["reference"]["p99_ms"], 2.0)
        self.assertEqual(hot["reference"]["ratio"], 0.85)
        self.assertEqual(self.scen["nginx_closed"]["reference"]["scenario"], "bare_actix_closed")
        self.assertEqual(self.scen["l2_only_open"]["reference"]["scenario"], "bare_actix_open")
        self.assertIn("2000 req/s", self.scen["l2_only_open"]["reference"]["note"])
        for key in ("hot_l1_open", "hot_counting_off_closed", "l2_only_closed", "replica_only_open",
                    "bare_actix_open", "nginx_open", "creates", "stats_apply", "click_queue_delay",
                    "snowflake_ids", "code_encode", "code_decode", "rss_idle", "rss_with_links"):
            self.assertIn(key, self.scen)
            for field in ("req_per_sec", "p50_ms", "p99_ms", "p99_9_ms", "reference"):
                self.assertIn(field, self.scen[key], key)

    def test_creates_levels_and_missing_p99_9(self):
        cr = self.scen["creates"]
        self.assertIsNone(cr["p99_9_ms"])
        self.assertEqual(cr["reference"]["req_per_sec"], 10000.0)
        self.assertEqual([lv["pgbench_tps_same_connections"] for lv in cr["levels"]], [9000.0, 10000.0])
        self.assertEqual(self.scen["code_decode"]["ns"], 70.0)

    def test_goals(self):
        met = {g["id"]: g["met"] for g in self.rep["goals"]}
        self.assertEqual(met, {
            "hot_vs_bare_actix": False, "hot_vs_nginx": True, "hot_p99_open": True, "l2_p99_open": False,
            "replica_p99_open": True, "creates_rate": True, "creates_vs_pgbench": False, "snowflake": True,
            "counting_overhead": True, "rss_1m": False, "rss_idle": True, "stats_apply": False,
            "queue_delay": True,
        })
        self.assertEqual(goal(self.rep, "hot_vs_nginx")["reference"]["scenario"], "nginx_closed")
        self.assertEqual(goal(self.rep, "hot_vs_bare_actix")["source_goal"]["met"], False)
        self.assertEqual(self.rep["warnings"], [])

    def test_rss_scaled_to_one_million(self):
        g = goal(self.rep, "rss_1m")
        # idle 10000 KiB + (390000 KiB / 500k entries) x 1M, in 10^6 bytes
        self.assertAlmostEqual(g["value"], (10000 * 1024 + 390000 * 1024 * 2) / 1e6, places=3)
        self.assertIn("scaled", g["figure"])
        self.assertIn("500,000", g["figure"])
        full = report.rss_at_one_million(10000, 700000, 1_000_000, 716.8)
        self.assertEqual(full, {"rss_mb_at_1m": 716.8, "rss_mb_at_1m_basis": "measured"})

    def test_open_loop_rate_not_held_fails(self):
        data = copy.deepcopy(REDIRECT)
        data["scenarios"]["hot"]["open_loop"]["achieved_rate"] = 9000
        g = goal(build(("r.json", data)), "hot_p99_open")
        self.assertFalse(g["met"])
        self.assertIn("rate not held", g["figure"])

    def test_queue_delay_bucket_bound_at_goal_is_unknown(self):
        data = copy.deepcopy(CLICKS)
        data["lag"]["delay_s"]["p99_at_most"] = 2.5
        self.assertIsNone(goal(build(("k.json", data)), "queue_delay")["met"])

    def test_missing_sources_give_unknown_goals(self):
        rep = build(("k.json", CLICKS))
        self.assertIsNone(rep["hot_redirect_vs_bare_actix"])
        self.assertIsNone(goal(rep, "snowflake")["met"])
        self.assertIsNone(goal(rep, "hot_p99_open")["met"])
        self.assertEqual(rep["machine"], "2 cores")
        old = copy.deepcopy(REDIRECT)
        del old["ratios"], old["diagnostics"]["counting_throughput_cost"]
        rep = build(("r.json", old))
        self.assertIsNone(goal(rep, "counting_overhead")["met"])
        self.assertEqual(report.rounds_data(rep)[0], None)

    def test_source_disagreement_is_reported(self):
        data = copy.deepcopy(REDIRECT)
        data["goals"][0]["met"] = True
        self.assertEqual(len(build(("r.json", data))["warnings"]), 1)


class Output(unittest.TestCase):
    def test_markdown(self):
        rep = build(("r.json", REDIRECT), ("c.json", CREATES))
        md = report.markdown(rep, {"throughput": None, "latency": None, "rounds": None,
                                   "creates": "no creates result"})
        first = md.splitlines()[0]
        self.assertIn("`bench/report`", first)
        self.assertIn("`r.json`", first)
        self.assertIn("`c.json`", first)
        self.assertIn("| what | figure | reference in the same run | goal | met |", md)
        self.assertIn("`creates.png` not drawn: no creates result", md)
        self.assertIn("![rounds](rounds.png)", md)

    def test_plot_data(self):
        rep = build(("r.json", REDIRECT), ("c.json", CREATES))
        bars, _ = report.throughput_data(rep)
        self.assertEqual([b["key"] for b in bars],
                         ["bare_actix_closed", "nginx_closed", "hot_l1_closed", "hot_counting_off_closed"])
        self.assertIn("0.850×", bars[2]["ratio_text"])
        rows, _ = report.latency_data(rep)
        self.assertEqual({r["key"]: r["goal_ms"] for r in rows}["l2_only_open"], 2)
        self.assertEqual(report.creates_data(rep)[0]["ceiling"], 10000.0)
        self.assertIsNone(report.creates_data(build(("r.json", REDIRECT)))[0])

    def test_main_rejects_malformed_input(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = Path(tmp) / "creates-latest.json"
            bad.write_text('{"pgbench_ceiling_tps": "high"}')
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = report.main(["--out-json", str(Path(tmp) / "out.json"), "--docs", tmp, str(bad)])
            self.assertEqual(rc, 1)
            self.assertIn("pgbench_ceiling_tps: expected a number", err.getvalue())
            self.assertFalse((Path(tmp) / "out.json").exists())
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(report.main(["--stamp", "yesterday", str(bad)]), 2)

    def test_mapping_does_not_import_matplotlib(self):
        self.assertNotIn("matplotlib", sys.modules)


if __name__ == "__main__":
    unittest.main()
