"""Subscribing: iteration, ack, nack with a delay and with a reason the
dead letter keeps, redelivery after ack_wait, where a subscription starts,
ephemeral fan-out."""
import datetime as dt
import time

import sluice


def fill(c, topic, n):
    for f in [c.publish(topic, f"m{i}") for i in range(n)]:
        f.result(10)


def test_acked_messages_are_not_delivered_again(client):
    fill(client, "s.a", 10)
    with client.subscribe("s.a", "sub", start="earliest", idle_timeout=1) as sub:
        got = []
        for m in sub:
            assert isinstance(m, sluice.Message)
            got.append((m.topic, m.offset, m.text, m.attempt, m.subscription))
            if m.offset < 5:
                m.ack()
    assert got == [("s.a", i, f"m{i}", 1, "sub") for i in range(10)]
    client.flush(5)
    # The second half was never acked: after a fresh attach it comes back
    # (the attempt that was handed out and dropped counts).
    with client.subscribe("s.a", "sub", idle_timeout=2, ack_wait=0.5) as sub:
        again = [(m.offset, m.ack())[0] for m in sub]
    assert again == [5, 6, 7, 8, 9]


def test_nack_redelivers_after_the_delay(client):
    fill(client, "s.b", 1)
    with client.subscribe("s.b", "sub", start="earliest") as sub:
        m = sub.get(5)
        assert (m.offset, m.attempt) == (0, 1)
        t0 = time.monotonic()
        m.nack(0.5)
        m2 = sub.get(10)
        waited = time.monotonic() - t0
        assert (m2.offset, m2.attempt, m2.payload) == (0, 2, b"m0")
        assert waited >= 0.45
        m2.ack()
        assert sub.get(0.7) is None
    try:
        m.ack()
    except sluice.InvalidError as e:
        assert "already acked or nacked" in e.text
    else:
        raise AssertionError("a second settle must fail")


def test_nack_reason_reaches_the_dead_letter(client):
    fill(client, "s.why", 2)
    with client.subscribe("s.why", "why", start="earliest", max_deliver=1) as sub:
        m = sub.get(5)
        assert m.offset == 0
        m.nack(reason='HTTP 502: "bad\\gateway"\nretry later \u00e9')
        m = sub.get(5)
        assert m.offset == 1
        m.nack()
        # Read while SUB is attached: a nacked message of a subscription
        # that detaches before its nack expires waits for the next consumer.
        with client.subscribe("_dlq.why", "dlq", start="earliest",
                              idle_timeout=2) as dlq:
            got = {int(m.headers["dlq-offset"]): (m.headers["dlq-reason"], m.ack())[0]
                   for m in dlq}
    plain = "nacked 1 times without ack (max_deliver)"
    assert got == {0: plain + '; last nack: HTTP 502: "bad\\gateway" retry later \u00e9',
                   1: plain}, got


def test_unacked_message_comes_back_after_ack_wait(client):
    fill(client, "s.c", 1)
    with client.subscribe("s.c", "sub", start="earliest", ack_wait=0.5) as sub:
        m = sub.get(5)
        assert m.attempt == 1
        # Kept, not acked: the broker redelivers after ack_wait. This
        # client still holds the first attempt, so the redelivery is
        # handed out only once we drop it.
        del m
        m = sub.get(10)
        assert (m.offset, m.attempt) == (0, 2)
        m.ack()


def test_start_positions(client):
    fill(client, "s.d", 5)
    with client.subscribe("s.d", "from-2", start=2, idle_timeout=1) as sub:
        assert [m.offset for m in sub] == [2, 3, 4]
    with client.subscribe("s.d", "latest", start="latest", idle_timeout=0.5) as sub:
        assert list(sub) == []
        fill(client, "s.d", 1)
        assert [m.offset for m in sub] == [5]
    with client.subscribe("s.d", "by-time", start=dt.datetime.now() + dt.timedelta(hours=1),
                          idle_timeout=0.5) as sub:
        assert list(sub) == []


def test_ephemeral_fan_out(client, broker):
    with client.subscribe("s.e.>", None) as sub:
        client.publish_transient("s.e.x", b"hot")
        m = sub.get(5)
        assert (m.topic, m.payload) == ("s.e.x", b"hot")


def test_close_remove_deletes_the_cursor(client):
    fill(client, "s.f", 3)
    with client.subscribe("s.f", "gone", start="earliest", idle_timeout=1) as sub:
        for m in sub:
            m.ack()
    sub = client.subscribe("s.f", "gone")
    sub.close(remove=True)
    assert "gone" not in [s.name for s in client.stats()[1]]
    # A new subscription of that name starts over.
    with client.subscribe("s.f", "gone", start="earliest", idle_timeout=1) as sub:
        assert [(m.offset, m.ack())[0] for m in sub] == [0, 1, 2]
