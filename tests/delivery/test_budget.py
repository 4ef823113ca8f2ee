"""The retry budget alone: gRPC-style accounting, probes, re-opening, threads."""

from __future__ import annotations

import threading

import pytest

from ingress_logging.delivery._budget import RetryBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_starts_full_and_open() -> None:
    b = RetryBudget(max_tokens=10, token_ratio=0.5)
    s = b.snapshot()
    assert (s.tokens, s.max_tokens, s.token_ratio, s.open) == (10.0, 10.0, 0.5, True)
    assert b.acquire() == 0.0
    assert b.snapshot().retries_allowed == 1


def test_failures_close_the_bucket_at_half() -> None:
    clock = FakeClock()
    b = RetryBudget(max_tokens=10, token_ratio=0.5, probe_interval=2.0, clock=clock)
    for _ in range(4):
        b.record_failure()
    assert b.snapshot().tokens == 6.0
    assert b.acquire() == 0.0
    b.record_failure()  # 5 tokens: not > 5, closed
    s = b.snapshot()
    assert (s.tokens, s.open) == (5.0, False)
    wait = b.acquire()
    assert wait == pytest.approx(2.0)
    assert b.snapshot().retries_denied == 1


def test_closing_is_reported_once_per_closing() -> None:
    events: list[tuple[str, str, dict[str, object]]] = []
    clock = FakeClock()
    b = RetryBudget(max_tokens=4, token_ratio=1.0, probe_interval=1.0, clock=clock)
    b.set_diagnostics(lambda level, event, data: events.append((level, event, dict(data))))
    b.record_failure()  # 3 tokens: still open
    assert events == []
    b.record_failure()  # 2: closed
    b.record_failure()  # still closed: no second report
    assert events == [("warn", "retry_budget_exhausted", {"tokens": 2.0, "exhausted": 1})]
    clock.now += 1.0
    assert b.acquire() == 0.0
    b.record_success()  # probe success: re-opened to 3
    b.record_failure()  # 2: closed again
    assert [e[2]["exhausted"] for e in events] == [1, 2]
    assert b.snapshot().exhausted == 2


def test_tokens_never_go_below_zero_or_above_max() -> None:
    b = RetryBudget(max_tokens=4, token_ratio=1.0)
    for _ in range(20):
        b.record_failure()
    assert b.snapshot().tokens == 0.0
    # Without a probe, successes earn token_ratio each, gRPC-style.
    b2 = RetryBudget(max_tokens=4, token_ratio=1.0)
    for _ in range(10):
        b2.record_success()
    assert b2.snapshot().tokens == 4.0


def test_successes_earn_ratio_and_reopen_without_probe() -> None:
    clock = FakeClock()
    b = RetryBudget(max_tokens=10, token_ratio=0.5, probe_interval=100.0, clock=clock)
    for _ in range(5):
        b.record_failure()
    assert not b.snapshot().open
    for _ in range(3):  # 5 + 1.5 = 6.5 > 5
        b.record_success()
    assert b.snapshot().tokens == pytest.approx(6.5)
    assert b.acquire() == 0.0
    assert b.snapshot().reopened == 0


def test_one_probe_per_interval_while_closed() -> None:
    clock = FakeClock()
    b = RetryBudget(max_tokens=2, token_ratio=0.1, probe_interval=1.0, clock=clock)
    b.record_failure()  # 1 token: closed, next probe at now + 1
    assert b.acquire() == pytest.approx(1.0)
    clock.now += 0.4
    assert b.acquire() == pytest.approx(0.6)
    clock.now += 0.6
    assert b.acquire() == 0.0  # the probe
    assert b.acquire() == pytest.approx(1.0)  # the next waiter waits for the next one
    s = b.snapshot()
    assert (s.probes, s.retries_denied, s.retries_allowed) == (1, 3, 0)


def test_failed_probe_pushes_the_next_probe_a_full_interval() -> None:
    clock = FakeClock()
    b = RetryBudget(max_tokens=2, probe_interval=1.0, clock=clock)
    b.record_failure()
    clock.now += 1.0
    assert b.acquire() == 0.0
    clock.now += 0.5  # the probe takes half a second to fail
    b.record_failure()
    assert b.acquire() == pytest.approx(1.0)
    # A success after a *failed* probe is not a probe success: no re-opening.
    b.record_success()
    assert b.snapshot().reopened == 0
    assert not b.snapshot().open


def test_probe_success_reopens_to_three_quarters_and_wakes() -> None:
    clock = FakeClock()
    woken = threading.Event()
    b = RetryBudget(max_tokens=100, token_ratio=0.1, probe_interval=1.0, clock=clock)
    b.set_wakeup(woken.set)
    for _ in range(100):
        b.record_failure()
    assert b.snapshot().tokens == 0.0
    clock.now += 1.0
    assert b.acquire() == 0.0
    assert not woken.is_set()
    b.record_success()
    s = b.snapshot()
    assert woken.is_set()
    assert (s.open, s.reopened, s.tokens) == (True, 1, 75.0)
    # Retries that succeed keep it open and earn the ratio again ...
    assert b.acquire() == 0.0
    b.record_success()
    assert b.snapshot().tokens == pytest.approx(75.1)
    # ... and a server that fails again closes it after a quarter of the bucket.
    for _ in range(25):
        assert b.snapshot().open
        b.record_failure()
    assert b.snapshot().tokens == pytest.approx(50.1)
    b.record_failure()
    assert not b.snapshot().open


def test_zero_probe_interval_lets_every_waiter_probe() -> None:
    b = RetryBudget(max_tokens=2, probe_interval=0.0)
    b.record_failure()
    assert [b.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.snapshot().probes == 3


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1001}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"token_ratio": 0}, "token_ratio"),
        ({"token_ratio": 1.5}, "token_ratio"),
        ({"probe_interval": -1}, "probe_interval"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        RetryBudget(**kwargs)


def test_thread_safe_accounting() -> None:
    """8 threads at once: no update is lost (the totals are those of one thread)."""
    b = RetryBudget(max_tokens=1000, token_ratio=1.0, probe_interval=3600)
    start = threading.Barrier(8)

    def run(fn: object) -> None:
        def work() -> None:
            start.wait()
            for _ in range(100):
                fn()  # type: ignore[operator]
                b.acquire()

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    run(b.record_failure)
    assert b.snapshot().tokens == 200.0
    run(b.record_success)
    s = b.snapshot()
    assert s.tokens == 1000.0
    assert s.retries_allowed + s.retries_denied + s.probes == 1600


def test_repr_shows_numbers_only() -> None:
    b = RetryBudget(max_tokens=10)
    assert repr(b) == "RetryBudget(tokens=10.0/10, ratio=0.1, open=True, denied=0)"


def test_a_fork_while_the_lock_is_held_leaves_the_child_a_usable_budget() -> None:
    import os

    b = RetryBudget(max_tokens=10)
    r, w = os.pipe()
    with b._lock:  # another thread "holds" it at the moment of the fork
        pid = os.fork()
        if pid == 0:  # the child: would hang here with the inherited, held lock
            ok = False
            try:
                b.record_failure()
                ok = b.acquire() == 0.0 and b.snapshot().tokens == 9.0
            finally:
                os.write(w, b"1" if ok else b"0")
                os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(r)
    assert b.snapshot().tokens == 10.0  # the parent's own state is untouched
