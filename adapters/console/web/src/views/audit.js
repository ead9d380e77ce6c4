// audit.js - #/audit: the broker's audit trail, newest first (who did
// what to which target, and the outcome), with a text filter over the
// loaded records. Browser main thread.
import { get } from '../api.js';
import { h, clear, section, table, hashQuery } from '../ui.js';

// '2026-12-07T22:31:00.449309Z' -> '2026-12-07 22:31:00.449 UTC'.
const when = (at) => String(at || '').replace('T', ' ').replace(/(\.\d{3})\d*Z$/, '$1 UTC');

export async function audit(el) {
  const limit = Number(hashQuery().limit) || 100;
  const { records } = await get(`/api/audit?limit=${limit}`);
  const filter = h('input', { testid: 'audit-filter', placeholder: 'filter: identity, action, target…' });
  const box = h('div', {});
  const draw = () => {
    const f = filter.value.trim().toLowerCase();
    const rows = records.filter((r) => !f || [r.identity, r.action, r.target, r.outcome, r.detail]
      .some((x) => String(x || '').toLowerCase().includes(f)));
    clear(box, table(['Offset', 'At', 'Identity', 'Action', 'Target', 'Outcome', 'Detail'],
      rows.map((r) => ({
        attrs: { testid: 'audit-row', class: r.outcome && r.outcome !== 'ok' ? 'bad' : null },
        cells: [String(r.offset), h('span', { class: 'nowrap' }, when(r.at)), r.identity, r.action, r.target, r.outcome, r.detail || ''],
      })), 'audit-table', 'no audit records'));
  };
  filter.addEventListener('input', draw);
  clear(el, 
    h('div', { class: 'view-head' }, h('h1', {}, 'Audit trail'),
      h('span', { class: 'muted' }, `${records.length} newest records`),
      h('a', { href: `#/audit?limit=${limit * 5}` }, 'more')),
    section('Records', h('div', { class: 'toolbar' }, filter), box));
  draw();
}
