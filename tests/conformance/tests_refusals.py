"""tests_refusals - one test per row of docs/protocol.md's "Refusals" table:
the code, where it arrives (Error, Confirm in a PublishAck, AckRefused in an
AckReply, or a closed connection), the corr echoed, the retryable flag and
the start of the text where the row gives one. Written from the doc alone.
"""

import os
import time

import zmq

import harness
from harness import (check, corr, expect_body, expect_confirm, expect_error, expect_refused,
                     row, unreachable)
from tests_commands import (MAPPING, PERM_PUBLISH, PERM_SUBSCRIBE, ROUTES, ROUTES_EMPTY,
                            SCHEMA_V1, ack_items, dead_letters, dlq_list, new_identity,
                            register, routes_apply)


def pb():
    return harness.pb


NO_SESSION = 'no session: send hello first'


def heartbeat(c, k=None):
    f = pb().Frame(corr=corr() if k is None else k)
    f.heartbeat.now_us = 1
    return f


@row('refusals', 'a ZeroMQ message of more than one part (or none)')
def test_multipart(w):
    # "(or none)": a ZeroMQ message always has at least one part, so only
    # the two-part case can be sent.
    c = w.session('plain')
    k = corr()
    c.send_raw([pb().Frame(corr=k).SerializeToString(), heartbeat(c).SerializeToString()])
    r = c.any_reply()
    expect_error(r, 400, 0, text='a sluice message is exactly one frame')
    c.silence(0.2)
    check(c.request(heartbeat(c)).WhichOneof('body') == 'heartbeat', 'session unusable after 400')


@row('refusals', 'bytes that do not decode')
def test_undecodable(w):
    c = w.session('plain')
    # corr first, then a field whose length runs past the end: corr is readable.
    k = corr()
    c.send_raw(pb().Frame(corr=k).SerializeToString() + b'\x52\x7f\x01')
    r = c.any_reply()
    expect_error(r, 400, k, text='frame does not decode')
    # Not even corr can be read: corr 0.
    c.send_raw(b'\xff\xff\xff')
    expect_error(c.any_reply(), 400, 0, text='frame does not decode')
    check(c.request(heartbeat(c)).WhichOneof('body') == 'heartbeat', 'session unusable after 400')


@row('refusals', 'a command before `Hello`')
def test_before_hello(w):
    c = w.client('plain')
    f = heartbeat(c)
    expect_error(c.request(f), 401, f.corr, text=NO_SESSION, retryable=True)
    p = c.publish('conf.nohello')
    expect_error(c.request(p), 401, p.corr, text=NO_SESSION, retryable=True)
    c.hello()
    check(c.request(heartbeat(c)).WhichOneof('body') == 'heartbeat', 'no answer after Hello')


def expect_alive(c, what):
    r = c.request(heartbeat(c))
    if r.WhichOneof('body') != 'heartbeat':
        raise harness.Fail('%s: session ended too early, got %s' % (what, harness.dump(r)))


def expect_expired(c, what):
    f = heartbeat(c)
    r = c.request(f)
    if r.WhichOneof('body') != 'error':
        raise harness.Fail('%s: session still alive, got %s' % (what, harness.dump(r)))
    expect_error(r, 401, f.corr, text=NO_SESSION, retryable=True)


@row('refusals', 'a command after the session expired')
def test_after_expiry(w):
    # Broker 'session': broker/session_timeout_ms=600, broker/heartbeat_ms=300.
    # timeout = max(3 x heartbeat, 600 ms), heartbeat = Hello.heartbeat_ms or
    # the broker's 300. Every check sends a frame, which restarts the clock;
    # margins are 250 ms against the broker's 10 ms tick (sanitizer builds
    # on a loaded machine are slow).
    floor = w.client('session')       # 3 x 50 < 600: the floor, 600 ms
    floor.hello(heartbeat_ms=50)
    for _ in range(3):                # any frame is a sign of life
        time.sleep(0.35)
        expect_alive(floor, 'timeout 600 ms, 350 ms after the last frame')
    time.sleep(0.85)
    expect_expired(floor, 'timeout 600 ms (Hello.heartbeat_ms=50), 850 ms of silence')
    floor.hello(heartbeat_ms=50)      # retryable after Hello
    expect_alive(floor, 'after a new Hello')

    slow = w.client('session')        # 3 x 400 = 1200 ms
    default = w.client('session')     # 0: the broker's 300 ms, 3 x 300 = 900 ms
    t0 = time.monotonic()
    slow.hello(heartbeat_ms=400)
    default.hello(heartbeat_ms=0)
    time.sleep(max(0, t0 + 0.65 - time.monotonic()))
    expect_alive(default, 'timeout 900 ms (Hello.heartbeat_ms=0), 650 ms of silence')
    t1 = time.monotonic()
    time.sleep(max(0, t0 + 0.95 - time.monotonic()))
    expect_alive(slow, 'timeout 1200 ms (Hello.heartbeat_ms=400), 950 ms of silence')
    t2 = time.monotonic()
    time.sleep(max(0, t1 + 1.15 - time.monotonic()))
    expect_expired(default, 'timeout 900 ms (Hello.heartbeat_ms=0), 1150 ms of silence')
    time.sleep(max(0, t2 + 0.95 - time.monotonic()))
    expect_alive(slow, 'timeout 1200 ms (Hello.heartbeat_ms=400), 950 ms of silence')
    time.sleep(1.45)
    expect_expired(slow, 'timeout 1200 ms (Hello.heartbeat_ms=400), 1450 ms of silence')


@row('refusals', 'a command the identity has no grant for')
def test_denied_command(w):
    admin = w.session('curve')
    admin.subscribe_ok('conf-deny-owned', 'conf.deny.>')
    register(admin, 'conf.deny', SCHEMA_V1)
    keys = new_identity(w, admin, 'conf-deny', [(PERM_PUBLISH, 'conf.deny.>')])
    c = w.session('curve', keys=keys)
    grant = [pb().Grant(perms=PERM_PUBLISH, pattern='>')]
    pub, _ = zmq.curve_keypair()
    cases = [
        ('subscribe', dict(name='conf-deny-sub', pattern='conf.deny.>', credit=1), 'conf.deny.>'),
        ('topic_create', dict(name='conf.deny.t'), 'conf.deny.t'),
        ('sub_remove', dict(name='conf-deny-owned'), 'conf.deny.>'),  # its pattern
        ('topic_set', dict(topic='conf.deny.t', subject='conf.deny', version=1), 'conf.deny.t'),
        ('key_add', dict(name='conf-deny-2', public_key=harness.raw_key(pub)), None),
        ('key_revoke', dict(name='admin'), None),
        ('key_list', {}, None),
        ('grant_change', dict(name='conf-deny', grants=grant), None),
        ('rotate_key', {}, None),
        ('schema_register', dict(subject='conf.deny', schema=SCHEMA_V1), None),
        ('mapping_add', dict(yaml='name: conf-deny\n'), None),
        ('mapping_remove', dict(name='conf-deny'), None),
        ('trace', dict(topic='conf.deny.t', offset=0), 'conf.deny.t'),
        ('routes_backfill', dict(route='r', topic='conf.deny.t'), 'conf.deny.t'),
        ('sub_seek', dict(name='conf-deny-owned', start=pb().START_LATEST),
         'conf-deny-owned'),
        ('dlq_list', dict(topic='_dlq.conf-deny-owned'), '_dlq.conf-deny-owned'),
        ('dlq_remove', dict(topic='_dlq.conf-deny-owned', offset=0), '_dlq.conf-deny-owned'),
    ]
    problems = []
    for body, fields, target in cases:
        r, k = c.admin(body, **fields)
        try:
            expect_error(r, 403, k, text='identity "conf-deny" may not ',
                         contains=(target,) if target else ())
        except harness.Fail as e:
            problems.append('%s: %s' % (body, e))
    # Checked on every command: a subscribe grant revoked stops the next ack.
    admin.ok('grant_change', name='conf-deny',
             grants=[pb().Grant(perms=PERM_SUBSCRIBE, pattern='conf.deny.>')])
    # A subscribe grant on the topics does not reach another identity's
    # durable subscription (docs/security.md, "Subscription names").
    r, k = c.admin('subscribe', name='conf-deny-owned', pattern='conf.deny.>', credit=1)
    try:
        expect_error(r, 403, k, text='identity "conf-deny" may not attach to subscription '
                     'conf-deny-owned', contains=('belongs to "admin"',))
    except harness.Fail as e:
        problems.append('attach to admin\'s subscription: %s' % e)
    s = c.subscribe_ok('conf-deny-acks', 'conf.deny.>', credit=5)
    admin.publish_ok('conf.deny.m')
    d = c.deliveries(1)[0]
    admin.ok('grant_change', name='conf-deny', revoke=True,
             grants=[pb().Grant(perms=PERM_SUBSCRIBE, pattern='conf.deny.>')])
    f = pb().Frame(corr=corr())
    f.ack.sub_id = s.sub_id
    f.ack.items.extend(ack_items([d]))
    try:
        expect_error(c.request(f), 403, f.corr, text='identity "conf-deny" may not ')
    except harness.Fail as e:
        problems.append('ack after the subscribe grant was revoked: %s' % e)
    check(not problems, '\n'.join(problems))


@row('refusals', 'a publish the identity has no grant for')
def test_denied_publish(w):
    admin = w.session('curve')
    keys = new_identity(w, admin, 'conf-nopub', [(PERM_PUBLISH, 'conf.np.>')])
    c = w.session('curve', keys=keys)
    expect_confirm(c.publish_one('conf.other.t'), 403,
                   text='identity "conf-nopub" may not publish to conf.other.t: '
                        'no grant covers it')
    # In a batch, the refused message gets its own 403 Confirm.
    f = pb().Frame(corr=corr())
    f.publish_batch.msgs.add(topic='conf.np.a', payload=b'1')
    f.publish_batch.msgs.add(topic='conf.nq', payload=b'2')
    r = c.request(f)
    expect_body(r, 'publish_ack', f.corr)
    cs = r.publish_ack.confirms
    check(len(cs) == 2, '%d confirms for a batch of 2' % len(cs))
    expect_confirm(cs[0], 0)
    expect_confirm(cs[1], 403, text='identity "conf-nopub" may not publish to conf.nq: '
                                    'no grant covers it')


BROKER_TOPIC = "topics starting with '_' are written only by the broker"


@row('refusals', 'a publish to a broker topic (`_…`), by anyone')
def test_publish_broker_topic(w):
    c = w.session('plain')
    expect_confirm(c.publish_one('_audit'), 403,
                   text='identity "plaintext" may not publish to _audit: ' + BROKER_TOPIC)
    expect_confirm(c.publish_one('_conf.new'), 403,
                   text='identity "plaintext" may not publish to _conf.new: ' + BROKER_TOPIC)
    admin = w.session('curve')  # admin holds grants on _audit and _dlq.>
    expect_confirm(admin.publish_one('_audit'), 403,
                   text='identity "admin" may not publish to _audit: ' + BROKER_TOPIC)
    expect_confirm(admin.publish_one('_dlq.conf'), 403,
                   text='identity "admin" may not publish to _dlq.conf: ' + BROKER_TOPIC)


@row('refusals', 'an unknown `sub_id` (Credit, Ack, Nack, Unsubscribe)')
def test_unknown_sub_id(w):
    c = w.session('plain')
    s = c.subscribe_ok('conf-unknown', 'conf.unknown')
    bad = s.sub_id + 7777
    item = pb().AckItem(topic_id=1, offset=0, token=1)
    for body in ('credit', 'ack', 'nack', 'unsubscribe'):
        f = pb().Frame(corr=corr())
        msg = getattr(f, body)
        msg.sub_id = bad
        if body == 'credit':
            msg.credit = 1
        elif body in ('ack', 'nack'):
            msg.items.append(item)
        r = c.request(f)
        if r.WhichOneof('body') != 'error':
            raise harness.Fail('%s of unknown sub_id: %s' % (body, harness.dump(r)))
        expect_error(r, 404, f.corr, text='unknown subscription id')


@row('refusals', 'an ack for an offset never delivered to this subscription')
def test_ack_never_delivered(w):
    c = w.session('plain')
    s = c.subscribe_ok('conf-never', 'conf.never', credit=5)
    c.publish_ok('conf.never')
    d = c.deliveries(1)[0]
    for k in (corr(), 0):  # refused items are answered even with corr 0
        f = pb().Frame(corr=k)
        f.ack.sub_id = s.sub_id
        f.ack.items.add(topic_id=d.topic_id, offset=d.offset + 1000, token=d.token)
        c.send(f)
        r = c.take(lambda x: x.WhichOneof('body') == 'ack_reply', what='AckReply')
        expect_body(r, 'ack_reply', k)
        ref = r.ack_reply.refused
        check(len(ref) == 1 and ref[0].offset == d.offset + 1000 and
              ref[0].topic_id == d.topic_id,
              'AckReply.refused %s' % [harness.dump(x) for x in ref])
        expect_refused(ref[0], 404, text='offset was never delivered')


@row('refusals', '`SubRemove`, `KeyRevoke`, `GrantChange`, `MappingGet`, `MappingRemove` of an '
                 'unknown name; `SchemaGet` of an unknown subject or version; `TopicSet` to an '
                 'unknown subject')
def test_unknown_names(w):
    admin = w.session('curve')
    register(admin, 'conf.known', SCHEMA_V1)
    grant = [pb().Grant(perms=PERM_PUBLISH, pattern='conf.>')]
    cases = [
        ('sub_remove', dict(name='conf-nosuch-sub'), 'subscription'),
        ('key_revoke', dict(name='conf-nosuch-key'), 'identity'),
        ('grant_change', dict(name='conf-nosuch-id', grants=grant), 'identity'),
        ('mapping_get', dict(name='conf-nosuch-map'), 'mapping'),
        ('mapping_remove', dict(name='conf-nosuch-map'), 'mapping'),
        ('schema_get', dict(subject='conf.nosuch.subject'), 'subject'),
        ('schema_get', dict(subject='conf.known', version=9), ('version', 'conf.known@9')),
        ('topic_set', dict(topic='conf.ts404', subject='conf.nosuch.subject', version=1),
         'subject'),
    ]
    # "names what was not found" is read as: says which kind of thing (the
    # word below); the doc does not promise the name itself in the text.
    texts = []
    for body, fields, kind in cases:
        r, k = admin.admin(body, **fields)
        if r.WhichOneof('body') != 'error':
            raise harness.Fail('%s %s: %s' % (body, fields, harness.dump(r)))
        try:
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expect_error(r, 404, k)
            check(any(x in r.error.text for x in kinds), 'Error 404 text %r names none of %s'
                  % (r.error.text, kinds))
        except harness.Fail as e:
            raise harness.Fail('%s %s: %s' % (body, fields, e))
        texts.append(r.error.text)
    return 'texts: ' + ' | '.join(texts)


@row('refusals', 'a frame with no body, or a broker-only body')
def test_405(w):
    c = w.session('plain')
    f = pb().Frame(corr=corr())
    expect_error(c.request(f), 405, f.corr, text='unknown command')
    for body in ('hello_ok', 'deliver', 'ack_reply', 'stats_reply'):
        f = pb().Frame(corr=corr())
        getattr(f, body).SetInParent()
        expect_error(c.request(f), 405, f.corr, contains=(' is sent by the broker',))


@row('refusals', "a frame from another key under a session's routing id")
def test_foreign_key(w):
    admin = w.session('curve')
    keys = new_identity(w, admin, 'conf-intruder', [(PERM_PUBLISH, 'conf.>')])
    rid = b'conf-shared-rid'
    # libzmq's ROUTER does not read a second peer that claims a routing id
    # already connected (without ZMQ_ROUTER_HANDOVER), so the owner leaves
    # first; its session stays until it times out.
    owner = w.client('curve', routing_id=rid)
    owner.hello()
    owner.close()
    w.clients.remove(owner)
    # The broker's ROUTER lets go of the owner's pipe once it has seen the
    # TCP close; a peer claiming the id before that is never read (libzmq
    # drops it without a word), so the intruder connects again until it is
    # heard: slow under a sanitizer.
    deadline = time.monotonic() + 15
    while True:
        intruder = w.client('curve', keys=keys, routing_id=rid, monitor=True)
        intruder.wait_event({zmq.EVENT_HANDSHAKE_SUCCEEDED})
        f = heartbeat(intruder)
        try:
            r = intruder.request(f, timeout=1.0)
            break
        except harness.Fail:
            if time.monotonic() > deadline:
                raise
            intruder.close()
            w.clients.remove(intruder)
    expect_error(r, 407, f.corr, text="this connection's key does not own the session")
    # ... and the session ends: the next frame under the routing id, from
    # either key, meets no session.
    # (Longer waits: with the whole suite running on two cores the broker
    # has been seen to answer these after more than 2 s.)
    g = heartbeat(intruder)
    expect_error(intruder.request(g, timeout=8.0), 401, g.corr, text=NO_SESSION,
                 retryable=True)
    intruder.close()
    w.clients.remove(intruder)
    back = w.client('curve', routing_id=rid)
    g = heartbeat(back)
    expect_error(back.request(g, timeout=8.0), 401, g.corr, text=NO_SESSION, retryable=True)


@row('refusals', '`Hello` from a key revoked after its handshake')
def test_hello_revoked(w):
    """KeyRevoke closes the identity's open connections at once, so the
    window between the handshake and Hello may be closed by the broker
    itself. Either outcome the doc allows is accepted: Error 407 with the
    text, or the connection closed (DISCONNECTED, then the ZAP refusal) with
    no reply. A HelloOk, or any other reply, fails."""
    admin = w.session('curve')
    keys = new_identity(w, admin, 'conf-late', [(PERM_PUBLISH, 'conf.>')])
    c = w.client('curve', keys=keys, monitor=True)
    c.wait_event({zmq.EVENT_HANDSHAKE_SUCCEEDED})
    admin.ok('key_revoke', name='conf-late')
    f = pb().Frame(corr=corr())
    f.hello.version = 1
    f.hello.client = 'conformance'
    c.send(f)
    fs = c.collect(1.0)
    if fs:
        expect_error(fs[0], 407, f.corr, text="this connection's key is not admitted")
        check(len(fs) == 1, 'more than one reply: %s' % [harness.dump(x) for x in fs])
        return 'observed: Error 407 on the handshaken connection'
    else:
        kinds = {e['event'] for e in c.events}
        if zmq.EVENT_DISCONNECTED not in kinds:
            c.wait_event({zmq.EVENT_DISCONNECTED}, timeout=0.5)
        return ('observed: the revocation closed the connection, no reply; '
                'the 407 path is not reachable from a client')


@row('refusals', 'an ack or nack with the token of a superseded attempt, or under a `sub_id` '
                 'a take-over replaced')
def test_stale(w):
    a = w.session('plain')
    s = a.subscribe_ok('conf-stale', 'conf.stale', credit=5)
    a.publish_ok('conf.stale')
    d1 = a.deliveries(1)[0]
    nack = pb().Frame(corr=corr())
    nack.nack.sub_id = s.sub_id
    nack.nack.items.extend(ack_items([d1]))
    expect_body(a.request(nack), 'ack_reply', nack.corr)
    d2 = a.deliveries(1)[0]
    check(d2.token != d1.token, 'redelivery kept the token')
    for body in ('ack', 'nack'):
        f = pb().Frame(corr=corr())
        getattr(f, body).sub_id = s.sub_id
        getattr(f, body).items.extend(ack_items([d1]))  # the superseded token
        r = a.request(f)
        expect_body(r, 'ack_reply', f.corr)
        ref = r.ack_reply.refused
        check(len(ref) == 1 and ref[0].token == d1.token, '%s refused %s'
              % (body, [harness.dump(x) for x in ref]))
        expect_refused(ref[0], 409, text='stale token')
    # Take-over: the first consumer's ack under its old sub_id.
    b = w.session('plain')
    b.subscribe_ok('conf-stale', 'conf.stale', credit=5)
    d3 = b.deliveries(1)[0]
    check(d3.offset == d1.offset, 'take-over got offset %d' % d3.offset)
    f = pb().Frame(corr=corr())
    f.ack.sub_id = s.sub_id
    f.ack.items.extend(ack_items([d2]))
    r = a.request(f)
    expect_body(r, 'ack_reply', f.corr)
    check(len(r.ack_reply.refused) == 1, 'take-over refused %s' % harness.dump(r))
    expect_refused(r.ack_reply.refused[0], 409, text='stale token')


@row('refusals', '`Subscribe` with a durable name that exists with another pattern')
def test_412_subscribe(w):
    c = w.session('plain')
    c.subscribe_ok('conf-412', 'conf.a412')
    f = c.subscribe('conf-412', 'conf.b412')
    expect_error(c.request(f), 412, f.corr,
                 text='a durable subscription with this name exists with another pattern')


@row('refusals', '`KeyAdd` of a name or key already registered')
def test_412_key_add(w):
    admin = w.session('curve')
    pub, _ = zmq.curve_keypair()
    # "names the clash" is read as: says whether the name or the key is taken.
    r, k = admin.admin('key_add', name='admin', public_key=harness.raw_key(pub))
    expect_error(r, 412, k, contains=('name',))
    t1 = r.error.text
    r, k = admin.admin('key_add', name='conf-dupkey',
                       public_key=harness.raw_key(w.broker('curve').admin_keys[0]))
    expect_error(r, 412, k, contains=('key',))
    return 'texts: %s | %s' % (t1, r.error.text)


@row('refusals', 'a message payload over `max_message_bytes`')
def test_413_message(w):
    c = w.session('plain')
    expect_confirm(c.publish_one('conf.big', b'x' * 1024), 0)  # the limit itself is fine
    expect_confirm(c.publish_one('conf.big', b'x' * 1025), 413,
                   text='message payload exceeds limits/max_message_bytes')


@row('refusals', 'a batch of more than `max_batch` messages')
def test_413_batch(w):
    c = w.session('plain')
    for n in (10, 11):
        f = pb().Frame(corr=corr())
        for i in range(n):
            f.publish_batch.msgs.add(topic='conf.maxbatch', payload=b'%d' % i)
        r = c.request(f)
        if n == 10:
            expect_body(r, 'publish_ack', f.corr)
            check(len(r.publish_ack.confirms) == 10, '%d confirms' % len(r.publish_ack.confirms))
        else:
            expect_error(r, 413, f.corr,
                         text='batch of 11 messages exceeds limits/max_batch (10)')


@row('refusals', 'a frame over `max_frame_bytes`')
def test_413_frame(w):
    c = w.session('plain')
    f = c.publish('conf.bigframe', b'x' * 70000)  # max_frame_bytes = 65536
    check(f.SerializeToString()[0] == 0x08, 'corr is not the first field')
    expect_error(c.request(f), 413, f.corr, text='frame larger than limits/max_frame_bytes')
    check(c.request(heartbeat(c)).WhichOneof('body') == 'heartbeat', 'session unusable after 413')


@row('refusals', 'a frame over twice `max_frame_bytes`')
def test_frame_over_twice(w):
    c = w.client('plain', monitor=True)
    c.wait_event({zmq.EVENT_CONNECTED})
    c.hello()
    f = c.publish('conf.hugeframe', b'x' * 140000)  # 2 x 65536 = 131072
    c.send(f)
    c.wait_event({zmq.EVENT_DISCONNECTED}, timeout=2.0)
    got = c.collect(0.3)
    check(not got, 'a reply to a frame over twice max_frame_bytes: %s'
          % [harness.dump(x) for x in got])
    # The broker lives on: a fresh connection works.
    d = w.session('plain')
    d.publish_ok('conf.after.huge')


@row('refusals', 'an invalid topic name in a publish')
def test_422_topic(w):
    c = w.session('plain')
    for t in ('a..b', '', 'a.', 'a b', 'x' * 256):
        try:
            expect_confirm(c.publish_one(t), 422, text='invalid topic name')
        except harness.Fail as e:
            raise harness.Fail('topic %r: %s' % (t[:20], e))


@row('refusals', 'a `producer_id` that is not 16 bytes, or one with `seq` 0')
def test_422_producer(w):
    c = w.session('plain')
    text = 'producer_id must be 16 bytes with a sequence from 1'
    expect_confirm(c.publish_one('conf.pid', producer_id=b'12345678', seq=1), 422, text=text)
    expect_confirm(c.publish_one('conf.pid', producer_id=os.urandom(16), seq=0), 422, text=text)


@row('refusals', 'a `seq` without a `producer_id`')
def test_422_seq(w):
    c = w.session('plain')
    conf = c.publish_one('conf.seq', seq=5)
    expect_confirm(conf, 422, text='seq needs a producer_id')
    check(conf.seq == 5, 'Confirm.seq %d, sent 5' % conf.seq)


@row('refusals', "a message its topic's schema refuses")
def test_422_schema(w):
    c = w.session('plain')
    schema = ('{"type": "object", "properties": {"id": {"type": "string"}, '
              '"total": {"type": "number", "minimum": 0}}, "required": ["id"]}')
    register(c, 'conf.sch', schema)
    c.ok('topic_set', topic='conf.sch.t', subject='conf.sch', version=1)
    conf = c.publish_one('conf.sch.t', b'{"id": 5, "total": -1}')
    expect_confirm(conf, 422, contains=('/id', '/total'))


@row('refusals', 'a publish frame with no message')
def test_422_empty_publish(w):
    c = w.session('plain')
    for body in ('publish', 'publish_batch'):
        f = pb().Frame(corr=corr())
        getattr(f, body).SetInParent()
        expect_error(c.request(f), 422, f.corr, text='publish carries no message')


@row('refusals', '`Subscribe` with an invalid pattern, name or start')
def test_422_subscribe(w):
    c = w.session('plain')
    for f, text in ((c.subscribe('conf-bad-pattern', 'a..b'), 'invalid topic pattern'),
                    (c.subscribe('_conf', 'conf.x'), 'invalid subscription name'),
                    (c.subscribe('conf bad', 'conf.x'), 'invalid subscription name'),
                    (c.subscribe('conf-bad-start', 'conf.x', start=9), 'unknown start position')):
        expect_error(c.request(f), 422, f.corr, text=text)


@row('refusals', 'an invalid name, key, grant, schema or mapping in an admin command')
def test_422_admin(w):
    admin = w.session('curve')
    pub, _ = zmq.curve_keypair()
    cases = [
        ('key_add', dict(name='', public_key=harness.raw_key(pub))),
        ('key_add', dict(name='conf-shortkey', public_key=b'\x01' * 31)),
        ('grant_change', dict(name='admin', grants=[pb().Grant(perms=1, pattern='a..b')])),
        ('schema_register', dict(subject='conf.bad', schema='{"type": "strin"}')),
        ('schema_register', dict(subject='conf.bad', schema='{"multipleOf": 2}')),
        ('mapping_add', dict(yaml='name: conf-bad\n')),
        ('topic_create', dict(name='conf..bad')),
        ('topic_set', dict(topic='conf..bad', subject='conf.bad', version=1)),
    ]
    problems = []
    for body, fields in cases:
        r, k = admin.admin(body, **fields)
        try:
            expect_error(r, 422, k)
            check(r.error.text, 'empty text')
        except harness.Fail as e:
            problems.append('%s %s: %s' % (body, fields, e))
    check(not problems, '\n'.join(problems))


@row('refusals', '`Hello` with a version other than 1')
def test_426(w):
    c = w.client('plain')
    r = c.hello(version=2)
    expect_error(r, 426, r.corr, text='protocol version 2 is not supported')
    f = heartbeat(c)
    expect_error(c.request(f), 401, f.corr, text=NO_SESSION, retryable=True)  # stays NEW
    c.hello()
    r = c.hello(version=7)
    expect_error(r, 426, r.corr, text='protocol version 7 is not supported')


@row('refusals', '`Hello` beyond `limits/max_connections` sessions')
def test_429_sessions(w):
    w.session('max_connections')
    w.session('max_connections')
    c = w.client('max_connections')
    f = pb().Frame(corr=corr())
    f.hello.version = 1
    expect_error(c.request(f), 429, f.corr, text='too many sessions', retryable=True)


@row('refusals', '`Subscribe` beyond `limits/max_subscriptions`')
def test_429_subscriptions(w):
    c = w.session('max_subscriptions')
    c.subscribe_ok('conf-s1', 'conf.s1')
    c.subscribe_ok('conf-s2', 'conf.s2')
    f = c.subscribe('conf-s3', 'conf.s3')
    expect_error(c.request(f), 429, f.corr, text='too many subscriptions', retryable=True)


unreachable('refusals', 'the store failed to write',
            'a write error of LMDB (EIO, a failing disk) cannot be caused by a client; '
            'the map filling up is 507, its own row')


# The disk's half is tests/integration/test_disk.c (it mounts a tmpfs).
@row('refusals', 'the store is full: the map at `storage/map_size_max`, or the disk down to '
                 '`storage/disk_reserve`')
def test_507(w):
    c = w.session('full')  # map_size = map_size_max = 1 MiB
    conf = None
    for _ in range(200):
        f = pb().Frame(corr=corr())
        for _ in range(10):
            f.publish_batch.msgs.add(topic='conf.full', payload=b'x' * 8000)
        r = c.request(f, timeout=5)
        expect_body(r, 'publish_ack', f.corr)
        bad = [x for x in r.publish_ack.confirms if x.code != 0]
        if bad:
            conf = bad[0]
            break
    check(conf is not None, 'no refusal after 16 MB into a 1 MiB store')
    expect_confirm(conf, 507, text='storage full', retryable=True)
    # An admin command that writes: Error 507. The store may keep room for
    # small writes, so big schemas (20 KB of annotation each) fill it.
    err = None
    for i in range(200):
        schema = '{"type": "object", "description": "%s"}' % ('d' * 20000 + str(i))
        r, k = c.admin('schema_register', subject='conf.full%d' % i, schema=schema)
        if r.WhichOneof('body') != 'schema_register_reply':
            err = (r, k)
            break
    check(err is not None, 'SchemaRegister never refused in a full 1 MiB store (200 x 20 KB)')
    expect_error(err[0], 507, err[1], text='storage full', retryable=True)
    # Reads go on.
    c.subscribe_ok('conf-full', 'conf.full', credit=1, start=pb().START_EARLIEST)
    check(len(c.deliveries(1)) == 1, 'no delivery from a full store')


unreachable('refusals', 'the broker is out of memory',
            'every allocation a client can size is bounded by the limits (frame, message, '
            'batch, connections, subscriptions, unacked bytes), so a client cannot exhaust '
            'the broker\'s memory in a test')


@row('refusals', 'a string field holding a NUL byte or bytes that are not UTF-8 (see "Names")')
def test_400_string(w):
    c = w.session('plain')
    start = 'frame does not decode: string field '
    # A NUL in a topic: a C broker would have read the name up to it. The
    # frame is refused whole: its good message is not stored either.
    f = pb().Frame(corr=corr())
    f.publish_batch.msgs.add(topic='conf.nul.a', payload=b'1')
    f.publish_batch.msgs.add(topic='conf.nul.a\x00hr.salaries', payload=b'2')
    expect_error(c.request(f), 400, f.corr,
                 text=start + 'publish_batch.msgs[1].topic holds a NUL byte')
    check(c.publish_ok('conf.nul.a').offset == 0, 'a message of the refused batch was stored')
    # Bytes that are not UTF-8, in a header's value (built by hand: the
    # Python protobuf library refuses to encode them).
    f = c.publish('conf.nul.b', headers=[('x-h', 'ab~~')])
    c.send_raw(f.SerializeToString().replace(b'ab~~', b'ab\xc3\x28'))
    expect_error(c.reply(f.corr), 400, f.corr,
                 text=start + 'publish.msg.headers[0].value is not UTF-8')
    # UTF-8 where text is free is taken as sent.
    conf = c.publish_one('conf.nul.b', headers=[('x-h', 'caf\u00e9 \u2615')])
    check(conf.code == 0, 'UTF-8 header refused: %d %s' % (conf.code, conf.text))
    check(c.request(heartbeat(c)).WhichOneof('body') == 'heartbeat', 'session unusable after 400')
    # An identity name: KeyAdd "conf\0nul" registers nothing (not "conf").
    admin = w.session('curve')
    pub, _ = zmq.curve_keypair()
    r, k = admin.admin('key_add', name='conf\x00nul', public_key=harness.raw_key(pub))
    expect_error(r, 400, k, text=start + 'key_add.name holds a NUL byte')
    r, k = admin.admin('key_list')
    expect_body(r, 'key_list_reply', k)
    names = [i.name for i in r.key_list_reply.identities]
    check('conf' not in names, 'KeyAdd "conf\\0nul" registered "conf": %s' % names)
    # UTF-8 in a name is whole text but outside the name's grammar: 422, not
    # 400, and the error quoting the name (cut at 64 bytes, inside a
    # character) is UTF-8 still, or this client could not read it.
    for subj in ('conf.utf8.a', 'conf.utf8.b'):
        r, k = c.admin('schema_register', subject=subj, schema='{"type": "object"}')
        expect_body(r, 'schema_register_reply', k)
    yaml = ('name: a%s\nfrom: conf.utf8.a@1\nto: conf.utf8.b@1\nmap:\n  x: $.x\n'
            % ('\u00e9' * 40))
    r, k = c.admin('mapping_add', yaml=yaml)
    expect_error(r, 422, k, contains=("bad mapping name 'a\u00e9",))


# ------------------------------------------------------------ routing tables

@row('refusals', '`RoutesGet` or `RoutesRollback` of a routing table version that does not exist')
def test_routes_unknown_version(w):
    c = w.session('plain')
    r, k = c.admin('routes_get', version=999999)
    expect_error(r, 404, k, text='no routing table version 999999')
    r, k = c.admin('routes_rollback', version=999999)
    expect_error(r, 404, k, text='no routing table version 999999')


@row('refusals', '`Trace` of a topic that does not exist, or of an offset holding no message '
                 '(never stored, or removed by retention)')
def test_trace_not_found(w):
    c = w.session('plain')
    r, k = c.admin('trace', topic='conf.trace.none', offset=0)
    expect_error(r, 404, k, text='no topic conf.trace.none')
    c.publish_ok('conf.trace.one')
    r, k = c.admin('trace', topic='conf.trace.one', offset=5)
    expect_error(r, 404, k, text='no message at conf.trace.one@5')


@row('refusals', '`RoutesBackfill` of a route the live routing table does not have, or of a '
                 'topic that does not exist')
def test_routes_backfill_not_found(w):
    c = w.session('plain')
    try:
        v = routes_apply(c, ROUTES).version
        c.publish_ok('conf.rt.in')
        r, k = c.admin('routes_backfill', route='conf-none', topic='conf.rt.in')
        expect_error(r, 404, k, text='no route "conf-none" in the live routing table '
                     '(version %d)' % v)
        r, k = c.admin('routes_backfill', route='conf-rt', topic='conf.rt.never')
        expect_error(r, 404, k, text='no topic conf.rt.never')
    finally:
        routes_apply(c, ROUTES_EMPTY)


@row('refusals', '`SubSeek` of an unknown durable subscription or of a topic it has no '
                 'cursor on; `DlqList` of a topic that does not exist; `DlqRemove` of an '
                 'offset holding no message')
def test_seek_dlq_not_found(w):
    c = w.session('plain')
    r, k = c.admin('sub_seek', name='conf-seek-none', start=pb().START_EARLIEST)
    expect_error(r, 404, k, text='no durable subscription conf-seek-none')
    c.subscribe_ok('conf-seek-nf', 'conf.seeknf.>')
    c.publish_ok('conf.seeknf.a')
    c.publish_ok('conf.other.b')
    r, k = c.admin('sub_seek', name='conf-seek-nf', topic='conf.other.b',
                   start=pb().START_EARLIEST)
    expect_error(r, 404, k, text='subscription conf-seek-nf has no cursor on topic '
                 'conf.other.b')
    r, k = c.admin('dlq_list', topic='_dlq.conf-none')
    expect_error(r, 404, k, text='no topic _dlq.conf-none')
    c = w.session('plain')      # without the deliveries of conf-seek-nf
    dead_letters(c, 'conf-dlqnf', 'conf.dlqnf', 1)
    dlq_list(c, '_dlq.conf-dlqnf', 1)
    r, k = c.admin('dlq_remove', topic='_dlq.conf-dlqnf', offset=7)
    expect_error(r, 404, k, text='no dead letter _dlq.conf-dlqnf@7')


@row('refusals', '`DlqList` or `DlqRemove` of a topic that is no dead-letter topic; `SubSeek` '
                 'without a start')
def test_seek_dlq_invalid(w):
    c = w.session('plain')
    c.publish_ok('conf.notdlq')
    for body, fields in (('dlq_list', dict(topic='conf.notdlq')),
                         ('dlq_remove', dict(topic='conf.notdlq', offset=0))):
        r, k = c.admin(body, **fields)
        expect_error(r, 422, k, text='conf.notdlq is not a dead-letter topic')
    c.subscribe_ok('conf-seek-inv', 'conf.seekinv')
    r, k = c.admin('sub_seek', name='conf-seek-inv')
    expect_error(r, 422, k, text='say where to seek')


@row('refusals', "`RoutesBackfill` of a topic the route's pattern does not match")
def test_routes_backfill_pattern(w):
    c = w.session('plain')
    try:
        routes_apply(c, ROUTES)
        c.publish_ok('conf.bfx.other')
        r, k = c.admin('routes_backfill', route='conf-rt', topic='conf.bfx.other')
        expect_error(r, 422, k, text='route conf-rt matches topics conf.rt.in, not '
                     'conf.bfx.other')
    finally:
        routes_apply(c, ROUTES_EMPTY)


@row('refusals', "`RoutesApply` or `RoutesRollback` whose `expect_version` is not the live "
                 "routing table's version")
def test_routes_expect_version(w):
    c = w.session('plain')
    try:
        v = routes_apply(c, ROUTES).version
        r, k = c.admin('routes_apply', yaml=ROUTES_EMPTY, expect_version=v + 7)
        expect_error(r, 409, k, text='expect_version %d: the live routing table is version %d'
                     % (v + 7, v))
        r, k = c.admin('routes_rollback', version=v, expect_version=v + 7)
        expect_error(r, 409, k, text='expect_version %d' % (v + 7))
    finally:
        routes_apply(c, ROUTES_EMPTY)


@row('refusals', '`MappingRemove` of a mapping the live routing table uses')
def test_mapping_in_use(w):
    c = w.session('plain')
    register(c, 'conf.map.src', SCHEMA_V1)
    register(c, 'conf.map.dst', SCHEMA_V1)
    r, k = c.admin('mapping_add', yaml=MAPPING.replace('conf-map', 'conf-map-used'))
    expect_body(r, 'mapping_info', k)
    table = ROUTES + '    map: conf-map-used\n'
    try:
        routes_apply(c, table)
        r, k = c.admin('mapping_remove', name='conf-map-used')
        expect_error(r, 409, k, text='mapping conf-map-used is used by route conf-rt of the live routing table')
    finally:
        routes_apply(c, ROUTES_EMPTY)
    c.ok('mapping_remove', name='conf-map-used')


@row('refusals', '`RoutesApply` with a routing table that does not compile')
def test_routes_invalid(w):
    c = w.session('plain')
    bad = ('routes:\n'
           '  - name: "bad name!"\n'
           '    match: { topic: "conf.rt.in" }\n'
           '    to: conf.rt.out\n'
           '  - name: two\n'
           '    match: { topic: "conf..x" }\n'
           '    to: conf.rt.out\n')
    r, k = c.admin('routes_apply', yaml=bad)
    expect_error(r, 422, k, text='routing table refused:')
    lines = [x for x in r.error.text.splitlines()[1:] if x.strip()]
    check(len(lines) >= 2, 'expected every error listed, got %r' % r.error.text)
