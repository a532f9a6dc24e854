// The tether web console: one module, no build step. Everything it shows
// comes from AdminService RPCs and the admin event stream, authorized by the
// console session cookie (HttpOnly: this script never sees it) and, for
// calls, the CSRF token kept in memory only.
const state = {
  csrf: null,
  org: null,
  orgs: [],
  nodes: [],
  rollout: null,
  history: [],
  events: null,
  refreshTimer: null,
  pollTimer: null,
  view: null,
  nodesView: { query: '', sort: 'nodeName', dir: 1, page: 0 },
};
const PAGE = 20;
const main = document.getElementById('main');

// ---- DOM helpers: text only, never HTML from data -------------------------
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
const svg = (tag, attrs = {}) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

function ago(iso) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// ---- Calls -----------------------------------------------------------------
class CallError extends Error {
  constructor(code, message, status) { super(message); this.code = code; this.status = status; }
}

// GET without a body, else POST it as JSON with the CSRF token.
async function call(url, body) {
  const res = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json', 'X-CSRF-Token': state.csrf || '' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new CallError(data.code || 'unknown', data.message || res.statusText, res.status);
  return data;
}

async function rpc(method, body) {
  try {
    return await call(`/tether.v1.AdminService/${method}`, body);
  } catch (e) {
    if (e.status !== 401) throw e;
    showLogin('Your session ended: log in again.');
    throw new CallError('unauthenticated', 'logged out', 401);
  }
}

const consoleApi = (what, body) => call(`/ui/api/${what}`, body);

// Every node of `orgId` ('' for all orgs), at most `pages` pages of 1000.
async function listNodes(orgId, pages) {
  const nodes = [];
  let token = '';
  for (let i = 0; i < pages; i++) {
    const r = await rpc('ListNodes', { orgId, pageSize: 1000, pageToken: token });
    nodes.push(...(r.nodes || []));
    token = r.nextPageToken || '';
    if (!token) break;
  }
  return nodes;
}

async function loadOrgs() {
  const orgs = new Set((await listNodes('', 50)).map((n) => n.orgId));
  state.orgs = [...orgs].sort();
  if (!state.org || !orgs.has(state.org)) state.org = state.orgs[0] || null;
  const select = document.getElementById('org');
  select.replaceChildren(...state.orgs.map((o) => el('option', { value: o, text: o, selected: o === state.org })));
}

async function loadOrgData() {
  if (!state.org) { state.nodes = []; state.rollout = null; state.history = []; return; }
  const org = state.org;
  const nodes = await listNodes(org, 10);
  const [rollout, history] = await Promise.all([
    rpc('GetRollout', { orgId: org, pageSize: 50 }),
    rpc('GetOnlineHistory', { orgId: org }),
  ]);
  if (org !== state.org) return;
  state.nodes = nodes;
  state.rollout = rollout;
  state.history = history.samples || [];
}

// ---- Live updates ------------------------------------------------------------
function scheduleRefresh(delay = 150) {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    try {
      const known = new Set(state.orgs);
      await loadOrgData();
      if (!state.org || state.nodes.some((n) => !known.has(n.orgId))) await loadOrgs();
      render(false);
    } catch (e) { if (e.status !== 401) console.warn('refresh failed:', e.message); }
  }, delay);
}

function startLive() {
  stopLive();
  const live = document.getElementById('live');
  const es = new EventSource('/v1/admin/events');
  es.onopen = () => { live.textContent = 'live'; live.classList.add('on'); scheduleRefresh(); };
  es.onerror = () => { live.textContent = 'reconnecting'; live.classList.remove('on'); };
  for (const type of ['config-updated', 'node-status', 'node-revoked', 'reset']) es.addEventListener(type, () => scheduleRefresh());
  state.events = es;
  // A node that stops beating sends nothing: count again now and then.
  state.pollTimer = setInterval(() => scheduleRefresh(0), 10000);
}

function stopLive() {
  if (state.events) state.events.close();
  state.events = null;
  clearInterval(state.pollTimer);
  const live = document.getElementById('live');
  live.textContent = 'offline';
  live.classList.remove('on');
}

// ---- Views -------------------------------------------------------------------
function latest() { return state.rollout ? state.rollout.configUpdatedAt : '0'; }
function isBehind(n) {
  return n.online && latest() !== '0' && BigInt(n.appliedConfigUpdatedAt || '0') < BigInt(latest());
}

function overview() {
  const r = state.rollout;
  if (!state.org) return [el('h1', { text: 'Overview' }), el('p', { class: 'muted', text: 'No nodes have enrolled yet.' })];
  const revoked = state.nodes.filter((n) => n.revoked).length;
  const online = r ? r.online : 0;
  const offline = r ? r.offline : 0;
  const applied = r ? r.applied : 0;
  const pct = online ? Math.round((100 * applied) / online) : 100;
  const card = (label, n, id) => el('div', { class: 'card' }, el('div', { class: 'muted', text: label }), el('div', { class: 'n', id, text: String(n) }));
  const bar = el('div', { class: `bar${applied < online ? ' behind' : ''}`, id: 'rollout-bar', role: 'progressbar',
    'aria-valuemin': '0', 'aria-valuemax': String(online), 'aria-valuenow': String(applied) }, el('div'));
  bar.firstChild.style.width = `${pct}%`;
  return [
    el('h1', { text: `Overview: ${state.org}` }),
    el('div', { class: 'cards' }, card('Online', online, 'count-online'), card('Offline', offline, 'count-offline'), card('Revoked', revoked, 'count-revoked')),
    el('section', { class: 'panel' },
      el('h2', { text: 'Rollout of the latest config' }),
      bar,
      el('p', {},
        el('strong', { id: 'rollout-text', text: `${applied}/${online}` }),
        ' online nodes applied version ',
        el('code', { id: 'rollout-version', text: latest() }),
        r && r.lastCaughtUpAt ? ` · last caught up ${ago(r.lastCaughtUpAt)}` : ''),
      r && r.behind ? el('p', { class: 'muted', text: `Behind: ${(r.behindNodes || []).map((n) => n.nodeName || n.nodeId).join(', ')}${r.behind > (r.behindNodes || []).length ? ' …' : ''}` }) : null),
    el('section', { class: 'panel' }, el('h2', { text: 'Online nodes, last hour' }), chart(),
      state.history.length < 2 ? el('p', { class: 'muted', text: 'The gateway counts online nodes once a minute; the line fills in as it does.' }) : null),
  ];
}

function chart() {
  const now = Date.now();
  const points = state.history.map((s) => [Date.parse(s.at), s.online]);
  if (state.rollout) points.push([now, state.rollout.online]);
  const w = 600, h = 120, pad = 6;
  const max = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => pad + ((t - (now - 3600e3)) / 3600e3) * (w - 2 * pad);
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'online nodes over the last hour', id: 'online-chart' });
  s.append(svg('line', { class: 'axis', x1: pad, y1: h - pad, x2: w - pad, y2: h - pad }));
  const line = svg('polyline', { class: 'line', points: points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ') });
  s.append(line);
  // One sample is no line: each gets a dot, so a fresh gateway's chart is not blank.
  // (A zero-length round-capped line: it stays round where the chart stretches.)
  for (const [t, v] of points) {
    const px = x(t).toFixed(1), py = y(v).toFixed(1);
    s.append(svg('line', { class: 'dot', x1: px, y1: py, x2: px, y2: py }));
  }
  // Labels in HTML: text inside the stretched SVG would be squashed.
  return el('figure', { class: 'chart' }, s,
    el('figcaption', {}, el('span', { text: '60 min ago' }), el('span', { text: `peak ${max}` }), el('span', { text: 'now' })));
}

function nodesPage() {
  const v = state.nodesView;
  const q = v.query.toLowerCase();
  let rows = state.nodes.filter((n) => !q || [n.nodeName, n.nodeId, n.agentVersion || ''].some((f) => f.toLowerCase().includes(q)));
  const key = (n) => {
    if (v.sort === 'lastSeenAt') return n.lastSeenAt ? Date.parse(n.lastSeenAt) : 0;
    if (v.sort === 'online') return n.revoked ? 0 : n.online ? 2 : 1;
    if (v.sort === 'appliedConfigUpdatedAt') return Number(n.appliedConfigUpdatedAt || 0);
    return String(n[v.sort] || '').toLowerCase();
  };
  // Ties (every offline node, say) fall back to the name, then the id.
  const name = (n) => `${(n.nodeName || '').toLowerCase()}\u0000${n.nodeId}`;
  rows.sort((a, b) => (key(a) < key(b) ? -v.dir : key(a) > key(b) ? v.dir : name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  v.page = Math.min(v.page, pages - 1);
  const shown = rows.slice(v.page * PAGE, (v.page + 1) * PAGE);
  const head = (label, field, cls) => el('th', { class: cls, 'aria-sort': v.sort === field ? (v.dir > 0 ? 'ascending' : 'descending') : 'none' },
    el('button', { type: 'button', 'data-sort': field, text: label + (v.sort === field ? (v.dir > 0 ? ' ▲' : ' ▼') : ''),
      onclick: () => { v.dir = v.sort === field ? -v.dir : 1; v.sort = field; render(false); } }));
  const search = el('input', { type: 'search', id: 'node-search', placeholder: 'Search name, id, version', value: v.query, 'aria-label': 'search nodes',
    oninput: (e) => { v.query = e.target.value; v.page = 0; render(false); } });
  return [
    el('h1', { text: `Nodes: ${state.org || '-'}` }),
    el('div', { class: 'tools' }, search, el('span', { class: 'muted', id: 'node-count', text: `${rows.length} of ${state.nodes.length}` })),
    el('table', { id: 'nodes' },
      el('thead', {}, el('tr', {}, head('Name', 'nodeName'), head('ID', 'nodeId', 'col-id'), head('Status', 'online'),
        head('Last seen', 'lastSeenAt'), head('Version', 'agentVersion', 'col-version'), head('Applied', 'appliedConfigUpdatedAt'))),
      el('tbody', {}, ...shown.map((n) => el('tr', { class: n.revoked ? 'revoked' : isBehind(n) ? 'behind' : '', 'data-node': n.nodeId },
        el('td', {}, el('a', { href: `#/node/${encodeURIComponent(n.nodeId)}`, text: n.nodeName || n.nodeId })),
        el('td', { class: 'col-id', text: n.nodeId }),
        el('td', {}, el('span', { class: `tag ${n.revoked ? 'off' : n.online ? 'on' : 'off'}`, text: n.revoked ? 'revoked' : n.online ? 'online' : 'offline' })),
        el('td', { title: n.lastSeenAt || '', text: ago(n.lastSeenAt) }),
        el('td', { class: 'col-version', text: n.agentVersion || '-' }),
        el('td', {}, n.appliedConfigUpdatedAt || '-', isBehind(n) ? el('span', { class: 'tag behind', text: ' behind' }) : null))))),
    el('div', { class: 'pager' },
      el('button', { type: 'button', disabled: v.page === 0, text: 'Previous', onclick: () => { v.page--; render(false); } }),
      el('span', { class: 'muted', text: `page ${v.page + 1} of ${pages}` }),
      el('button', { type: 'button', disabled: v.page >= pages - 1, text: 'Next', onclick: () => { v.page++; render(false); } })),
  ];
}

function nodeDetail(id) {
  const n = state.nodes.find((x) => x.nodeId === id);
  if (!n) return [el('h1', { text: 'Node' }), el('p', { class: 'muted', text: `No node ${id} in ${state.org}.` })];
  const out = el('div');
  const row = (k, v) => [el('dt', { text: k }), el('dd', { text: v })];
  const revoke = el('button', { type: 'button', class: 'danger', id: 'revoke', text: 'Revoke…', disabled: !!n.revoked,
    onclick: () => {
      out.replaceChildren(el('div', { class: 'confirm', role: 'alertdialog', 'aria-label': 'confirm revocation' },
        el('p', { text: `Revoke ${n.nodeName || n.nodeId}? Its agent stops and cannot log in again; this cannot be undone.` }),
        el('button', { type: 'button', class: 'danger', id: 'revoke-confirm', text: 'Revoke node',
          onclick: async (e) => {
            e.target.disabled = true;
            try {
              await rpc('RevokeNode', { nodeId: n.nodeId });
              revoke.remove();
              out.replaceChildren(el('p', { class: 'notice', id: 'revoked-notice', text: 'Revoked.' }));
              scheduleRefresh(0);
            } catch (err) { out.replaceChildren(el('div', { class: 'error', text: err.message })); }
          } }),
        ' ',
        el('button', { type: 'button', text: 'Cancel', onclick: () => out.replaceChildren() })));
    } });
  return [
    el('h1', { text: n.nodeName || n.nodeId }),
    el('section', { class: 'panel' }, el('dl', { id: 'node-detail' },
      ...row('Node ID', n.nodeId), ...row('Org', n.orgId),
      ...row('Status', n.revoked ? 'revoked' : n.online ? 'online' : 'offline'),
      ...row('Last seen', n.lastSeenAt ? `${ago(n.lastSeenAt)} (${n.lastSeenAt})` : 'never'),
      ...row('Agent version', n.agentVersion || '-'),
      ...row('Applied config', `${n.appliedConfigUpdatedAt || '-'}${isBehind(n) ? ` (behind ${latest()})` : ''}`),
      ...row('Applied since', n.appliedChangedAt || '-'),
      ...row('Capabilities', (n.capabilities || []).join(', ') || '-'))),
    el('p', {}, el('a', { href: '#/nodes', text: '← All nodes' })),
    n.revoked ? el('p', { class: 'notice', id: 'revoked-notice', text: 'This node is revoked.' }) : revoke,
    out,
  ];
}

// The gateway names the field of an invalid document: "config.<path>: why".
function fieldOf(message) {
  const m = /^config\.([^:]*): /.exec(message);
  return m ? m[1] : null;
}

function configPage() {
  if (!state.org) return [el('h1', { text: 'Config' }), el('p', { class: 'muted', text: 'No org yet: enroll a node first.' })];
  const org = state.org;
  const area = el('textarea', { id: 'config-editor', spellcheck: 'false', 'aria-label': 'config document', 'aria-describedby': 'config-status' });
  const status = el('div', { id: 'config-status', 'aria-live': 'polite' });
  const version = el('code', { id: 'config-version', text: '…' });
  // The version the editor's text was loaded from: a publish names it, so
  // one made meanwhile (another operator, a pipeline) is not undone by this.
  let loaded = null;
  const load = () => rpc('GetConfig', { orgId: org }).then((r) => {
    area.value = JSON.stringify(r.config || {}, null, 2);
    area.classList.remove('invalid');
    version.textContent = r.configUpdatedAt;
    loaded = r.configUpdatedAt;
  });
  const publish = el('button', { type: 'button', class: 'primary', id: 'publish', text: 'Publish',
    onclick: async () => {
      area.classList.remove('invalid');
      let doc;
      try { doc = JSON.parse(area.value); } catch (e) {
        area.classList.add('invalid');
        status.replaceChildren(el('div', { class: 'error', id: 'config-error', text: `Not JSON: ${e.message}` }));
        return;
      }
      if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
        status.replaceChildren(el('div', { class: 'error', id: 'config-error', text: 'The document must be a JSON object.' }));
        return;
      }
      if (loaded === null) {
        // Without the version it edits, a publish could undo another's.
        status.replaceChildren(el('div', { class: 'error', id: 'config-error', text: 'The current config has not loaded: reload the page before publishing.' }));
        return;
      }
      publish.disabled = true;
      try {
        const r = await rpc('PublishConfig', { orgId: org, config: doc, ifConfigUpdatedAt: loaded });
        version.textContent = r.configUpdatedAt;
        loaded = r.configUpdatedAt;
        status.replaceChildren(el('p', { class: 'notice', id: 'config-published', text: `Published version ${r.configUpdatedAt}.` }));
        scheduleRefresh(0);
      } catch (e) {
        if (e.code === 'aborted') {
          // The edit stays in the box until the operator chooses to load
          // what was published instead.
          const reload = el('button', { type: 'button', id: 'config-reload', text: 'Load the latest (discards this edit)',
            onclick: () => load().then(() => status.replaceChildren()).catch((x) => status.replaceChildren(el('div', { class: 'error', text: x.message }))) });
          status.replaceChildren(el('div', { class: 'error', id: 'config-conflict' },
            el('p', { text: `Not published: ${e.message}.` }), reload));
          return;
        }
        const field = fieldOf(e.message);
        const box = el('div', { class: 'error', id: 'config-error', 'data-field': field || '' });
        if (field) box.append('At ', el('code', { id: 'config-error-field', text: field }), `: ${e.message.slice(field.length + 9)}`);
        else box.textContent = e.message;
        status.replaceChildren(box);
        area.classList.add('invalid');
        markField(area, field);
      } finally { publish.disabled = false; }
    } });
  load().catch((e) => status.replaceChildren(el('div', { class: 'error', text: e.message })));
  return [
    el('h1', { text: `Config: ${org}` }),
    el('p', { class: 'muted' }, 'Current version ', version, '. Nodes reject an invalid document whole; the gateway checks it first.'),
    area,
    el('div', { class: 'tools' }, publish),
    status,
  ];
}

// Selects the deepest key of `path` in the editor, so the operator lands on it.
function markField(area, path) {
  if (!path) return;
  const keys = path.split(/[.[\]]/).filter((k) => k && !/^\d+$/.test(k));
  let from = 0;
  for (const k of keys) {
    const at = area.value.indexOf(JSON.stringify(k), from);
    if (at < 0) return;
    from = at;
  }
  const last = JSON.stringify(keys[keys.length - 1] || '');
  area.focus();
  area.setSelectionRange(from, from + last.length);
}

function showLogin(message) {
  stopLive();
  state.csrf = null;
  document.getElementById('top').hidden = true;
  const input = el('input', { type: 'password', id: 'admin-token', autocomplete: 'off', required: true, 'aria-label': 'admin token' });
  const err = el('div', { id: 'login-error', 'aria-live': 'polite' });
  const form = el('form', { id: 'login',
    onsubmit: async (e) => {
      e.preventDefault();
      const token = input.value;
      input.value = '';  // the token lives in no field, storage or URL after this
      try {
        const r = await consoleApi('login', { adminToken: token });
        state.csrf = r.csrfToken;
        await start();
      } catch (x) { err.replaceChildren(el('div', { class: 'error', text: x.message })); }
    } },
  el('label', { for: 'admin-token', text: 'Admin token' }), input, el('button', { class: 'primary', type: 'submit', text: 'Log in' }));
  main.replaceChildren(el('div', { class: 'login panel' }, el('h1', { text: 'tether console' }),
    message ? el('p', { class: 'muted', text: message }) : null, form, err,
    el('p', { class: 'muted', text: 'The token is exchanged once for a session cookie; it is not kept in this browser.' })));
  input.focus();
}

function render(full = true) {
  const hash = location.hash || '#/';
  const [, view, arg] = /^#\/([a-z]*)\/?(.*)$/.exec(hash) || [];
  const name = view || 'overview';
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === (name === 'node' ? 'nodes' : name));
  // The editor keeps what the operator typed, and an open confirmation
  // stays open: live updates redraw only what nobody is in the middle of.
  if (!full && state.view === name && (name === 'config' || document.getElementById('revoke-confirm'))) return;
  state.view = name;
  // A redraw keeps the focused field (the node search) and its caret.
  const active = document.activeElement;
  const keep = active && active.id && main.contains(active)
    ? { id: active.id, from: active.selectionStart, to: active.selectionEnd } : null;
  let content;
  if (name === 'nodes') content = nodesPage();
  else if (name === 'node') content = nodeDetail(decodeURIComponent(arg));
  else if (name === 'config') content = configPage();
  else content = overview();
  main.replaceChildren(...content);
  const again = keep && document.getElementById(keep.id);
  if (again) {
    again.focus();
    if (typeof keep.from === 'number' && again.setSelectionRange) again.setSelectionRange(keep.from, keep.to);
  }
}

async function start() {
  document.getElementById('top').hidden = false;
  await loadOrgs();
  await loadOrgData();
  render();
  startLive();
}

document.getElementById('org').addEventListener('change', async (e) => {
  state.org = e.target.value;
  state.nodesView.page = 0;
  await loadOrgData();
  render();
});
document.getElementById('logout').addEventListener('click', async () => {
  try { await consoleApi('logout', {}); } catch (e) { console.warn('logout:', e.message); }
  showLogin('Logged out.');
});
window.addEventListener('hashchange', () => render());

(async () => {
  try {
    const s = await consoleApi('session');
    if (!s.loggedIn) { showLogin(); return; }
    state.csrf = s.csrfToken;
    await start();
  } catch (e) {
    showLogin();
  }
})();
