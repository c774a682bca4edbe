"""Every bad input of tests/bad_inputs.py is one line, exit code 2, and leaves the output directory as it was
(not created; a previous run's files unchanged). A pickle that would run code is never executed. Every
skippable one (SKIPS) is exit 0 with the skip printed and counted.

`python tests/test_bad_inputs.py [NAME-FRAGMENT]` prints the table of cases and the line each prints."""
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bad_inputs  # noqa: E402
from bad_inputs import CASES, SKIPS, call, expected, make_prior, run  # noqa: E402


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    return make_prior(str(tmp_path_factory.mktemp("prior")))


def test_the_suite_has_at_least_50_cases_of_every_kind():
    assert len(CASES) >= 50
    assert {c.kind for c in CASES} >= {"config", "cli", "checkpoint", "image folder", "image list", "tar", "text",
                                       "tokenizer", "audio", "eval"}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}: {c.name}" for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, prior_run):
    rc, err, before, after = run(case, str(tmp_path), prior_run)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, (rc, err)
    assert all(e in lines[0] for e in expected(case)), lines[0]
    assert before == after, "the output directory changed"
    assert not (tmp_path / "PWNED").exists(), "a pickle ran code"


@pytest.mark.parametrize("case", SKIPS, ids=[f"{c.kind}: {c.name}" for c in SKIPS])
def test_a_skipped_input_is_exit_0_printed_and_counted(case, tmp_path):
    rc, out, err = call(case.setup(str(tmp_path)))
    assert rc == 0, err
    assert case.printed in out + err, (out, err)
    case.check(str(tmp_path))


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
            ok = rc == 2 and len(lines) == 1 and before == after and all(e in err for e in expected(case))
            flag = "" if ok else " (FAILS)"
            rows.append((case, f"{rc}{flag}", " / ".join(lines) if lines else "(nothing)"))
    print(bad_inputs.table(rows))
