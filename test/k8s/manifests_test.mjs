// deploy/k8s against the Kubernetes API's own schemas, offline
// (kubernetes-models: the OpenAPI schemas compiled to validators), and
// against what tether needs of them: each flag exists in the real binaries
// (their --help), the probes ask what they should, secrets come from
// Secrets. Run by ctest: node manifests_test.mjs, with TETHER_BIN_DIR.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { Namespace, Service } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.join(here, '..', '..', 'deploy', 'k8s');
const bin = process.env.TETHER_BIN_DIR;
if (!bin) throw new Error('TETHER_BIN_DIR is not set');
const kinds = { DaemonSet, Deployment, Namespace, Service, PodDisruptionBudget };
let failures = 0;
let passed = 0;
function check(ok, what) {
  if (ok) { passed++; console.log(`ok: ${what}`); } else { failures++; console.log(`FAIL: ${what}`); }
}

// ---- Every document parses and passes its kind's schema ------------------------
const docs = [];
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
  // YAML 1.1, as Kubernetes reads it: a mode written 0440 is octal there.
  const all = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8'), { version: '1.1' });
  for (const d of all) {
    check(d.errors.length === 0, `${file}: parses${d.errors.length ? `: ${d.errors[0].message}` : ''}`);
    const obj = d.toJS();
    const Kind = kinds[obj.kind];
    check(Kind !== undefined, `${file}: ${obj.kind} is a kind this test knows`);
    if (!Kind) continue;
    try {
      new Kind(obj).validate();
      check(true, `${file}: ${obj.kind}/${obj.metadata.name} passes the ${obj.apiVersion} schema`);
    } catch (e) {
      check(false, `${file}: ${obj.kind}/${obj.metadata.name}: ${e.message}`);
    }
    docs.push(obj);
  }
}
// The validator is not a rubber stamp.
try {
  new Deployment({ ...docs.find((d) => d.kind === 'Deployment'), spec: { replicas: 'three' } }).validate();
  check(false, 'a broken Deployment is refused');
} catch {
  check(true, 'a broken Deployment is refused');
}

const find = (kind, name) => docs.find((d) => d.kind === kind && d.metadata.name === name);
const agent = find('DaemonSet', 'tether-agent');
const gateway = find('Deployment', 'tether-gateway');
check(agent && gateway, 'the agent DaemonSet and the gateway Deployment are there');
for (const d of docs) check(d.metadata.namespace === undefined ? d.kind === 'Namespace' : d.metadata.namespace === 'tether', `${d.kind}/${d.metadata.name} is in namespace tether`);

// ---- Flags: each one the manifests pass exists --------------------------------
function flagsOf(binary, sub) {
  const help = execFileSync(path.join(bin, binary), [...sub, '--help']).toString();
  return new Set([...help.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]));
}
function envOf(binary, sub) {
  const help = execFileSync(path.join(bin, binary), [...sub, '--help']).toString();
  return new Set([...help.matchAll(/\[(TETHER_[A-Z0-9_]+)\]/g)].map((m) => m[1]));
}
function checkArgs(c, binary, what) {
  const args = [...(c.command || []).slice(1), ...(c.args || [])];
  const sub = [args[0]];
  const known = flagsOf(binary, sub);
  for (const a of args.slice(1)) {
    if (!a.startsWith('--')) continue;
    const name = a.slice(2).split('=')[0];
    check(known.has(name), `${what}: ${binary} ${sub[0]} knows --${name}`);
  }
  const env = envOf(binary, sub);
  for (const e of c.env || []) {
    if (e.name.startsWith('TETHER_')) check(env.has(e.name), `${what}: ${binary} ${sub[0]} reads ${e.name}`);
  }
}

// ---- The agent -----------------------------------------------------------------
const ap = agent.spec.template.spec;
const [owner, enroll] = ap.initContainers;
const run = ap.containers[0];
check(ap.securityContext.runAsUser === 10001 && ap.securityContext.runAsNonRoot === true, 'the agent runs as uid 10001, not root');
check(ap.volumes.find((v) => v.name === 'state')?.hostPath?.path === '/var/lib/tether', 'its state is on a hostPath');
check(owner.command.join(' ').includes('chown 10001:10001 /var/lib/tether') && owner.command.join(' ').includes('chmod 0700'),
  'a root-only init step gives the hostPath to 10001, 0700');
check(JSON.stringify(owner.securityContext.capabilities) === JSON.stringify({ drop: ['ALL'], add: ['CHOWN', 'FOWNER'] }),
  'with only CHOWN and FOWNER');
check(enroll.args.join(' ') === 'enroll --skip-if-enrolled', 'the enroll init step runs once per node (--skip-if-enrolled)');
const code = enroll.env.find((e) => e.name === 'TETHER_CODE');
check(code?.valueFrom?.secretKeyRef?.name === 'tether-enrollment' && code.value === undefined, 'the enrollment code comes from a Secret');
check(!JSON.stringify(ap).includes('--code'), 'and never from argv');
checkArgs(enroll, 'tether', 'enroll');
checkArgs(run, 'tether', 'run');
check(JSON.stringify(run.livenessProbe.exec.command) === JSON.stringify(['/usr/local/bin/tether', 'probe', '/livez']), 'liveness probe: tether probe /livez');
check(JSON.stringify(run.readinessProbe.exec.command) === JSON.stringify(['/usr/local/bin/tether', 'probe', '/readyz']), 'readiness probe: tether probe /readyz');
check(ap.terminationGracePeriodSeconds > 10, 'the grace period outlasts the 10 s drain');
for (const c of [enroll, run]) {
  check(c.securityContext.readOnlyRootFilesystem === true && c.securityContext.allowPrivilegeEscalation === false &&
    c.securityContext.capabilities.drop.includes('ALL'), `${c.name}: read-only root, no privileges`);
}

// ---- The gateway ---------------------------------------------------------------
const gp = gateway.spec.template.spec;
const serve = gp.containers[0];
check(gateway.spec.replicas === 3, 'the gateway runs 3 replicas');
checkArgs(serve, 'tether-gateway', 'serve');
const db = serve.env.find((e) => e.name === 'TETHER_DATABASE');
check(db?.valueFrom?.secretKeyRef?.name === 'tether-gateway' && db.value === undefined, 'the PostgreSQL URL comes from a Secret');
const listen = serve.args.find((a) => a.startsWith('--listen='));
check(listen === '--listen=0.0.0.0:8443' && serve.args.some((a) => a.startsWith('--tls-cert=')) && serve.args.some((a) => a.startsWith('--tls-key=')),
  'off loopback, with TLS');
check(serve.livenessProbe.httpGet.path === '/livez' && serve.livenessProbe.httpGet.scheme === 'HTTPS', 'liveness probe: HTTPS /livez');
check(serve.readinessProbe.httpGet.path === '/readyz' && serve.readinessProbe.httpGet.scheme === 'HTTPS', 'readiness probe: HTTPS /readyz');
const token = serve.args.find((a) => a.startsWith('--admin-token-file='))?.split('=')[1];
const tokenMount = serve.volumeMounts.find((m) => token?.startsWith(`${m.mountPath}/`));
const tokenVolume = gp.volumes.find((v) => v.name === tokenMount?.name);
check(tokenVolume?.secret?.secretName === 'tether-gateway' && tokenVolume.secret.items?.[0]?.path === path.basename(token),
  'the admin token file comes from a Secret');
// 0440 with an fsGroup the gateway runs in: the one group load_admin_token allows.
check(tokenVolume?.secret?.defaultMode === 0o440 && gp.securityContext.fsGroup === gp.securityContext.runAsGroup,
  'readable by the gateway\'s own group only (0440, fsGroup = runAsGroup)');
check(gp.terminationGracePeriodSeconds > 10, 'the grace period outlasts the 10 s drain');
const svc = find('Service', 'tether-gateway');
check(svc.spec.selector['app.kubernetes.io/name'] === gateway.spec.selector.matchLabels['app.kubernetes.io/name'],
  'the Service selects the gateway pods');
check(find('PodDisruptionBudget', 'tether-gateway')?.spec.minAvailable === 2, 'a voluntary disruption keeps 2 replicas');
check(!/password|BEGIN .*PRIVATE KEY/i.test(docs.map((d) => JSON.stringify(d)).join('')), 'no secret is written into the manifests');

console.log(`${passed} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
