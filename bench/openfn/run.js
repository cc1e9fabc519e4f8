// Runs job.js (flow F1 as an OpenFn job) with @openfn/runtime against a
// Primero v2 API (`refbridge sim primero`), the way the reference ran it.
//
//   node --experimental-vm-modules --no-warnings run.js MODE N BASE_URL USER PASSWORD [flags]
//
// MODE  batch     one runtime run over all N interventions (a cron/batch workflow),
//                 or runs of --batch B interventions each
//       per-item  one runtime run per intervention (a webhook-triggered workflow), N runs
// N     how many interventions: the first N of --input, else N synthetic ones
// flags --input FILE   interventions as a JSON array or {"interventions": [...]} (DTP's form)
//       --job full     run job-full.js (search, create, read back, DTP callback) instead of job.js;
//                      then --dtp-url URL --dtp-key KEY --dtp-ca FILE --dtp-cert FILE --dtp-client-key FILE
//       --batch B      interventions per run in batch mode (default N)
//       --cache-key    a fresh linker cacheKey per run, as OpenFn's ws-worker isolates runs
//       --out FILE     also write the result there
//
// Prints one JSON object on the last line of stdout: the count posted, the
// time to import the runtime, every run's start and end (epoch ms, so a
// caller can match them with the server's clock), and summary timings.
// The adaptor's per-request log lines go to stderr.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms precision
const t0 = now();
const here = dirname(fileURLToPath(import.meta.url));

function usage(msg) {
  console.error(`run.js: ${msg}\nusage: run.js batch|per-item N BASE_URL USER PASSWORD [--input FILE] [--batch B] [--cache-key] [--out FILE]`);
  process.exit(2);
}

const args = process.argv.slice(2);
const pos = [];
const opt = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--cache-key') opt.cacheKey = true;
  else if (['--input', '--batch', '--out', '--job', '--dtp-url', '--dtp-key', '--dtp-ca', '--dtp-cert', '--dtp-client-key'].includes(a)) opt[a.slice(2)] = args[++i];
  else if (a.startsWith('--')) usage(`unknown flag ${a}`);
  else pos.push(a);
}
if (pos.length !== 5) usage('want 5 arguments');
const [mode, nText, baseUrl, username, password] = pos;
const n = Number(nText);
if (!['batch', 'per-item'].includes(mode)) usage(`unknown mode ${mode}`);
if (!Number.isInteger(n) || n < 1) usage(`N ${nText} is not a positive integer`);
const batch = mode === 'per-item' ? 1 : opt.batch ? Number(opt.batch) : n;
if (!Number.isInteger(batch) || batch < 1) usage(`--batch ${opt.batch} is not a positive integer`);

function synthetic(i) {
  const id = String(i).padStart(6, '0');
  return {
    progres_interventionnumber: `OFN-26-PRTITV-${id}`,
    progres_interventionstartdate: '2026-11-01T00:00:00Z',
    'interventiontype.progres_description': 'Alternative Care',
    progres_interventiondescription: '<p>Synthetic benchmark referral</p>',
    progres_reasonforreferral: '[{"CreatedBy":"Bench Officer","Text":"Synthetic reason","CreatedOn":"2026-11-01T08:00:00Z"}]',
    'user.title': 'Bench Protection Officer',
    'user.internalemailaddress': 'bench.officer@example.org',
    'individuals.progres_id': `OFN-${id}`,
    'individuals.progres_registrationgroupid': { Id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, KeyAttributes: [], LogicalName: 'progres_registrationgroup', Name: `OFN-26-${i}`, RowVersion: null },
    'individuals.progres_givenname': `Benchchild${i}`,
    'individuals.progres_familyname': 'Synthetic',
    'individuals.progres_dateofbirth': '2015-02-28T00:00:00Z',
    'individuals.progres_sex': i % 2 ? '125080001' : '125080000',
  };
}

let interventions;
if (opt.input) {
  const parsed = JSON.parse(readFileSync(opt.input, 'utf8'));
  interventions = (Array.isArray(parsed) ? parsed : parsed.interventions).slice(0, n);
  if (interventions.length < n) usage(`${opt.input} holds ${interventions.length} interventions, fewer than ${n}`);
} else {
  interventions = Array.from({ length: n }, (_, i) => synthetic(i));
}

const { default: run } = await import('@openfn/runtime');
if (opt.job && opt.job !== 'full') usage(`unknown --job ${opt.job}`);
const source = readFileSync(join(here, opt.job === 'full' ? 'job-full.js' : 'job.js'), 'utf8') + '\n' + readFileSync(join(here, 'mapping.js'), 'utf8');
const configuration = { baseUrl, username, password };
if (opt.job === 'full') {
  for (const f of ['dtp-url', 'dtp-key', 'dtp-ca', 'dtp-cert', 'dtp-client-key']) if (!opt[f]) usage(`--job full needs --${f}`);
  const pem = f => readFileSync(f, 'utf8');
  configuration.dtp = { url: opt['dtp-url'], key: opt['dtp-key'], tls: { ca: pem(opt['dtp-ca']), cert: pem(opt['dtp-cert']), key: pem(opt['dtp-client-key']) } };
}
const adaptor = join(here, 'node_modules/@openfn/language-http');
const imported = now();

const runs = [];
let posted = 0;
for (let start = 0, k = 0; start < n; start += batch, k++) {
  const items = interventions.slice(start, start + batch);
  const linker = { modules: { '@openfn/language-http': { path: adaptor } } };
  if (opt.cacheKey) linker.cacheKey = `run-${k}`;
  const begin = now();
  const state = await run(source, { data: { interventions: items }, configuration }, { linker });
  const end = now();
  posted += state?.data?.posted ?? 0;
  runs.push({ start: begin, end, items: items.length });
}
const done = now();

const durations = runs.map(r => r.end - r.start).sort((a, b) => a - b);
const at = q => durations[Math.min(durations.length - 1, Math.floor((durations.length * q) / 100))];
const result = {
  mode, job: opt.job || 'post', n, batch, cache_key: !!opt.cacheKey, posted,
  import_ms: imported - t0,
  run_ms: done - runs[0].start,
  items_per_s: n / ((done - runs[0].start) / 1000),
  run_p50_ms: at(50), run_p99_ms: at(99),
  runs,
};
const text = JSON.stringify(result);
if (opt.out) writeFileSync(opt.out, text + '\n');
console.log(text);
if (posted !== n) {
  console.error(`run.js: posted ${posted} of ${n}`);
  process.exit(1);
}
