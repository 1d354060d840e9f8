// test/clients/docs.test.js: the Node commands of the docs, run as written,
// printing TAP.  Run by "bash scripts/test clients" (its clients suite),
// from the staged tree, as the demo cluster's owner.
//
// The pages are read now, not copied: every ```sh block of README.md,
// docs/*.md, examples/README.md and examples/clients/node/README.md
// (PGAPP_DOCS_PAGES: only these), in which a command (lines joined at a
// trailing backslash) that runs `node` or `npm` is a Node command.  Each
// runs verbatim with bash from the repository's root, against the demo
// cluster of the docs suite ($PWD/.pgdata/run, port 5499, database pgapp:
// what the pages write), with no PG* variable of ours in its environment, so
// a page must name its whole connection.
//
// A page with Node commands is walked as a reader would: a fresh demo
// database (scripts/run reset, with the PGAPP_DATA, PGAPP_LISTEN,
// PGAPP_SKIP_BUILD and PGAPP_PG_BIN of the docs suite, passed by
// scripts/test), then its ```sql blocks in page order in ONE psql session
// (as test/docs/check.pl runs them; one result per page: no error the page
// does not show, and each shown output matched), and each Node command at
// its place:
//
// - the last Node command of a sh block that the page follows (before its
//   next sh block with a Node command) with a ```text block not attached to
//   a SQL block is long-running (listen.js, jobs_worker.js): it is started,
//   it is ready once it has printed a line, the page's SQL blocks that
//   follow (the stimulus the page shows) run in the psql session, and its
//   output (standard output and error together, as in a terminal) must then
//   come to match that text block, with check.pl's rules ("..." alone on a
//   line: any lines; inside a line: any characters); it is then stopped with
//   SIGINT (Ctrl-C) and must exit with status 0;
// - any other Node command (npm ci) must end by itself with status 0.
//
// Every wait is bounded (no fixed sleeps).  Needs PGAPP_PG_BIN (psql).
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const PSQL = path.join(process.env.PGAPP_PG_BIN || '/usr/lib/postgresql/15/bin', 'psql');
const DEMO = { PGHOST: path.join(ROOT, '.pgdata', 'run'), PGPORT: '5499', PGDATABASE: 'pgapp', PGUSER: 'postgres' };
const READY_MS = 30000;        // a long-running command prints its first line
const OUTPUT_MS = 60000;       // its output comes to match the page's
const STOP_MS = 45000;         // it exits after SIGINT (jobs_worker.js lets jobs finish for 30 s)
const ONESHOT_MS = 300000;     // npm ci
const SQL_BLOCK_MS = 180000;   // one SQL block (the pages' waits are bounded too)
const MARK = '@@pgapp-docs-node@@';

// ---------------------------------------------------------------------------
// Pages (test/docs/check.pl's parse_page and match_output, in JS)
// ---------------------------------------------------------------------------

// The fenced blocks of a page, in order: {lang, info, line, end, text}, and
// for a sql block followed (blank lines between) by a text block: expect.
function parsePage(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^( *)(`{3,}|~{3,})\s*([^`\s]*)\s*(.*?)\s*$/.exec(lines[i]);
    if (!m) continue;
    const indent = m[1].length;
    const fence = m[2];
    const start = i + 1;
    const close = new RegExp(`^ *${fence.replace(/[`~]/g, (c) => `\\${c}`)}[\`~]*\\s*$`);
    const text = [];
    for (i++; i < lines.length && !close.test(lines[i]); i++) {
      text.push(lines[i].replace(new RegExp(`^ {0,${indent}}`), ''));
    }
    if (i >= lines.length) throw new Error(`${file}:${start}: unclosed code block`);
    blocks.push({ lang: m[3].toLowerCase(), info: m[4], line: start, end: i, text: text.map((l) => `${l}\n`).join('') });
  }
  for (let b = 1; b < blocks.length; b++) {
    if (blocks[b].lang !== 'text' || blocks[b - 1].lang !== 'sql') continue;
    const between = lines.slice(blocks[b - 1].end + 1, blocks[b].line - 1);
    if (between.some((l) => /\S/.test(l))) continue;
    blocks[b - 1].expect = blocks[b].text;
    blocks[b].attached = true;
  }
  return blocks;
}

function cleanLines(s) {
  const l = (s || '').split('\n').map((x) => x.replace(/\s+$/, ''));
  while (l.length && l[0] === '') l.shift();
  while (l.length && l[l.length - 1] === '') l.pop();
  return l;
}

// Does output `actual` match the shown output `expected`?  With prefix, can
// it still come to match when more lines are added?
function matchOutput(expected, actual, prefix = false) {
  const p = cleanLines(expected);
  const a = cleanLines(actual);
  const re = p.map((t) => (/^\s*\.\.\.\s*$/.test(t) ? null
    : new RegExp(`^${t.split('...').map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`)));
  const memo = new Map();
  const m = (i, j) => {
    const k = i * (a.length + 1) + j;
    if (memo.has(k)) return memo.get(k);
    let r;
    if (prefix && j === a.length) r = true;
    else if (i === p.length) r = j === a.length;
    else if (re[i] === null) r = m(i + 1, j) || (j < a.length && m(i, j + 1));
    else r = j < a.length && re[i].test(a[j]) && m(i + 1, j + 1);
    memo.set(k, r);
    return r;
  };
  return m(0, 0);
}

const badOutput = (out) => out.split('\n').filter((l) => /^(ERROR|FATAL|PANIC|WARNING):|^psql:|server closed the connection/.test(l));

// The commands of a sh block: lines joined at a trailing backslash.
function shCommands(text) {
  const cmds = [];
  let cur = '';
  for (const line of text.split('\n')) {
    if (/\\$/.test(line)) { cur += `${line}\n`; continue; }
    cur += line;
    if (cur.trim() !== '') cmds.push(cur);
    cur = '';
  }
  return cmds;
}

// Does a command run node or npm (after cd ... &&, ( or VAR=value words)?
function isNode(cmd) {
  const code = cmd.replace(/\\\n/g, ' ').replace(/(^|\s)#.*$/gm, '');
  return /(^|[;&|(])\s*([A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(node|npm)(\s|$)/m.test(code);
}

// The steps of a page: its SQL blocks and Node commands in page order, a
// long-running command with the text block its output must match.
function pageSteps(file) {
  const blocks = parsePage(file);
  const steps = [];
  blocks.forEach((b, i) => {
    if (b.lang === 'sql' && !/\bnorun\b/.test(b.info)) steps.push({ kind: 'sql', block: b });
    if (b.lang !== 'sh' && b.lang !== 'bash') return;
    const cmds = shCommands(b.text).filter(isNode);
    cmds.forEach((cmd, n) => {
      const step = { kind: 'node', cmd, line: b.line };
      if (n === cmds.length - 1) {
        for (const later of blocks.slice(i + 1)) {
          if ((later.lang === 'sh' || later.lang === 'bash') && shCommands(later.text).some(isNode)) break;
          if (later.lang === 'text' && !later.attached) {
            step.expect = later;
            break;
          }
        }
      }
      steps.push(step);
    });
  });
  blocks.forEach((b) => {
    if (b.lang !== 'text') return;
    const owner = steps.find((s) => s.expect === b);
    if (owner) steps.push({ kind: 'stop', owner, block: b });
  });
  // a stop comes at its text block's place
  const at = (s) => (s.kind === 'sql' ? s.block.line : s.kind === 'stop' ? s.block.line : s.line);
  return steps.sort((x, y) => at(x) - at(y) || (x.kind === 'stop') - (y.kind === 'stop'));
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

// Resolves when cond() holds (checked at each wake()), or rejects after ms.
function waitFor(what, ms, cond, subscribe) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      if (err) reject(err); else resolve();
    };
    const timer = setTimeout(() => finish(new Error(`waited ${ms / 1000} s for ${what}`)), ms);
    const check = () => {
      try {
        if (cond()) finish();
      } catch (err) {
        finish(err);
      }
    };
    const unsubscribe = subscribe(check);
    check();
  });
}

// A process whose output (both streams) is collected; events wake waiters.
class Proc {
  constructor(argv, opts) {
    this.out = '';
    this.exit = null;
    this.listeners = new Set();
    this.child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], detached: true, ...opts });
    const take = (d) => { this.out += d; this.wakeAll(); };
    this.child.stdout.on('data', take);
    this.child.stderr.on('data', take);
    this.child.on('error', (err) => { this.out += `(could not start: ${err.message})\n`; this.exit = { code: -1 }; this.wakeAll(); });
    this.child.on('close', (code, signal) => { this.exit = { code, signal }; this.wakeAll(); });
  }

  wakeAll() { for (const f of this.listeners) f(); }

  until(what, ms, cond) {
    return waitFor(what, ms, cond, (f) => { this.listeners.add(f); return () => this.listeners.delete(f); });
  }

  // the complete lines so far
  get lines() { return this.out.slice(0, this.out.lastIndexOf('\n') + 1); }

  signal(sig) {
    try {
      process.kill(-this.child.pid, sig); // the whole group: bash and what it runs
    } catch (err) {
      if (err.code !== 'ESRCH') throw err;
    }
  }

  async stop() {
    if (this.exit) return;
    this.signal('SIGKILL');
    await this.until('a killed process to end', 10000, () => this.exit).catch(() => {});
  }
}

// The environment of a page's command: ours without libpq's PG* variables
// (the page names its connection).
function commandEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^PG/.test(k) || /^PGAPP_/.test(k)) env[k] = v;
  return env;
}

// A Node command, verbatim, with bash from the root; both streams in one pipe.
const runCommand = (cmd) => new Proc(['bash', '-c', `exec 2>&1\n${cmd}`], { env: commandEnv(), stdio: ['ignore', 'pipe', 'pipe'] });

// One psql session on the demo database, fed block by block.
class Psql {
  constructor() {
    this.proc = new Proc(['bash', '-c', 'exec "$0" -X -v ON_ERROR_STOP=0 2>&1', PSQL],
      { env: { ...commandEnv(), ...DEMO } });
    this.n = 0;
    this.taken = 0;
  }

  async run(sql) {
    const mark = `${MARK} ${++this.n}`;
    this.proc.child.stdin.write(`${sql}${sql.endsWith('\n') ? '' : '\n'}\\echo '${mark}'\n`);
    let at = -1;
    await this.proc.until(`psql to run a SQL block (${mark})`, SQL_BLOCK_MS, () => {
      if (this.proc.exit) throw new Error(`psql ended: ${this.proc.out.slice(this.taken)}`);
      at = this.proc.out.indexOf(`${mark}\n`, this.taken);
      return at >= 0;
    });
    const out = this.proc.out.slice(this.taken, at);
    this.taken = at + mark.length + 1;
    return out;
  }

  async close() {
    this.proc.child.stdin.end();
    await this.proc.until('psql to end', 10000, () => this.proc.exit).catch(() => this.proc.stop());
  }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

let tapN = 0;
let failed = 0;
function result(ok, name, diag) {
  tapN++;
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'not ok'} ${tapN} - ${name}`);
  if (!ok && diag) console.log(String(diag).split('\n').map((l) => `#   ${l.length > 300 ? `${l.slice(0, 300)}...` : l}`).join('\n'));
}

const shown = (label, s) => `${label}:\n${cleanLines(s).join('\n')}`;

async function resetDemo() {
  const p = new Proc(['bash', 'scripts/run', 'reset'], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  await p.until('scripts/run reset', 120000, () => p.exit).catch(async (err) => { await p.stop(); throw err; });
  if (p.exit.code !== 0) throw new Error(`scripts/run reset failed:\n${p.out.split('\n').slice(-20).join('\n')}`);
}

async function runPage(page, steps) {
  const name = (s) => `${page}:${s.line}: ${s.cmd.replace(/\\\n\s*/g, '').replace(/\s+/g, ' ').trim()}`;
  const nodeSteps = steps.filter((s) => s.kind === 'node');
  let psql = null;
  const running = new Map(); // step -> Proc
  const sqlProblems = [];
  let reported = 0;
  try {
    await resetDemo();
    psql = new Psql();
    for (const step of steps) {
      if (step.kind === 'sql') {
        const b = step.block;
        const out = await psql.run(b.text);
        if (b.expect !== undefined ? !matchOutput(b.expect, out) : badOutput(out).length) {
          sqlProblems.push(`${page}:${b.line}: ${b.expect !== undefined ? 'the output differs from the page' : 'an error the page does not show'}\n${shown('got', out)}`);
        }
      } else if (step.kind === 'node' && !step.expect) {
        const p = runCommand(step.cmd);
        let err = null;
        await p.until('the command to end', ONESHOT_MS, () => p.exit).catch(async (e) => { err = e; await p.stop(); });
        reported++;
        result(!err && p.exit.code === 0, name(step), err ? `${err.message}\n${p.out}` : `exit status ${p.exit.code}, signal ${p.exit.signal}\n${p.out}`);
      } else if (step.kind === 'node') {
        const p = runCommand(step.cmd);
        running.set(step, p);
        await p.until('its first line of output', READY_MS, () => {
          if (p.exit) throw new Error(`it ended (status ${p.exit.code}) before printing a line: ${p.out}`);
          return p.out.includes('\n');
        }).catch((err) => { step.error = err; });
      } else if (step.kind === 'stop') {
        const p = running.get(step.owner);
        const s = step.owner;
        let problem = s.error ? s.error.message : null;
        if (!problem) {
          await p.until(`its output to match ${page}:${step.block.line}`, OUTPUT_MS, () => {
            if (matchOutput(step.block.text, p.lines)) return true;
            if (p.exit) throw new Error(`it ended (status ${p.exit.code}) before its output matched ${page}:${step.block.line}`);
            // complete lines only grow: no need to wait for what cannot come
            if (!matchOutput(step.block.text, p.lines, true)) throw new Error(`its output differs from ${page}:${step.block.line}`);
            return false;
          }).catch((err) => { problem = `${err.message}\n${shown('shown', step.block.text)}\n${shown('got', p.out)}`; });
        }
        if (!problem) {
          p.signal('SIGINT');
          await p.until('it to end after SIGINT', STOP_MS, () => p.exit)
            .then(() => { if (p.exit.code !== 0) problem = `after SIGINT it ended with status ${p.exit.code}, signal ${p.exit.signal}\n${p.out}`; })
            .catch((err) => { problem = `${err.message}\n${p.out}`; });
        }
        await p.stop();
        running.delete(s);
        reported++;
        result(!problem, `${name(s)} (output of line ${step.block.line} matches)`, problem);
      }
    }
  } catch (err) {
    sqlProblems.push(String(err.stack || err));
  } finally {
    for (const p of running.values()) await p.stop();
    if (psql) await psql.close();
  }
  // what could not run counts as failed
  for (const s of nodeSteps.slice(reported)) result(false, `${name(s)}: not run (see below)`);
  result(sqlProblems.length === 0, `${page}: its SQL blocks, in the psql session of its commands`, sqlProblems.join('\n'));
}

async function main() {
  const pages = (process.env.PGAPP_DOCS_PAGES
    || ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`),
      'examples/README.md', 'examples/clients/node/README.md'].join(' '))
    .split(/\s+/).filter(Boolean).filter((p) => fs.existsSync(path.join(ROOT, p)));
  const work = [];
  for (const page of pages) {
    const steps = pageSteps(path.join(ROOT, page));
    if (steps.some((s) => s.kind === 'node')) work.push({ page, steps });
  }
  if (work.length === 0) {
    console.log('1..1');
    result(false, `no Node command in the sh blocks of ${pages.join(', ')}`);
    process.exitCode = 1;
    return;
  }
  console.log(`1..${work.reduce((n, w) => n + w.steps.filter((s) => s.kind === 'node').length + 1, 0)}`);
  for (const { page, steps } of work) {
    console.log(`# ${page}`);
    await runPage(page, steps);
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.log(`not ok - ${err.stack || err}`);
  process.exitCode = 1;
});
