// registry.js - #/schemas (subjects, their versions, one version's JSON
// Schema and compatibility) and #/mappings (registered mappings, one's
// YAML, and running fixtures against it through the broker's registry).
// ?subject=S&version=N and ?name=M open one directly. Browser main thread.
import { get, post } from '../api.js';
import {
  h, clear, section, table, num, timeUs, seg, hashQuery, showError, showNotice, pre,
} from '../ui.js';

async function showSchema(box, subject, version) {
  try {
    const s = await get(`/api/schemas/${seg(subject)}?version=${version}`);
    clear(box, section(`${s.subject} version ${s.version}`,
      h('p', {}, 'Compatibility: ', h('strong', { testid: 'schema-compat' }, s.compatibility || '–')),
      pre(JSON.stringify(s.schema, null, 2), 'schema-json')));
  } catch (err) {
    showError(err, `schema ${subject}@${version}`);
  }
}

export async function schemas(el) {
  const { schemas: list } = await get('/api/schemas');
  const box = h('div', { testid: 'schema-detail' });
  clear(el, 
    h('div', { class: 'view-head' }, h('h1', {}, 'Schemas'),
      h('span', { class: 'muted' }, `${list.length} subjects`)),
    section('Subjects', table(['Subject', 'Latest', 'Versions'], list.map((s) => ({
      attrs: { testid: 'schema-row', 'data-subject': s.subject },
      cells: [
        h('a', { href: `#/schemas?subject=${seg(s.subject)}&version=${s.latest}` }, s.subject),
        `v${s.latest}`,
        h('span', { class: 'versions' }, s.versions.map((v) => h('a', {
          href: `#/schemas?subject=${seg(s.subject)}&version=${v}`, testid: 'schema-version',
        }, `v${v}`))),
      ],
    })), 'schemas-table', 'no schemas registered')),
    box);
  const q = hashQuery();
  if (q.subject) await showSchema(box, q.subject, q.version || 0);
}

function mappingDetail(box, m) {
  const fixtures = h('textarea', {
    rows: 12, cols: 80, testid: 'mapping-fixtures', spellcheck: 'false',
    placeholder: 'cases:\n  - name: one order\n    input: {id: A1}\n    output: {order_id: A1}',
  });
  const out = h('div', { testid: 'mapping-test-result' });
  const run = async () => {
    try {
      const r = await post(`/api/mappings/${seg(m.name)}/test`, { fixtures: fixtures.value });
      clear(out, 
        h('p', { class: r.ok ? 'ok' : 'bad', testid: 'mapping-test-verdict' },
          r.ok ? `PASS: ${r.passed} passed` : `FAIL: ${r.passed} passed, ${r.failed} failed`),
        pre(r.output, 'mapping-test-output'));
      if (r.ok) showNotice(`${m.name}: ${r.passed} fixtures passed`);
    } catch (err) {
      showError(err, `fixtures of ${m.name}`);
    }
  };
  clear(box, section(`${m.name} v${m.version}: ${m.from} → ${m.to}`,
    pre(m.yaml, 'mapping-yaml'),
    h('h3', {}, 'Run fixtures'),
    h('p', { class: 'hint' }, 'A mapping fixture file without its mapping: key (docs/mapping.md); ' +
      'the broker runs the registered version.'),
    fixtures,
    h('div', { class: 'toolbar' }, h('button', { class: 'primary', testid: 'mapping-test-run', onclick: run }, 'Run fixtures')),
    out));
}

export async function mappings(el) {
  const { mappings: list } = await get('/api/mappings');
  const box = h('div', { testid: 'mapping-detail' });
  clear(el, 
    h('div', { class: 'view-head' }, h('h1', {}, 'Mappings'),
      h('span', { class: 'muted' }, `${list.length} mappings`)),
    section('Mappings', table(['Name', 'Version', 'From', 'To', 'Registered'], list.map((m) => ({
      attrs: { testid: 'mapping-row', 'data-name': m.name },
      cells: [h('a', { href: `#/mappings?name=${seg(m.name)}` }, m.name), `v${num(m.version)}`,
        m.from, m.to, timeUs(m.created_us)],
    })), 'mappings-table', 'no mappings registered')),
    box);
  const q = hashQuery();
  if (q.name) {
    try {
      mappingDetail(box, await get(`/api/mappings/${seg(q.name)}`));
    } catch (err) {
      showError(err, `mapping ${q.name}`);
    }
  }
}
