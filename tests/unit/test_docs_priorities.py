"""What docs/workers.md and docs/deployment.md say a worker's and a pool's priorities take
(names, or numbers: larger runs first, above 0 high, 0 normal, below 0 low) is what they do.
"""

from __future__ import annotations

import re
from pathlib import Path

from conveyor.job import Priority
from conveyor.settings import load_settings
from conveyor.supervisor.config import load_pools

DOCS = Path(__file__).parents[2] / "docs"
BANDS = "above 0 is `high`, 0 `normal`, below 0 `low`"


def row(page: str, first_cell: str) -> str:
    """The table row of ``page`` whose first cell is ``first_cell``."""
    lines = (DOCS / page).read_text().splitlines()
    [found] = [line for line in lines if line.startswith(f"| {first_cell} |")]
    return found


def test_the_worker_flag_takes_numbers_as_documented() -> None:
    documented = row("workers.md", "`--priorities`")
    assert BANDS in documented
    # The row's own example: `--priorities 10,0` is `high,normal`
    example = re.search(r"`--priorities ([-0-9,]+)` is `([a-z,]+)`", documented)
    assert example is not None, documented
    given, meant = example.groups()
    assert load_settings(worker_priorities=given).worker_priorities == tuple(
        Priority.parse(name) for name in meant.split(",")
    )
    assert load_settings(worker_priorities="-3").worker_priorities == (Priority.LOW,)


def test_a_pools_priorities_take_numbers_as_documented(tmp_path: Path) -> None:
    documented = row("deployment.md", "`priorities`")
    assert BANDS.replace(" is ", " ") in documented
    pool = load_pools({"MAIL_WORKER_PRIORITIES": "5,0,-1"}, tmp_path).pool("mail")
    assert pool.worker_args()[-2:] == ["--priorities", "high,normal,low"]
