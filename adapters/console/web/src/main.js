// main.js - the console web app's shell: the hash router, the login page,
// the navigation bar with the identity, and the view lifecycle (each view
// renders into the main area and may return a stop function, called when
// the route changes: the overview's auto-refresh). Browser main thread.
import './style.css';
import * as api from './api.js';
import { h, clear, setBannerArea, clearBanners, showError } from './ui.js';
import { overview } from './views/overview.js';
import { topics, topicMessages } from './views/topics.js';
import { subscriptions } from './views/subscriptions.js';
import { dlqList, dlqTopic } from './views/dlq.js';
import { schemas, mappings } from './views/registry.js';
import { routes } from './views/routes.js';
import { audit } from './views/audit.js';

const NAV = [
  ['overview', 'Overview'], ['topics', 'Topics'], ['subscriptions', 'Subscriptions'],
  ['dlq', 'Dead letters'], ['schemas', 'Schemas'], ['mappings', 'Mappings'],
  ['routes', 'Routes'], ['audit', 'Audit'],
];

// '#/topics/a.b?from=3' -> ['topics', 'a.b']: the path's words, decoded.
function parseHash() {
  const path = location.hash.replace(/^#\/?/, '').split('?')[0];
  return path.split('/').filter(Boolean).map(decodeURIComponent);
}

function route(parts) {
  const [view, arg] = parts;
  switch (view) {
    case 'overview': return (el) => overview(el);
    case 'topics': return arg ? (el) => topicMessages(el, arg) : (el) => topics(el);
    case 'subscriptions': return (el) => subscriptions(el);
    case 'dlq': return arg ? (el) => dlqTopic(el, arg) : (el) => dlqList(el);
    case 'schemas': return (el) => schemas(el);
    case 'mappings': return (el) => mappings(el);
    case 'routes': return (el) => routes(el);
    case 'audit': return (el) => audit(el);
    default: return null;
  }
}

const app = document.getElementById('app');
let stopView = null;

function shell(active) {
  const banners = h('div', { class: 'banners', testid: 'banners' });
  const main = h('main', { testid: `view-${active}` });
  const nav = h('nav', { class: 'top' },
    h('span', { class: 'brand' }, 'sluice'),
    NAV.map(([id, label]) => h('a', {
      href: `#/${id}`, class: id === active ? 'active' : null, testid: `nav-${id}`,
    }, label)),
    h('span', { class: 'spacer' }),
    h('span', { class: 'who', testid: 'identity' }, api.identity()),
    h('button', {
      class: 'link', testid: 'logout',
      onclick: () => { api.logout(); location.hash = '#/login'; },
    }, 'Log out'));
  clear(app, nav, banners, main);
  setBannerArea(banners);
  return main;
}

function loginPage() {
  const banners = h('div', { class: 'banners', testid: 'banners' });
  const input = h('input', {
    type: 'password', id: 'token', testid: 'login-token', autocomplete: 'off',
    placeholder: 'sht_…', size: 48,
  });
  const form = h('form', {
    class: 'card login', testid: 'login-form',
    onsubmit: async (e) => {
      e.preventDefault();
      clearBanners();
      try {
        await api.login(input.value.trim());
        location.hash = '#/overview';
      } catch (err) {
        showError(err, 'login refused');
      }
    },
  },
  h('h1', {}, 'sluice console'),
  h('label', { for: 'token' }, 'Access token'),
  input,
  h('p', { class: 'hint' },
    'A token from `sluice-console token add IDENTITY`. The console acts at the broker as that identity; ' +
    'the token is kept in this tab only.'),
  h('button', { class: 'primary', type: 'submit', testid: 'login-submit' }, 'Log in'));
  clear(app, h('div', { class: 'login-page' }, banners, form));
  setBannerArea(banners);
  const ended = api.takeEndedReason();
  if (ended) showError(new Error(ended));
  input.focus();
}

async function render() {
  if (stopView) { stopView(); stopView = null; }
  const parts = parseHash();
  if (!api.token() || parts[0] === 'login') {
    if (api.token() && parts[0] === 'login') api.logout();
    loginPage();
    return;
  }
  const view = route(parts);
  if (!view) { location.hash = '#/overview'; return; }
  const main = shell(parts[0]);
  try {
    stopView = (await view(main)) || null;
  } catch (err) {
    if (api.token()) showError(err);   // else the login page says why
  }
}

window.addEventListener('hashchange', render);
render();
