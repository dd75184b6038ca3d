"""The web node's admission rules on their own (the attack suite drives them over the wire)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pipeline_secrets.web.admission import AuthQueue, LoginThrottle, Overloaded, Slots, TeamGates


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_pairs_failures_stop_that_pair_only():
    clock = Clock()
    throttle = LoginThrottle(per_pair=(3, 1.0), clock=clock)
    for _ in range(3):
        throttle.check("10.0.0.1", "bob")
        throttle.failed("10.0.0.1", "bob")
    with pytest.raises(Overloaded) as refused:
        throttle.check("10.0.0.1", "bob")
    assert (refused.value.status, refused.value.retry_after) == (429, 1)
    throttle.check("10.0.0.1", "alice")  # another user from there
    throttle.check("10.0.0.2", "bob")  # bob from elsewhere
    clock.now += 1.0
    throttle.check("10.0.0.1", "bob")  # one token back


def test_an_empty_user_bucket_still_admits_addresses_the_user_logged_in_from():
    clock = Clock()
    throttle = LoginThrottle(per_user=(5, 0.01), clock=clock)
    throttle.succeeded("10.0.0.9", "bob")
    for i in range(5):
        throttle.failed(f"10.0.1.{i}", "bob")
    with pytest.raises(Overloaded):
        throttle.check("10.0.0.7", "bob")  # a new address: refused
    throttle.check("10.0.0.9", "bob")  # bob's own: admitted
    clock.now += 24 * 3600 + 1  # trusted for a day only
    for i in range(5):
        throttle.failed(f"10.0.1.{i}", "bob")
    with pytest.raises(Overloaded):
        throttle.check("10.0.0.9", "bob")


def test_an_empty_address_bucket_still_admits_users_that_logged_in_from_it():
    clock = Clock()
    throttle = LoginThrottle(per_client=(5, 0.01), clock=clock)
    throttle.succeeded("10.0.0.1", "bob")
    for i in range(5):
        throttle.failed("10.0.0.1", f"nobody-{i}")
    with pytest.raises(Overloaded):
        throttle.check("10.0.0.1", "carol")
    throttle.check("10.0.0.1", "bob")


def test_unknown_and_known_names_are_throttled_alike():
    # The throttle never sees whether a user exists: its answers cannot tell.
    throttle = LoginThrottle(per_pair=(2, 0.001))
    for user in ("bob", "nobody"):
        throttle.failed("10.0.0.1", user)
        throttle.failed("10.0.0.1", user)
        with pytest.raises(Overloaded):
            throttle.check("10.0.0.1", user)


def test_auth_queue_caps_per_client_then_in_all():
    queue = AuthQueue(capacity=3, per_client=2)
    with queue.admit("a"), queue.admit("a"):
        with pytest.raises(Overloaded) as per_client:
            with queue.admit("a"):
                pass
        assert per_client.value.status == 429
        with queue.admit("b"):
            with pytest.raises(Overloaded) as full:
                with queue.admit("c"):
                    pass
            assert full.value.status == 503
    with queue.admit("a"), queue.admit("a"), queue.admit("c"):
        pass  # all released


def test_team_gates_queue_then_refuse_and_forget_idle_teams():
    async def scenario() -> tuple[list[str], dict[str, int]]:
        gates = TeamGates(concurrency=1, queue=1)
        release = asyncio.Event()
        log: list[str] = []

        async def hold(name: str) -> None:
            try:
                async with gates.enter("alpha"):
                    log.append(f"in {name}")
                    await release.wait()
            except Overloaded as exc:
                log.append(f"{exc.status} {name}")

        tasks = [asyncio.create_task(hold(n)) for n in ("first", "second", "third")]
        await asyncio.sleep(0.01)
        async with gates.enter("beta"):
            log.append("in beta")
        release.set()
        await asyncio.gather(*tasks)
        return log, gates.busy()

    log, busy = asyncio.run(scenario())
    assert log[:3] == ["in first", "429 third", "in beta"]
    assert "in second" in log
    assert busy == {}


def test_slots_give_one_team_half_of_them():
    async def scenario() -> int:
        slots = Slots(4, per_team=2)
        inside = peak = 0
        release = asyncio.Event()

        async def hold() -> None:
            nonlocal inside, peak
            async with slots.hold("alpha"):
                inside += 1
                peak = max(peak, inside)
                await release.wait()
                inside -= 1

        tasks = [asyncio.create_task(hold()) for _ in range(5)]
        await asyncio.sleep(0.01)
        async with slots.hold("beta"), slots.hold("beta"):
            pass  # beta gets its share at once
        release.set()
        await asyncio.gather(*tasks)
        return peak

    assert asyncio.run(scenario()) == 2


def test_refused_and_checked_attempts_create_no_bucket_only_failures_do():
    throttle = LoginThrottle()
    for i in range(500):
        throttle.check("10.0.0.1", f"{i:06d}" + "u" * 200)
    assert throttle.size == 0
    throttle.failed("10.0.0.1", "bob")
    assert throttle.size == 3  # pair, address, user


def test_a_full_table_forgets_refilled_buckets_before_those_still_holding_failures():
    clock = Clock()
    throttle = LoginThrottle(per_user=(5, 0.05), clock=clock)
    throttle.MAX_KEYS = 60
    for i in range(50):
        throttle.failed(f"10.0.1.{i % 5}", "bob")  # bob's bucket is empty for the next 900 s
    for i in range(200):  # a filler, one new name a second: its buckets refill within 20 s
        clock.now += 1.0
        throttle.failed("10.0.9.9", f"filler-{i}")
    assert throttle.size <= 60
    with pytest.raises(Overloaded):
        throttle.check("10.0.0.7", "bob")  # the attack on bob is still remembered


def test_the_auth_queue_keeps_room_for_known_users_and_trusted_pairs():
    queue = AuthQueue(capacity=8, per_client=8)
    refused = []
    with contextlib.ExitStack() as held:
        for i in range(4):
            held.enter_context(queue.admit(f"10.0.0.{i}", AuthQueue.UNKNOWN))
        with pytest.raises(Overloaded) as unknown:
            held.enter_context(queue.admit("10.0.0.50", AuthQueue.UNKNOWN, on_refused=lambda: refused.append(1)))
        assert unknown.value.status == 503 and refused == [1]  # the refusal is charged to its address
        held.enter_context(queue.admit("10.0.1.1", AuthQueue.KNOWN))
        held.enter_context(queue.admit("10.0.1.2", AuthQueue.KNOWN))
        with pytest.raises(Overloaded):
            held.enter_context(queue.admit("10.0.1.3", AuthQueue.KNOWN))
        held.enter_context(queue.admit("10.0.2.1", AuthQueue.TRUSTED))
        held.enter_context(queue.admit("10.0.2.2", AuthQueue.TRUSTED))
        with pytest.raises(Overloaded):
            held.enter_context(queue.admit("10.0.2.3", AuthQueue.TRUSTED))
    with queue.admit("10.0.0.50", AuthQueue.UNKNOWN):
        pass  # all places are given back
