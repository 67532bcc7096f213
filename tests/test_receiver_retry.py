"""The receiver's per-hub retry queues (samband.receiver.retry): pure
bookkeeping, so tested with a hand-moved clock."""

from samband.receiver.retry import RetryQueues


def test_backoff_doubles_to_its_cap_and_resets_on_success():
    q = RetryQueues(base=0.25, cap=2.0)
    q.park("a", "b1", now=0.0, failed=True)
    waits = []
    now = 0.0
    for _ in range(6):
        waits.append(q.wait(now, 100))
        now += waits[-1]
        assert q.due(now) == ["a"]
        q.failed("a", now)
    assert waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    q.park("a", "b2", now)
    q.done("a")  # b1 stored: b2 is tried at once, the backoff starts again
    assert q.head("a") == "b2" and q.due(now) == ["a"]
    q.failed("a", now)
    assert q.wait(now, 100) == 0.25


def test_hubs_wait_on_their_own_and_keep_their_order():
    q = RetryQueues(base=1.0, cap=8.0)
    q.park("a", 1, 0.0, failed=True)
    q.park("a", 2, 0.0)
    q.park("b", 3, 0.5, failed=True)
    assert "a" in q and "b" in q and "c" not in q and len(q) == 3
    assert q.due(1.0) == ["a"] and q.due(1.5) == ["a", "b"]
    assert q.head("a") == 1
    q.done("a")
    assert q.head("a") == 2
    q.done("a")
    assert "a" not in q and q.hubs() == {"b": 1}
    q.done("b")
    assert len(q) == 0 and q.wait(5.0, 0.2) == 0.2


def test_a_full_queue_drops_its_oldest_and_counts_it():
    q = RetryQueues(max_batches=3)
    for i in range(5):
        q.park("a", i, 0.0)
    assert q.dropped == 2 and q.head("a") == 2 and len(q) == 3
