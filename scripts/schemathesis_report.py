"""Figures of one schemathesis run, read from its NDJSON event report; run by
scripts/schemathesis inside its venv.

Prints one line for the service: operations tested, test cases, checks run and
failed, responses by status class, 5xx responses, and response-schema violations;
then each failed check once, with the request that caused it. Exits 1 when any
check failed, any response was a 5xx, or schemathesis reported an error, so a
failure cannot hide behind a check that was left out.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


def events(path: Path):
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                event = json.loads(line)
                yield from event.items()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("service")
    parser.add_argument("ndjson", type=Path)
    args = parser.parse_args()

    operations: set[str] = set()
    cases = checks = 0
    failed: collections.Counter[str] = collections.Counter()
    first_failure: dict[tuple[str, str], str] = {}
    statuses: collections.Counter[str] = collections.Counter()
    server_errors: list[str] = []
    errors: list[str] = []
    for kind, body in events(args.ndjson):
        if kind == "NonFatalError" or kind == "FatalError":
            errors.append(str(body.get("info", body))[:500])
            continue
        if kind != "ScenarioFinished":
            continue
        recorder = body.get("recorder") or {}
        label = recorder.get("label", "?")
        operations.add(label)
        cases += len(recorder.get("cases") or {})
        for case_id, results in (recorder.get("checks") or {}).items():
            for result in results:
                checks += 1
                if result.get("status") == "failure":
                    failed[result["name"]] += 1
                    first_failure.setdefault((label, result["name"]), case_id)
        for case_id, interaction in (recorder.get("interactions") or {}).items():
            response = interaction.get("response") or {}
            status = response.get("status_code")
            if status is None:
                continue
            statuses[f"{status // 100}xx"] += 1
            if status >= 500:
                request = interaction.get("request") or {}
                server_errors.append(f"{status} {request.get('method')} {request.get('uri')} ({case_id})")

    by_class = " ".join(f"{k}:{statuses[k]}" for k in sorted(statuses))
    print(
        f"{args.service:<8} operations {len(operations):>2}  cases {cases:>5}  checks {checks:>6}"
        f"  failed {sum(failed.values()):>3}  5xx {len(server_errors):>3}"
        f"  schema violations {failed['response_schema_conformance']:>3}  [{by_class}]"
    )
    for (label, check), case_id in sorted(first_failure.items()):
        print(f"  FAILED {check} on {label} ({failed[check]} in all for this check; case {case_id})")
    for line in server_errors[:10]:
        print(f"  5xx: {line}")
    for error in errors[:10]:
        print(f"  error: {error}")
    return 1 if failed or server_errors or errors else 0


if __name__ == "__main__":
    sys.exit(main())
