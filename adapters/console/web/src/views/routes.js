// routes.js - #/routes: the live routing table (YAML and per-route
// counters), its history with "Rollback to vN", the diff between two
// chosen versions, and the editor: a new table, fixtures and a replay
// topic; "Check" asks the console to validate them and "Apply" (enabled
// only after a passing check of exactly this text) makes the table live,
// both against the live version seen here (expect_version). Apply and
// rollback ask for a confirmation. Browser main thread.
import { get, post } from '../api.js';
import {
  h, clear, section, table, num, timeUs, showError, showNotice, confirmDialog, pre,
} from '../ui.js';

function checkReport(c) {
  const part = (title, r, testid) => (r && r.ran
    ? h('div', {}, h('h4', { class: r.ok ? 'ok' : 'bad' }, `${title}: ${r.ok ? 'pass' : 'FAIL'}${r.changed ? ' (routing changes)' : ''}`),
      pre(r.output, testid))
    : h('p', { class: 'muted' }, `${title}: not run`));
  return h('div', { testid: 'check-result' },
    h('p', { class: c.ok ? 'ok' : 'bad', testid: 'check-verdict' },
      c.ok ? 'Check passed: this table may be applied.' : 'Check failed: fix the table before applying.'),
    c.errors ? pre(c.errors, 'check-errors') : null,
    h('h4', {}, 'Diff against the live table'), pre(c.diff || '(no change)', 'check-diff'),
    part('Fixtures', c.fixtures, 'check-fixtures'),
    part('Replay', c.replay, 'check-replay'));
}

export async function routes(el) {
  const list = await get('/api/routes');
  const live = list.live ? await get('/api/routes/0') : { yaml: '' };
  let stats = null;
  try {
    stats = await get('/api/routes/stats');
  } catch (err) {
    showError(err, 'route counters');
  }
  const reload = () => routes(el).catch((e) => showError(e));
  const versions = list.versions.slice().sort((a, b) => b.version - a.version);

  // ---- history and rollback
  const rollback = async (v) => {
    const ok = await confirmDialog(`Roll back to version ${v}?`,
      `Version ${v}'s table becomes a new version ${list.live + 1}, live at once. The live version is ${list.live}.`,
      `Rollback to v${v}`);
    if (!ok) return;
    try {
      const r = await post('/api/routes/rollback', { version: v, expect_version: list.live });
      showNotice(`version ${r.version} is live (rollback to v${v})`);
      await reload();
    } catch (err) {
      showError(err, `rollback to v${v}`);
    }
  };
  const history = table(['Version', 'Applied', 'By', 'Routes', 'Note', ''], versions.map((v) => ({
    attrs: { testid: 'route-version-row', 'data-version': v.version, class: v.version === list.live ? 'live' : null },
    cells: [`v${v.version}${v.version === list.live ? ' (live)' : ''}`, timeUs(v.applied_us), v.identity,
      Array.isArray(v.routes) ? v.routes.join(', ') : num(v.routes),
      v.rollback_of ? `rollback to v${v.rollback_of}` : '',
      v.version === list.live ? '' : h('button', {
        testid: `rollback-${v.version}`, onclick: () => rollback(v.version),
      }, `Rollback to v${v.version}`)],
  })), 'routes-history', 'no routing table applied yet');

  // ---- diff between two versions
  const pick = (testid, sel) => h('select', { testid },
    versions.map((v) => h('option', { value: v.version, selected: v.version === sel ? true : null }, `v${v.version}`)));
  const a = pick('diff-a', versions.length > 1 ? versions[1].version : list.live);
  const b = pick('diff-b', list.live);
  const diffOut = h('div', {});
  const diff = async () => {
    try {
      const r = await get(`/api/routes/diff?a=${a.value}&b=${b.value}`);
      clear(diffOut, pre(r.diff || '(the two versions are the same)', 'diff-output'));
    } catch (err) {
      showError(err, `diff v${a.value} v${b.value}`);
    }
  };

  // ---- editor: check, then apply
  const yaml = h('textarea', { rows: 16, cols: 90, testid: 'editor-yaml', spellcheck: 'false', value: live.yaml || '' });
  const fixtures = h('textarea', {
    rows: 6, cols: 90, testid: 'editor-fixtures', spellcheck: 'false',
    placeholder: 'routing fixtures (docs/routing.md, "Fixtures"), optional',
  });
  const replay = h('input', { testid: 'editor-replay', placeholder: 'topic to replay, optional' });
  const last = h('input', { type: 'number', min: 1, value: 100, testid: 'editor-last' });
  const checkOut = h('div', {});
  const apply = h('button', { class: 'primary', testid: 'apply', disabled: true }, 'Apply…');
  let checked = null;   // the body that passed its check, while unchanged
  const body = () => ({
    yaml: yaml.value, fixtures: fixtures.value, replay_topic: replay.value.trim(),
    last: Number(last.value) || 100,
  });
  const edited = () => { checked = null; apply.disabled = true; };
  [yaml, fixtures, replay, last].forEach((x) => x.addEventListener('input', edited));
  const check = async () => {
    edited();
    clear(checkOut, h('p', { class: 'muted', testid: 'check-running' }, 'checking…'));
    const req = body();
    try {
      const c = await post('/api/routes/check', req);
      clear(checkOut, checkReport(c));
      if (c.ok) { checked = req; apply.disabled = false; }
    } catch (err) {
      clear(checkOut);
      showError(err, 'check');
    }
  };
  apply.addEventListener('click', async () => {
    if (!checked) return;
    const ok = await confirmDialog(`Apply this table as version ${list.live + 1}?`,
      `It replaces live version ${list.live} at once; the check above passed.`, 'Apply');
    if (!ok) return;
    try {
      const r = await post('/api/routes/apply', { ...checked, expect_version: list.live });
      showNotice(`version ${r.version} is live`);
      await reload();
    } catch (err) {
      showError(err, 'apply');
      if (err.status === 409) edited();
    }
  });

  clear(el, 
    h('div', { class: 'view-head' }, h('h1', {}, 'Routes'),
      h('span', { class: 'muted', testid: 'routes-live' },
        list.live ? `live version ${list.live}` : 'no routing table live')),
    section(`Live table (v${list.live})`,
      stats ? table(['Route', 'Matched', 'Delivered', 'Dropped', 'Dead-lettered', 'Errors'],
        stats.routes.map((r) => ({
          attrs: { testid: 'route-stat-row', 'data-name': r.name },
          cells: [r.name, num(r.matched), num(r.delivered), num(r.dropped), num(r.dead_lettered), num(r.errors)],
        })), 'routes-stats', 'no routes') : null,
      stats ? h('p', { class: 'muted' }, `unrouted messages: ${num(stats.unrouted)}`) : null,
      pre(live.yaml || '(none)', 'routes-live-yaml')),
    section('History', history),
    section('Diff', h('div', { class: 'toolbar' }, a, ' → ', b,
      h('button', { testid: 'diff-run', onclick: diff }, 'Diff')), diffOut),
    section('New table',
      yaml,
      h('h4', {}, 'Fixtures'), fixtures,
      h('div', { class: 'toolbar' }, 'Replay the last ', last, ' messages of ', replay),
      h('div', { class: 'toolbar' },
        h('button', { testid: 'check', onclick: check }, 'Check'), apply,
        h('span', { class: 'muted' }, 'Apply is enabled after a passing check of this exact text.')),
      checkOut));
}
