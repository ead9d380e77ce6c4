// dlq.js - #/dlq (every dead-letter topic: remaining, removed) and
// #/dlq/TOPIC: dead letters with their reasons and original topics, each
// selectable; "Redrive" sends one or the selected ones back to their
// original topics and "Remove" drops them, both after a confirmation. The
// console processes them one by one (peek, publish, remove), so a closed
// page never loses a message; this view shows each outcome. Browser main
// thread.
import { get, post } from '../api.js';
import {
  h, clear, section, table, num, seg, showError, showNotice, confirmDialog,
} from '../ui.js';
import { messageCard, messageHref } from './messages.js';

export async function dlqList(el) {
  const { topics } = await get('/api/dlq');
  clear(el, 
    h('div', { class: 'view-head' }, h('h1', {}, 'Dead letters'),
      h('span', { class: 'muted' },
        `${num(topics.reduce((n, t) => n + t.remaining, 0))} waiting in ${topics.length} topics`)),
    section('Dead-letter topics', table(['Topic', 'Waiting', 'Removed', 'Next offset'],
      topics.map((t) => ({
        attrs: { testid: 'dlq-row', 'data-name': t.name },
        cells: [h('a', { href: `#/dlq/${seg(t.name)}` }, t.name), num(t.remaining),
          num(t.removed), num(t.next_offset)],
      })), 'dlq-table', 'no dead letters')));
}

const PAGE = 50;

export async function dlqTopic(el, topic) {
  const selected = new Set();
  const list = h('div', { class: 'messages', testid: 'dlq-messages' });
  const results = h('div', { testid: 'dlq-results' });
  const count = h('span', { class: 'muted', testid: 'dlq-remaining' });
  const selInfo = h('span', { class: 'muted' }, 'none selected');
  const redriveSel = h('button', { testid: 'redrive-selected', disabled: true }, 'Redrive selected…');
  const removeSel = h('button', { testid: 'remove-selected', class: 'danger', disabled: true }, 'Remove selected…');
  const refreshSel = () => {
    selInfo.textContent = selected.size ? `${selected.size} selected` : 'none selected';
    redriveSel.disabled = removeSel.disabled = selected.size === 0;
  };

  const card = (m) => {
    const box = h('input', {
      type: 'checkbox', testid: 'dlq-select', checked: selected.has(m.offset),
      onchange: (e) => { if (e.target.checked) selected.add(m.offset); else selected.delete(m.offset); refreshSel(); },
    });
    return messageCard(m, {
      extra: box,
      head: [
        h('span', { class: 'reason', testid: 'dlq-reason' }, m.reason || 'no reason recorded'),
        m.original_topic
          ? h('span', { class: 'muted' }, ' from ', h('a', { href: `#/topics/${seg(m.original_topic)}` }, m.original_topic))
          : h('span', { class: 'muted' }, ' (original topic unknown: cannot be redriven)'),
        h('span', { class: 'spacer' }),
        h('button', { testid: 'redrive-one', disabled: !m.original_topic, onclick: () => act('redrive', [m.offset]) }, 'Redrive…'),
        h('button', { testid: 'remove-one', class: 'danger', onclick: () => act('remove', [m.offset]) }, 'Remove…'),
      ],
    });
  };

  let from = 0;
  const more = h('button', { testid: 'dlq-next', disabled: true }, 'Next page →');
  const load = async () => {
    const page = await get(`/api/dlq/${seg(topic)}/messages?from=${from}&limit=${PAGE}`);
    count.textContent = `${num(page.remaining)} waiting`;
    more.disabled = page.messages.length < PAGE;
    more.onclick = () => { from = page.next; load().catch((e) => showError(e)); };
    for (const off of [...selected]) if (!page.messages.some((m) => m.offset === off)) selected.delete(off);
    refreshSel();
    clear(list, page.messages.length ? page.messages.map(card)
      : h('p', { class: 'empty', testid: 'dlq-empty' }, 'no dead letters waiting here'));
  };

  async function act(kind, offsets) {
    const n = offsets.length;
    const what = `${n} dead letter${n > 1 ? 's' : ''} (offset${n > 1 ? 's' : ''} ${offsets.join(', ')})`;
    const ok = kind === 'redrive'
      ? await confirmDialog(`Redrive ${what}?`,
        'Each is published again to its original topic, then removed from this dead-letter topic, one by one.',
        'Redrive')
      : await confirmDialog(`Remove ${what}?`,
        'They are dropped from this dead-letter topic for good and not delivered anywhere.', 'Remove');
    if (!ok) return;
    try {
      if (kind === 'redrive') {
        const r = await post(`/api/dlq/${seg(topic)}/redrive`, { offsets });
        clear(results, section('Redrive result',
          table(['Offset', 'Outcome'], [
            ...r.redriven.map((x) => ({
              attrs: { testid: 'redriven-row' },
              cells: [String(x.offset), h('span', {}, 'published to ',
                h('a', { href: messageHref(x.to, x.new_offset), testid: 'redriven-link' }, `${x.to} @ ${x.new_offset}`))],
            })),
            ...r.failed.map((x) => ({
              attrs: { testid: 'redrive-failed-row', class: 'bad' },
              cells: [String(x.offset), `${x.error.code}: ${x.error.message}`],
            })),
          ], 'redrive-result')));
        if (r.redriven.length) showNotice(`${r.redriven.length} redriven`);
        for (const f of r.failed) showError({ code: f.error.code, message: f.error.message }, `redrive of offset ${f.offset}`);
      } else {
        const r = await post(`/api/dlq/${seg(topic)}/remove`, { offsets });
        showNotice(`${r.removed} removed`);
      }
    } catch (err) {
      showError(err, kind === 'redrive' ? 'redrive' : 'remove');
    }
    offsets.forEach((o) => selected.delete(o));
    await load().catch((e) => showError(e));
  }

  redriveSel.addEventListener('click', () => act('redrive', [...selected].sort((a, b) => a - b)));
  removeSel.addEventListener('click', () => act('remove', [...selected].sort((a, b) => a - b)));
  clear(el, 
    h('div', { class: 'view-head' }, h('h1', { testid: 'dlq-name' }, topic), count,
      h('a', { href: '#/dlq' }, '← all dead-letter topics')),
    h('div', { class: 'toolbar' }, selInfo, redriveSel, removeSel,
      h('button', { onclick: () => load().catch((e) => showError(e)) }, 'Refresh'),
      h('button', { testid: 'dlq-first', onclick: () => { from = 0; load().catch((e) => showError(e)); } }, 'First page'),
      more),
    results, list);
  await load();
}
