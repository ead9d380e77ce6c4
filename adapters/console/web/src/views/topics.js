// topics.js - #/topics (every topic: rates, sizes, retention, schema) and
// #/topics/NAME, the message browser: offset paging (older, newer, latest,
// go to an offset), each message decoded (messages.js). ?from=N opens the
// browser at offset N, ?at=N highlights that message (lineage links).
// Browser main thread.
import { get } from '../api.js';
import {
  h, clear, section, table, num, bytes, ms, hashQuery, seg, showError,
} from '../ui.js';
import { messageCard } from './messages.js';

export async function topics(el) {
  const { topics: list } = await get('/api/topics');
  const visible = list.filter((t) => !t.name.startsWith('_'));
  const internal = list.filter((t) => t.name.startsWith('_'));
  const rows = (ts) => ts.map((t) => ({
    attrs: { testid: 'topic-row', 'data-name': t.name },
    cells: [
      h('a', { href: `#/topics/${seg(t.name)}` }, t.name),
      num(t.messages),
      t.next_offset > t.first_offset ? `${num(t.first_offset)} – ${num(t.next_offset - 1)}` : `none (next ${num(t.next_offset)})`,
      bytes(t.bytes),
      `${ms(t.max_age_ms)} / ${t.max_bytes ? bytes(t.max_bytes) : 'unlimited'}`,
      t.schema || '–', num(t.publishes_per_s),
    ],
  }));
  const heads = ['Topic', 'Messages', 'Offsets', 'Size', 'Retention (age / size)', 'Schema', 'Publishes/s'];
  clear(el, 
    h('div', { class: 'view-head' }, h('h1', {}, 'Topics'),
      h('span', { class: 'muted' }, `${list.length} topics`)),
    section('Topics', table(heads, rows(visible), 'topics-table', 'no topics yet')),
    internal.length ? section('Internal topics (dead letters, audit, alerts)',
      table(heads, rows(internal), 'internal-topics-table')) : null);
}

const PAGE = 20;

export async function topicMessages(el, topic) {
  const q = hashQuery();
  const at = q.at !== undefined ? Number(q.at) : null;
  const list = h('div', { class: 'messages', testid: 'messages' });
  const info = h('span', { class: 'muted', testid: 'page-info' });
  const goto = h('input', { type: 'number', min: 0, testid: 'goto-offset', placeholder: 'offset' });
  let page = null;

  // FROM null: the last PAGE messages.
  const load = async (from) => {
    const qs = from === null ? `limit=${PAGE}` : `from=${from}&limit=${PAGE}`;
    try {
      page = await get(`/api/topics/${seg(topic)}/messages?${qs}`);
    } catch (err) {
      showError(err, `messages of ${topic}`);
      return;
    }
    const ms_ = page.messages;
    older.disabled = !ms_.length || ms_[0].offset <= page.first_offset;
    newer.disabled = !ms_.length || ms_[ms_.length - 1].offset + 1 >= page.next_offset;
    info.textContent = ms_.length
      ? `offsets ${ms_[0].offset}–${ms_[ms_.length - 1].offset} of ${page.first_offset}–${page.next_offset - 1}`
      : `no messages here (topic holds ${page.first_offset}–${page.next_offset - 1})`;
    clear(list, ms_.length
      ? ms_.map((m) => messageCard(m, { highlight: m.offset === at }))
      : h('p', { class: 'empty' }, 'no messages in this range'));
    const hl = list.querySelector('.highlight');
    if (hl) hl.scrollIntoView({ block: 'center' });
  };
  const first = () => (page && page.messages.length ? page.messages[0].offset : 0);
  const older = h('button', {
    testid: 'page-older',
    onclick: () => load(Math.max(page ? page.first_offset : 0, first() - PAGE)),
  }, '← Older');
  const newer = h('button', {
    testid: 'page-newer',
    onclick: () => load(page && page.messages.length
      ? page.messages[page.messages.length - 1].offset + 1 : 0),
  }, 'Newer →');
  const bar = h('div', { class: 'toolbar' }, older, newer,
    h('button', { testid: 'page-latest', onclick: () => load(null) }, 'Latest'),
    h('form', {
      class: 'inline',
      onsubmit: (e) => { e.preventDefault(); if (goto.value !== '') load(Number(goto.value)); },
    }, goto, h('button', { type: 'submit', testid: 'goto-submit' }, 'Go')),
    info);
  clear(el, 
    h('div', { class: 'view-head' },
      h('h1', { testid: 'topic-name' }, topic),
      h('a', { href: '#/topics' }, '← all topics')),
    bar, list);
  await load(q.from !== undefined ? Number(q.from) : null);
}
