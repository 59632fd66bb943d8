"""Write data/frankfurt/employee_data.csv: ACME's EU staff, deterministic (seeded) and in the
seed's format (`id;first_name;last_name;yearly_salary`). Run: python3 make_frankfurt_data.py"""

from __future__ import annotations

import random
from pathlib import Path

FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elif",
    "Felix",
    "Greta",
    "Hannes",
    "Ida",
    "Jonas",
    "Katrin",
    "Lukas",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Rosa",
    "Stefan",
    "Tilda",
    "Uwe",
]
LAST = [
    "Albers",
    "Brandt",
    "Conrad",
    "Dietrich",
    "Engel",
    "Fischer",
    "Graf",
    "Hahn",
    "Jung",
    "Keller",
    "Lang",
    "Meyer",
    "Neumann",
    "Otto",
    "Peters",
    "Roth",
    "Schulz",
    "Vogel",
]


def rows(count: int = 40, seed: int = 4242) -> list[str]:
    pick = random.Random(seed)
    lines = ["id;first_name;last_name;yearly_salary"]
    for number in range(1, count + 1):
        cents = pick.randrange(38_000_00, 96_000_00)
        lines.append(
            f"{number};{pick.choice(FIRST)};{pick.choice(LAST)};{cents // 100}.{cents % 100:02d}"
        )
    return lines


if __name__ == "__main__":
    target = Path(__file__).parent / "data" / "frankfurt" / "employee_data.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(rows()) + "\n", encoding="utf-8")
    print(f"wrote {target}")
