"""The AWS rate budget on its own (no Redis): per-operation buckets and each team's share."""

from __future__ import annotations

from pipeline_secrets.errors import LookupFailed
from pipeline_secrets.metrics import Metrics
from pipeline_secrets.resilience.rate_budget import TEAM_SHARE, RateBudget, TeamShare


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:  # concurrent callers: reservations made at one instant
        self.slept += seconds


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def get(self, path: str) -> object:
        self.calls += 1
        return "v"

    def get_many(self, paths):
        self.calls += 1
        return {path: "v" for path in paths}


def budget(rate: float, clock: Clock, max_wait: float = 0.0) -> RateBudget:
    return RateBudget(rate, max_wait=max_wait, metrics=Metrics(), clock=clock, sleep=clock.sleep)


def test_a_call_waits_for_a_token_within_the_deadline_and_is_not_made_past_it():
    clock = Clock()
    rates = budget(10, clock, max_wait=0.25)
    assert all(rates.take("GetSecretValue") for _ in range(10))  # a second's burst
    assert rates.take("GetSecretValue") and 0.09 < clock.slept < 0.11  # the 11th waited 1/10 s
    assert rates.take("BatchGetSecretValue") and clock.slept < 0.11  # its own bucket
    assert rates.take("GetSecretValue")  # the 12th waits 2/10 s
    assert not rates.take("GetSecretValue")  # the 13th would wait past the deadline: refused, not slept
    assert 0.29 < clock.slept < 0.31


def test_one_team_cannot_spend_the_others_share():
    clock = Clock()
    rates = budget(40, clock)
    alpha_below, beta_below = Counting(), Counting()
    alpha = TeamShare(alpha_below, rates, "alpha", lambda n: -(-n // 20))
    beta = TeamShare(beta_below, rates, "beta", lambda n: -(-n // 20))
    answers = [alpha.get_many([f"/a/{i}" for i in range(100)]) for _ in range(10)]  # 5 calls each
    refused = [a for a in answers if all(isinstance(v, LookupFailed) for v in a.values())]
    assert alpha_below.calls == int(40 * TEAM_SHARE) // 5  # alpha's share: 20 calls, 4 requests
    assert len(refused) == 10 - alpha_below.calls
    assert "share of the AWS rate budget" in str(next(iter(refused[0].values())))
    assert beta.get_many(["/b/1", "/b/2"]) == {"/b/1": "v", "/b/2": "v"}  # beta still has its own
    assert beta_below.calls == 1


def test_a_request_pays_for_every_call_it_can_make_not_a_second_s_worth():
    clock = Clock()
    rates = budget(40, clock, max_wait=0.0)  # a team's share: 20 calls a second, 20 of burst
    below = Counting()
    alpha = TeamShare(below, rates, "alpha", lambda n: -(-n // 20))
    answers = alpha.get_many([f"/a/{i}" for i in range(1000)])  # 50 calls: more than the burst
    assert below.calls == 0 and all(isinstance(v, LookupFailed) for v in answers.values())
