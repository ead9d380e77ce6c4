// overview.js - #/overview: rates, connections, storage, alarms, dead
// letters and every broker counter, refreshed every 3 s until the route
// changes (the returned stop function). Browser main thread.
import { get } from '../api.js';
import { h, clear, section, table, num, bytes, timeUs, showError, link } from '../ui.js';

const REFRESH_MS = 3000;

function tile(label, value, testid, href) {
  const v = h('div', { class: 'tile-value', testid }, value);
  return h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, label),
    href ? h('a', { href }, v) : v);
}

// Every counter, grouped by the word before its first dot (deliver.*,
// publish.*, ...), one small table per group.
function counters(all) {
  const groups = new Map();
  for (const [k, v] of Object.entries(all).sort(([a], [b]) => a.localeCompare(b))) {
    const g = k.includes('.') ? k.slice(0, k.indexOf('.')) : 'other';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push([k.slice(g.length + 1) || k, num(v)]);
  }
  return h('div', { class: 'counter-groups', testid: 'counters-table' },
    [...groups].map(([g, rows]) => h('div', {}, h('h4', {}, g), table(['Counter', 'Value'], rows))));
}

function draw(el, o, at) {
  const s = o.storage;
  const alarms = o.alarms || [];
  const raised = alarms.filter((a) => a.state === 'raised');
  clear(el, 
    h('div', { class: 'view-head' },
      h('h1', {}, 'Overview'),
      h('span', { class: 'muted', testid: 'overview-updated' },
        `${o.broker} · as ${o.identity} · updated ${at.toISOString().slice(11, 19)} UTC (every ${REFRESH_MS / 1000} s)`)),
    h('div', { class: 'tiles' },
      tile('publishes/s', num(o.rates.publishes_per_s), 'rate-publishes'),
      tile('deliveries/s', num(o.rates.deliveries_per_s), 'rate-deliveries'),
      tile('acks/s', num(o.rates.acks_per_s), 'rate-acks'),
      tile('topics', num(o.topics), 'count-topics', '#/topics'),
      tile('subscriptions', num(o.subscriptions), 'count-subscriptions', '#/subscriptions'),
      tile('connections', num(o.connections), 'count-connections'),
      tile('dead letters', num(o.dead_letters), 'count-dead-letters', '#/dlq'),
      tile('storage', s ? `${bytes(s.used_bytes)} of ${bytes(s.map_bytes)}` : 'not reported',
        'storage')),
    section(`Alarms (${raised.length} raised)`,
      table(['Alarm', 'State', 'Since'], alarms.map((a) => ({
        attrs: { class: a.state === 'raised' ? 'bad' : null, testid: 'alarm-row' },
        cells: [a.name, a.state, timeUs(a.since_us)],
      })), 'alarms-table', 'no alarms')),
    section('Broker counters', counters(o.counters || {})),
    h('p', {}, link('#/audit', 'Audit trail →')));
}

export async function overview(el) {
  let timer = null;
  let stopped = false;
  let failing = null;
  const tick = async () => {
    try {
      const o = await get('/api/overview');
      if (stopped) return;
      if (failing) { failing.remove(); failing = null; }
      draw(el, o, new Date());
    } catch (err) {
      if (stopped) return;
      if (!failing || !failing.isConnected) failing = showError(err, 'overview refresh');
    }
    if (!stopped) timer = setTimeout(tick, REFRESH_MS);
  };
  el.append(h('p', { class: 'muted' }, 'loading…'));
  await tick();
  return () => { stopped = true; clearTimeout(timer); };
}
