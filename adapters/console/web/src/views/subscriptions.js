// subscriptions.js - #/subscriptions: every subscription's lag, in flight,
// deliveries, redeliveries, dead letters, acks and cursor; "Reset cursor"
// moves one to an offset, a time, the earliest or the latest message after
// a confirmation. Browser main thread.
import { get, post } from '../api.js';
import {
  h, clear, section, table, num, seg, showError, showNotice, confirmDialog,
} from '../ui.js';

function cursorText(c) {
  if (c === null || c === undefined) return '–';
  if (typeof c === 'object') {
    return Object.entries(c).map(([k, v]) => `${k}: ${v}`).join(', ') || '–';
  }
  return String(c);
}

// The seek form under the table, for subscription S.
function seekForm(s, reload) {
  const topic = h('input', { testid: 'seek-topic', placeholder: 'every topic', value: '' });
  const mode = h('select', { testid: 'seek-mode' },
    h('option', { value: 'offset' }, 'to offset'),
    h('option', { value: 'time' }, 'to time (RFC 3339)'),
    h('option', { value: 'earliest' }, 'to the earliest'),
    h('option', { value: 'latest' }, 'to the latest'));
  const value = h('input', { testid: 'seek-value', placeholder: 'offset' });
  mode.addEventListener('change', () => {
    value.disabled = mode.value === 'earliest' || mode.value === 'latest';
    value.placeholder = mode.value === 'time' ? '2026-12-07T22:00:00Z' : mode.value === 'offset' ? 'offset' : '';
  });
  const submit = async (e) => {
    e.preventDefault();
    const body = { topic: topic.value.trim() || null };
    if (mode.value === 'offset') {
      if (!/^\d+$/.test(value.value.trim())) {
        showError(new Error('the offset must be a whole number'), 'reset cursor');
        return;
      }
      body.offset = Number(value.value.trim());
    } else if (mode.value === 'time') {
      body.time = value.value.trim();
    } else {
      body.to = mode.value;
    }
    const where = body.offset !== undefined ? `offset ${body.offset}`
      : body.time !== undefined ? `time ${body.time}` : `the ${body.to} message`;
    const ok = await confirmDialog(`Reset the cursor of ${s.name}?`,
      `Its next delivery on ${body.topic || 'every topic it follows'} will be from ${where}. ` +
      'Messages before it are skipped; messages after it are delivered again.', 'Reset cursor');
    if (!ok) return;
    try {
      const r = await post(`/api/subscriptions/${seg(s.name)}/seek`, body);
      showNotice(`${s.name}: cursor moved (${r.moved} changed)`);
      await reload();
    } catch (err) {
      showError(err, `reset cursor of ${s.name}`);
    }
  };
  return h('form', { class: 'card inline-form', testid: 'seek-form', onsubmit: submit },
    h('strong', {}, `Reset cursor of ${s.name}: `), 'topic ', topic, ' ', mode, ' ', value, ' ',
    h('button', { type: 'submit', class: 'primary', testid: 'seek-submit' }, 'Reset…'));
}

export async function subscriptions(el) {
  const formArea = h('div', {});
  const reload = async () => {
    const { subscriptions: subs } = await get('/api/subscriptions');
    const rows = subs.map((s) => ({
      attrs: { testid: 'sub-row', 'data-name': s.name },
      cells: [
        s.name, s.pattern, s.owner || '–',
        `${s.ephemeral ? 'ephemeral' : 'durable'}, ${s.attached ? 'attached' : 'detached'}`,
        h('span', { testid: 'sub-lag', class: s.lag > 0 ? 'warn' : null }, num(s.lag)),
        num(s.in_flight), num(s.delivered), num(s.redelivered), num(s.dead_lettered),
        num(s.acked), cursorText(s.cursor),
        h('button', {
          testid: 'seek-open',
          onclick: () => clear(formArea, seekForm(s, reload)),
          disabled: s.ephemeral,
        }, 'Reset cursor…'),
      ],
    }));
    clear(el, 
      h('div', { class: 'view-head' }, h('h1', {}, 'Subscriptions'),
        h('span', { class: 'muted' }, `${subs.length} subscriptions`),
        h('button', { onclick: () => reload().catch((e) => showError(e)) }, 'Refresh')),
      section('Subscriptions', table(['Name', 'Pattern', 'Owner', 'Kind', 'Lag', 'In flight',
        'Delivered', 'Redelivered', 'Dead-lettered', 'Acked', 'Cursor', ''], rows,
      'subs-table', 'no subscriptions')),
      formArea);
  };
  await reload();
}
