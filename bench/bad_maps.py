"""How long residency takes to refuse hostile maps (issue 14 item 9: "in well under a second").

Each map is written to a temporary file and loaded with `residency_cli.config.load_config`,
in-process (no interpreter start-up), `--runs` times; the median and the worst are printed.
Before the limits, the 10-line alias bomb ran 157 s and reached 4.9 GB, the 55 MB
comment-only map took 59 s, and 5000 `[` ended in RecursionError.

    .venv/bin/python bench/bad_maps.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ALIAS_BOMB = (
    "version: 1\na: &a ["
    + ",".join(['"lol"'] * 9)
    + "]\n"
    + "".join(
        f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
)


def _maps(directory: Path) -> dict[str, Path]:
    maps = {
        "alias bomb (10 lines, 9^9 values)": ALIAS_BOMB,
        "5000-deep [": "[" * 5000,
        "5000-deep {": "{" * 5000,
        "recursive alias": "version: 1\na: &a [1, *a]\n",
    }
    paths = {}
    for index, (name, text) in enumerate(maps.items()):
        path = directory / f"map{index}.yaml"
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    huge = directory / "huge.yaml"
    with huge.open("w", encoding="utf-8") as stream:
        line = "# " + "x" * 1021 + "\n"
        for _ in range(55 * 1024):
            stream.write(line)
    paths["55 MB of comments"] = huge
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from residency_cli.config import load_config
    from residency_cli.errors import ConfigError

    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, path in _maps(Path(directory)).items():
            seconds = []
            message = ""
            for _ in range(args.runs):
                began = time.perf_counter()
                try:
                    load_config(str(path))
                except ConfigError as error:
                    message = error.problems[0]
                seconds.append(time.perf_counter() - began)
            results[name] = {
                "median_ms": statistics.median(seconds) * 1000,
                "max_ms": max(seconds) * 1000,
                "refused": message.split(": ", 1)[-1],
            }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, result in results.items():
        print(
            f"{name:38} median {result['median_ms']:7.2f} ms, worst {result['max_ms']:7.2f} ms"
            f"  ({result['refused']})"
        )


if __name__ == "__main__":
    main()
