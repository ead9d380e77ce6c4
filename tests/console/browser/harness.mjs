// harness.mjs - what the console's browser test needs around the browser:
// a temporary directory, processes started with their logs there and
// stopped by PID at exit (never by name), a real sluiced with keys on, the
// `sluice` CLI as the broker's local admin, `sluice-console serve` on a
// port the kernel picks, and polling helpers. Node, one thread.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Harness {
  constructor(build) {
    this.build = build;
    this.sluiced = path.join(build, 'broker', 'sluiced');
    this.sluice = path.join(build, 'adapters', 'cli', 'sluice');
    this.console = path.join(build, 'adapters', 'console', 'sluice-console');
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-console-browser-'));
    this.data = path.join(this.tmp, 'data');
    this.keys = path.join(this.tmp, 'keys');
    this.tokens = path.join(this.tmp, 'tokens');
    fs.mkdirSync(this.keys);
    this.env = { ...process.env, SLUICE_HOME: this.data };
    for (const v of ['SLUICE_BROKER', 'SLUICE_CERT', 'SLUICE_SERVER_KEY']) delete this.env[v];
    this.procs = [];
  }

  log(name) { return path.join(this.tmp, `${name}.log`); }
  logText(name) { try { return fs.readFileSync(this.log(name), 'utf8'); } catch { return ''; } }

  start(name, args) {
    const fd = fs.openSync(this.log(name), 'a');
    const p = spawn(args[0], args.slice(1), { env: this.env, stdio: ['ignore', fd, fd], cwd: this.tmp });
    fs.closeSync(fd);
    p.exited = new Promise((r) => p.on('exit', (code, sig) => r({ code, sig })));
    p.on('exit', () => { p.gone = true; });
    this.procs.push(p);
    return p;
  }

  // Stop every process this harness started, by PID: SIGTERM, then SIGKILL.
  async stopAll() {
    for (const p of this.procs.reverse()) {
      if (p.gone) continue;
      p.kill('SIGTERM');
      const r = await Promise.race([p.exited, sleep(10000).then(() => null)]);
      if (!r) { p.kill('SIGKILL'); await p.exited; }
    }
  }

  // `sluice ARGS` as the broker's local admin; throws unless it exits 0
  // (ok: false returns the result whatever the exit code).
  cli(args, { input, ok = true } = {}) {
    const r = spawnSync(this.sluice, args, { env: this.env, input, encoding: 'utf8', cwd: this.tmp, timeout: 60000 });
    fs.appendFileSync(this.log('cli'), `$ sluice ${args.join(' ')}\n${r.stdout}${r.stderr}exit ${r.status}\n`);
    if (ok && r.status !== 0) throw new Error(`sluice ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return r;
  }

  async startBroker() {
    this.broker = this.start('sluiced', [this.sluiced, '--data-dir', this.data, '--listen', 'tcp://127.0.0.1:*']);
    const ep = path.join(this.data, 'endpoint');
    for (let i = 0; i < 200; i++) {
      if (this.broker.gone) throw new Error(`sluiced exited: ${this.logText('sluiced')}`);
      if (fs.existsSync(ep) && fs.existsSync(path.join(this.data, 'server.pub'))
          && fs.readFileSync(ep, 'utf8').trim()
          && this.cli(['stats', '--timeout', '1'], { ok: false }).status === 0) {
        this.endpoint = fs.readFileSync(ep, 'utf8').trim();
        return;
      }
      await sleep(100);
    }
    throw new Error(`sluiced did not answer: ${this.logText('sluiced')}`);
  }

  // A bearer token for IDENTITY acting with CERT, in the tokens file.
  token(identity, cert) {
    const r = spawnSync(this.console, ['token', 'add', identity, '--cert', cert, '--tokens', this.tokens],
      { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`sluice-console token add ${identity}: ${r.stderr}`);
    return r.stdout.trim();
  }

  // A new identity with its key registered and GRANTS (`sluice grant` options).
  identity(name, grants) {
    this.cli(['keygen', name, '--out', this.keys]);
    this.cli(['keys', 'add', name, path.join(this.keys, `${name}.pub`)]);
    this.cli(['grant', name, ...grants]);
    return path.join(this.keys, `${name}.cert`);
  }

  async startConsole(webRoot) {
    const p = this.start('console', [this.console, 'serve', '--listen', '127.0.0.1:0',
      '--tokens', this.tokens, '--web-root', webRoot, '--sluice', this.sluice,
      '--broker', this.endpoint, '--server-key', path.join(this.data, 'server.pub')]);
    for (let i = 0; i < 200; i++) {
      const m = /listening .*port=(\d+)/.exec(this.logText('console'));
      if (m) {
        this.url = `http://127.0.0.1:${m[1]}`;
        const r = await fetch(`${this.url}/api/health`).catch(() => null);
        if (r && r.ok) return;
      }
      if (p.gone) throw new Error(`sluice-console exited: ${this.logText('console')}`);
      await sleep(100);
    }
    throw new Error(`sluice-console did not answer /api/health: ${this.logText('console')}`);
  }

  // The JSON API directly, as TOKEN (to compare what the page shows).
  async api(token, p) {
    const r = await fetch(`${this.url}${p}`, { headers: { Authorization: `Bearer ${token}` } });
    const body = await r.json();
    if (!r.ok) throw new Error(`GET ${p}: HTTP ${r.status} ${JSON.stringify(body)}`);
    return body;
  }

  stats() { return JSON.parse(this.cli(['stats', '--json']).stdout); }
}
