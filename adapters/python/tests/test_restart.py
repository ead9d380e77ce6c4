"""A broker killed (SIGKILL) while thousands of publishes are in flight,
then restarted on the same data directory: every future resolves exactly
once, to a distinct offset, and every message is stored exactly once."""
import signal
import time

import pytest

import sluice

N = 20000


def test_kill9_mid_publish_every_future_once_nothing_twice(broker, tmp_path):
    c = sluice.Client(broker=broker.endpoint, insecure_plaintext=True,
                      producer_id_file=str(tmp_path / "producer.id"),
                      heartbeat_ms=200, dead_after_ms=1000)
    calls = {}

    def done(f):
        calls[id(f)] = calls.get(id(f), 0) + 1

    futs = []
    killed_with_pending = None
    for i in range(N):
        f = c.publish("r.orders", f"order-{i}".encode())
        f.add_done_callback(done)
        futs.append(f)
        if i == N // 2:
            c.poll(0)
            killed_with_pending = c.unconfirmed
            broker.kill9()
    # Publishing went on against a dead broker; libsluice keeps it all.
    assert killed_with_pending > 0
    assert c.unconfirmed > 0
    time.sleep(0.5)
    broker.start()
    c.flush(120)
    assert c.reconnects >= 1
    offsets = [f.result(0) for f in futs]
    assert all(calls[id(f)] == 1 for f in futs), "a future resolved twice or never"
    assert sorted(offsets) == list(range(N)), "offsets must be distinct and dense"

    # Stored exactly once: count by reading the topic back.
    seen = {}
    with c.subscribe("r.orders", "count", start="earliest", idle_timeout=2) as sub:
        for m in sub:
            seen[m.payload] = seen.get(m.payload, 0) + 1
            m.ack()
    assert len(seen) == N and set(seen.values()) == {1}
    assert c.topic("r.orders").messages == N
    c.close()


def test_sigterm_restart_with_futures_waited_on(broker):
    c = sluice.Client(broker=broker.endpoint, insecure_plaintext=True,
                      heartbeat_ms=200, dead_after_ms=1000)
    assert c.publish_sync("r.b", b"before") == 0
    broker.stop(signal.SIGTERM)
    f = c.publish("r.b", b"during")
    # Waiting while the broker is down times out and leaves it pending...
    with pytest.raises(TimeoutError):
        f.result(1.5)
    assert not f.done()
    broker.start()
    # ...and result() drives the client through the reconnect.
    assert f.result(30) == 1
    assert c.reconnects >= 1
    c.close()


def test_msg_id_makes_a_republish_after_our_own_crash_harmless(broker):
    # The first "process" published and died before it saw the acks; the
    # next one publishes the same orders again with the same msg ids.
    c = sluice.Client(broker=broker.endpoint, insecure_plaintext=True)
    first = [c.publish("r.c", f"order-{i}", msg_id=f"order-{i}") for i in range(100)]
    c.flush(10)
    c.close(timeout=0)
    with sluice.Client(broker=broker.endpoint, insecure_plaintext=True) as c:
        again = [c.publish("r.c", f"order-{i}", msg_id=f"order-{i}") for i in range(150)]
        c.flush(10)
        # The repeats are answered with their original offsets.
        assert [f.result() for f in again[:100]] == [f.result() for f in first]
        assert sorted(f.result() for f in again[100:]) == list(range(100, 150))
        assert c.topic("r.c").messages == 150
