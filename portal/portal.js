// KEA's docs portal: the APIs and models of one gateway, their OpenAPI documents for people, and
// try-it checked in the browser by the gateway's own validator (web/validator, wasm-bindgen)
// before the request is sent through the gateway. Plain ES module, no build step.
//
// Everything the page shows comes from API authors: it is only ever set as text (textContent,
// attributes through setAttribute), never parsed as HTML; the server's Content-Security-Policy
// refuses any script but this one.

const POLL_MS = 2000;
const MAX_SCHEMA_DEPTH = 8;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

const state = {
  catalog: null,
  catalogText: '',
  documents: new Map(), // entry path → {sha256, document}
  validators: new Map(), // entry path → Promise<{validator|null, reason}>
  validatorModule: null,
};

// ---------------------------------------------------------------------------------------------
// DOM helpers: text only.

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (name === 'dataset') {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

function banner(message) {
  const node = document.getElementById('banner');
  node.textContent = message || '';
  node.hidden = !message;
}

// ---------------------------------------------------------------------------------------------
// Catalog: loaded at start and polled, so a changed API shows without a reload.

async function loadCatalog() {
  const response = await fetch('catalog.json', { cache: 'no-cache', credentials: 'same-origin' });
  if (!response.ok) throw new Error(`catalog.json: HTTP ${response.status}`);
  const text = await response.text();
  if (text === state.catalogText) return false;
  const catalog = JSON.parse(text);
  if (!catalog || !Array.isArray(catalog.entries)) throw new Error('catalog.json: no entries');
  state.catalogText = text;
  state.catalog = catalog;
  return true;
}

async function poll() {
  try {
    const changed = await loadCatalog();
    document.getElementById('live').textContent = `updated ${new Date().toLocaleTimeString()}`;
    if (changed) {
      banner('');
      await route({ keepScroll: true });
    }
  } catch (error) {
    banner(`The catalog could not be refreshed: ${error.message}. Showing what was loaded last.`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function findEntry(namespace, name) {
  return state.catalog?.entries.find((e) => e.namespace === namespace && e.name === name);
}

// ---------------------------------------------------------------------------------------------
// Routing: `#/` is the index, `#/<namespace>/<name>` an API or model.

async function route(options = {}) {
  const main = document.getElementById('main');
  const [namespace, name] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  document.getElementById('gateway').textContent = state.catalog ? `gateway ${state.catalog.gateway}` : '';
  if (!namespace || !name) {
    renderIndex(main);
    return;
  }
  const entry = findEntry(namespace, name);
  if (!entry) {
    clear(main).append(el('p', { class: 'problem' }, `No API or model ${namespace}/${name} on this gateway (any more).`),
      el('p', {}, el('a', { href: '#/' }, 'All APIs and models')));
    return;
  }
  const shown = main.dataset.entry === entry.path && main.dataset.sha256 === entry.sha256 && options.keepScroll;
  if (shown) {
    // Same document: only the header (readiness, weights) may have changed.
    const header = main.querySelector('.entry-header');
    if (header) header.replaceWith(entryHeader(entry));
    return;
  }
  await renderEntry(main, entry);
}

// ---------------------------------------------------------------------------------------------
// Index.

function versionsText(entry) {
  return entry.versions.map((v) => `${v.name} ${v.weight}%`).join(', ');
}

function authText(auth) {
  if (auth.anonymous) return 'open (credentials optional)';
  const what = auth.credentials.length ? auth.credentials.join(' or ') : 'any credential';
  return auth.scopes.length ? `${what}; scopes ${auth.scopes.join(' ')}` : what;
}

function readyCell(ready) {
  if (!ready) return el('span', { class: 'muted' }, 'rendered');
  const ok = ready.status === 'True';
  return el('span', { class: ok ? 'ready' : 'not-ready', title: ready.message || '' }, ok ? 'Ready' : `${ready.reason || 'Not ready'}`);
}

function renderIndex(main) {
  const entries = [...state.catalog.entries].sort((a, b) => a.title.localeCompare(b.title));
  const body = el('tbody');
  const rows = document.createDocumentFragment();
  for (const entry of entries) {
    const row = el('tr', { dataset: { search: [entry.name, entry.title, entry.namespace, entry.basePath, ...entry.hosts].join(' ').toLowerCase() } },
      el('td', {}, el('a', { href: `#/${encodeURIComponent(entry.namespace)}/${encodeURIComponent(entry.name)}` }, entry.title),
        el('div', { class: 'muted small' }, `${entry.namespace}/${entry.name}${entry.version ? ` · ${entry.version}` : ''}`)),
      el('td', {}, el('span', { class: `kind kind-${entry.kind}` }, entry.kind)),
      el('td', {}, entry.hosts.join(', ')),
      el('td', {}, el('code', {}, entry.basePath)),
      el('td', {}, versionsText(entry)),
      el('td', {}, authText(entry.auth)),
      el('td', {}, readyCell(entry.ready)),
      el('td', { class: 'number' }, String(entry.operations)));
    rows.append(row);
  }
  body.append(rows);
  const table = el('table', { class: 'index' },
    el('thead', {}, el('tr', {}, ['Name', 'Kind', 'Hosts', 'Base path', 'Versions', 'Auth', 'Status', 'Operations'].map((h) => el('th', {}, h)))),
    body);
  const count = el('p', { class: 'muted', id: 'count' });
  clear(main).append(count, entries.length ? table : el('p', {}, 'No API or model is published on this gateway yet.'));
  main.dataset.entry = '';
  const filter = document.getElementById('filter');
  const apply = () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of body.rows) {
      const hit = words.every((w) => row.dataset.search.includes(w));
      row.hidden = !hit;
      if (hit) shown += 1;
    }
    count.textContent = `${shown} of ${entries.length} APIs and models`;
  };
  filter.oninput = apply;
  apply();
}

// ---------------------------------------------------------------------------------------------
// An API or model.

async function loadDocument(entry) {
  const cached = state.documents.get(entry.path);
  if (cached && cached.sha256 === entry.sha256) return cached.document;
  const response = await fetch(`${entry.path}openapi.json`, { cache: 'no-cache', credentials: 'same-origin' });
  if (!response.ok) throw new Error(`${entry.path}openapi.json: HTTP ${response.status}`);
  const document = await response.json();
  state.documents.set(entry.path, { sha256: entry.sha256, document });
  state.validators.delete(entry.path);
  return document;
}

function entryHeader(entry) {
  return el('section', { class: 'entry-header' },
    el('dl', { class: 'facts' },
      el('dt', {}, 'Status'), el('dd', {}, readyCell(entry.ready), entry.ready?.message ? el('span', { class: 'muted' }, ` ${entry.ready.message}`) : null),
      el('dt', {}, 'Hosts'), el('dd', {}, entry.hosts.join(', ')),
      el('dt', {}, 'Base path'), el('dd', {}, el('code', {}, entry.basePath)),
      el('dt', {}, 'Versions'), el('dd', {}, versionsText(entry)),
      el('dt', {}, 'Auth'), el('dd', {}, authText(entry.auth)),
      el('dt', {}, 'Validation'), el('dd', {}, `${entry.validation} — requests are checked against this document by the gateway`),
      el('dt', {}, 'Download'), el('dd', {},
        el('a', { href: `${entry.path}openapi.json`, download: `${entry.name}.openapi.json` }, 'OpenAPI JSON'), ' · ',
        el('a', { href: `${entry.path}openapi.yaml`, download: `${entry.name}.openapi.yaml` }, 'OpenAPI YAML'))));
}

async function renderEntry(main, entry) {
  clear(main).append(el('p', { class: 'muted' }, `Loading ${entry.title}…`));
  main.dataset.entry = entry.path;
  main.dataset.sha256 = entry.sha256;
  let document;
  try {
    document = await loadDocument(entry);
  } catch (error) {
    clear(main).append(el('p', { class: 'problem' }, `The document of ${entry.namespace}/${entry.name} could not be loaded: ${error.message}`));
    return;
  }
  const info = document.info || {};
  const page = el('article', { class: 'entry' },
    el('p', {}, el('a', { href: '#/' }, '← All APIs and models')),
    el('h1', {}, entry.title, ' ', el('span', { class: `kind kind-${entry.kind}` }, entry.kind), info.version ? el('span', { class: 'muted small' }, ` ${info.version}`) : null),
    info.description ? el('p', { class: 'description' }, String(info.description)) : null,
    entryHeader(entry));
  if (entry.model) page.append(tensorTables(entry.model));
  page.append(tokenField());
  const operations = el('section', { class: 'operations' }, el('h2', {}, 'Operations'));
  for (const op of listOperations(document)) operations.append(operationView(entry, document, op));
  page.append(operations);
  clear(main).append(page);
  window.scrollTo(0, 0);
}

function tensorTables(model) {
  const table = (title, tensors) => el('div', { class: 'tensors' },
    el('h3', {}, title),
    tensors.length
      ? el('table', { class: 'tensor-table' },
        el('thead', {}, el('tr', {}, ['Name', 'Datatype', 'Shape', 'Description'].map((h) => el('th', {}, h)))),
        el('tbody', {}, tensors.map((t) => el('tr', {},
          el('td', {}, el('code', {}, t.name), t.optional ? el('span', { class: 'muted' }, ' optional') : null), el('td', {}, t.datatype),
          el('td', {}, el('code', {}, `[${t.shape.join(', ')}]`)), el('td', {}, t.description || '')))))
      : el('p', { class: 'muted' }, 'Not declared.'));
  return el('section', { class: 'model' },
    el('h2', {}, 'Model'),
    el('p', {}, `Framework ${model.framework}. Served over the Open Inference Protocol (v2); -1 is a dimension of any size.`),
    table('Inputs', model.inputs), table('Outputs', model.outputs));
}

function tokenField() {
  const input = el('input', { type: 'password', id: 'token', autocomplete: 'off', placeholder: 'Paste a bearer token (optional; your single sign-on session is used otherwise)' });
  input.value = sessionStorage.getItem('kea.token') || '';
  input.addEventListener('input', () => sessionStorage.setItem('kea.token', input.value.trim()));
  return el('section', { class: 'token' }, el('label', { for: 'token' }, 'Token for try-it '), input);
}

function listOperations(document) {
  const out = [];
  for (const [path, item] of Object.entries(document.paths || {})) {
    if (!item || typeof item !== 'object') continue;
    for (const method of METHODS) {
      const op = item[method];
      if (!op || typeof op !== 'object') continue;
      const parameters = [...(item.parameters || []), ...(op.parameters || [])]
        .map((p) => resolve(document, p)).filter((p) => p && p.name);
      // An operation's parameter overrides the path item's of the same name and location.
      const unique = new Map(parameters.map((p) => [`${p.in}:${p.name}`, p]));
      out.push({ path, method, op, parameters: [...unique.values()] });
    }
  }
  return out;
}

function operationView(entry, document, { path, method, op, parameters }) {
  const summary = el('summary', {},
    el('span', { class: `method method-${method}` }, method.toUpperCase()), ' ',
    el('code', {}, path), op.summary ? el('span', { class: 'muted' }, ` — ${op.summary}`) : null,
    op.deprecated ? el('span', { class: 'deprecated' }, ' deprecated') : null);
  const details = el('details', { class: 'operation', dataset: { method: method.toUpperCase(), path } }, summary);
  // Built when opened: a document with thousands of operations opens at once.
  details.addEventListener('toggle', () => {
    if (details.open && details.children.length === 1) {
      details.append(operationBody(entry, document, { path, method, op, parameters }));
    }
  });
  return details;
}

function operationBody(entry, document, { path, method, op, parameters }) {
  const body = el('div', { class: 'operation-body' });
  if (op.description) body.append(el('p', { class: 'description' }, String(op.description)));
  if (op.operationId) body.append(el('p', { class: 'muted small' }, `operationId ${op.operationId}`));
  if (parameters.length) {
    body.append(el('h4', {}, 'Parameters'), el('table', { class: 'parameters' },
      el('thead', {}, el('tr', {}, ['Name', 'In', 'Required', 'Schema', 'Description'].map((h) => el('th', {}, h)))),
      el('tbody', {}, parameters.map((p) => el('tr', {},
        el('td', {}, el('code', {}, p.name)), el('td', {}, p.in), el('td', {}, p.required ? 'yes' : 'no'),
        el('td', {}, schemaLine(document, p.schema)), el('td', {}, p.description || ''))))));
  }
  const requestBody = resolve(document, op.requestBody);
  const media = Object.entries(requestBody?.content || {});
  if (media.length) {
    body.append(el('h4', {}, `Request body${requestBody.required ? ' (required)' : ''}`));
    for (const [type, content] of media) {
      body.append(el('div', { class: 'media' }, el('code', {}, type)), schemaTree(document, content.schema));
    }
  }
  const responses = Object.entries(op.responses || {});
  if (responses.length) {
    body.append(el('h4', {}, 'Responses'));
    const list = el('dl', { class: 'responses' });
    for (const [status, raw] of responses) {
      const response = resolve(document, raw) || {};
      list.append(el('dt', {}, status), el('dd', {}, response.description || '',
        Object.keys(response.content || {}).length ? el('span', { class: 'muted' }, ` (${Object.keys(response.content).join(', ')})`) : null));
    }
    body.append(list);
  }
  body.append(tryIt(entry, document, { path, method, op, parameters, media }));
  return body;
}

// ---------------------------------------------------------------------------------------------
// Schemas: `$ref`s inside the document followed, cycles and depth bounded.

function resolve(document, value, seen = new Set()) {
  let current = value;
  while (current && typeof current === 'object' && typeof current.$ref === 'string') {
    if (seen.has(current.$ref) || !current.$ref.startsWith('#/')) return { description: `(${current.$ref})` };
    seen.add(current.$ref);
    current = current.$ref.slice(2).split('/')
      .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((node, key) => (node && typeof node === 'object' ? node[key] : undefined), document);
  }
  return current;
}

function typeText(schema) {
  if (!schema || typeof schema !== 'object') return 'any';
  let text = schema.type || (schema.properties ? 'object' : schema.items ? 'array' : schema.oneOf ? 'one of' : schema.anyOf ? 'any of' : schema.allOf ? 'all of' : 'any');
  if (schema.format) text += ` (${schema.format})`;
  if (schema.nullable) text += ', nullable';
  if (Array.isArray(schema.enum)) text += ` ∈ {${schema.enum.map((v) => JSON.stringify(v)).join(', ')}}`;
  const bounds = [['minimum', '≥'], ['maximum', '≤'], ['minLength', 'length ≥'], ['maxLength', 'length ≤'], ['minItems', 'items ≥'], ['maxItems', 'items ≤']]
    .filter(([key]) => schema[key] !== undefined).map(([key, sign]) => `${sign} ${schema[key]}`);
  if (schema.pattern) bounds.push(`pattern ${schema.pattern}`);
  if (bounds.length) text += `; ${bounds.join(', ')}`;
  return text;
}

function schemaLine(document, raw) {
  const schema = resolve(document, raw);
  if (schema?.type === 'array') return `array of ${typeText(resolve(document, schema.items))}`;
  return typeText(schema);
}

function schemaTree(document, raw, depth = 0, seen = new Set()) {
  const ref = raw && typeof raw === 'object' ? raw.$ref : undefined;
  const schema = resolve(document, raw);
  const node = el('div', { class: 'schema' });
  if (!schema || typeof schema !== 'object') return append(node, ['any']);
  if (ref && seen.has(ref)) return append(node, [el('span', { class: 'muted' }, `${ref.split('/').pop()} (see above)`)]);
  const inner = new Set(seen);
  if (ref) inner.add(ref);
  if (depth > MAX_SCHEMA_DEPTH) return append(node, [el('span', { class: 'muted' }, '…')]);
  if (schema.description && depth === 0) node.append(el('p', { class: 'description' }, String(schema.description)));
  const variants = schema.oneOf || schema.anyOf || schema.allOf;
  if (Array.isArray(variants)) {
    const word = schema.oneOf ? 'one of' : schema.anyOf ? 'any of' : 'all of';
    node.append(el('div', { class: 'muted' }, word), el('ol', {}, variants.map((v) => el('li', {}, schemaTree(document, v, depth + 1, inner)))));
    return node;
  }
  if (schema.type === 'array' || schema.items) {
    node.append(el('div', {}, `array${schema.minItems !== undefined ? `, items ≥ ${schema.minItems}` : ''}${schema.maxItems !== undefined ? `, items ≤ ${schema.maxItems}` : ''} of`),
      el('div', { class: 'nested' }, schemaTree(document, schema.items, depth + 1, inner)));
    return node;
  }
  const properties = Object.entries(schema.properties || {});
  if (properties.length) {
    const required = new Set(schema.required || []);
    node.append(el('table', { class: 'properties' }, el('tbody', {}, properties.map(([name, value]) => {
      const property = resolve(document, value) || {};
      const nested = property.properties || property.items || property.oneOf || property.anyOf || property.allOf;
      return el('tr', {},
        el('td', {}, el('code', {}, name), required.has(name) ? el('span', { class: 'required', title: 'required' }, ' *') : null),
        el('td', {}, nested ? schemaTree(document, value, depth + 1, inner) : typeText(property),
          property.readOnly ? el('span', { class: 'muted' }, ' read-only') : null),
        el('td', {}, property.description || ''));
    }))));
    return node;
  }
  return append(node, [typeText(schema)]);
}

// Example values from the schema: `example`, then `default`, `enum`, then by type.
function example(document, raw, depth = 0, seen = new Set()) {
  const ref = raw && typeof raw === 'object' ? raw.$ref : undefined;
  if (ref && seen.has(ref)) return undefined;
  const schema = resolve(document, raw);
  if (!schema || typeof schema !== 'object' || depth > MAX_SCHEMA_DEPTH) return undefined;
  const inner = new Set(seen);
  if (ref) inner.add(ref);
  if (schema.example !== undefined) return schema.example;
  if (schema.default !== undefined) return schema.default;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  if (Array.isArray(schema.oneOf) && schema.oneOf.length) return example(document, schema.oneOf[0], depth + 1, inner);
  if (Array.isArray(schema.anyOf) && schema.anyOf.length) return example(document, schema.anyOf[0], depth + 1, inner);
  if (Array.isArray(schema.allOf)) {
    return Object.assign({}, ...schema.allOf.map((part) => example(document, part, depth + 1, inner)).filter((v) => v && typeof v === 'object'));
  }
  const type = schema.type || (schema.properties ? 'object' : schema.items ? 'array' : undefined);
  switch (type) {
    case 'object': {
      const out = {};
      for (const [name, value] of Object.entries(schema.properties || {})) {
        const property = resolve(document, value) || {};
        if (property.readOnly) continue;
        const v = example(document, value, depth + 1, inner);
        if (v !== undefined) out[name] = v;
      }
      return out;
    }
    case 'array': {
      const item = example(document, schema.items, depth + 1, inner);
      const count = Math.max(1, schema.minItems || 1);
      return item === undefined ? [] : Array.from({ length: count }, () => item);
    }
    case 'integer': return schema.minimum !== undefined ? Math.ceil(schema.minimum) : 1;
    case 'number': return schema.minimum !== undefined ? schema.minimum : 1.5;
    case 'boolean': return true;
    case 'string': {
      const byFormat = { 'date-time': '2026-01-01T12:00:00Z', date: '2026-01-01', email: 'user@example.com', uuid: '3fa85f64-5717-4562-b3fc-2c963f66afa6', uri: 'https://example.com', byte: 'aGVsbG8=', ipv4: '192.0.2.1' };
      const text = byFormat[schema.format] || 'string';
      return schema.minLength && text.length < schema.minLength ? text.padEnd(schema.minLength, 'x') : text;
    }
    default: return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Try it: the request built from the form, checked in the browser, sent through the gateway.

function shellQuote(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

function serverBase(document, entry) {
  const url = document.servers?.[0]?.url;
  const base = typeof url === 'string' && url.startsWith('/') ? url : entry.basePath;
  return base.replace(/\/+$/, '');
}

function tryIt(entry, document, { path, method, op, parameters, media }) {
  const fields = new Map();
  const form = el('form', { class: 'try-it', on: { submit: (e) => e.preventDefault() } }, el('h4', {}, 'Try it'));
  const grid = el('div', { class: 'fields' });
  for (const p of parameters.filter((p) => ['path', 'query', 'header'].includes(p.in))) {
    const value = example(document, p.schema);
    const input = el('input', { type: 'text', name: `${p.in}:${p.name}`, 'aria-label': `${p.in} parameter ${p.name}` });
    input.value = p.in === 'path' || p.required ? formatParameter(value) : '';
    fields.set(`${p.in}:${p.name}`, { parameter: p, input });
    grid.append(el('label', {}, el('span', {}, `${p.name} (${p.in}${p.required ? ', required' : ''})`), input));
  }
  let typeSelect = null;
  let bodyArea = null;
  if (media.length) {
    typeSelect = el('select', { name: 'content-type', 'aria-label': 'Content-Type' }, media.map(([type]) => el('option', { value: type }, type)));
    bodyArea = el('textarea', { name: 'body', rows: 8, spellcheck: 'false', 'aria-label': 'Request body' });
    const fill = () => {
      const content = Object.fromEntries(media)[typeSelect.value];
      // The media type's `example`, else its first named example, else one made from the schema.
      const named = Object.values(content?.examples || {}).map((e) => resolve(document, e)).find((e) => e && e.value !== undefined);
      const value = content?.example !== undefined ? content.example : named ? named.value : example(document, content?.schema);
      bodyArea.value = /json/.test(typeSelect.value) ? JSON.stringify(value ?? {}, null, 2) : '';
    };
    typeSelect.addEventListener('change', () => { fill(); update(); });
    fill();
    const reset = el('button', { type: 'button', class: 'reset' }, 'Example body');
    reset.addEventListener('click', () => { fill(); update(); });
    grid.append(el('label', {}, el('span', {}, 'Content-Type'), typeSelect, reset), el('label', { class: 'wide' }, el('span', {}, 'Body'), bodyArea));
  }
  const curl = el('pre', { class: 'curl' });
  const local = el('div', { class: 'verdict', 'data-role': 'browser-verdict' }, el('span', { class: 'muted' }, 'Checking in your browser…'));
  const sendButton = el('button', { type: 'button', class: 'send' }, 'Send');
  const response = el('div', { class: 'response', 'data-role': 'gateway-response' });
  form.append(grid, el('h5', {}, 'curl'), curl, el('h5', {}, 'Checked in your browser by the gateway\'s validator'), local, el('div', { class: 'actions' }, sendButton), response);

  const build = () => {
    let target = path;
    const query = new URLSearchParams();
    const headers = [];
    for (const { parameter, input } of fields.values()) {
      const value = input.value;
      if (parameter.in === 'path') target = target.replace(`{${parameter.name}}`, encodeURIComponent(value));
      else if (value === '') continue;
      else if (parameter.in === 'query') query.append(parameter.name, value);
      else headers.push([parameter.name.toLowerCase(), value]);
    }
    const search = query.toString();
    const url = `${serverBase(document, entry)}${target}${search ? `?${search}` : ''}`;
    let body;
    if (bodyArea) {
      headers.push(['content-type', typeSelect.value]);
      body = bodyArea.value;
    }
    const token = sessionStorage.getItem('kea.token') || '';
    if (token) headers.push(['authorization', `Bearer ${token}`]);
    return { method: method.toUpperCase(), url, headers, body };
  };

  let lastVerdict = null;
  const update = async () => {
    const request = build();
    curl.textContent = [
      `curl -i -X ${request.method} ${shellQuote(location.origin + request.url)}`,
      ...request.headers.map(([name, value]) => `  -H ${shellQuote(`${name}: ${name === 'authorization' ? 'Bearer $TOKEN' : value}`)}`),
      request.body !== undefined ? `  --data-binary ${shellQuote(request.body)}` : null,
    ].filter(Boolean).join(' \\\n');
    const checked = await checkInBrowser(entry, request);
    lastVerdict = checked;
    showVerdict(local, checked);
    // Which body this verdict is for (tests wait on it).
    local.dataset.body = request.body ?? '';
    sendButton.textContent = checked.problem ? 'Send anyway (the gateway will refuse it)' : 'Send';
  };
  let timer = null;
  form.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(update, 120); });
  sendButton.addEventListener('click', async () => {
    const request = build();
    clear(response).append(el('span', { class: 'muted' }, 'Sending…'));
    try {
      const answer = await fetch(request.url, { method: request.method, headers: request.headers, body: request.body, credentials: 'same-origin', redirect: 'manual', cache: 'no-store' });
      await showResponse(response, answer, lastVerdict);
    } catch (error) {
      clear(response).append(el('p', { class: 'problem' }, `The request did not reach the gateway: ${error.message}`));
    }
  });
  update();
  return form;
}

function formatParameter(value) {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.join(',');
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

async function showResponse(node, answer, verdict) {
  const type = answer.headers.get('content-type') || '';
  const text = await answer.text();
  let shown = text;
  if (/json/.test(type)) {
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as sent */ }
  }
  const headers = ['content-type', 'x-kea-validation', 'x-kea-cache', 'x-kea-backend-version', 'allow', 'www-authenticate', 'location']
    .filter((h) => answer.headers.get(h)).map((h) => `${h}: ${answer.headers.get(h)}`);
  clear(node).append(
    el('h5', {}, 'The gateway answered'),
    el('p', { class: answer.ok ? 'ready' : 'not-ready', 'data-role': 'status' }, answer.type === 'opaqueredirect' ? 'a redirect (log in first: open a page of this API in a new tab)' : `${answer.status} ${answer.statusText}`),
    headers.length ? el('pre', { class: 'headers' }, headers.join('\n')) : null,
    el('pre', { class: 'body', 'data-role': 'body' }, shown));
  if (verdict?.problem && answer.status === verdict.status) {
    node.append(el('p', { class: 'muted small' }, 'The same answer your browser predicted.'));
  }
}

// ---------------------------------------------------------------------------------------------
// The validator: the validate plugin compiled for the browser, loaded once, one instance per API
// with the configuration the gateway runs for it.

async function validatorModule() {
  if (!state.validatorModule) {
    state.validatorModule = (async () => {
      const module = await import('./kea_validator.js');
      await module.default({ module_or_path: new URL('./kea_validator_bg.wasm', import.meta.url) });
      return module;
    })();
  }
  return state.validatorModule;
}

function validatorFor(entry) {
  if (!state.validators.has(entry.path)) {
    state.validators.set(entry.path, (async () => {
      let module;
      try {
        module = await validatorModule();
      } catch (error) {
        return { validator: null, reason: `the validator did not load (${error.message})` };
      }
      const response = await fetch(`${entry.path}validator.json`, { cache: 'no-cache', credentials: 'same-origin' });
      if (!response.ok) return { validator: null, reason: `${entry.path}validator.json: HTTP ${response.status}` };
      const text = await response.text();
      if (text.trim() === 'null') return { validator: null, reason: 'the gateway does not validate this API', off: true };
      try {
        return { validator: new module.Validator(text) };
      } catch (error) {
        return { validator: null, reason: `the API's bundle did not load in the browser: ${error.message ?? error}` };
      }
    })());
  }
  return state.validators.get(entry.path);
}

async function checkInBrowser(entry, request) {
  const { validator, reason, off } = await validatorFor(entry);
  if (!validator) return { unavailable: reason, off };
  const body = request.body === undefined ? undefined : new TextEncoder().encode(request.body);
  try {
    const started = performance.now();
    // `host` is the authority the plugin's rules match on: this page's, as for the real request.
    const headers = JSON.stringify([['host', location.host], ...request.headers]);
    const result = JSON.parse(validator.check(request.method, request.url, headers, body));
    result.micros = Math.round((performance.now() - started) * 1000);
    return result;
  } catch (error) {
    return { unavailable: `the check failed in the browser: ${error.message ?? error}` };
  }
}

function showVerdict(node, checked) {
  clear(node);
  node.dataset.verdict = checked.unavailable ? 'unavailable' : checked.verdict;
  if (checked.unavailable) {
    node.append(el('p', { class: checked.off ? 'muted' : 'problem' }, checked.off
      ? 'The gateway does not validate this API.'
      : `In-browser validation is unavailable: ${checked.unavailable}. The gateway still checks every request.`));
    return;
  }
  if (!checked.problem) {
    node.append(el('p', { class: 'ready' }, checked.verdict === 'reported'
      ? 'Does not match the document; the gateway reports it and lets it through (report mode).'
      : 'Passes the gateway\'s checks.'), el('p', { class: 'muted small' }, `checked in ${checked.micros} µs`));
    return;
  }
  const problem = checked.problem;
  node.append(el('p', { class: 'not-ready' }, `The gateway would answer ${checked.status}: ${problem.title}${problem.detail ? ` — ${problem.detail}` : ''}`));
  if (Array.isArray(problem.errors)) {
    node.append(el('ul', { class: 'issues' }, problem.errors.map((issue) => el('li', {},
      el('code', {}, `${issue.in}${issue.name ? ` ${issue.name}` : ''}${issue.pointer ? ` ${issue.pointer}` : ''}`), ` ${issue.message}`))));
  }
  node.append(el('details', {}, el('summary', {}, 'problem+json'), el('pre', { 'data-role': 'problem' }, JSON.stringify(problem, null, 2))));
}

// ---------------------------------------------------------------------------------------------

window.addEventListener('hashchange', () => route());
// Typing a filter on an API's page goes back to the index, filtered.
document.getElementById('filter').addEventListener('input', () => {
  if (location.hash.replace(/^#\/?/, '')) location.hash = '#/';
});
window.addEventListener('error', (event) => banner(`Something went wrong on this page: ${event.message}`));
window.addEventListener('unhandledrejection', (event) => banner(`Something went wrong on this page: ${event.reason?.message ?? event.reason}`));

(async () => {
  try {
    await loadCatalog();
    await route();
    document.body.dataset.ready = 'true';
  } catch (error) {
    clear(document.getElementById('main')).append(el('p', { class: 'problem' }, `The catalog could not be loaded: ${error.message}`));
  }
  setTimeout(poll, POLL_MS);
})();
