"""Benchmark the ETL jobs against a straightforward pandas version of the seed's logic.

    make bench-etl        # or: .bench/venv/bin/python bench/etl_bench.py --rows 1000000
    .bench/venv/bin/python bench/etl_bench.py --large-repeat 3 --json out.json  # 10M timed too

Both sides run as separate processes (as a container would run them) on the same generated
file, alternately, several times; the median wall time is compared. The jobs' results are
checked against Decimal arithmetic done here, independently of the code under test. Peak
memory (ru_maxrss of the job process) is measured on a larger file. pandas is needed only
here (make installs it into .bench/venv), never by the jobs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import textwrap
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ETL = ROOT / "etl"
WORK = ROOT / ".bench" / "etl"
MEMORY_LIMIT_MB = 300

PANDAS_BONUS = """
import sys, numpy as np, pandas as pd
df = pd.read_csv(sys.argv[1], sep=";")
salary = df["yearly_salary"]
df["bonus"] = np.where(salary <= 70000, salary * 0.05, salary * 0.03).astype("int64")
df.to_csv(sys.argv[2], sep=";", index=False)
"""
PANDAS_TAX = """
import sys, pandas as pd
df = pd.read_csv(sys.argv[1], sep=";")
tax = int((df["yearly_salary"] * 0.21).astype("int64").sum())
pd.DataFrame({"tax_amount": [tax]}).to_csv(sys.argv[2], sep=";", index=False)
"""


def generate(path: Path, rows: int) -> Path:
    """Deterministic employees: varied salaries, every shape, the 70000 boundary included."""
    if path.exists():
        return path
    rng = random.Random(rows)
    boundary = ["70000", "70000.00", "70000.01", "69999.99", "70000.1", "0", "0.01"]
    partial = path.with_suffix(".partial")
    with open(partial, "w") as stream:
        stream.write("id;first_name;last_name;yearly_salary\n")
        for n in range(1, rows + 1):
            if n % 997 == 0:
                salary = boundary[n % len(boundary)]
            else:
                cents = rng.randrange(15_000_00, 250_000_00)
                salary = f"{cents // 100}.{cents % 100:02d}"
                if n % 13 == 0:
                    salary = str(cents // 100)
            stream.write(f"{n};First{n % 4099};Last{n % 7919};{salary}\n")
    partial.rename(path)
    return path


def expected(path: Path) -> tuple[list[str], int]:
    """Bonus column and tax total with Decimal, straight from the text."""
    bonuses, tax = [], 0
    five, three, rate = Decimal("0.05"), Decimal("0.03"), Decimal("0.21")
    with open(path, newline="") as stream:
        for row in csv.DictReader(stream, delimiter=";"):
            salary = Decimal(row["yearly_salary"])
            bonus = salary * (five if salary <= 70000 else three)
            bonuses.append(str(bonus.to_integral_value(rounding=ROUND_DOWN)))
            tax += int((salary * rate).to_integral_value(rounding=ROUND_DOWN))
    return bonuses, tax


# ru_maxrss of a child counts the memory it shared with its parent before exec, so the job is
# started by this tiny launcher rather than by the (large) benchmark process itself.
LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB, at most ~10 MB of it the launcher's) of one job."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    return elapsed, int(done.stdout.split()[-1]) // 1024


def commands(data: Path, out: Path, etl_python: str) -> dict[str, dict[str, list[str]]]:
    py, job = sys.executable, [etl_python]
    return {
        "bonus": {
            "etl": [
                *job,
                str(ETL / "christmas_bonus.py"),
                "-i",
                str(data),
                "-o",
                str(out / "b.csv"),
            ],
            "pandas": [py, "-c", PANDAS_BONUS, str(data), str(out / "b_pd.csv")],
        },
        "tax": {
            "etl": [*job, str(ETL / "tax_amount.py"), "-i", str(data), "-o", str(out / "t.csv")],
            "pandas": [py, "-c", PANDAS_TAX, str(data), str(out / "t_pd.csv")],
        },
    }


def _time_jobs(
    jobs: dict[str, dict[str, list[str]]], repeat: int
) -> dict[tuple[str, str], list[float]]:
    """Wall seconds of each run of each (job, side), the sides alternating so that both see the
    same machine load; exits at the first job that fails."""
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeat):
        for job, sides in jobs.items():
            for side, command in sides.items():
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, check=False)
                times.setdefault((job, side), []).append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr.decode()}")
    return times


def _run_large(
    big_jobs: dict[str, dict[str, list[str]]], large_repeat: int
) -> dict[tuple[str, str], list[tuple[float, int]]]:
    """(wall seconds, peak RSS MB) of each run on the large file: the jobs alone once, or
    both sides `large_repeat` times."""
    large: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for _ in range(max(1, large_repeat)):
        for job, sides in big_jobs.items():
            for side in ("etl", "pandas") if large_repeat else ("etl",):
                large.setdefault((job, side), []).append(run(sides[side]))
    return large


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / ".bench" / "etl-bench.md")
    parser.add_argument(
        "--large-repeat",
        type=int,
        default=0,
        help="also time both sides this many times on the --memory-rows file (0: the jobs"
        " alone, once, for their peak memory)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument(
        "--etl-python",
        default=sys.executable,
        help="interpreter for the jobs: the image's environment (.venv-etl), which has no"
        " numpy; with numpy installed pyarrow imports it, which costs the jobs ~0.3 s",
    )
    args = parser.parse_args()
    for name in ("S3_BUCKET", "S3_FOLDER"):
        os.environ.pop(name, None)  # never upload from a benchmark

    WORK.mkdir(parents=True, exist_ok=True)
    # The jobs run their data guard first: the generated data is labelled, the jobs allowed it.
    (WORK / ".residency-label.json").write_text('{"location": "bench"}\n', encoding="utf-8")
    os.environ["RESIDENCY_ALLOWED_LOCATIONS"] = "bench"
    data = generate(WORK / f"employees_{args.rows}.csv", args.rows)
    jobs = commands(data, WORK, args.etl_python)
    times = _time_jobs(jobs, args.repeat)
    median = {key: statistics.median(values) for key, values in times.items()}

    bonuses, tax = expected(data)
    with open(WORK / "b.csv", newline="") as stream:
        etl_bonuses = [row[4] for row in csv.reader(stream, delimiter=";")][1:]
    with open(WORK / "b_pd.csv", newline="") as stream:
        pd_bonuses = [row[4] for row in csv.reader(stream, delimiter=";")][1:]
    etl_tax = int((WORK / "t.csv").read_text().split()[1])
    pd_tax = int((WORK / "t_pd.csv").read_text().split()[1])
    exact_bonus = etl_bonuses == bonuses
    exact_tax = etl_tax == tax
    pd_wrong = sum(a != b for a, b in zip(pd_bonuses, bonuses, strict=True))

    big = generate(WORK / f"employees_{args.memory_rows}.csv", args.memory_rows)
    big_jobs = commands(big, WORK, args.etl_python)
    large = _run_large(big_jobs, args.large_repeat)
    # (median wall seconds, highest peak RSS) of each job on the large file.
    memory = {
        job: (
            statistics.median(s for s, _ in large[(job, "etl")]),
            max(mb for _, mb in large[(job, "etl")]),
        )
        for job in big_jobs
    }

    ratio = {job: median[(job, "etl")] / median[(job, "pandas")] for job in jobs}

    def row(job: str) -> str:
        etl, pandas = median[(job, "etl")], median[(job, "pandas")]
        return f"| {job} | {etl:.3f} | {pandas:.3f} | {ratio[job]:.2f} |"

    ok = (
        all(r <= 1.0 for r in ratio.values())
        and exact_bonus
        and exact_tax
        and all(mb < MEMORY_LIMIT_MB for _, mb in memory.values())
    )
    report = textwrap.dedent(
        f"""\
        ## ETL jobs (`etl/`)

        Command: `make bench-etl` (`bench/etl_bench.py --rows {args.rows}
        --memory-rows {args.memory_rows}`), run {time.strftime("%Y-%m-%d")} on
        {os.cpu_count()} cores, Python {platform.python_version()}. Each job is a separate
        process (interpreter start and imports included, no upload) in an environment built
        from `docker/requirements.txt` alone, as in the image; it alternates with a
        straightforward pandas version of the seed's logic (`read_csv`, vectorised
        float arithmetic, `to_csv`); median of {args.repeat} runs on the same generated
        {args.rows:,}-employee file (ids ascending; salaries of every shape, the 70000
        boundary included).

        | job | etl (s) | pandas (s) | ratio etl/pandas |
        |---|---|---|---|
        {row("bonus")}
        {row("tax")}

        Exactness, against Decimal arithmetic done by the benchmark itself:
        bonus column {"exact" if exact_bonus else "WRONG"} for all {len(bonuses):,} rows;
        tax total {etl_tax} ({"exact" if exact_tax else f"WRONG, expected {tax}"}).
        The pandas version gets {pd_wrong:,} bonuses wrong and a tax total of {pd_tax}
        (binary floating point; expected {tax}).

        Peak memory (ru_maxrss of the job process, started by a small launcher) on
        {args.memory_rows:,} rows ({big.stat().st_size / 2**20:.0f} MiB of CSV), limit
        {MEMORY_LIMIT_MB} MB:
        bonus {memory["bonus"][1]} MB in {memory["bonus"][0]:.1f} s,
        tax {memory["tax"][1]} MB in {memory["tax"][0]:.1f} s.

        Result: {"PASS" if ok else "FAIL"}.
        """
    )
    if args.large_repeat:
        timed = "; ".join(
            f"{job}: etl {statistics.median(s for s, _ in large[(job, 'etl')]):.1f} s, "
            f"pandas {statistics.median(s for s, _ in large[(job, 'pandas')]):.1f} s "
            f"(pandas peak {max(mb for _, mb in large[(job, 'pandas')])} MB)"
            for job in big_jobs
        )
        report += (
            f"\n{args.memory_rows:,} rows, median of {args.large_repeat} runs each: {timed}.\n"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    if args.json:
        figures = {
            "rows": args.rows,
            "repeat": args.repeat,
            "memory_rows": args.memory_rows,
            "memory_rows_mib": big.stat().st_size / 2**20,
            "large_repeat": args.large_repeat,
            "memory_limit_mb": MEMORY_LIMIT_MB,
            "times": {f"{job} {side}": values for (job, side), values in times.items()},
            "large": {
                f"{job} {side}": [{"seconds": sec, "peak_mb": mb} for sec, mb in values]
                for (job, side), values in large.items()
            },
            "exact_bonus": exact_bonus,
            "exact_tax": exact_tax,
            "expected_tax": tax,
            "etl_tax": etl_tax,
            "pandas_tax": pd_tax,
            "pandas_bonuses_wrong": pd_wrong,
            "bonus_rows": len(bonuses),
            "pass": ok,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
