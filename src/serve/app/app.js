// The Cohort web app: the Profile Explorer, the audience pages, the builder's preview and the
// run history. No framework and no build step: routes live in the URL's hash, every byte of
// data comes from the API with the signed-in space's token, and nothing is written into the
// page as HTML (text only), so event properties cannot inject markup.
'use strict';

const STORE = 'cohort.session';
const $ = (sel) => document.querySelector(sel);

// ---- session: the spaces this browser tab has signed in to, each with its own token ----
function session() {
  try { return JSON.parse(sessionStorage.getItem(STORE)) || { tokens: {}, current: null }; }
  catch (_) { return { tokens: {}, current: null }; }
}
function saveSession(s) { sessionStorage.setItem(STORE, JSON.stringify(s)); }
// Every request carries the token and `X-Cohort-App`: a 401 then comes without
// `WWW-Authenticate`, so the browser does not open its own password prompt over the app.
function auth(token) { return { Authorization: 'Basic ' + btoa(token + ':'), 'X-Cohort-App': '1' }; }

// ---- DOM helpers: text only ----
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
function show(...nodes) { const m = $('#main'); m.replaceChildren(...nodes.flat()); }
function banner(msg) {
  const b = $('#banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}
function when(t) { return t ? t.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '–'; }
function num(n) { return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'); }
function enc(x) { return encodeURIComponent(x); }
function link(space, path, text) { return h('a', { href: '#/s/' + enc(space) + path }, text); }

// ---- the API ----
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || ('HTTP ' + status));
    this.status = status; this.body = body;
  }
}
async function api(space, path, opts) {
  const token = session().tokens[space];
  if (!token) { location.hash = '#/signin'; throw new ApiError(401, null); }
  const init = Object.assign({ headers: {} }, opts || {});
  init.headers = Object.assign(auth(token), init.headers);
  if (init.json !== undefined) {
    init.body = JSON.stringify(init.json);
    init.headers['Content-Type'] = 'application/json';
    delete init.json;
  }
  const r = await fetch('/v1/spaces/' + enc(space) + path, init);
  if (init.raw) { if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null)); return r; }
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

// ---- chrome: navigation and the space switcher ----
function chrome(space, page) {
  const sess = session();
  const names = Object.keys(sess.tokens).sort();
  const nav = $('#nav');
  nav.replaceChildren();
  if (space) {
    for (const [p, label] of [['profiles', 'Profiles'], ['audiences', 'Audiences'],
      ['builder', 'Builder'], ['runs', 'Runs']]) {
      nav.append(h('a', { href: '#/s/' + enc(space) + '/' + p, class: p === page ? 'on' : null,
        id: 'nav-' + p }, label));
    }
  }
  const sw = $('#switch');
  sw.replaceChildren(...names.map((n) => h('option', { value: n, selected: n === space }, n)));
  $('#switch-label').hidden = names.length === 0;
  $('#add-space').hidden = names.length === 0;
  $('#signout').hidden = names.length === 0;
}

// ---- pages ----
function signin() {
  chrome(null, null);
  const input = h('input', { type: 'password', id: 'token', placeholder: 'a space token', autocomplete: 'off' });
  const out = h('p', { class: 'muted' }, 'Each space served by cohort serve has its own token (cohort serve prints it, or COHORT_TOKEN_<SPACE> sets it).');
  const form = h('form', { class: 'inline', id: 'signin' }, input, h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    const r = await fetch('/v1/whoami', { headers: auth(token) });
    if (!r.ok) { banner('That token opens no space.'); return; }
    banner(null);
    const { spaces } = await r.json();
    const sess = session();
    for (const sp of spaces) sess.tokens[sp.name] = token;
    sess.current = spaces[0].name;
    saveSession(sess);
    location.hash = '#/s/' + enc(spaces[0].name) + '/profiles';
  });
  show(h('h1', {}, 'Sign in'), h('section', { class: 'card' }, form, out));
  input.focus();
}

async function profiles(space, params) {
  chrome(space, 'profiles');
  const q = params.get('q') || '';
  const input = h('input', { type: 'text', id: 'search', value: q,
    placeholder: 'email:ada@example.com, user_id:42, or a bare value' });
  const form = h('form', { class: 'inline' }, input, h('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = '#/s/' + enc(space) + '/profiles?q=' + enc(input.value.trim());
  });
  const results = h('div', { id: 'results' });
  show(h('h1', {}, 'Profiles'), form, results);
  if (!q) {
    results.append(h('p', { class: 'muted' }, 'Search by any identifier. A bare value is tried as every identifier type, a profile id and an account id.'));
    return;
  }
  const r = await api(space, '/search?q=' + enc(q));
  if (r.data.length === 0) { results.append(h('p', {}, 'No profile has ' + q + '.')); return; }
  results.append(h('table', {}, h('tr', {}, h('th', {}, 'Profile'), h('th', {}, 'Matched'),
    h('th', {}, 'Identifiers'), h('th', {}, 'Last seen')),
  r.data.map((p) => h('tr', { class: 'hit' },
    h('td', {}, link(space, '/p/' + p.collection + '/' + enc(p.id), p.id)),
    h('td', { class: 'mono' }, p.matched),
    h('td', { class: 'mono' }, p.identifiers.join(', ') + (p.identifier_count > p.identifiers.length ? ' …' : '')),
    h('td', {}, when(p.last_seen))))));
}

function traitGroup(title, traits) {
  if (traits.length === 0) return null;
  return [h('h2', {}, title), h('table', { class: 'traits' }, traits.map((t) => h('tr', {},
    h('td', { class: 'mono', title: t.definition ? t.definition.query : null }, t.name),
    h('td', { class: 'mono' }, typeof t.value === 'object' ? JSON.stringify(t.value) : String(t.value)),
    h('td', { class: 'muted' }, t.type),
    h('td', { class: 'muted' }, t.definition ? t.definition.file : ''))))];
}

async function profile(space, collection, id) {
  chrome(space, 'profiles');
  const p = await api(space, '/explorer/profiles/' + collection + '/' + enc(id));
  const byClass = (c) => p.traits.filter((t) => t.class === c);
  const events = h('ul', { class: 'timeline', id: 'events' });
  const addEvents = (list) => events.append(...list.map((e) => h('li', {},
    h('details', {}, h('summary', {}, h('span', { class: 'mono' }, when(e.timestamp)), '  ',
      h('b', {}, e.type === 'track' ? e.event : e.type), h('span', { class: 'muted' }, '  ' + e.message_id)),
    h('pre', {}, JSON.stringify({ properties: e.properties, traits: e.traits, context: e.context }, null, 2))))));
  addEvents(p.events);
  let next = p.events_next;
  const more = h('button', { class: 'quiet', type: 'button', hidden: !next }, 'Older events');
  more.addEventListener('click', async () => {
    const q = await api(space, '/explorer/profiles/' + collection + '/' + enc(id) + '?events_next=' + next);
    addEvents(q.events); next = q.events_next; more.hidden = !next;
  });
  const graph = h('div', { id: 'identity-graph' });
  const why = h('button', { class: 'quiet', type: 'button', id: 'why' }, 'Why are these one profile?');
  why.addEventListener('click', async () => {
    why.disabled = true;
    graph.replaceChildren(h('p', { class: 'muted' }, 'Reading the events that joined them…'));
    try { graph.replaceChildren(identityGraph(await api(space, '/explorer/identity/' + enc(id)))); }
    catch (e) { graph.replaceChildren(h('p', { class: 'bad' }, e.message)); }
    why.disabled = false;
  });
  show(
    h('h1', {}, (collection === 'accounts' ? 'Account ' : 'Profile ') + p.id),
    h('p', { class: 'muted' }, 'First seen ' + when(p.first_seen) + ' · last seen ' + when(p.last_seen) + ' · as of ' + when(p.as_of)),
    h('section', { class: 'card' }, h('h2', {}, 'Identifiers'),
      h('table', { id: 'identifiers' }, h('tr', {}, h('th', {}, 'Type'), h('th', {}, 'Value'), h('th', {}, 'First seen'), h('th', {}, 'Last seen')),
        p.identifiers.map((i) => h('tr', {}, h('td', {}, i.type), h('td', { class: 'mono' }, i.value),
          h('td', {}, when(i.first_seen)), h('td', {}, when(i.last_seen))))),
      collection === 'users' ? [h('p', {}, why), graph] : null),
    h('section', { class: 'card', id: 'traits' },
      traitGroup('Custom traits', byClass('custom_trait')) || [],
      traitGroup('Computed traits', byClass('computed_trait')) || [],
      traitGroup('SQL traits', byClass('sql_trait')) || [],
      p.traits.length === 0 ? h('p', { class: 'muted' }, 'No traits.') : null),
    h('section', { class: 'card' }, h('h2', {}, 'Audiences'),
      p.audiences.length === 0 ? h('p', { class: 'muted' }, 'In no audience.') :
        h('table', { id: 'audiences' }, p.audiences.map((a) => h('tr', {},
          h('td', {}, link(space, '/a/' + enc(a.key), a.name || a.key)),
          h('td', {}, h('span', { class: a.member ? 'pill' : 'pill out' }, a.member ? 'member' : 'exited')),
          h('td', {}, a.member ? 'entered ' + when(a.entered_at) : ''))))),
    h('section', { class: 'card' }, h('h2', {}, collection === 'users' ? 'Accounts' : 'Users'),
      p.links.length === 0 ? h('p', { class: 'muted' }, 'None.') :
        h('ul', {}, p.links.map((l) => h('li', {}, link(space, '/p/' + (collection === 'users' ? 'accounts' : 'users') + '/' + enc(l), l))))),
    h('section', { class: 'card' }, h('h2', {}, 'Recent events (' + num(p.events_total) + ')'), events, more));
}

// The identity explanation as a graph: the first identifier at the left, each identifier one
// column right of the one it joined, the joining event on the edge; set-aside identifiers at
// the far right, dashed.
function identityGraph(ex) {
  if (!ex.identifiers.length) return h('p', { class: 'muted' }, ex.note || 'No identifiers.');
  const first = ex.identifiers[0].id_type + ':' + ex.identifiers[0].id_value;
  const depth = { [first]: 0 };
  for (const j of ex.joins) depth[j.to] = (depth[j.from] || 0) + 1;
  for (const i of ex.identifiers) { const k = i.id_type + ':' + i.id_value; if (!(k in depth)) depth[k] = 0; }
  const aside = [...new Set(ex.set_aside.map((a) => a.identifier))];
  const cols = Math.max(...Object.values(depth)) + 1 + (aside.length ? 1 : 0);
  const rows = {};
  const at = {};
  const W = 330, H = 46, BW = 190, BH = 26;
  for (const [k, d] of Object.entries(depth)) { rows[d] = (rows[d] || 0) + 1; at[k] = [d * W + 10, (rows[d] - 1) * H + 10]; }
  aside.forEach((k, i) => { at['!' + k] = [(cols - 1) * W + 10, i * H + 10]; });
  const height = Math.max(...Object.values(rows), aside.length, 1) * H + 20;
  const svg = s('svg', { width: cols * W + 20, height, class: 'graph', role: 'img' });
  for (const j of ex.joins) {
    const [x1, y1] = at[j.from], [x2, y2] = at[j.to];
    svg.append(s('line', { x1: x1 + BW, y1: y1 + BH / 2, x2, y2: y2 + BH / 2 }),
      s('title', {}, j.message_id),
      s('text', { x: x1 + BW + 8, y: (y1 + y2) / 2 + BH / 2 - 4, class: 'edge' }, j.message_id.slice(0, 13) + '…'));
  }
  const node = (k, x, y, cls, label) => s('g', { class: 'node ' + cls, transform: `translate(${x},${y})` },
    s('title', {}, label), s('rect', { width: BW, height: BH, rx: 4 }),
    s('text', { x: 6, y: 17 }, k.length > 28 ? k.slice(0, 27) + '…' : k));
  for (const [k, [x, y]] of Object.entries(at)) {
    if (k.startsWith('!')) {
      const why = ex.set_aside.filter((a) => a.identifier === k.slice(1)).map((a) => a.rule + ' in ' + a.message_id).join('\n');
      svg.append(node(k.slice(1), x, y, 'aside', 'set aside: ' + why));
    } else svg.append(node(k, x, y, 'kept', k));
  }
  return h('div', {}, svg,
    h('p', { class: 'muted' }, ex.joins.length + ' joining event(s); ' + aside.length + ' identifier(s) blocked or dropped (dashed).'),
    ex.set_aside.length ? h('table', { id: 'set-aside' }, ex.set_aside.map((a) => h('tr', {},
      h('td', { class: 'mono' }, a.identifier), h('td', { class: 'bad' }, a.rule), h('td', {}, a.detail || ''),
      h('td', { class: 'mono' }, a.message_id)))) : null);
}

function sparkline(history, w, hgt) {
  const svg = s('svg', { width: w, height: hgt, class: 'spark', role: 'img' });
  if (history.length === 0) return svg;
  const max = Math.max(1, ...history.map((p) => p.members));
  const pts = history.map((p, i) => [history.length === 1 ? w / 2 : (i * (w - 4)) / (history.length - 1) + 2,
    hgt - 2 - ((hgt - 4) * p.members) / max]);
  svg.append(s('polyline', { points: pts.map((p) => p.join(',')).join(' '), fill: 'none', stroke: '#2f5bea', 'stroke-width': 1.5 }),
    s('title', {}, history.map((p) => when(p.as_of) + ': ' + p.members).join('\n')));
  return svg;
}

async function audiences(space) {
  chrome(space, 'audiences');
  const r = await api(space, '/audiences');
  show(h('h1', {}, 'Audiences'), h('p', { class: 'muted' }, 'As of ' + when(r.as_of) + ' (run ' + r.run_id + ')'),
    h('table', { id: 'audience-list' }, h('tr', {}, h('th', {}, 'Audience'), h('th', {}, 'Of'),
      h('th', { class: 'num' }, 'Size'), h('th', { class: 'num' }, 'Entered'), h('th', { class: 'num' }, 'Exited'), h('th', {}, 'Size over runs')),
    r.data.map((a) => h('tr', {}, h('td', {}, link(space, '/a/' + enc(a.key), a.name), h('div', { class: 'muted mono' }, a.key)),
      h('td', {}, a.entity), h('td', { class: 'num' }, num(a.size)), h('td', { class: 'num good' }, num(a.entered)),
      h('td', { class: 'num bad' }, num(a.exited)), h('td', {}, sparkline(a.history, 140, 28))))));
}

async function download(space, key, params, name) {
  const r = await api(space, '/audiences/' + enc(key) + '/export?' + params, { raw: true });
  const blob = await r.blob();
  const a = h('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a); a.click(); a.remove();
}

function conditionsTable(r) {
  return h('table', { class: 'conditions' }, h('tr', {}, h('th', {}, 'Top-level condition'), h('th', { class: 'num' }, 'Holds for')),
    r.conditions.map(([text, n]) => h('tr', {}, h('td', { class: 'mono' }, text), h('td', { class: 'num' }, num(n)))));
}

async function audience(space, key) {
  chrome(space, 'audiences');
  const a = await api(space, '/audiences/' + enc(key));
  const conds = h('div', { id: 'conditions' }, h('p', { class: 'muted' }, 'Evaluating each condition…'));
  api(space, '/audiences/' + enc(key) + '/conditions')
    .then((r) => conds.replaceChildren(conditionsTable(r)))
    .catch((e) => conds.replaceChildren(h('p', { class: 'bad' }, e.message)));
  const whyIn = h('input', { type: 'text', id: 'why-id', placeholder: 'email:ada@example.com' });
  const whyOut = h('div', { id: 'why-out' });
  const whyForm = h('form', { class: 'inline' }, whyIn, h('button', { type: 'submit' }, 'Why in / out?'));
  whyForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    whyOut.replaceChildren(h('p', { class: 'muted' }, 'Evaluating…'));
    try {
      const x = await api(space, '/audiences/' + enc(key) + '/explain?id=' + enc(whyIn.value.trim()));
      whyOut.replaceChildren(h('p', {}, h('b', {}, x.member ? 'In' : 'Out'), x.id ? ' (' + x.id + ')' : ''),
        h('table', {}, (x.conditions || []).map((c) => h('tr', {}, h('td', { class: c.holds ? 'good' : 'bad' }, c.holds ? 'holds' : 'does not hold'),
          h('td', { class: 'mono' }, c.text),
          h('td', { class: 'mono muted' }, c.traits.map(([k, v]) => k + ' = ' + v).join(', '),
            c.events.map(([t, evs]) => t + ': ' + evs.length + ' matching event(s)').join('; '))))));
    } catch (err) { whyOut.replaceChildren(h('p', { class: 'bad' }, err.message)); }
  });
  const idType = h('select', { id: 'single-type' }, ['email', 'user_id', 'anonymous_id', 'phone'].map((t) => h('option', { value: t }, t)));
  const hash = h('select', { id: 'single-hash' }, h('option', { value: 'sha256' }, 'SHA-256'), h('option', { value: 'none' }, 'plain'));
  const dl = (fmt, extra) => {
    const b = h('button', { type: 'button', class: 'quiet', id: 'csv-' + fmt }, fmt + ' CSV');
    b.addEventListener('click', () => download(space, key, 'format=' + fmt + (extra ? extra() : ''), key + '-' + fmt + '.csv').catch((e) => banner(e.message)));
    return b;
  };
  show(h('h1', {}, a.name), h('p', { class: 'muted mono' }, a.key + ' · ' + a.entity + ' · ' + a.file),
    h('div', { class: 'grid' },
      h('section', { class: 'card' }, h('div', { class: 'muted' }, 'Members'), h('div', { class: 'stat', id: 'size' }, num(a.size)),
        h('div', { class: 'muted' }, 'of ' + num(a.total) + ' · as of ' + when(a.as_of))),
      h('section', { class: 'card' }, h('div', { class: 'muted' }, 'Size over runs'), sparkline(a.history, 220, 50))),
    h('section', { class: 'card' }, h('h2', {}, 'Definition'), h('pre', { id: 'definition' }, a.query),
      a.description ? h('p', {}, a.description) : null,
      h('p', { class: 'muted' }, 'Destinations: ' + (a.destinations.length ? a.destinations.join(', ') : 'none') +
        ' · schedule: ' + (a.schedule || 'the space\'s') + ' · anonymous profiles ' + (a.include_anonymous ? 'included' : 'left out'))),
    h('section', { class: 'card' }, h('h2', {}, 'Size per top-level condition'), conds),
    h('section', { class: 'card' }, h('h2', {}, 'Overlaps'), a.overlaps.length === 0 ? h('p', { class: 'muted' }, 'No other audience of ' + a.entity + '.') :
      h('table', { id: 'overlaps' }, h('tr', {}, h('th', {}, 'Audience'), h('th', { class: 'num' }, 'Size'), h('th', { class: 'num' }, 'In both')),
        a.overlaps.map((o) => h('tr', {}, h('td', {}, link(space, '/a/' + enc(o.key), o.name)), h('td', { class: 'num' }, num(o.size)), h('td', { class: 'num' }, num(o.both)))))),
    h('section', { class: 'card' }, h('h2', {}, 'Sample members'), h('ul', { id: 'samples' }, a.samples.map((m) => h('li', {},
      link(space, '/p/' + a.entity + '/' + enc(m.id), m.id), ' ', h('span', { class: 'muted mono' }, m.identifiers.join(', ')))))),
    h('section', { class: 'card' }, h('h2', {}, 'Why is this profile in or out?'), whyForm, whyOut),
    h('section', { class: 'card' }, h('h2', {}, 'Download'),
      h('p', {}, dl('unformatted'), ' ', dl('indexed'), ' ', dl('single', () => '&id_type=' + enc(idType.value) + '&hash=' + hash.value), ' ', idType, ' ', hash)));
}

function caretLines(text, err) {
  const lines = text.split('\n');
  const line = lines[err.line - 1] || '';
  const width = Math.max(1, Math.min(err.end - err.start, line.length - err.column + 1) || 1);
  return [h('pre', { class: 'mono', id: 'error-line' }, line),
    h('pre', { class: 'caret mono', id: 'caret' }, ' '.repeat(err.column - 1) + '^'.repeat(width))];
}

function builder(space) {
  chrome(space, 'builder');
  const entity = h('select', { id: 'entity' }, h('option', { value: 'users' }, 'users'), h('option', { value: 'accounts' }, 'accounts'));
  const text = h('textarea', { id: 'query', spellcheck: 'false', placeholder: "event('Order Completed').within(30 days).count() >= 2" });
  const problem = h('div', { id: 'parse', class: 'parse-error' });
  const result = h('div', { id: 'preview' });
  const go = h('button', { type: 'button', id: 'run-preview' }, 'Preview');
  let timer = null, seq = 0;
  const check = async () => {
    const mine = ++seq;
    if (!text.value.trim()) { problem.replaceChildren(); return; }
    const r = await api(space, '/parse', { method: 'POST', json: { query: text.value, entity: entity.value } });
    if (mine !== seq) return;
    if (r.ok) problem.replaceChildren(h('p', { class: 'good', id: 'parse-ok' }, 'Parses.'));
    else problem.replaceChildren(h('p', { class: 'bad', id: 'parse-message' }, 'Line ' + r.error.line + ', column ' + r.error.column + ': ' + r.error.message),
      ...caretLines(text.value, r.error), r.error.help ? h('p', { class: 'muted' }, r.error.help) : null);
  };
  text.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => check().catch((e) => banner(e.message)), 150); });
  entity.addEventListener('change', () => check().catch((e) => banner(e.message)));
  go.addEventListener('click', async () => {
    go.disabled = true;
    result.replaceChildren(h('p', { class: 'muted' }, 'Evaluating the space (nothing is published)…'));
    try {
      const r = await api(space, '/preview', { method: 'POST', json: { query: text.value, entity: entity.value } });
      result.replaceChildren(h('p', {}, h('span', { class: 'stat', id: 'preview-size' }, num(r.size)), ' of ' + num(r.total) + ' ' + r.entity + ' as of ' + when(r.as_of)),
        conditionsTable(r),
        h('h2', {}, 'Overlaps'), h('table', {}, r.overlaps.map((o) => h('tr', {}, h('td', {}, link(space, '/a/' + enc(o.key), o.key)), h('td', { class: 'num' }, num(o.size)), h('td', { class: 'num' }, num(o.both) + ' in both')))),
        h('h2', {}, 'Sample members'), h('ul', { id: 'preview-samples' }, r.samples.map(([id, ids]) => h('li', {}, link(space, '/p/' + r.entity + '/' + enc(id), id), ' ', h('span', { class: 'muted mono' }, ids)))));
    } catch (e) {
      result.replaceChildren(h('p', { class: 'bad' }, e.message));
      if (e.body && e.body.at) result.append(...caretLines(text.value, e.body.at));
    }
    go.disabled = false;
  });
  show(h('h1', {}, 'Audience builder'),
    h('p', { class: 'muted' }, 'Write a condition in the query language; it is checked as you type. Preview evaluates it over the published run\'s data without saving or publishing anything.'),
    h('section', { class: 'card' }, h('p', {}, 'Audience of ', entity), text, problem, h('p', {}, go)), result);
  text.focus();
}

function stageBars(timings) {
  const total = timings.reduce((t, [, ms]) => t + ms, 0) || 1;
  const W = 420, rowH = 14;
  const svg = s('svg', { width: W + 190, height: timings.length * rowH + 4, class: 'bars', role: 'img' });
  timings.forEach(([name, ms], i) => {
    svg.append(s('text', { x: 0, y: i * rowH + 11 }, name),
      s('rect', { class: 'stage', x: 120, y: i * rowH + 2, height: rowH - 4, width: Math.max(1, (W * ms) / total) }),
      s('text', { x: 124 + (W * ms) / total, y: i * rowH + 11 }, ms + ' ms'));
  });
  return svg;
}

async function runs(space) {
  chrome(space, 'runs');
  const status = h('span', { id: 'run-status', class: 'muted' });
  const now = h('button', { type: 'button', id: 'run-now' }, 'Run now');
  const list = h('div', { id: 'runs' });
  const load = async () => {
    const r = await api(space, '/runs?limit=50');
    list.replaceChildren(h('table', {}, h('tr', {}, h('th', {}, 'Started'), h('th', {}, 'Status'), h('th', {}, 'Trigger'),
      h('th', { class: 'num' }, 'Took'), h('th', { class: 'num' }, 'Events'), h('th', {}, 'Audiences'), h('th', {}, 'Stages')),
    r.data.map((run) => h('tr', { class: 'run' }, h('td', {}, when(run.started_at), h('div', { class: 'muted mono' }, run.run_id)),
      h('td', {}, h('span', { class: 'pill ' + run.status }, run.status), run.message ? h('div', { class: 'bad' }, run.message) : null),
      h('td', {}, run.trigger || '–'), h('td', { class: 'num' }, (run.duration_ms / 1000).toFixed(1) + ' s'),
      h('td', { class: 'num' }, num(run.events)),
      h('td', {}, Object.entries(run.audiences).map(([k, [m, e, x]]) => h('div', { class: 'mono' }, k + ' ' + num(m) + ' (+' + e + ' −' + x + ')'))),
      h('td', {}, h('details', {}, h('summary', {}, run.stage_timings.length + ' stages'), stageBars(run.stage_timings)))))));
    return r.data;
  };
  now.addEventListener('click', async () => {
    now.disabled = true;
    const newest = (list) => (list[0] ? list[0].run_id : null);
    const before = newest(await load());
    try {
      await api(space, '/runs', { method: 'POST' });
      status.textContent = 'Queued; waiting for the run to finish…';
      for (let i = 0; i < 600; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        if (newest(await load()) !== before) { status.textContent = 'The run finished.'; break; }
      }
    } catch (e) { status.textContent = e.message; }
    now.disabled = false;
  });
  show(h('h1', {}, 'Runs'), h('p', {}, now, ' ', status), list);
  await load();
}

// ---- routing ----
async function route() {
  banner(null);
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const sess = session();
  try {
    if (parts[0] === 'signin') return signin();
    if (parts[0] !== 's' || !sess.tokens[parts[1]]) {
      if (parts[0] === 's' || !sess.current || !sess.tokens[sess.current]) return signin();
      location.hash = '#/s/' + enc(sess.current) + '/profiles';
      return;
    }
    const space = parts[1];
    sess.current = space; saveSession(sess);
    switch (parts[2]) {
      case 'p': return await profile(space, parts[3], parts.slice(4).join('/'));
      case 'audiences': return await audiences(space);
      case 'a': return await audience(space, parts.slice(3).join('/'));
      case 'builder': return builder(space);
      case 'runs': return await runs(space);
      default: return await profiles(space, params);
    }
  } catch (e) {
    if (e.status === 401) {
      const s2 = session(); delete s2.tokens[parts[1]]; saveSession(s2);
      banner('The token no longer opens this space: sign in again.');
      return signin();
    }
    banner(e.message);
    show(h('p', { class: 'bad' }, e.message));
  }
}

$('#switch').addEventListener('change', (e) => { location.hash = '#/s/' + enc(e.target.value) + '/profiles'; });
$('#signout').addEventListener('click', () => { sessionStorage.removeItem(STORE); location.hash = '#/signin'; route(); });
window.addEventListener('hashchange', route);
route();
