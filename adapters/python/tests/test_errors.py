"""Errors carry the SL_E* code, its name and the reason: refusals at
once, refusals by the broker in the future, schema violations with their
JSON pointer, and the settling of where to connect."""
import pytest

import sluice
from sluice import errors

ORDER = {"type": "object", "additionalProperties": False, "required": ["id", "total"],
         "properties": {"id": {"type": "string"},
                        "total": {"type": "number", "minimum": 0}}}


def test_error_shape():
    e = sluice.errors.error(-407, "why")
    assert isinstance(e, sluice.AuthError) and isinstance(e, sluice.SluiceError)
    assert (e.code, e.name, e.text) == (-407, "SL_EAUTH", "why")
    assert str(e) == "SL_EAUTH (407): why"
    t = sluice.errors.error(-408)
    assert isinstance(t, TimeoutError) and t.text == sluice.strerror(-408) != ""
    assert errors.SL_EINVAL == -422


def test_bad_topic_is_refused_at_once(client):
    with pytest.raises(sluice.InvalidError) as e:
        client.publish("bad topic!", b"x")
    assert e.value.code == -422 and e.value.name == "SL_EINVAL"
    with pytest.raises(sluice.DeniedError) as e:
        client.publish("_audit", b"x")
    assert e.value.code == -403


def test_schema_refusal_reaches_the_future_with_its_reason(client):
    assert client.schema_register("shop.order", ORDER) == 1
    client.topic_set_schema("shop.orders", "shop.order")
    ok = client.publish("shop.orders", '{"id":"A1","total":1}', content_type="application/json")
    bad = client.publish("shop.orders", '{"id":7,"total":-1}', content_type="application/json")
    assert ok.result(10) == 0
    e = bad.exception(10)
    assert isinstance(e, sluice.InvalidError) and e.code == -422
    # The broker's words: the JSON pointers, the rules, the schema.
    assert "/id" in e.text and "/total" in e.text and "shop.order@1" in e.text
    with pytest.raises(sluice.InvalidError):
        client.publish_sync("shop.orders", "not json")
    # Nothing refused was stored.
    assert client.topic("shop.orders").messages == 1


def test_admin_refusal_text(client):
    with pytest.raises(sluice.NotFoundError) as e:
        client.topic_set_schema("shop.x", "no.such")
    assert e.value.code == -404 and e.value.text


def test_nothing_listening_times_out(monkeypatch):
    c = sluice.Client(broker="tcp://127.0.0.1:1", insecure_plaintext=True,
                      connect_timeout_ms=300)
    with pytest.raises(sluice.TimeoutError) as e:
        c.connect()
    assert e.value.code == -408
    f = c.publish("t", b"x")
    with pytest.raises(TimeoutError):
        f.result(0.3)
    assert not f.done()
    c.close(timeout=0)
    assert isinstance(f.exception(0), sluice.UnavailableError)


def test_settling_errors_say_what_to_type(tmp_path):
    with pytest.raises(sluice.InvalidError) as e:
        sluice.Client(home=str(tmp_path))          # no server.pub there
    assert e.value.code == -422 and str(tmp_path) in e.value.text
    with pytest.raises(sluice.InvalidError) as e:
        sluice.Client(cert="x.cert", insecure_plaintext=True)
    assert e.value.text


def test_unreadable_cert_is_refused_with_the_reason(tmp_path, secure_broker):
    cert = tmp_path / "app.cert"
    sluice.keygen("app", str(cert))
    cert.chmod(0o644)
    with pytest.raises(sluice.DeniedError) as e:
        sluice.Client(home=secure_broker.dir, cert=str(cert))
    assert "chmod 600" in e.value.text
