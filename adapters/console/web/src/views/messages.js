// messages.js - one stored message drawn as a card, shared by the topic
// message browser and the dead-letter view: offset, time, content type,
// headers table, the payload (JSON pretty-printed when it parsed, else the
// text, or base64 marked as such), and lineage linked to the source
// message. Browser main thread; pure rendering.
import { h, table, timeUs, seg } from '../ui.js';

// #/topics/TOPIC?from=OFFSET&at=OFFSET: the browser opened at one message.
export function messageHref(topic, offset) {
  return `#/topics/${seg(topic)}?from=${offset}&at=${offset}`;
}

function payload(m) {
  if (m.json !== null && m.json !== undefined) {
    return h('pre', { class: 'code json', testid: 'msg-json' }, JSON.stringify(m.json, null, 2));
  }
  if (m.payload_encoding === 'base64') {
    return h('div', {}, h('span', { class: 'tag' }, 'binary, base64'),
      h('pre', { class: 'code', testid: 'msg-payload' }, m.payload));
  }
  return h('pre', { class: 'code', testid: 'msg-payload' }, m.payload);
}

function lineage(l) {
  if (!l) return null;
  const parts = [
    'from ',
    h('a', { href: messageHref(l.source_topic, l.source_offset), testid: 'lineage-link' },
      `${l.source_topic} @ ${l.source_offset}`),
  ];
  if (l.route) parts.push(` by route ${l.route}`);
  if (l.table_version) parts.push(` (table v${l.table_version})`);
  if (l.mapping) parts.push(`, mapping ${l.mapping}${l.mapping_version ? ` v${l.mapping_version}` : ''}`);
  return h('div', { class: 'lineage', testid: 'msg-lineage' }, h('strong', {}, 'Lineage: '), parts);
}

// EXTRA: nodes put in the card's head (the DLQ's checkbox and buttons).
export function messageCard(m, { highlight = false, extra = null, head = null } = {}) {
  const headers = Object.entries(m.headers || {});
  return h('article', {
    class: `msg${highlight ? ' highlight' : ''}`, testid: 'msg', 'data-offset': m.offset,
  },
  h('div', { class: 'msg-head' },
    extra,
    h('span', { class: 'offset' }, `#${m.offset}`),
    h('span', { class: 'muted' }, timeUs(m.ingest_us)),
    m.content_type ? h('span', { class: 'tag' }, m.content_type) : null,
    head),
  headers.length
    ? h('details', { class: 'headers', open: true },
      h('summary', {}, `Headers (${headers.length})`),
      table(['Header', 'Value'], headers.map(([k, v]) => [k, String(v)]), 'msg-headers'))
    : null,
  lineage(m.lineage),
  payload(m));
}
