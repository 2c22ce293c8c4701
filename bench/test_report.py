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

def scale_point(links, hot_p99, cold_p99, copy_s=1, table_mb=2.5):
    hot = dict(opened(10000, hot_p99), server=f"scale-hot-{links}")
    cold = dict(opened(2000, cold_p99), server=f"scale-cold-{links}")
    return {"links": links, "copy_s": copy_s, "replicated_s": copy_s + 1, "table_mb": table_mb,
            "hot": hot, "cold": cold}


def with_new_sections(base=None):
    """A redirect result with the edge, Zipf and scale sections, shaped as
    bench/redirect writes them. Ratios again differ from the req/s and p99 they
    would be computed from (330/1100 = 0.3, not 0.31; 1.05/1.0 = 1.05, not 1.049)."""
    data = copy.deepcopy(base or REDIRECT)
    data["scenarios"]["edge"] = {"closed_loop": closed(330, 2.4), "open_loop": opened(10000, 7.2)}
    data["edge"] = {"note": "wrk -> nginx (edge config) -> lookup-service",
                    "edge_vs_nginx": 0.31, "edge_vs_nginx_per_round": [0.29, 0.31, 0.33],
                    "edge_vs_direct": 0.34, "edge_vs_direct_per_round": [0.33, 0.34, 0.35]}
    zipf_closed = closed(675, 4.5)
    zipf_closed.update({"requests": 2000, "tiers": {"l1_hits": 1942, "l2_hits": 46, "replica_queries": 12,
                                                    "primary_queries": 0}})
    data["scenarios"]["zipf"] = {"closed_loop": zipf_closed, "open_loop": opened(10000, 1.65)}
    data["zipf"] = {
        "note": "codes drawn per request with P(rank r) ~ 1/r^s",
        "exponent": 1, "links": 19000, "draws_for_oha": 300000, "warmup_s": 3,
        "best_possible_hits": "zipf: 300000 draws over 19000 links (exponent 1), top 1000: 71.8%",
        "reference_bare_actix": {"closed_loop": closed(1280, 1.3), "open_loop": None},
        "zipf_vs_bare_actix": 0.55, "zipf_vs_bare_actix_per_round": [0.5, 0.55, 0.6],
        "hit_ratio_closed_loop": {"l1": 0.971, "l2": 0.023, "database": 0.006},
        "hit_ratio_open_loop": {"l1": 0.984, "l2": 0.013, "database": 0.003},
        "l1_entries_after": 17118, "rss_kb_after": 38164,
    }
    data["scale"] = {
        "note": "per size: a fresh database loaded with COPY",
        "sizes": [10000, 1000000, 10000000], "cold_codes_per_size": 20000,
        "points": [scale_point(10000, 1.0, 3.0, 0, 2.1), scale_point(1000000, 1.05, 3.2, 4, 160.4),
                   scale_point(10000000, 1.08, 3.25, 41, 1603.9)],
        "hot_p99_vs_smallest": [1, 1.049, 1.079], "cold_p99_vs_smallest": [1, 1.067, 1.083],
        "largest_p99_deviation": 0.083,
    }
    data["goals"].append({"goal": "hot and cold p99 within +-10% from 10000 to 10000000 links", "target": 0.1,
                          "value": 0.083, "met": True})
    return data


NEW_KEY_PREFIXES = ("edge_", "zipf_", "scale", "bare_actix_zipf")

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


COMMITTED_OLD = Path(__file__).resolve().parent / "results" / "redirect-20261202T050937Z.json"


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
            "queue_delay": True, "scale_flatness": None,
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


class NewRedirectSections(unittest.TestCase):
    def setUp(self):
        self.rep = build(("r.json", with_new_sections()))
        self.scen = self.rep["scenarios"]

    def test_edge(self):
        edge = self.scen["edge_closed"]
        self.assertEqual(edge["label"], "lookup through nginx (edge config), closed loop")
        self.assertEqual((edge["req_per_sec"], edge["p99_ms"]), (330, 2.4))
        self.assertEqual(edge["reference"]["scenario"], "nginx_closed")
        self.assertEqual(edge["reference"]["ratio"], 0.31)
        direct = edge["also_compared_with"][0]
        self.assertEqual((direct["scenario"], direct["ratio"]), ("hot_l1_closed", 0.34))
        self.assertEqual(edge["rounds"]["edge_vs_nginx"], [0.29, 0.31, 0.33])
        self.assertEqual(self.scen["edge_open"]["reference"]["scenario"], "nginx_open")
        self.assertEqual(self.scen["edge_open"]["p99_ms"], 7.2)

    def test_zipf(self):
        ref = self.scen["bare_actix_zipf_closed"]
        self.assertEqual(ref["req_per_sec"], 1280)
        zc = self.scen["zipf_closed"]
        self.assertEqual(zc["label"], "lookup Zipf mix over 19,000 links (s=1), closed loop")
        self.assertEqual(zc["reference"]["scenario"], "bare_actix_zipf_closed")
        self.assertEqual((zc["reference"]["req_per_sec"], zc["reference"]["ratio"]), (1280, 0.55))
        self.assertEqual(zc["hit_ratio"], {"l1": 0.971, "l2": 0.023, "database": 0.006})
        self.assertEqual(zc["zipf"]["l1_entries_after"], 17118)
        zo = self.scen["zipf_open"]
        self.assertEqual(zo["reference"]["scenario"], "bare_actix_open")
        self.assertEqual(zo["hit_ratio"]["l1"], 0.984)

    def test_scale(self):
        keys = [k for k in self.scen if k.startswith("scale_")]
        self.assertEqual(keys, ["scale_hot_10000", "scale_hot_1000000", "scale_hot_10000000",
                                "scale_cold_10000", "scale_cold_1000000", "scale_cold_10000000"])
        hot = self.scen["scale_hot_1000000"]
        self.assertEqual(hot["label"], "scale: hot (L1) p99 at 1,000,000 links")
        self.assertEqual((hot["links"], hot["copy_s"], hot["table_mb"], hot["p99_ms"]), (1000000, 4, 160.4, 1.05))
        self.assertEqual(hot["reference"]["scenario"], "scale_hot_10000")
        self.assertEqual(hot["reference"]["ratio"], 1.049)
        self.assertIn("latency, not req/s", report.reference_text(hot["reference"]))
        self.assertEqual(self.scen["scale_cold_10000000"]["reference"]["ratio"], 1.083)
        self.assertIsNone(self.scen["scale_hot_10000"]["reference"]["name"])
        self.assertEqual(self.scen["scale"]["reference"]["cold_p99_ms"], 3.0)

    def test_flatness_goal_met(self):
        g = goal(self.rep, "scale_flatness")
        self.assertIs(g["met"], True)
        self.assertEqual((g["value"], g["target"]), (0.083, 0.1))
        self.assertIn("10,000 to 10,000,000 links", g["name"])
        self.assertEqual(g["source_goal"]["met"], True)
        self.assertEqual(self.rep["warnings"], [])
        # The other goals keep their verdicts.
        self.assertIs(goal(self.rep, "hot_vs_bare_actix")["met"], False)
        self.assertIs(goal(self.rep, "hot_p99_open")["met"], True)

    def test_flatness_goal_not_met(self):
        data = with_new_sections()
        data["scale"]["largest_p99_deviation"] = 0.2
        self.assertIs(goal(build(("r.json", data)), "scale_flatness")["met"], False)
        data = with_new_sections()
        data["scale"]["points"][2]["cold"]["achieved_rate"] = 1500
        g = goal(build(("r.json", data)), "scale_flatness")
        self.assertIs(g["met"], False)
        self.assertIn("cold rate not held at 10,000,000 links", g["figure"])
        data = with_new_sections()
        data["scale"]["points"][1]["hot"]["all_redirects"] = False
        self.assertIs(goal(build(("r.json", data)), "scale_flatness")["met"], False)

    def test_flatness_goal_missing_or_one_size(self):
        g = goal(build(("r.json", REDIRECT)), "scale_flatness")
        self.assertIsNone(g["met"])
        self.assertIsNone(g["value"])
        self.assertIn("no scale section", g["figure"])
        data = with_new_sections()
        data["scale"]["largest_p99_deviation"] = None
        self.assertIsNone(goal(build(("r.json", data)), "scale_flatness")["met"])
        data = with_new_sections()
        data["scale"]["points"] = data["scale"]["points"][:1]
        data["scale"]["largest_p99_deviation"] = 0
        g = goal(build(("r.json", data)), "scale_flatness")
        self.assertIsNone(g["met"])
        self.assertIn("one size", g["note"])

    def test_scale_nulls_and_malformed_points(self):
        data = with_new_sections()
        data["scale"]["hot_p99_vs_smallest"] = [None, None, None]
        hot = build(("r.json", data))["scenarios"]["scale_hot_1000000"]
        self.assertIsNone(hot["p99_vs_smallest"])
        self.assertNotIn("ratio", hot["reference"])
        del data["scale"]["points"][1]["links"]
        with self.assertRaisesRegex(report.InputError, r"scale\.points\.1\.links: expected a number"):
            build(("r.json", data))

    def test_old_format_has_no_new_scenarios(self):
        rep = build(("r.json", REDIRECT), ("c.json", CREATES))
        self.assertEqual([k for k in rep["scenarios"] if k.startswith(NEW_KEY_PREFIXES)], [])
        self.assertIsNone(report.scale_data(rep)[0])
        self.assertEqual(rep["warnings"], [])

    @unittest.skipUnless(COMMITTED_OLD.is_file(), "committed result not present")
    def test_committed_old_format_result(self):
        rep = report.build_report([report.parse_source("old.json", COMMITTED_OLD.read_text())], "20260102T030405Z",
                                  "bench/report")
        self.assertIn("hot_l1_closed", rep["scenarios"])
        self.assertEqual([k for k in rep["scenarios"] if k.startswith(NEW_KEY_PREFIXES)], [])
        self.assertIsNone(goal(rep, "scale_flatness")["met"])
        self.assertEqual(rep["warnings"], [])

    def test_markdown_rows_and_sections(self):
        md = report.markdown(self.rep, {plot: None for plot in report.PLOT_FILES})
        for text in ("| lookup through nginx (edge config), closed loop | 330 req/s",
                     "· also lookup L1 hit (hot), closed loop: 1,000 req/s, p99 2.5 ms; ratio 0.340×",
                     "| lookup Zipf mix over 19,000 links (s=1), open loop |",
                     "| bare actix-web fixed 302, Zipf wrk script, closed loop |",
                     "| scale: hot and cold p99 from 10,000 to 10,000,000 stored links | largest deviation 8.3%",
                     "| scale: cold (replica) p99 at 1,000,000 links |",
                     "p99 ratio 1.049× (latency, not req/s)",
                     "## Zipf mix: which tier answered",
                     "| closed loop | 97.1% | 2.3% | 0.6% |",
                     "| open loop | 98.4% | 1.3% | 0.3% |",
                     "## Scale: p99 as stored links grow",
                     "| 1,000,000 | 4 s | 5 s | 160.4 MiB | 1.05 ms | 1.049× | 3.2 ms | 1.067× |",
                     "![scale](scale.png)"):
            self.assertIn(text, md)
        old = report.markdown(build(("r.json", REDIRECT)), {"scale": "the redirect result has no scale section"})
        self.assertNotIn("## Scale", old)
        self.assertNotIn("## Zipf", old)
        self.assertIn("`scale.png` not drawn: the redirect result has no scale section", old)

    def test_plot_data(self):
        bars, _ = report.throughput_data(self.rep)
        self.assertEqual([(b["key"], b["group"]) for b in bars][-3:],
                         [("edge_closed", "hot"), ("bare_actix_zipf_closed", "zipf"), ("zipf_closed", "zipf")])
        self.assertEqual(bars[-3]["ratio_text"], "0.310× nginx\n0.340× direct")
        rows, _ = report.latency_data(self.rep)
        self.assertIn("edge_open", [r["key"] for r in rows])
        self.assertIn("zipf_open", [r["key"] for r in rows])
        data, why = report.scale_data(self.rep)
        self.assertIsNone(why)
        self.assertEqual(data["tiers"]["hot"]["links"], [10000, 1000000, 10000000])
        self.assertEqual((data["tiers"]["hot"]["base"], data["tiers"]["cold"]["base"]), (1.0, 3.0))
        self.assertEqual(data["tiers"]["cold"]["rate"], 2000)


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
