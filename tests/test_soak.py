"""The load and fault soak, short (issue 8): ~150 concurrent clients of 5 teams for a few seconds
while the fault proxy throttles, fails, slows and resets AWS calls. The full minute is
``python bench/soak.py`` (docs/reliability.md)."""

from __future__ import annotations

from support.soak import run_soak


def test_every_answer_under_load_and_faults_is_the_right_teams(proxy, aws):
    result = run_soak(proxy, aws, seconds=6, clients=150, teams=5)
    summary = result.summary()
    assert result.wrong == 0, summary
    # How many answers fit in 6 s depends on the machine and on which calls the storm slows
    # (150 to 400 here); what must hold is that answers come, and that nearly all are right.
    assert result.ok >= result.clients // 2, summary
    assert result.ok >= 0.9 * result.served, summary
    assert sum(result.faults.values()) >= 5, summary
    # What may fail: AWS after the retries (502, naming the kind) or a team over its own queue (429);
    # never a 500, never a dropped client connection.
    assert all(kind.startswith(("502 ", "429 ")) for kind in result.errors), summary
    assert result.peak_rss_mb < 300, summary
