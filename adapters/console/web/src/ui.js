// ui.js - the small DOM kit every view uses: element building (text only,
// never innerHTML from data), banners for errors and notices, the
// confirmation dialog, tables, number/time/byte formatting.
// Browser main thread; the banner area and dialog live in the page shell.

// h('div', {class: 'x', testid: 'y', onclick: fn}, child, ...): an element.
// Children: nodes, strings (as text), arrays, null/false (skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'testid') el.dataset.testid = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Empty EL, then put CHILDREN in it (as h() takes them).
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ------------------------------------------------------------ banners

let bannerArea = null;
export function setBannerArea(el) { bannerArea = el; }

// An error banner: "HTTP 403 denied: <the API's message>" (what to show
// for an ApiError), or the text of any other error. Stays until dismissed
// or the view changes.
export function showError(err, context) {
  const head = err && err.code
    ? `${err.status ? `HTTP ${err.status} ` : ''}${err.code}` : 'error';
  const msg = (err && err.message) || String(err);
  return banner('error', `${context ? `${context}: ` : ''}${head}: ${msg}`, 'error-banner');
}

export function showNotice(text) { return banner('notice', text, 'notice-banner'); }

function banner(kind, text, testid) {
  const b = h('div', { class: `banner ${kind}`, role: kind === 'error' ? 'alert' : 'status', testid },
    h('span', { class: 'banner-text' }, text),
    h('button', { class: 'link', title: 'dismiss', onclick: () => b.remove() }, '×'));
  (bannerArea || document.body).append(b);
  return b;
}

export function clearBanners() { if (bannerArea) clear(bannerArea); }

// ------------------------------------------------------------- dialog

// A modal confirmation: resolves true on "Confirm", false on "Cancel" or
// Escape. BODY is a string or nodes (what will happen, with the numbers).
export function confirmDialog(title, body, okLabel = 'Confirm') {
  return new Promise((resolve) => {
    const done = (v) => { overlay.remove(); document.removeEventListener('keydown', key); resolve(v); };
    const key = (e) => { if (e.key === 'Escape') done(false); };
    const ok = h('button', { class: 'primary', testid: 'confirm-ok', onclick: () => done(true) }, okLabel);
    const overlay = h('div', { class: 'overlay' },
      h('div', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', testid: 'confirm-dialog' },
        h('h3', {}, title),
        h('div', { class: 'dialog-body' }, body),
        h('div', { class: 'dialog-buttons' },
          h('button', { testid: 'confirm-cancel', onclick: () => done(false) }, 'Cancel'), ok)));
    document.addEventListener('keydown', key);
    document.body.append(overlay);
    ok.focus();
  });
}

// ------------------------------------------------------------- tables

// table(['Name', 'Lag'], rows, testid): ROWS is an array of arrays of cells
// (strings or nodes) or of {cells, attrs} for row attributes.
export function table(headers, rows, testid, empty = 'nothing here yet') {
  const body = rows.length
    ? rows.map((r) => (Array.isArray(r)
      ? h('tr', {}, r.map((c) => h('td', {}, c)))
      : h('tr', r.attrs, r.cells.map((c) => h('td', {}, c)))))
    : [h('tr', {}, h('td', { colspan: headers.length, class: 'empty' }, empty))];
  return h('table', { class: 'grid', testid },
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, body));
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), children);
}

export function pre(text, testid) {
  return h('pre', { class: 'code', testid }, text);
}

// ---------------------------------------------------------- formatting

export function num(n) {
  if (n === null || n === undefined) return '–';
  if (typeof n !== 'number') return String(n);
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(1);
}

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

// Microseconds since the epoch -> "2026-12-07 22:10:19 UTC".
export function timeUs(us) {
  if (!us) return '–';
  return new Date(us / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function ms(v) {
  if (!v) return 'unlimited';
  if (v % 86400000 === 0) return `${v / 86400000} d`;
  if (v % 3600000 === 0) return `${v / 3600000} h`;
  if (v % 60000 === 0) return `${v / 60000} min`;
  return `${v / 1000} s`;
}

// One path segment: topic, subscription, subject and mapping names.
export const seg = (s) => encodeURIComponent(s);

export function link(href, text, testid) {
  return h('a', { href, testid }, text);
}

// The hash route's query: '#/topics/x?from=5' -> {from: '5'}.
export function hashQuery() {
  const i = location.hash.indexOf('?');
  return i < 0 ? {} : Object.fromEntries(new URLSearchParams(location.hash.slice(i + 1)));
}
