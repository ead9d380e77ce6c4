"""CurveZMQ: a home directory gives the keys, a registered key with
grants works, an unknown key or a wrong server key is an AuthError."""
import pytest

import sluice


def test_home_gives_endpoint_and_keys(secure_broker):
    with sluice.Client(home=secure_broker.dir) as c:
        assert c.endpoint == secure_broker.endpoint
        assert c.home == secure_broker.dir
        assert len(c.public_key) == 40
        assert c.publish_sync("sec.a", b"x") == 0
        c.connect()
        assert c.connected


def test_home_from_the_environment(secure_broker, monkeypatch):
    monkeypatch.setenv("SLUICE_HOME", secure_broker.dir)
    with sluice.Client() as c:
        assert c.publish_sync("sec.b", b"x") == 0


def test_plaintext_client_is_refused_by_a_secure_broker(secure_broker):
    c = sluice.Client(broker=secure_broker.endpoint, insecure_plaintext=True,
                      connect_timeout_ms=3000)
    with pytest.raises(sluice.AuthError) as e:
        c.connect()
    assert e.value.code == -407 and "CURVE" in e.value.text
    c.close(timeout=0)


def test_registered_key_has_its_grants_and_no_more(secure_broker, tmp_path):
    cert = str(tmp_path / "shop.cert")
    pub = sluice.keygen("shop", cert, str(tmp_path / "shop.pub"))
    server_pub = f"{secure_broker.dir}/server.pub"
    # Unknown to the broker: refused, and the reason says so.
    c = sluice.Client(broker=secure_broker.endpoint, cert=cert, server_key=server_pub)
    with pytest.raises(sluice.AuthError) as e:
        c.connect()
    assert e.value.code == -407 and e.value.name == "SL_EAUTH"
    assert "refused this client's key" in e.value.text
    c.close(timeout=0)
    with sluice.Client(home=secure_broker.dir) as admin:
        admin.key_add("shop", pub)
        admin.grant("shop", "shop.>", ["publish", "subscribe"])
    with sluice.Client(broker=secure_broker.endpoint, cert=cert, server_key=server_pub) as c:
        assert c.publish_sync("shop.orders", b"{}") == 0
        f = c.publish("other.topic", b"{}")
        e = f.exception(10)
        assert isinstance(e, sluice.DeniedError) and e.code == -403
        with c.subscribe("shop.orders", "shop-reader", start="earliest") as sub:
            m = sub.get(5)
            assert m.payload == b"{}"
            m.ack()
        with pytest.raises(sluice.DeniedError):
            c.topic_create("shop.new")


def test_wrong_server_key_is_an_auth_error(secure_broker, tmp_path):
    other = sluice.keygen("not-the-broker", str(tmp_path / "o.cert"), str(tmp_path / "o.pub"))
    c = sluice.Client(broker=secure_broker.endpoint,
                      cert=f"{secure_broker.dir}/admin.cert", server_key=other,
                      connect_timeout_ms=5000)
    with pytest.raises(sluice.AuthError) as e:
        c.connect()
    assert e.value.code == -407 and "server_key" in e.value.text
    # A future waited on meets the same refusal; it stays pending (the
    # message is still queued) until close() fails it.
    f = c.publish("sec.c", b"x")
    with pytest.raises(sluice.AuthError):
        f.result(1)
    assert not f.done()
    c.close(timeout=0)
    assert isinstance(f.exception(0), sluice.UnavailableError)
