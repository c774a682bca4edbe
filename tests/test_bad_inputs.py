"""Every bad input of tests/bad_inputs.py is one line, exit code 2, and leaves the output directory as it was
(not created; a previous run's files unchanged). A pickle that would run code is never executed.

`python tests/test_bad_inputs.py [NAME-FRAGMENT]` prints the table of cases and the line each prints."""
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bad_inputs  # noqa: E402
from bad_inputs import CASES, make_prior, run  # noqa: E402


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    return make_prior(str(tmp_path_factory.mktemp("prior")))


def test_the_suite_has_at_least_50_cases_of_every_kind():
    assert len(CASES) >= 50
    assert {c.kind for c in CASES} >= {"config", "cli", "checkpoint", "image folder", "tar", "text", "tokenizer",
                                       "audio"}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}: {c.name}" for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, prior_run):
    rc, err, before, after = run(case, str(tmp_path), prior_run)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, (rc, err)
    assert case.expect in lines[0], lines[0]
    assert before == after, "the output directory changed"
    assert not (tmp_path / "PWNED").exists(), "a pickle ran code"


if __name__ == "__main__":
    pick = sys.argv[1] if len(sys.argv) > 1 else ""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prior = make_prior(os.path.join(tmp, "p"))
        for i, case in enumerate(CASES):
            if pick not in case.name:
                continue
            d = os.path.join(tmp, f"case{i}")
            os.makedirs(d)
            rc, err, before, after = run(case, d, prior)
            lines = err.strip().splitlines()
            flag = "" if (rc == 2 and len(lines) == 1 and before == after and case.expect in err) else " (FAILS)"
            rows.append((case, f"{rc}{flag}", " / ".join(lines) if lines else "(nothing)"))
    print(bad_inputs.table(rows))
