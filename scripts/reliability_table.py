"""Run the reliability battery and print its table of cases per area (docs/reliability.md).

    python scripts/reliability_table.py            # print the table
    python scripts/reliability_table.py --write    # also put it into docs/reliability.md
    python scripts/reliability_table.py -- -k disk # extra pytest arguments after --

Runs pytest on tests/reliability (slow cases included) with a JUnit XML report and counts the cases of
each area: the file tests/reliability/test_<area>*.py holds the area's cases. Exits 1 when a case failed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AREAS = {
    "clips": "clips and image sequences",
    "windows": "window predictions",
    "bundles": "bundles, outputs and import",
    "checkpoints": "checkpoints and conversion",
    "protocol": "the serve protocol",
    "faults": "crashes, kills, signals, full disk, memory",
    "downloads": "downloads",
}
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"


def run_battery(pytest_args: list[str]) -> ET.Element:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        # A file that cannot be imported counts as one failed case of its area; the other files still run.
        subprocess.run([sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider",
                        "--continue-on-collection-errors", f"--junitxml={report}", *pytest_args], cwd=ROOT)
        return ET.parse(report).getroot()


def count(report: ET.Element) -> dict[str, Counter]:
    """Outcome counts (passed, failed, skipped) of each area's cases."""
    counts = {area: Counter() for area in AREAS}
    for case in report.iter("testcase"):
        # test_<area>[_more]: the module of a case, or for a file that failed to import, its own name
        module = (case.get("classname") or case.get("name", "")).split(".")[-1]
        area = next((a for a in AREAS if re.fullmatch(rf"test_{a}(_\w+)?", module)), None)
        if area is None:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        counts[area][outcome] += 1
    return counts


def table(counts: dict[str, Counter]) -> str:
    lines = ["| area | what | cases | passed | failed | skipped |", "|---|---|---:|---:|---:|---:|"]
    total = Counter()
    for area, what in AREAS.items():
        c = counts[area]
        total.update(c)
        lines.append(f"| {area} | {what} | {sum(c.values())} | {c['passed']} | {c['failed']} | {c['skipped']} |")
    lines.append(f"| **all** | | **{sum(total.values())}** | **{total['passed']}** | **{total['failed']}** | "
                 f"**{total['skipped']}** |")
    return "\n".join(lines)


def write_into_doc(text: str) -> None:
    doc = DOC.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC} lacks the markers {START} / {END}")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"put the table into {DOC.relative_to(ROOT)}")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    counts = count(run_battery(args.pytest_args))
    text = table(counts)
    print(text)
    if args.write:
        write_into_doc(text)
    return 1 if any(c["failed"] for c in counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
