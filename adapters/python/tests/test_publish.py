"""Publishing: futures, offsets, publish_sync, publish_many, the threading
rule, and what close() does to pending futures."""
import concurrent.futures as cf
import threading
import time

import pytest

import sluice


def count(c, topic):
    return c.topic(topic).messages


def test_futures_resolve_to_consecutive_offsets(client):
    futs = [client.publish("t.a", f"m{i}") for i in range(1000)]
    assert all(isinstance(f, cf.Future) for f in futs)
    # result() drives the client: no poll() or flush() needed.
    assert futs[-1].result(10) == 999
    client.flush(10)
    assert [f.result(0) for f in futs] == list(range(1000))
    assert client.unconfirmed == 0
    assert count(client, "t.a") == 1000


def test_publish_sync_returns_the_stored_offset(client):
    assert client.publish_sync("t.b", b"one") == 0
    assert client.publish_sync("t.b", "two", headers={"k": "v"},
                               content_type="text/plain") == 1
    with client.subscribe("t.b", "s", start="earliest", idle_timeout=2) as sub:
        got = [(m.offset, m.payload, m.headers.get("k"), m.content_type)
               for m in sub if not m.ack()]
    assert got == [(0, b"one", None, None), (1, b"two", "v", "text/plain")]


def test_publish_many_keeps_order(client):
    payloads = [bytes([i % 256]) * 256 for i in range(5000)]
    futs = client.publish_many("t.c", payloads)
    client.flush(30)
    assert [f.result() for f in futs] == list(range(5000))
    with client.subscribe("t.c", "s", start="earliest", idle_timeout=2) as sub:
        seen = []
        for m in sub:
            seen.append(m.payload)
            m.ack()
    assert seen == payloads


def test_payload_types(client):
    for p in (b"b", bytearray(b"ba"), memoryview(b"mv"), "str é"):
        client.publish_sync("t.d", p)
    with client.subscribe("t.d", None, start="earliest", idle_timeout=1) as sub:
        assert [m.payload for m in sub] == [b"b", b"ba", b"mv", "str é".encode()]


def test_result_on_another_thread_waits_for_the_owner(client):
    f = client.publish("t.e", b"x")
    got = []
    waiting = threading.Event()

    def other():
        waiting.set()
        got.append(f.result(10))

    t = threading.Thread(target=other)
    t.start()
    waiting.wait(5)
    time.sleep(0.2)         # let it block in result(): nothing resolves it
    assert not got and not f.done()
    # Only the owner does I/O; the other thread is woken when it settles.
    client.flush(10)
    t.join(10)
    assert got == [0]


def test_wait_as_completed_and_done_callbacks(client):
    calls = []
    futs = [client.publish("t.f", b"x") for _ in range(100)]
    futs[0].add_done_callback(lambda f: calls.append(f.result()))
    client.flush(10)
    done, not_done = cf.wait(futs, timeout=0)
    assert len(done) == 100 and not not_done
    assert sorted(f.result() for f in cf.as_completed(futs)) == list(range(100))
    assert calls == [0]
    assert futs[1].cancel() is False and futs[1].done()


def test_result_inside_a_callback_refuses_instead_of_hanging(client):
    seen = []

    def cb(f):
        # Publishing inside a callback works; waiting there cannot (the
        # client does no I/O inside its callbacks): it must refuse.
        g = client.publish("t.g", b"from the callback")
        seen.append(g)
        try:
            g.result()
        except sluice.BusyError as e:
            seen.append(e)

    client.publish("t.g", b"a").add_done_callback(cb)
    client.flush(10)
    assert len(seen) == 2 and "inside a confirm callback" in seen[1].text
    assert seen[0].result(10) == 1


def test_another_thread_is_refused(client):
    errs = []

    def other():
        try:
            client.publish("t.h", b"x")
        except sluice.SluiceError as e:
            errs.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errs) == 1 and errs[0].code == sluice.errors.SL_EBUSY
    assert "one Client per thread" in errs[0].text


def test_close_fails_what_is_pending_and_refuses_later_calls(broker):
    c = sluice.Client(broker=broker.endpoint, insecure_plaintext=True)
    c.publish_sync("t.i", b"x")
    broker.stop()
    futs = [c.publish("t.i", b"y") for _ in range(10)]
    c.close(timeout=0.3)
    for f in futs:
        with pytest.raises(sluice.UnavailableError) as e:
            f.result(1)
        assert e.value.code == -503 and "closed" in e.value.text
    with pytest.raises(sluice.UnavailableError):
        c.publish("t.i", b"z")
    c.close()       # idempotent


def test_context_manager_flushes(broker):
    with sluice.Client(broker=broker.endpoint, insecure_plaintext=True) as c:
        futs = [c.publish("t.j", b"x") for _ in range(500)]
    assert all(f.done() and f.exception() is None for f in futs)
    with sluice.Client(broker=broker.endpoint, insecure_plaintext=True) as c:
        assert c.topic("t.j").messages == 500


def test_a_dropped_client_fails_its_futures_and_a_subscription_keeps_it(broker):
    f = sluice.Client(broker=broker.endpoint, insecure_plaintext=True).publish("t.k", b"x")
    # The Client is gone (nothing referred to it): its future is failed,
    # not left hanging.
    assert isinstance(f.exception(1), sluice.UnavailableError)
    sub = sluice.Client(broker=broker.endpoint, insecure_plaintext=True).subscribe(
        "t.k", None)
    assert sub.get(0.2) is None     # its Client lives as long as it does
    sub.close()


def test_close_inside_a_callback_is_refused(client):
    seen = []

    def cb(f):
        try:
            client.close()
        except sluice.BusyError as e:
            seen.append(e)

    client.publish("t.l", b"a").add_done_callback(cb)
    client.flush(10)
    assert len(seen) == 1 and not client.closed


def test_headers_do_not_leak_into_the_next_message(client):
    client.publish("t.m", b"1", headers={"a": "1"}, content_type="x/y", msg_id="id-1")
    client.publish("t.m", b"2")
    client.publish_many("t.m", [b"3"], headers={"b": "2"})
    client.publish("t.m", b"4")
    client.flush(10)
    with client.subscribe("t.m", None, start="earliest", idle_timeout=1) as sub:
        got = [(m.payload, m.headers, m.content_type) for m in sub]
    assert [(p, {k: v for k, v in h.items() if k != "msg-id"}, ct) for p, h, ct in got] == [
        (b"1", {"a": "1"}, "x/y"), (b"2", {}, None), (b"3", {"b": "2"}, None), (b"4", {}, None)]
    assert got[0][1].get("msg-id") == "id-1" and "msg-id" not in got[1][1]


def test_asyncio_on_another_thread_awaits_the_future(client):
    import asyncio
    f = client.publish("t.n", b"x")
    got = []

    async def wait():
        return await asyncio.wait_for(asyncio.wrap_future(f), 10)

    t = threading.Thread(target=lambda: got.append(asyncio.run(wait())))
    t.start()
    time.sleep(0.2)
    client.flush(10)
    t.join(10)
    assert got == [0]
