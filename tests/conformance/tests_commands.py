"""tests_commands - one test per row of docs/protocol.md's "Commands" table:
the reply frame each command gets, with its corr echoed, and what the row's
notes promise that a client can see. Written from the doc alone.
Each test takes the World (harness.py) and raises harness.Fail.
"""

import os
import time

import zmq

import harness
from harness import (Fail, check, corr, expect_body, expect_confirm, expect_error,
                     expect_refused, row)

PERM_PUBLISH, PERM_SUBSCRIBE, PERM_ADMIN = 1, 2, 4  # proto Permission bits
PERM_ALL = PERM_PUBLISH | PERM_SUBSCRIBE | PERM_ADMIN


def pb():
    return harness.pb


def new_identity(w, admin, name, grants=()):
    """Register NAME with a fresh key pair through ADMIN (a Client of the
    curve broker) and give it GRANTS [(perms, pattern)]. Returns the keys
    (Z85 public, secret)."""
    pub, sec = zmq.curve_keypair()
    admin.ok('key_add', name=name, public_key=harness.raw_key(pub))
    if grants:
        admin.ok('grant_change', name=name,
                 grants=[pb().Grant(perms=p, pattern=pat) for p, pat in grants])
    return pub, sec


def stats(c, **which):
    r, k = c.admin('stats', **which)
    expect_body(r, 'stats_reply', k)
    return r.stats_reply


def ack_items(ds):
    return [pb().AckItem(topic_id=d.topic_id, offset=d.offset, token=d.token) for d in ds]


def envelope(d):
    e = pb().Envelope()
    e.ParseFromString(d.envelope)
    return e


@row('commands', '`Hello{version, client, heartbeat_ms, producer_id}`')
def test_hello(w):
    producer = os.urandom(16)
    c = w.client('plain')
    r = c.hello(producer_id=producer)
    h = r.hello_ok
    check(h.version == 1, 'HelloOk.version %d' % h.version)
    check(h.max_message_bytes == 1024, 'HelloOk.max_message_bytes %d, broker runs with 1024'
          % h.max_message_bytes)
    check(h.max_batch == 10, 'HelloOk.max_batch %d, broker runs with 10' % h.max_batch)
    check(h.heartbeat_ms == 1000, 'HelloOk.heartbeat_ms %d, broker default 1000' % h.heartbeat_ms)
    check(h.producer_last_seq == 0, 'producer_last_seq %d for an id never used'
          % h.producer_last_seq)
    for seq in (1, 2, 3):
        c.publish_ok('conf.hello', producer_id=producer, seq=seq)
    # A producer that restarts with its persisted id continues after it.
    d = w.client('plain')
    h2 = d.hello(producer_id=producer).hello_ok
    check(h2.producer_last_seq == 3, 'producer_last_seq %d after seqs 1..3 were stored'
          % h2.producer_last_seq)
    check(h2.session == h.session and h2.broker == h.broker,
          'HelloOk.broker/session differ between two sessions of one broker run')
    # Idempotent on a READY session.
    r3 = d.hello(producer_id=producer)
    check(r3.hello_ok.producer_last_seq == 3, 'second Hello: producer_last_seq %d'
          % r3.hello_ok.producer_last_seq)
    d.publish_ok('conf.hello', producer_id=producer, seq=4)


@row('commands', '`Heartbeat{now_us}`')
def test_heartbeat(w):
    c = w.session('plain')
    f = pb().Frame(corr=corr())
    f.heartbeat.now_us = 12345
    before = time.time() * 1e6
    r = c.request(f)
    after = time.time() * 1e6
    expect_body(r, 'heartbeat', f.corr)
    check(before - 5e6 <= r.heartbeat.now_us <= after + 5e6,
          'Heartbeat.now_us %d is not the broker\'s clock (now %d)' % (r.heartbeat.now_us, after))
    # The broker never sends heartbeats of its own.
    c.silence(1.2)


@row('commands', '`Publish{msg}`')
def test_publish(w):
    c = w.session('plain')
    topic = 'conf.pub.new%d' % os.getpid()
    check(all(t.name != topic for t in stats(c, topics=True).topics), 'topic exists already')
    producer = os.urandom(16)
    c1 = c.publish_one(topic, b'one', producer_id=producer, seq=1)
    expect_confirm(c1, 0, text='')
    check(c1.seq == 1 and not c1.duplicate and c1.index == 0,
          'Confirm seq=%d duplicate=%s index=%d' % (c1.seq, c1.duplicate, c1.index))
    # Publishing to a topic that does not exist created it.
    t = [t for t in stats(c, topics=True).topics if t.name == topic]
    check(len(t) == 1, 'topic %s not listed after a publish to it' % topic)
    check(t[0].next_offset > c1.offset, 'topic next_offset %d, message at %d'
          % (t[0].next_offset, c1.offset))
    # Deduplication by (producer_id, seq): confirmed again, not stored again.
    c2 = c.publish_one(topic, b'one', producer_id=producer, seq=1)
    check(c2.code == 0 and c2.duplicate and c2.offset == c1.offset and c2.seq == 1,
          'resend of seq 1: code=%d duplicate=%s offset=%d (original %d)'
          % (c2.code, c2.duplicate, c2.offset, c1.offset))
    c3 = c.publish_one(topic, b'two', producer_id=producer, seq=2)
    check(c3.code == 0 and not c3.duplicate and c3.offset == c1.offset + 1,
          'seq 2: code=%d duplicate=%s offset=%d' % (c3.code, c3.duplicate, c3.offset))
    # ... and by the msg-id header for producers without state.
    m1 = c.publish_one(topic, b'x', headers=[('msg-id', 'conf-1')])
    m2 = c.publish_one(topic, b'x', headers=[('msg-id', 'conf-1')])
    check(m1.code == 0 and not m1.duplicate, 'msg-id publish: %d %s' % (m1.code, m1.text))
    check(m2.code == 0 and m2.duplicate and m2.offset == m1.offset,
          'same msg-id again: code=%d duplicate=%s offset=%d (original %d)'
          % (m2.code, m2.duplicate, m2.offset, m1.offset))


@row('commands', '`PublishBatch{msgs}`')
def test_publish_batch(w):
    c = w.session('plain')
    topic = 'conf.batch'
    f = pb().Frame(corr=corr())
    for t in (topic, 'bad..topic', topic):
        f.publish_batch.msgs.add(topic=t, payload=b'b')
    r = c.request(f)
    expect_body(r, 'publish_ack', f.corr)
    cs = r.publish_ack.confirms
    check(len(cs) == 3, '%d confirms for a batch of 3' % len(cs))
    check([x.index for x in cs] == [0, 1, 2], 'confirm indexes %s, in order 0,1,2 expected'
          % [x.index for x in cs])
    expect_confirm(cs[0], 0)
    expect_confirm(cs[1], 422)  # a refused message does not stop the others
    expect_confirm(cs[2], 0)
    check(cs[2].offset == cs[0].offset + 1, 'offsets %d and %d of one topic in one batch'
          % (cs[0].offset, cs[2].offset))


@row('commands', '`Publish`/`PublishBatch` with `transient = true`')
def test_transient(w):
    sub = w.session('plain')
    pubr = w.session('plain')
    s = sub.subscribe_ok('', 'conf.tr.>', credit=100, ephemeral=True)
    # Fanned out to the ephemeral subscriber; an empty PublishAck for corr != 0.
    f = pubr.publish('conf.tr.a', b'hot', transient=True)
    r = pubr.request(f)
    expect_body(r, 'publish_ack', f.corr)
    check(len(r.publish_ack.confirms) == 0, 'transient PublishAck has %d confirms'
          % len(r.publish_ack.confirms))
    d = sub.deliveries(1)[0]
    check(d.sub_id == s.sub_id and envelope(d).payload == b'hot',
          'transient delivery %s' % harness.dump(pb().Deliver(msgs=[d])))
    # corr = 0: fanned out, no answer.
    pubr.send(pubr.publish('conf.tr.b', b'quiet', transient=True, c=0))
    check(envelope(sub.deliveries(1)[0]).payload == b'quiet', 'corr-0 transient not fanned out')
    pubr.silence(0.3)
    # Not stored: no topic got it.
    check(all(not t.name.startswith('conf.tr.') for t in stats(pubr, topics=True).topics),
          'a transient publish created a stored topic')
    # Bad messages: reported once per frame by one Error, 403 before 422 before
    # 413; a 403 always, a 422 or 413 only when corr != 0.
    cases = [
        (['conf.tr.ok', 'bad..t', '_conf.tr'], [b'', b'', b''], 403),
        (['conf.tr.ok', 'bad..t', 'conf.tr.c'], [b'', b'', b'x' * 2000], 422),
        (['conf.tr.ok', 'conf.tr.c'], [b'', b'x' * 2000], 413),
    ]
    problems = []
    for topics, payloads, code in cases:
        for k in (corr(), 0):
            f = pb().Frame(corr=k)
            for t, p in zip(topics, payloads):
                f.publish_batch.msgs.add(topic=t, payload=p)
            f.publish_batch.transient = True
            pubr.send(f)
            got = pubr.collect(0.2)
            errors = [x for x in got if x.WhichOneof('body') == 'error']
            # Whether an empty PublishAck also answers a frame with a bad
            # message the doc does not say: one is tolerated, not required.
            others = [x for x in got if x.WhichOneof('body') != 'error' and not (
                k and x.corr == k and x.WhichOneof('body') == 'publish_ack'
                and not x.publish_ack.confirms)]
            try:
                if code != 403 and k == 0:
                    check(not got, 'expected no reply to a corr-0 frame (%d), got %s'
                          % (code, [harness.dump(x) for x in got]))
                    continue
                check(len(errors) == 1 and not others, 'expected one Error %d, got %s'
                      % (code, [harness.dump(x) for x in got] or 'nothing'))
                expect_error(errors[0], code, k)
            except Fail as e:
                problems.append('transient batch %s with corr %d: %s' % (topics, k, e))
    # The good message of each bad frame was still fanned out.
    got = [envelope(d).topic for d in sub.deliveries(6)]
    if got.count('conf.tr.ok') != 6:
        problems.append('good messages of bad transient frames delivered: %s' % got)
    check(not problems, '\n'.join(problems))


@row('commands', '`Subscribe{name, pattern, start, credit, ack_wait_ms, max_deliver, ephemeral}`')
def test_subscribe(w):
    a = w.session('plain')
    # 0 means the broker's defaults.
    s0 = a.subscribe_ok('conf-sub-defaults', 'conf.sub0')
    check(s0.name == 'conf-sub-defaults', 'SubscribeOk.name %r' % s0.name)
    check((s0.ack_wait_ms, s0.max_deliver) == (30000, 5),
          'defaults ack_wait_ms/max_deliver %d/%d, docs say 30000/5'
          % (s0.ack_wait_ms, s0.max_deliver))
    s1 = a.subscribe_ok('conf-sub', 'conf.sub', credit=5, ack_wait_ms=5000, max_deliver=3)
    check((s1.ack_wait_ms, s1.max_deliver) == (5000, 3), 'SubscribeOk %d/%d, asked 5000/3'
          % (s1.ack_wait_ms, s1.max_deliver))
    check(s1.sub_id != s0.sub_id, 'two subscriptions share sub_id %d' % s1.sub_id)
    conf = a.publish_ok('conf.sub', b'm1')
    d1 = a.deliveries(1)[0]
    check((d1.sub_id, d1.offset, d1.attempt, d1.topic) == (s1.sub_id, conf.offset, 1, 'conf.sub'),
          'delivery sub_id=%d offset=%d attempt=%d topic=%r'
          % (d1.sub_id, d1.offset, d1.attempt, d1.topic))
    # A second consumer of the name takes it over; ack_wait/max_deliver apply
    # only at creation; what the first had in flight goes to it first.
    b = w.session('plain')
    s2 = b.subscribe_ok('conf-sub', 'conf.sub', credit=5, ack_wait_ms=7000, max_deliver=9)
    check((s2.ack_wait_ms, s2.max_deliver) == (5000, 3),
          'a later Subscribe changed ack_wait_ms/max_deliver to %d/%d'
          % (s2.ack_wait_ms, s2.max_deliver))
    d2 = b.deliveries(1)[0]
    check((d2.sub_id, d2.offset, d2.attempt) == (s2.sub_id, d1.offset, 2),
          'after take-over: sub_id=%d offset=%d attempt=%d (expected %d, %d, 2)'
          % (d2.sub_id, d2.offset, d2.attempt, s2.sub_id, d1.offset))
    check(d2.token != d1.token, 'redelivery kept token %d' % d1.token)
    a.no_delivery(0.2)
    # credit 0 means 1,000.
    a.subscribe_ok('conf-sub-credit0', 'conf.sub.c0', credit=0)
    for _ in range(101):
        f = pb().Frame(corr=corr())
        for _ in range(10):
            f.publish_batch.msgs.add(topic='conf.sub.c0', payload=b'c')
        expect_body(a.request(f), 'publish_ack', f.corr)
    a.deliveries(1000)
    a.no_delivery(0.3)


@row('commands', '`Credit{sub_id, credit}`')
def test_credit(w):
    c = w.session('plain')
    s = c.subscribe_ok('conf-credit', 'conf.credit', credit=1)
    for i in range(3):
        c.publish_ok('conf.credit', b'%d' % i)
    check(len(c.deliveries(1)) == 1, 'no first delivery')
    c.no_delivery(0.3)
    f = pb().Frame(corr=corr())
    f.credit.sub_id = s.sub_id
    f.credit.credit = 2
    c.send(f)
    ds = c.deliveries(2)
    check([d.offset for d in ds] == sorted(d.offset for d in ds), 'out of order')
    c.silence(0.3)  # Credit gets no reply
    g = pb().Frame(corr=corr())
    g.credit.sub_id = s.sub_id + 1000
    g.credit.credit = 1
    expect_error(c.request(g), 404, g.corr, text='unknown subscription id')


@row('commands', '`Ack{sub_id, items, credit}`')
def test_ack(w):
    c = w.session('plain')
    s = c.subscribe_ok('conf-ack', 'conf.ack', credit=1, ack_wait_ms=300)
    c.publish_ok('conf.ack', b'1')
    c.publish_ok('conf.ack', b'2')
    d1 = c.deliveries(1)[0]
    f = pb().Frame(corr=corr())
    f.ack.sub_id = s.sub_id
    f.ack.items.extend(ack_items([d1]))
    f.ack.credit = 1  # credit rides on the ack
    r = c.request(f)
    expect_body(r, 'ack_reply', f.corr)
    check(r.ack_reply.sub_id == s.sub_id and len(r.ack_reply.refused) == 0,
          'AckReply %s' % harness.dump(r))
    d2 = c.deliveries(1)[0]
    check(d2.offset == d1.offset + 1 and d2.attempt == 1, 'second delivery offset %d attempt %d'
          % (d2.offset, d2.attempt))
    # corr = 0 and nothing refused: no reply.
    g = pb().Frame(corr=0)
    g.ack.sub_id = s.sub_id
    g.ack.items.extend(ack_items([d2]))
    c.send(g)
    c.silence(0.2)
    # Acked items are never delivered again (ack_wait is 300 ms).
    c.no_delivery(0.7)


@row('commands', '`Nack{sub_id, items, delay_ms, reason, credit}`')
def test_nack(w):
    c = w.session('plain')
    s = c.subscribe_ok('conf-nack', 'conf.nack', credit=5)
    c.publish_ok('conf.nack', b'n')
    d1 = c.deliveries(1)[0]
    f = pb().Frame(corr=corr())
    f.nack.sub_id = s.sub_id
    f.nack.items.extend(ack_items([d1]))
    f.nack.delay_ms = 400
    f.nack.reason = 'conformance'
    t0 = time.monotonic()
    r = c.request(f)
    expect_body(r, 'ack_reply', f.corr)
    check(len(r.ack_reply.refused) == 0, 'AckReply %s' % harness.dump(r))
    d2 = c.deliveries(1)[0]
    took = time.monotonic() - t0
    check(d2.offset == d1.offset and d2.attempt == 2 and d2.token != d1.token,
          'redelivery offset=%d attempt=%d' % (d2.offset, d2.attempt))
    check(took >= 0.38, 'redelivered %.0f ms after a nack with delay_ms 400' % (took * 1000))
    # delay 0: at once; corr 0: no reply.
    g = pb().Frame(corr=0)
    g.nack.sub_id = s.sub_id
    g.nack.items.extend(ack_items([d2]))
    c.send(g)
    d3 = c.deliveries(1, timeout=0.5)[0]
    check(d3.attempt == 3, 'attempt %d after a second nack' % d3.attempt)
    c.silence(0.2)


@row('commands', '`Unsubscribe{sub_id, remove}`')
def test_unsubscribe(w):
    a = w.session('plain')
    s = a.subscribe_ok('conf-unsub', 'conf.unsub', credit=5)
    a.publish_ok('conf.unsub', b'u')
    d1 = a.deliveries(1)[0]
    r, k = a.admin('unsubscribe', sub_id=s.sub_id)
    expect_body(r, 'ok', k)
    # Later acks under the old sub_id: 404.
    f = pb().Frame(corr=corr())
    f.ack.sub_id = s.sub_id
    f.ack.items.extend(ack_items([d1]))
    expect_error(a.request(f), 404, f.corr, text='unknown subscription id')
    # The subscription stays; its in-flight message goes to the next consumer first.
    b = w.session('plain')
    s2 = b.subscribe_ok('conf-unsub', 'conf.unsub', credit=5)
    d2 = b.deliveries(1)[0]
    check(d2.offset == d1.offset and d2.attempt == 2, 'next consumer got offset %d attempt %d'
          % (d2.offset, d2.attempt))
    # With remove the subscription and its cursor are deleted.
    r, k = b.admin('unsubscribe', sub_id=s2.sub_id, remove=True)
    expect_body(r, 'ok', k)
    names = [x.name for x in stats(b, subs=True).subs]
    check('conf-unsub' not in names, 'subscription still listed after remove: %s' % names)
    r, k = b.admin('unsubscribe', sub_id=s2.sub_id)
    expect_error(r, 404, k)


@row('commands', '`TopicCreate{name, max_age_ms, max_bytes}`')
def test_topic_create(w):
    c = w.session('plain')
    c.ok('topic_create', name='conf.tc', max_age_ms=60000, max_bytes=1 << 20)
    t = [t for t in stats(c, topics=True).topics if t.name == 'conf.tc']
    check(len(t) == 1, 'created topic not listed')
    check((t[0].max_age_ms, t[0].max_bytes) == (60000, 1 << 20),
          'retention %d ms / %d bytes, set 60000 / 1048576' % (t[0].max_age_ms, t[0].max_bytes))
    # On an existing topic it sets the retention (0 = the broker's default, unlimited here).
    c.ok('topic_create', name='conf.tc', max_age_ms=120000)
    t = [t for t in stats(c, topics=True).topics if t.name == 'conf.tc'][0]
    check((t.max_age_ms, t.max_bytes) == (120000, 0),
          'after a second TopicCreate: %d ms / %d bytes, expected 120000 / 0'
          % (t.max_age_ms, t.max_bytes))


@row('commands', '`StatsRequest{topics, subs, counters}`')
def test_stats(w):
    c = w.session('plain')
    c.publish_ok('conf.stats', b's')
    c.subscribe_ok('conf-stats', 'conf.stats')
    every = stats(c)
    check(any(t.name == 'conf.stats' for t in every.topics), 'no topics when none is set')
    check(any(s.name == 'conf-stats' for s in every.subs), 'no subs when none is set')
    check(any(k.name == 'frames.in' for k in every.counters), 'no counters when none is set')
    only = stats(c, topics=True)
    check(only.topics and not only.subs and not only.counters,
          'topics=true gave %d subs, %d counters' % (len(only.subs), len(only.counters)))
    # Only what the identity's grants cover (CurveZMQ broker).
    admin = w.session('curve')
    admin.publish_ok('conf.st.mine', b'1')
    admin.publish_ok('conf.other', b'2')
    admin.subscribe_ok('conf-st-mine', 'conf.st.>')
    admin.subscribe_ok('conf-st-other', 'conf.other')
    keys = new_identity(w, admin, 'conf-stats-reader', [(PERM_SUBSCRIBE, 'conf.st.>')])
    r = w.session('curve', keys=keys)
    seen = stats(r)
    check([t.name for t in seen.topics] == ['conf.st.mine'],
          'topics seen with a grant on conf.st.>: %s' % [t.name for t in seen.topics])
    check([s.name for s in seen.subs] == ['conf-st-mine'],
          'subs seen with a subscribe grant on conf.st.>: %s' % [s.name for s in seen.subs])
    check(not seen.counters, '%d counters seen without admin on >' % len(seen.counters))


@row('commands', '`SubRemove{name}`')
def test_sub_remove(w):
    a = w.session('plain')
    s = a.subscribe_ok('conf-subrm', 'conf.subrm', credit=5)
    b = w.session('plain')
    b.ok('sub_remove', name='conf-subrm')
    check('conf-subrm' not in [x.name for x in stats(b, subs=True).subs],
          'subscription listed after SubRemove')
    # The attached consumer was detached: its sub_id is unknown now.
    f = pb().Frame(corr=corr())
    f.credit.sub_id = s.sub_id
    f.credit.credit = 1
    expect_error(a.request(f), 404, f.corr)
    # The name is free again, even for another pattern.
    a.subscribe_ok('conf-subrm', 'conf.other.pattern')


@row('commands', '`KeyAdd{name, public_key}`')
def test_key_add(w):
    admin = w.session('curve')
    pub, sec = zmq.curve_keypair()
    # Before KeyAdd the key is refused in the handshake.
    early = w.client('curve', keys=(pub, sec), monitor=True)
    ev = early.wait_event({zmq.EVENT_HANDSHAKE_FAILED_AUTH})
    check(ev['value'] == 400, 'HANDSHAKE_FAILED_AUTH status %s, docs say 400' % ev['value'])
    early.close()
    w.clients.remove(early)
    admin.ok('key_add', name='conf-keyadd', public_key=harness.raw_key(pub))
    ids = admin.admin('key_list')[0].key_list_reply.identities
    me = [i for i in ids if i.name == 'conf-keyadd']
    check(len(me) == 1 and me[0].public_key == harness.raw_key(pub) and not me[0].grants
          and not me[0].revoked, 'KeyList after KeyAdd: %s' % [harness.dump(i) for i in me])
    # Now admitted, with no grants: Hello works, a publish is refused.
    c = w.session('curve', keys=(pub, sec))
    conf = c.publish_one('conf.keyadd', b'x')
    check(conf.code == 403, 'publish by an identity with no grants: %d %s' % (conf.code, conf.text))


@row('commands', '`KeyRevoke{name}`')
def test_key_revoke(w):
    admin = w.session('curve')
    keys = new_identity(w, admin, 'conf-revoke', [(PERM_PUBLISH, 'conf.rv.>')])
    c = w.client('curve', keys=keys, monitor=True)
    c.wait_event({zmq.EVENT_HANDSHAKE_SUCCEEDED})
    c.hello()
    c.publish_ok('conf.rv.a')
    admin.ok('key_revoke', name='conf-revoke')
    # Its open connection is closed at once; the reconnect meets the ZAP refusal.
    c.wait_event({zmq.EVENT_DISCONNECTED}, timeout=1.0)
    ev = c.wait_event({zmq.EVENT_HANDSHAKE_FAILED_AUTH})
    check(ev['value'] == 400, 'HANDSHAKE_FAILED_AUTH status %s' % ev['value'])
    ids = admin.admin('key_list')[0].key_list_reply.identities
    me = [i for i in ids if i.name == 'conf-revoke']
    check(me and me[0].revoked and me[0].sessions == 0,
          'KeyList after KeyRevoke: %s' % [harness.dump(i) for i in me])


@row('commands', '`KeyList`')
def test_key_list(w):
    admin = w.session('curve')
    keys = new_identity(w, admin, 'conf-list', [(PERM_PUBLISH | PERM_SUBSCRIBE, 'conf.kl.>')])
    w.session('curve', keys=keys)
    r, k = admin.admin('key_list')
    expect_body(r, 'key_list_reply', k)
    ids = {i.name: i for i in r.key_list_reply.identities}
    check('admin' in ids and 'conf-list' in ids, 'identities listed: %s' % sorted(ids))
    a = ids['admin']
    check(a.public_key == harness.raw_key(w.broker('curve').admin_keys[0]),
          'admin.public_key is not admin.cert\'s key')
    check(any(g.pattern == '>' and g.perms == PERM_ALL for g in a.grants),
          'admin grants %s lack publish+subscribe+admin on >' % [harness.dump(g) for g in a.grants])
    check(a.sessions >= 1 and not a.revoked,
          'admin sessions=%d revoked=%s' % (a.sessions, a.revoked))
    m = ids['conf-list']
    check(m.public_key == harness.raw_key(keys[0]), 'conf-list key differs')
    check([(g.perms, g.pattern) for g in m.grants] == [(3, 'conf.kl.>')],
          'conf-list grants %s' % [(g.perms, g.pattern) for g in m.grants])
    check(m.sessions == 1, 'conf-list sessions %d with one open' % m.sessions)


@row('commands', '`GrantChange{name, grants, revoke}`')
def test_grant_change(w):
    admin = w.session('curve')
    keys = new_identity(w, admin, 'conf-grant')
    c = w.session('curve', keys=keys)
    check(c.publish_one('conf.gc.a').code == 403, 'publish allowed before any grant')
    admin.ok('grant_change', name='conf-grant',
             grants=[pb().Grant(perms=PERM_PUBLISH, pattern='conf.gc.>')])
    expect_confirm(c.publish_one('conf.gc.a'), 0)
    check(c.publish_one('conf.gcx').code == 403, 'grant on conf.gc.> covered conf.gcx')
    admin.ok('grant_change', name='conf-grant', revoke=True,
             grants=[pb().Grant(perms=PERM_PUBLISH, pattern='conf.gc.>')])
    check(c.publish_one('conf.gc.a').code == 403, 'publish allowed after the grant was revoked')


@row('commands', '`RotateKey`')
def test_rotate_key(w):
    admin = w.session('curve')  # sealed at rest
    r, k = admin.admin('rotate_key')
    expect_body(r, 'rotate_key_reply', k)
    k1 = r.rotate_key_reply.key_id
    r, k = admin.admin('rotate_key')
    expect_body(r, 'rotate_key_reply', k)
    check(r.rotate_key_reply.key_id > k1, 'key ids %d then %d' % (k1, r.rotate_key_reply.key_id))
    admin.publish_ok('conf.rotated', b'sealed under the new key')
    # 422 when encryption at rest is off.
    plain = w.session('plain')
    r, k = plain.admin('rotate_key')
    expect_error(r, 422, k)


# V2 adds an optional member, which V1 closed with additionalProperties:
# BACKWARD compatible (docs/schemas.md).
SCHEMA_V1 = ('{"type": "object", "properties": {"id": {"type": "string"}}, '
             '"required": ["id"], "additionalProperties": false}')
SCHEMA_V2 = ('{"type": "object", "properties": {"id": {"type": "string"}, '
             '"note": {"type": "string"}}, "required": ["id"], "additionalProperties": false}')
SCHEMA_BREAK = ('{"type": "object", "properties": {"id": {"type": "integer"}, '
                '"who": {"type": "string"}}, "required": ["id", "who"]}')


def register(c, subject, schema, **kw):
    r, k = c.admin('schema_register', subject=subject, schema=schema, **kw)
    expect_body(r, 'schema_register_reply', k)
    return r.schema_register_reply


def schema_get(c, subject, version=0):
    r, k = c.admin('schema_get', subject=subject, version=version)
    expect_body(r, 'schema_info', k)
    return r.schema_info


@row('commands', '`SchemaRegister{subject, schema, compat, dry_run}`')
def test_schema_register(w):
    c = w.session('plain')
    r = register(c, 'conf.reg', SCHEMA_V1)
    check((r.version, r.existed) == (1, False), 'first register: %d %s' % (r.version, r.existed))
    r = register(c, 'conf.reg', SCHEMA_V1)
    check((r.version, r.existed) == (1, True), 'same schema again: %d %s' % (r.version, r.existed))
    r = register(c, 'conf.reg', SCHEMA_V2, dry_run=True)
    check((r.version, r.existed) == (2, False), 'dry run: %d %s' % (r.version, r.existed))
    check(schema_get(c, 'conf.reg').version == 1, 'dry_run registered a version')
    # Every compatibility break is listed in the 422 text.
    r, k = c.admin('schema_register', subject='conf.reg', schema=SCHEMA_BREAK)
    expect_error(r, 422, k, contains=('id', 'who'))
    check(schema_get(c, 'conf.reg').version == 1, 'an incompatible schema was registered')
    r = register(c, 'conf.reg', SCHEMA_V2)
    check((r.version, r.existed) == (2, False), 'second version: %d %s' % (r.version, r.existed))
    # admin on '>' is needed.
    admin = w.session('curve')
    keys = new_identity(w, admin, 'conf-schema-user', [(PERM_ALL, 'conf.>')])
    u = w.session('curve', keys=keys)
    r, k = u.admin('schema_register', subject='conf.reg', schema=SCHEMA_V1)
    expect_error(r, 403, k)


@row('commands', '`SchemaGet{subject, version}`')
def test_schema_get(w):
    c = w.session('plain')
    register(c, 'conf.get', SCHEMA_V1)
    register(c, 'conf.get', SCHEMA_V2)
    latest = schema_get(c, 'conf.get')
    check((latest.subject, latest.version, latest.versions) == ('conf.get', 2, 2),
          'version 0: %s' % harness.dump(latest))
    v1 = schema_get(c, 'conf.get', 1)
    check(v1.version == 1 and '"required"' in v1.schema and 'note' not in v1.schema,
          'version 1: %s' % harness.dump(v1))
    r, k = c.admin('schema_get', subject='conf.get', version=3)
    expect_error(r, 404, k)
    # Any session may read.
    admin = w.session('curve')
    register(admin, 'conf.get', SCHEMA_V1)
    keys = new_identity(w, admin, 'conf-schema-reader')
    u = w.session('curve', keys=keys)
    check(schema_get(u, 'conf.get').version == 1, 'reader without grants')


@row('commands', '`SchemaList`')
def test_schema_list(w):
    c = w.session('plain')
    register(c, 'conf.list.a', SCHEMA_V1)
    register(c, 'conf.list.a', SCHEMA_V2)
    register(c, 'conf.list.b', SCHEMA_V1)
    r, k = c.admin('schema_list')
    expect_body(r, 'schema_list_reply', k)
    got = {s.subject: s.version for s in r.schema_list_reply.subjects}
    check(got.get('conf.list.a') == 2 and got.get('conf.list.b') == 1,
          'SchemaList: %s' % got)
    check(sum(1 for s in r.schema_list_reply.subjects if s.subject == 'conf.list.a') == 1,
          'a subject listed more than once')
    admin = w.session('curve')
    keys = new_identity(w, admin, 'conf-schema-lister')
    u = w.session('curve', keys=keys)
    r, k = u.admin('schema_list')
    expect_body(r, 'schema_list_reply', k)


@row('commands', '`TopicSet{topic, subject, version, invalid}`')
def test_topic_set(w):
    c = w.session('plain')
    register(c, 'conf.ts', SCHEMA_V1)
    c.ok('topic_set', topic='conf.ts.t', subject='conf.ts', version=1)
    expect_confirm(c.publish_one('conf.ts.t', b'{"id": "a"}'), 0)
    check(c.publish_one('conf.ts.t', b'{"id": 1}').code == 422, 'invalid message accepted')
    c.ok('topic_set', topic='conf.ts.t', subject='')  # unbind
    expect_confirm(c.publish_one('conf.ts.t', b'{"id": 1}'), 0)


MAPPING = """name: conf-map
from: conf.map.src@1
to: conf.map.dst@1
map:
  id: $.id
"""


def mapping_setup(c):
    register(c, 'conf.map.src', SCHEMA_V1)
    register(c, 'conf.map.dst', SCHEMA_V1)


@row('commands', '`MappingAdd{yaml}`')
def test_mapping_add(w):
    c = w.session('plain')
    mapping_setup(c)
    r, k = c.admin('mapping_add', yaml=MAPPING)
    expect_body(r, 'mapping_info', k)
    m = r.mapping_info
    check((m.name, m.to) == ('conf-map', 'conf.map.dst@1') and m.yaml == '',
          'MappingInfo %s' % harness.dump(m))
    check(getattr(m, 'from') == 'conf.map.src@1', 'MappingInfo.from %r'
          % getattr(m, 'from'))
    r, k = c.admin('mapping_add', yaml=MAPPING.replace('$.id', '$.nope +'))
    expect_error(r, 422, k)


@row('commands', '`MappingGet{name}`')
def test_mapping_get(w):
    c = w.session('plain')
    mapping_setup(c)
    c.admin('mapping_add', yaml=MAPPING)
    r, k = c.admin('mapping_get', name='conf-map')
    expect_body(r, 'mapping_info', k)
    check(r.mapping_info.name == 'conf-map' and '$.id' in r.mapping_info.yaml,
          'MappingGet: %s' % harness.dump(r))


@row('commands', '`MappingList`')
def test_mapping_list(w):
    c = w.session('plain')
    mapping_setup(c)
    c.admin('mapping_add', yaml=MAPPING)
    c.admin('mapping_add', yaml=MAPPING.replace('conf-map', 'conf-map-2'))
    r, k = c.admin('mapping_list')
    expect_body(r, 'mapping_list_reply', k)
    names = sorted(m.name for m in r.mapping_list_reply.mappings)
    check('conf-map' in names and 'conf-map-2' in names, 'MappingList: %s' % names)
    check(all(not m.yaml for m in r.mapping_list_reply.mappings), 'MappingList carries YAML')
    # Any session may list and get.
    admin = w.session('curve')
    mapping_setup(admin)
    r, k = admin.admin('mapping_add', yaml=MAPPING)
    expect_body(r, 'mapping_info', k)
    keys = new_identity(w, admin, 'conf-map-reader')
    u = w.session('curve', keys=keys)
    r, k = u.admin('mapping_list')
    expect_body(r, 'mapping_list_reply', k)
    check([m.name for m in r.mapping_list_reply.mappings] == ['conf-map'],
          'MappingList for a reader: %s' % harness.dump(r))
    r, k = u.admin('mapping_get', name='conf-map')
    expect_body(r, 'mapping_info', k)


@row('commands', '`MappingRemove{name}`')
def test_mapping_remove(w):
    c = w.session('plain')
    mapping_setup(c)
    c.admin('mapping_add', yaml=MAPPING.replace('conf-map', 'conf-map-rm'))
    c.ok('mapping_remove', name='conf-map-rm')
    r, k = c.admin('mapping_get', name='conf-map-rm')
    expect_error(r, 404, k)


# Routing tables (docs/routing.md). The brokers are shared by every test:
# each test that applies a table ends by applying an empty one.
ROUTES = """routes:
  - name: conf-rt
    match: { topic: "conf.rt.in" }
    to: conf.rt.out
"""
ROUTES_EMPTY = 'routes: []\n'


def routes_apply(c, yaml, **kw):
    r, k = c.admin('routes_apply', yaml=yaml, **kw)
    expect_body(r, 'routes_apply_reply', k)
    return r.routes_apply_reply


def routes_live(c):
    r, k = c.admin('routes_list')
    expect_body(r, 'routes_list_reply', k)
    return r.routes_list_reply.live


@row('commands', '`RoutesApply{yaml, dry_run, expect_version}`')
def test_routes_apply(w):
    c = w.session('plain')
    live = routes_live(c)
    dry = routes_apply(c, ROUTES, dry_run=True)
    check(dry.version == live and '+ conf-rt' in dry.diff, 'dry run: %s' % harness.dump(dry))
    check(routes_live(c) == live, 'a dry run changed the live version')
    try:
        a = routes_apply(c, ROUTES, expect_version=live)
        check(a.version == live + 1 and a.changed, 'apply: %s' % harness.dump(a))
        # The table routes: a publish to conf.rt.in is also stored on conf.rt.out.
        c.subscribe_ok('conf-rt-out-%d' % os.getpid(), 'conf.rt.out', ephemeral=True)
        expect_confirm(c.publish_one('conf.rt.in', b'{"n": 1}'), 0)
        d = c.deliveries(1)[0]
        e = envelope(d)
        check(e.payload == b'{"n": 1}' and e.lineage.source_topic == 'conf.rt.in'
              and e.lineage.route == 'conf-rt' and e.lineage.table_version == a.version,
              'derived message: %s' % harness.dump(e))
        r, k = c.admin('routes_apply', yaml='routes:\n  - name: x\n    match: {}\n')
        expect_error(r, 422, k)
    finally:
        routes_apply(c, ROUTES_EMPTY)


@row('commands', '`RoutesGet{version}`')
def test_routes_get(w):
    c = w.session('plain')
    try:
        v = routes_apply(c, ROUTES).version
        r, k = c.admin('routes_get', version=v)
        expect_body(r, 'routes_info', k)
        check(r.routes_info.version == v and 'conf-rt' in r.routes_info.yaml
              and r.routes_info.routes == 1, 'RoutesGet: %s' % harness.dump(r))
        r, k = c.admin('routes_get', version=0)
        expect_body(r, 'routes_info', k)
        check(r.routes_info.version == v, 'RoutesGet 0 is not the live version')
        r, k = c.admin('routes_get', version=v + 1000)
        expect_error(r, 404, k)
    finally:
        routes_apply(c, ROUTES_EMPTY)


@row('commands', '`RoutesList`')
def test_routes_list(w):
    c = w.session('plain')
    try:
        v = routes_apply(c, ROUTES).version
        r, k = c.admin('routes_list')
        expect_body(r, 'routes_list_reply', k)
        vs = r.routes_list_reply.versions
        check(r.routes_list_reply.live == v and vs and vs[-1].version == v
              and all(not i.yaml for i in vs), 'RoutesList: %s' % harness.dump(r))
        check([i.version for i in vs] == sorted(i.version for i in vs), 'not oldest first')
    finally:
        routes_apply(c, ROUTES_EMPTY)


@row('commands', '`RoutesRollback{version, expect_version}`')
def test_routes_rollback(w):
    c = w.session('plain')
    try:
        v1 = routes_apply(c, ROUTES).version
        v2 = routes_apply(c, ROUTES_EMPTY).version
        r, k = c.admin('routes_rollback', version=v1, expect_version=v2)
        expect_body(r, 'routes_apply_reply', k)
        check(r.routes_apply_reply.version == v2 + 1 and '+ conf-rt' in r.routes_apply_reply.diff,
              'rollback: %s' % harness.dump(r))
        r, k = c.admin('routes_get', version=0)
        expect_body(r, 'routes_info', k)
        check(r.routes_info.rollback_of == v1 and 'conf-rt' in r.routes_info.yaml,
              'after rollback: %s' % harness.dump(r))
        r, k = c.admin('routes_rollback', version=v2 + 1000)
        expect_error(r, 404, k)
    finally:
        routes_apply(c, ROUTES_EMPTY)


@row('commands', '`Trace{topic, offset}`')
def test_trace(w):
    c = w.session('plain')
    try:
        v = routes_apply(c, ROUTES).version
        off = c.publish_ok('conf.rt.in').offset
        r, k = c.admin('trace', topic='conf.rt.in', offset=off)
        expect_body(r, 'trace_reply', k)
        t = r.trace_reply
        check(t.routed and t.table_version == v and len(t.steps) == 1
              and t.steps[0].route == 'conf-rt' and t.steps[0].outcome == 'fired'
              and len(t.steps[0].legs) == 1 and t.steps[0].legs[0].topic == 'conf.rt.out',
              'Trace of a routed message: %s' % harness.dump(r))
        leg = t.steps[0].legs[0]
        r, k = c.admin('trace', topic=leg.topic, offset=leg.offset)
        expect_body(r, 'trace_reply', k)
        t = r.trace_reply
        check(t.lineage.source_topic == 'conf.rt.in' and t.lineage.source_offset == off
              and t.source.topic == 'conf.rt.in' and t.source.routed,
              'Trace of a derived message: %s' % harness.dump(r))
        r, k = c.admin('trace', topic='conf.rt.*', offset=0)
        expect_error(r, 422, k)
    finally:
        routes_apply(c, ROUTES_EMPTY)


ROUTES_BF = """routes:
  - name: conf-bf
    match: { topic: "conf.bf.*" }
    to: conf.bfout
"""


@row('commands', '`RoutesBackfill{route, topic, from_offset, from_time_us, until_offset, max}`')
def test_routes_backfill(w):
    c = w.session('plain')
    topic = 'conf.bf.in'
    try:
        routes_apply(c, ROUTES_EMPTY)
        offs = [c.publish_ok(topic).offset for _ in range(3)]
        v = routes_apply(c, ROUTES_BF).version
        r, k = c.admin('routes_backfill', route='conf-bf', topic=topic, from_offset=offs[0],
                       max=2)
        expect_body(r, 'routes_backfill_reply', k)
        b = r.routes_backfill_reply
        check(b.processed == 2 and b.fired == 2 and b.delivered == 2 and not b.done
              and b.next_offset == offs[1] + 1 and b.until_offset == offs[2] + 1
              and b.table_version == v, 'first chunk: %s' % harness.dump(r))
        r, k = c.admin('routes_backfill', route='conf-bf', topic=topic, from_offset=offs[0],
                       until_offset=b.until_offset)
        expect_body(r, 'routes_backfill_reply', k)
        b = r.routes_backfill_reply
        check(b.processed == 3 and b.already == 2 and b.fired == 1 and b.delivered == 1
              and b.done and b.next_offset == offs[2] + 1,
              'chunk sent again, over the whole range: %s' % harness.dump(r))
        r, k = c.admin('trace', topic=topic, offset=offs[0])
        expect_body(r, 'trace_reply', k)
        st = r.trace_reply.steps
        check(len(st) == 1 and st[0].route == 'conf-bf' and st[0].table_version == v
              and len(st[0].legs) == 1 and st[0].legs[0].topic == 'conf.bfout',
              'trace of a backfilled message: %s' % harness.dump(r))
    finally:
        routes_apply(c, ROUTES_EMPTY)


def dead_letters(c, sub, topic, n):
    """Publish N messages to TOPIC, subscribe SUB (max_deliver 1) and nack
    each with a reason: they go to _dlq.SUB. Returns the original offsets."""
    offs = [c.publish_ok(topic, b'{"n":%d}' % i).offset for i in range(n)]
    s = c.subscribe_ok(sub, topic, credit=n, max_deliver=1, start=pb().START_EARLIEST)
    ds = c.deliveries(n)
    f = pb().Frame(corr=corr())
    f.nack.sub_id = s.sub_id
    f.nack.reason = 'conformance says no'
    f.nack.items.extend(ack_items(ds))
    expect_body(c.request(f), 'ack_reply', f.corr)
    return offs


def dlq_list(c, topic, want, **kw):
    """DlqList of TOPIC once it lists WANT items (dead-lettering is the
    pump's, a moment after the nack)."""
    deadline = time.monotonic() + 5
    while True:
        r, k = c.admin('dlq_list', topic=topic, **kw)
        expect_body(r, 'dlq_list_reply', k)
        if len(r.dlq_list_reply.items) >= want or time.monotonic() > deadline:
            return r.dlq_list_reply
        time.sleep(0.05)


@row('commands', '`SubSeek{name, topic, start, offset, time_us}`')
def test_sub_seek(w):
    c = w.session('plain')
    topic = 'conf.seek.t'
    offs = [c.publish_ok(topic).offset for _ in range(3)]
    s = c.subscribe_ok('conf-seek', topic, credit=10, start=pb().START_EARLIEST)
    ds = c.deliveries(3)
    f = pb().Frame(corr=corr())
    f.ack.sub_id = s.sub_id
    f.ack.items.extend(ack_items(ds[:1] + ds[2:]))     # offs[1] stays in flight
    r = c.request(f)
    expect_body(r, 'ack_reply', f.corr)
    r, k = c.admin('sub_seek', name='conf-seek', start=pb().START_OFFSET, offset=offs[1])
    expect_body(r, 'sub_seek_reply', k)
    sr = r.sub_seek_reply
    # The floor was offs[1] (in flight), with offs[2] acked above it.
    check(sr.moved == 1 and len(sr.moves) == 1 and sr.moves[0].topic == topic
          and sr.moves[0].to == offs[1] and getattr(sr.moves[0], 'from') == offs[1],
          'SubSeekReply: %s' % harness.dump(r))
    # Delivered again from the target, marked rewound; the old attempt's
    # ack is refused.
    again = c.deliveries(2)
    check([d.offset for d in again] == offs[1:] and all(d.rewound for d in again)
          and all(d.attempt == 1 for d in again), 'after the seek: %s'
          % [harness.dump(d) for d in again])
    f = pb().Frame(corr=corr())
    f.ack.sub_id = s.sub_id
    f.ack.items.extend(ack_items([ds[1]]))
    r = c.request(f)
    expect_body(r, 'ack_reply', f.corr)
    check(len(r.ack_reply.refused) == 1, 'late ack of a forgotten attempt: %s' % harness.dump(r))
    expect_refused(r.ack_reply.refused[0], 409, text='stale token')
    f = pb().Frame(corr=corr())
    f.ack.sub_id = s.sub_id
    f.ack.items.extend(ack_items(again))
    r = c.request(f)
    expect_body(r, 'ack_reply', f.corr)
    check(not r.ack_reply.refused, 'ack after the seek: %s' % harness.dump(r))
    # Latest: nothing more; every topic when none is named.
    r, k = c.admin('sub_seek', name='conf-seek', start=pb().START_LATEST)
    expect_body(r, 'sub_seek_reply', k)
    check(r.sub_seek_reply.moves[0].to == offs[2] + 1, 'seek latest: %s' % harness.dump(r))
    c.no_delivery(0.3)


@row('commands', '`DlqList{topic, from, max}`')
def test_dlq_list(w):
    c = w.session('plain')
    offs = dead_letters(c, 'conf-dlql', 'conf.dlql', 3)
    dl = dlq_list(c, '_dlq.conf-dlql', 3)
    check(len(dl.items) == 3 and dl.remaining == 3 and dl.next == 3, 'DlqList: %s' % dl)
    for i, d in enumerate(dl.items):
        e = envelope(d)
        hs = dict((h.key, h.value) for h in e.headers)
        check(d.topic == '_dlq.conf-dlql' and d.offset == i and d.token == 0
              and d.attempt == 0 and e.payload == b'{"n":%d}' % i
              and hs.get('dlq-topic') == 'conf.dlql' and hs.get('dlq-offset') == str(offs[i])
              and 'conformance says no' in hs.get('dlq-reason', ''),
              'item %d: %s %s' % (i, harness.dump(d), hs))
    dl = dlq_list(c, '_dlq.conf-dlql', 1, **{'from': 1, 'max': 1})
    check(len(dl.items) == 1 and dl.items[0].offset == 1 and dl.next == 2
          and dl.remaining == 3, 'DlqList from 1 max 1: %s' % dl)


@row('commands', '`DlqRemove{topic, offset}`')
def test_dlq_remove(w):
    c = w.session('plain')
    dead_letters(c, 'conf-dlqr', 'conf.dlqr', 2)
    dlq_list(c, '_dlq.conf-dlqr', 2)
    c.ok('dlq_remove', topic='_dlq.conf-dlqr', offset=0)
    c.ok('dlq_remove', topic='_dlq.conf-dlqr', offset=0)     # again: Ok
    dl = dlq_list(c, '_dlq.conf-dlqr', 1)
    check([d.offset for d in dl.items] == [1] and dl.remaining == 1,
          'DlqList after DlqRemove: %s' % dl)
    t = [x for x in stats(c, topics=True).topics if x.name == '_dlq.conf-dlqr']
    check(len(t) == 1 and t[0].messages == 2 and t[0].dlq_removed == 1,
          'TopicInfo of the dead-letter topic: %s' % t)


@row('commands',
     'a `Frame` with no body, or a body only the broker sends (`HelloOk`, `Deliver`, …)')
def test_no_body(w):
    c = w.session('plain')
    for body in (None, 'hello_ok', 'deliver', 'publish_ack', 'error', 'ok'):
        f = pb().Frame(corr=corr())
        if body:
            getattr(f, body).SetInParent()
        r = c.request(f)
        expect_error(r, 405, f.corr)
    # The session stays usable.
    c.publish_ok('conf.after405')


@row('commands', 'bytes that do not decode as a `Frame`')
def test_undecodable_command(w):
    c = w.session('plain')
    k = corr()
    c.send_raw(pb().Frame(corr=k).SerializeToString() + b'\x52\x7f\x01')
    expect_error(c.reply(k), 400, k)
    c.publish_ok('conf.after400')
