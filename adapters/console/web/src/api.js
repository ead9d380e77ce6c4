// api.js - the console's JSON API client (docs/console.md, "API"): the
// bearer token kept in sessionStorage, one request function that turns
// every failure into an ApiError carrying the API's code and message.
// Browser main thread; no state besides sessionStorage.

const TOKEN_KEY = 'sluice.console.token';
const IDENTITY_KEY = 'sluice.console.identity';
const ENDED_KEY = 'sluice.console.ended';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;   // HTTP status, 0 when the request never got an answer
    this.code = code;       // the API's error code: denied, not_found, invalid, ...
  }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function identity() { return sessionStorage.getItem(IDENTITY_KEY) || ''; }

export function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(IDENTITY_KEY);
}

// Why the last session ended (a refused token), once: the login page shows it.
export function takeEndedReason() {
  const why = sessionStorage.getItem(ENDED_KEY);
  sessionStorage.removeItem(ENDED_KEY);
  return why;
}

// Check TOK with /api/whoami; on success keep it and the identity.
export async function login(tok) {
  const who = await request('GET', '/api/whoami', undefined, tok);
  sessionStorage.setItem(TOKEN_KEY, tok);
  sessionStorage.setItem(IDENTITY_KEY, who.identity);
  return who.identity;
}

// METHOD PATH with an optional JSON BODY; resolves to the parsed answer,
// rejects with an ApiError. A 401 on the kept token ends the session: the
// token is dropped and the login page says why.
export async function request(method, path, body, tok = token()) {
  const headers = { Accept: 'application/json' };
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the console did not answer ${method} ${path}: ${e.message}`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    throw new ApiError(res.status, 'failed',
      `${method} ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(res.status, err.code || 'failed',
      err.message || `${method} ${path}: HTTP ${res.status}`);
    if (res.status === 401 && tok && tok === token()) {
      logout();
      sessionStorage.setItem(ENDED_KEY, `session ended: HTTP 401 ${e.code}: ${e.message}`);
      location.hash = '#/login';
    }
    throw e;
  }
  return data;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
