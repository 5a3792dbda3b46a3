// mcp-hub console. Plain JavaScript, no build step, no dependency. Everything shown comes from
// the REST API and /api/events; every text from a server, a tool or a log line is put into the
// page with textContent (never parsed as HTML), and the Content-Security-Policy forbids inline
// script, inline style and eval.
import { contentItem, h, pretty, resourceContent, schemaForm, toolResult } from './render.js';

(() => {
  const TOKEN_KEY = 'mcp-hub-token';
  const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 };
  const MAX_LOG = 2000;

  const state = {
    servers: [],
    hubState: null,
    tab: 'servers',
    tool: null, // {server, name}
    resource: null,
    prompt: null,
    log: [],
  };

  // ---------------------------------------------------------------- DOM helpers
  const $ = (id) => document.getElementById(id);

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  let toastTimer = null;
  function toast(msg) {
    const t = $('toast');
    t.textContent = msg;
    t.classList.remove('hidden');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.add('hidden'), 6000);
  }

  function duration(secs) {
    secs = Math.max(0, Math.floor(secs));
    const d = Math.floor(secs / 86400), hh = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60), s = secs % 60;
    if (d) return `${d}d ${hh}h`;
    if (hh) return `${hh}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
  }

  // ---------------------------------------------------------------- token and API
  const token = () => sessionStorage.getItem(TOKEN_KEY);
  let tokenPrompt = null;

  // Asks for the token once; every caller that got a 401 meanwhile waits for the same answer.
  function askToken() {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const dlg = $('token-dialog');
      const input = $('token-input');
      const err = $('token-error');
      err.textContent = token() ? 'That token was refused.' : '';
      input.value = '';
      const submit = async (ev) => {
        ev.preventDefault();
        const t = input.value.trim();
        if (!t) return;
        const r = await fetch('/api/servers', { headers: { Authorization: 'Bearer ' + t }, cache: 'no-store' });
        if (r.status === 401) {
          err.textContent = 'That token was refused.';
          return;
        }
        sessionStorage.setItem(TOKEN_KEY, t);
        $('forget-token').classList.remove('hidden');
        $('token-form').removeEventListener('submit', submit);
        dlg.close();
        tokenPrompt = null;
        resolve();
      };
      $('token-form').addEventListener('submit', submit);
      if (!dlg.open) dlg.showModal();
      input.focus();
    });
    return tokenPrompt;
  }

  function headers(extra) {
    const hd = Object.assign({}, extra);
    const t = token();
    if (t) hd.Authorization = 'Bearer ' + t;
    return hd;
  }

  async function api(method, path, body) {
    for (let i = 0; i < 5; i++) {
      const init = { method, headers: headers({ Accept: 'application/json' }), cache: 'no-store' };
      if (body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      let r;
      try {
        r = await fetch(path, init);
      } catch (e) {
        return { ok: false, status: 0, data: { error: 'The hub cannot be reached: ' + e.message } };
      }
      const text = await r.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
      if (r.status === 401) {
        await askToken();
        continue;
      }
      return { ok: r.ok, status: r.status, data };
    }
    return { ok: false, status: 401, data: { error: 'Unauthorized' } };
  }

  function apiError(res) {
    const d = res.data;
    const msg = d && typeof d === 'object' ? (d.error || d.message || '') : String(d || '');
    return `HTTP ${res.status}${msg ? ': ' + msg : ''}`;
  }

  // An API error exactly as the API gave it: the message, then the whole JSON body.
  function errorBlock(res) {
    return h('div', { class: 'result is-error', 'data-role': 'error' },
      h('p', { class: 'error', text: apiError(res) }),
      h('pre', { class: 'api-error', text: pretty(res.data) }));
  }

  // ---------------------------------------------------------------- live events
  function setLive(on) {
    const l = $('live');
    l.className = 'live ' + (on ? 'on' : 'off');
    l.textContent = on ? 'events: live' : 'events: reconnecting';
  }

  // /api/events read with fetch, not EventSource: EventSource cannot send the bearer token, and
  // a token in the URL would end up in logs and history.
  async function followEvents() {
    let backoff = 500;
    for (;;) {
      try {
        const r = await fetch('/api/events', { headers: headers({ Accept: 'text/event-stream' }), cache: 'no-store' });
        if (r.status === 401) {
          setLive(false);
          await askToken();
          continue;
        }
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        setLive(true);
        backoff = 500;
        loadServers();
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r/g, '');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            dispatchFrame(frame);
          }
        }
      } catch (_) {
        // reconnect below
      }
      setLive(false);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10000);
    }
  }

  function dispatchFrame(frame) {
    let event = 'message';
    const data = [];
    for (const line of frame.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    let payload;
    try { payload = JSON.parse(data.join('\n')); } catch (_) { return; }
    onEvent(event, payload);
  }

  let reloadTimer = null;
  function scheduleServers() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(loadServers, 50);
  }

  function onEvent(event, p) {
    if (event === 'hub_state') {
      setHubState(p.state);
      if (p.state === 'ready' || p.state === 'restarted') scheduleServers();
    } else if (event === 'subscription_event') {
      if (p.type === 'workspaces_updated') {
        if (state.tab === 'config') loadConfig();
      } else {
        if (p.type === 'config_changed' && state.tab === 'config') loadConfig();
        scheduleServers();
      }
    } else if (event === 'log') {
      addLog(p);
    }
  }

  function setHubState(s) {
    state.hubState = s;
    const b = $('hub-state');
    b.textContent = 'hub: ' + s;
    b.className = 'badge ' + s;
  }

  // ---------------------------------------------------------------- servers
  let loading = null;
  async function loadServers() {
    if (loading) { loading.again = true; return; }
    loading = { again: false };
    try {
      const res = await api('GET', '/api/servers');
      if (res.ok && res.data && Array.isArray(res.data.servers)) {
        state.servers = res.data.servers;
        renderAll();
      }
    } finally {
      const again = loading.again;
      loading = null;
      if (again) loadServers();
    }
  }

  const caps = (s, k) => (s.capabilities && Array.isArray(s.capabilities[k]) ? s.capabilities[k] : []);

  function renderAll() {
    renderServers();
    renderToolList();
    renderResourceList();
    renderPromptList();
    renderLogServers();
    const connected = state.servers.filter((s) => s.status === 'connected');
    const tools = connected.reduce((n, s) => n + caps(s, 'tools').length, 0);
    $('summary').textContent = `${state.servers.length} servers · ${connected.length} connected · ${tools} tools`;
  }

  function renderServers() {
    const body = $('servers');
    body.replaceChildren(...state.servers.map(serverRow));
    $('servers-empty').classList.toggle('hidden', state.servers.length > 0);
  }

  function serverRow(s) {
    const status = s.status || 'unknown';
    const connected = status === 'connected';
    const started = connected && s.lastStarted ? Date.parse(s.lastStarted) : NaN;
    const btn = (label, action, cls) => h('button', { type: 'button', class: cls || null, 'data-action': action, onclick: (ev) => serverAction(ev, s.name, action) }, label);
    const actions = [];
    if (status === 'unauthorized' || s.authorizationUrl) actions.push(btn('Authorize', 'authorize', 'primary'));
    if (!connected && status !== 'connecting') actions.push(btn('Start', 'start', status === 'unauthorized' ? null : 'primary'));
    if (status !== 'disabled') actions.push(btn('Stop', 'stop'));
    if (status !== 'disabled') actions.push(btn('Disable', 'disable', 'danger'));
    if (connected) actions.push(btn('Restart', 'restart'), btn('Refresh', 'refresh'));
    const display = s.displayName && s.displayName !== s.name ? s.displayName : null;
    return h('tr', { 'data-server': s.name },
      h('td', null,
        h('div', null, h('strong', { 'data-role': 'name', text: s.name }), display ? h('span', { class: 'sub', text: ' ' + display }) : null),
        s.description ? h('div', { class: 'sub', 'data-role': 'description', text: s.description }) : null,
        s.error ? h('div', { class: 'err', 'data-role': 'error', text: s.error }) : null,
        s.config_source ? h('div', { class: 'sub', text: 'from ' + s.config_source }) : null),
      h('td', null, h('span', { class: 'badge ' + status, 'data-role': 'status', text: status })),
      h('td', { text: s.transport || s.transportType || '' }),
      h('td', { 'data-started': Number.isNaN(started) ? null : String(started), 'data-role': 'uptime', text: Number.isNaN(started) ? '—' : duration((Date.now() - started) / 1000) }),
      h('td', { 'data-role': 'restarts', text: String(s.restarts ?? 0) }),
      h('td', { 'data-role': 'tools', text: String(caps(s, 'tools').length) }),
      h('td', { 'data-role': 'resources', text: String(caps(s, 'resources').length + caps(s, 'resourceTemplates').length) }),
      h('td', { 'data-role': 'prompts', text: String(caps(s, 'prompts').length) }),
      h('td', null, h('div', { class: 'actions' }, actions)));
  }

  // Uptime ticks locally from lastStarted; the server is asked again only when an event says so.
  function tickUptime() {
    for (const td of document.querySelectorAll('td[data-started]')) {
      td.textContent = duration((Date.now() - Number(td.getAttribute('data-started'))) / 1000);
    }
  }

  async function serverAction(ev, name, action) {
    const row = ev.target.closest('tr');
    for (const b of row.querySelectorAll('button')) b.disabled = true;
    const body = { server_name: name };
    let res;
    if (action === 'start') res = await api('POST', '/api/servers/start', body);
    else if (action === 'stop') res = await api('POST', '/api/servers/stop', body);
    else if (action === 'disable') res = await api('POST', '/api/servers/stop?disable=true', body);
    else if (action === 'refresh') res = await api('POST', '/api/servers/refresh', body);
    else if (action === 'restart') {
      res = await api('POST', '/api/servers/stop', body);
      if (res.ok) res = await api('POST', '/api/servers/start', body);
    } else if (action === 'authorize') {
      res = await api('POST', '/api/servers/authorize', body);
      if (res.ok) {
        const url = res.data && res.data.authorizationUrl;
        let parsed = null;
        try { parsed = new URL(url); } catch (_) { parsed = null; }
        if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) {
          toast('The hub returned no usable authorization URL.');
        } else {
          // The authorization server sends the browser back to the hub's callback in that tab;
          // this one updates when the hub announces the server.
          window.open(parsed.href, '_blank', 'noopener');
          toast(`Complete the authorization of ${name} in the new tab; this page updates by itself.`);
        }
      }
    }
    if (res && !res.ok) toast(`${action} ${name}: ${apiError(res)}`);
    loadServers();
  }

  // ---------------------------------------------------------------- tools
  function allTools() {
    const out = [];
    for (const s of state.servers) {
      if (s.status !== 'connected') continue;
      for (const t of caps(s, 'tools')) out.push({ server: s.name, tool: t });
    }
    return out;
  }

  function renderToolList() {
    const q = $('tool-search').value.trim().toLowerCase();
    const list = $('tool-list');
    const items = [];
    let group = null;
    for (const { server, tool } of allTools()) {
      const hay = `${server} ${tool.name} ${tool.title || ''} ${tool.description || ''}`.toLowerCase();
      if (q && !hay.includes(q)) continue;
      if (group !== server) {
        group = server;
        items.push(h('li', { class: 'group', text: server }));
      }
      const sel = state.tool && state.tool.server === server && state.tool.name === tool.name;
      items.push(h('li', { class: sel ? 'selected' : null, 'data-server': server, 'data-tool': tool.name, onclick: () => selectTool(server, tool.name) },
        h('div', { class: 'name', text: tool.name }),
        tool.description ? h('div', { class: 'desc', text: tool.description }) : null));
    }
    if (!items.length) items.push(h('li', { class: 'group', text: q ? 'No tool matches.' : 'No tools (no server connected).' }));
    list.replaceChildren(...items);
  }

  function findTool(server, name) {
    const s = state.servers.find((x) => x.name === server);
    return s ? caps(s, 'tools').find((t) => t.name === name) : null;
  }

  function selectTool(server, name) {
    state.tool = { server, name };
    renderToolList();
    const tool = findTool(server, name);
    const pane = $('tool-detail');
    if (!tool) { pane.replaceChildren(h('p', { class: 'muted', text: 'That tool is gone.' })); return; }
    const form = schemaForm(tool.inputSchema || {});
    const raw = h('textarea', { class: 'hidden', 'data-role': 'raw-args', rows: 8, spellcheck: 'false' });
    const rawToggle = h('label', { class: 'row' }, h('input', { type: 'checkbox', 'data-role': 'raw-toggle', onchange: (ev) => {
      if (ev.target.checked) {
        try { raw.value = JSON.stringify(form.collect(), null, 2); } catch (_) { raw.value = '{}'; }
      }
      raw.classList.toggle('hidden', !ev.target.checked);
      form.el.classList.toggle('hidden', ev.target.checked);
    } }), 'Edit arguments as JSON');
    const result = h('div', { 'data-role': 'result' });
    const run = h('button', { type: 'submit', class: 'primary', 'data-action': 'run' }, 'Run');
    const submit = async (ev) => {
      ev.preventDefault();
      let args;
      try {
        args = raw.classList.contains('hidden') ? form.collect() : JSON.parse(raw.value || '{}');
      } catch (e) {
        result.replaceChildren(h('p', { class: 'error', 'data-role': 'error', text: e.message }));
        return;
      }
      run.disabled = true;
      result.replaceChildren(h('p', { class: 'muted', text: 'Running…' }));
      const res = await api('POST', '/api/servers/tools', { server_name: server, tool: name, arguments: args });
      run.disabled = false;
      result.replaceChildren(res.ok ? toolResult(res.data && res.data.result) : errorBlock(res));
    };
    pane.replaceChildren(
      h('h3', { text: tool.name }),
      h('div', null, h('span', { class: 'tag', text: server }), tool.title ? h('span', { class: 'tag', text: tool.title }) : null),
      h('div', { class: 'desc', 'data-role': 'description', text: tool.description || '' }),
      h('form', { class: 'args', 'data-role': 'tool-form', onsubmit: submit }, form.el, rawToggle, raw, h('div', { class: 'row' }, run)),
      result);
  }

  // ---------------------------------------------------------------- resources
  function renderResourceList() {
    const items = [];
    for (const s of state.servers) {
      if (s.status !== 'connected') continue;
      const rs = caps(s, 'resources'), ts = caps(s, 'resourceTemplates');
      if (!rs.length && !ts.length) continue;
      items.push(h('li', { class: 'group', text: s.name }));
      for (const r of rs) {
        items.push(h('li', { 'data-server': s.name, 'data-uri': r.uri, onclick: () => selectResource(s.name, r, false) },
          h('div', { class: 'name', text: r.name || r.uri }), h('div', { class: 'desc', text: r.uri })));
      }
      for (const t of ts) {
        items.push(h('li', { 'data-server': s.name, 'data-template': t.uriTemplate, onclick: () => selectResource(s.name, t, true) },
          h('div', { class: 'name', text: t.name || t.uriTemplate }), h('div', { class: 'desc', text: 'template ' + t.uriTemplate })));
      }
    }
    if (!items.length) items.push(h('li', { class: 'group', text: 'No resources.' }));
    $('resource-list').replaceChildren(...items);
  }

  function selectResource(server, r, template) {
    const uri = h('input', { type: 'text', 'data-role': 'uri', value: template ? r.uriTemplate : r.uri, autocomplete: 'off' });
    const result = h('div', { 'data-role': 'result' });
    const submit = async (ev) => {
      ev.preventDefault();
      result.replaceChildren(h('p', { class: 'muted', text: 'Reading…' }));
      const res = await api('POST', '/api/servers/resources', { server_name: server, uri: uri.value });
      if (!res.ok) { result.replaceChildren(errorBlock(res)); return; }
      const contents = (res.data && res.data.result && res.data.result.contents) || [];
      result.replaceChildren(h('div', { class: 'result', 'data-role': 'resource-result' }, contents.map(resourceContent),
        h('details', null, h('summary', { text: 'Raw JSON' }), h('pre', { text: pretty(res.data && res.data.result) }))));
    };
    $('resource-detail').replaceChildren(
      h('h3', { text: r.name || r.uri || r.uriTemplate }),
      h('div', null, h('span', { class: 'tag', text: server }), r.mimeType ? h('span', { class: 'tag', text: r.mimeType }) : null),
      r.description ? h('div', { class: 'desc', text: r.description }) : null,
      h('form', { class: 'args', onsubmit: submit }, h('label', null, template ? 'URI (fill in the template)' : 'URI', uri),
        h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', 'data-action': 'read' }, 'Read'))),
      result);
  }

  // ---------------------------------------------------------------- prompts
  function renderPromptList() {
    const items = [];
    for (const s of state.servers) {
      if (s.status !== 'connected' || !caps(s, 'prompts').length) continue;
      items.push(h('li', { class: 'group', text: s.name }));
      for (const p of caps(s, 'prompts')) {
        items.push(h('li', { 'data-server': s.name, 'data-prompt': p.name, onclick: () => selectPrompt(s.name, p) },
          h('div', { class: 'name', text: p.name }), p.description ? h('div', { class: 'desc', text: p.description }) : null));
      }
    }
    if (!items.length) items.push(h('li', { class: 'group', text: 'No prompts.' }));
    $('prompt-list').replaceChildren(...items);
  }

  function selectPrompt(server, p) {
    const args = Array.isArray(p.arguments) ? p.arguments : [];
    const inputs = args.map((a) => [a.name, h('input', { type: 'text', name: a.name, autocomplete: 'off' })]);
    const result = h('div', { 'data-role': 'result' });
    const submit = async (ev) => {
      ev.preventDefault();
      const values = {};
      for (const [k, input] of inputs) if (input.value !== '') values[k] = input.value;
      result.replaceChildren(h('p', { class: 'muted', text: 'Getting…' }));
      const res = await api('POST', '/api/servers/prompts', { server_name: server, prompt: p.name, arguments: values });
      if (!res.ok) { result.replaceChildren(errorBlock(res)); return; }
      const r = (res.data && res.data.result) || {};
      const msgs = Array.isArray(r.messages) ? r.messages : [];
      result.replaceChildren(h('div', { class: 'result', 'data-role': 'prompt-result' },
        r.description ? h('p', { class: 'muted', text: r.description }) : null,
        msgs.map((m) => h('div', { class: 'item', 'data-role': 'message' }, h('span', { class: 'tag', text: m.role || '?' }), contentItem(m.content))),
        h('details', null, h('summary', { text: 'Raw JSON' }), h('pre', { text: pretty(r) }))));
    };
    $('prompt-detail').replaceChildren(
      h('h3', { text: p.name }),
      h('div', null, h('span', { class: 'tag', text: server })),
      p.description ? h('div', { class: 'desc', text: p.description }) : null,
      h('form', { class: 'args', onsubmit: submit },
        inputs.map(([k, input], i) => h('label', { 'data-field': k }, h('span', null, k, args[i].required ? h('span', { class: 'req', text: ' *' }) : null), input,
          args[i].description ? h('span', { class: 'hint', text: args[i].description }) : null)),
        inputs.length ? null : h('p', { class: 'muted', text: 'This prompt takes no arguments.' }),
        h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', 'data-action': 'get' }, 'Get'))),
      result);
  }

  // ---------------------------------------------------------------- log
  const logServer = (e) => (e.data && typeof e.data === 'object' && typeof e.data.server === 'string' ? e.data.server : null);

  function logVisible(e) {
    const min = LEVELS[$('log-level').value] ?? 1;
    if ((LEVELS[e.type] ?? 1) < min) return false;
    const srv = $('log-server').value;
    const s = logServer(e);
    if (srv === '-' && s) return false;
    if (srv && srv !== '-' && s !== srv) return false;
    const q = $('log-text').value.trim().toLowerCase();
    if (q && !`${e.message} ${s || ''}`.toLowerCase().includes(q)) return false;
    return true;
  }

  function logLine(e) {
    const t = e.timestamp ? new Date(e.timestamp) : new Date();
    const s = logServer(e);
    return h('li', { 'data-level': e.type, 'data-server': s },
      h('span', { class: 't', text: t.toLocaleTimeString() }),
      h('span', { class: 'lv ' + (e.type in LEVELS ? e.type : 'info'), text: String(e.type || 'info') }),
      s ? h('span', { class: 'srv', text: `[${s}]` }) : null,
      String(e.message ?? ''));
  }

  function addLog(e) {
    state.log.push(e);
    const list = $('log');
    if (state.log.length > MAX_LOG) {
      const gone = state.log.shift();
      if (list.firstChild && list.firstChild.__entry === gone) list.firstChild.remove();
    }
    if (logVisible(e)) {
      const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
      const li = logLine(e);
      li.__entry = e;
      list.append(li);
      if (atEnd) list.scrollTop = list.scrollHeight;
    }
    const s = logServer(e);
    if (s && !$('log-server').querySelector(`option[value="${CSS.escape(s)}"]`)) renderLogServers();
    updateLogCount();
  }

  function renderLog() {
    const lis = state.log.filter(logVisible).map((e) => { const li = logLine(e); li.__entry = e; return li; });
    $('log').replaceChildren(...lis);
    updateLogCount();
  }

  function updateLogCount() {
    $('log-count').textContent = `${$('log').childElementCount} of ${state.log.length} lines`;
  }

  function renderLogServers() {
    const sel = $('log-server');
    const cur = sel.value;
    const names = new Set(state.servers.map((s) => s.name));
    for (const e of state.log) { const s = logServer(e); if (s) names.add(s); }
    sel.replaceChildren(h('option', { value: '' }, 'all'), h('option', { value: '-' }, 'hub only'),
      ...[...names].sort().map((n) => h('option', { value: n }, n)));
    sel.value = cur;
  }

  // ---------------------------------------------------------------- config and workspaces
  async function loadConfig() {
    const [ws, cfg, prof] = await Promise.all([api('GET', '/api/workspaces'), api('GET', '/api/config'), api('GET', '/api/profiles')]);
    const profiles = prof.ok && prof.data && Array.isArray(prof.data.profiles) ? prof.data.profiles : [];
    const prow = profiles.map((p) => h('tr', { 'data-profile': p.name },
      h('td', { text: p.name + (p.description ? ' — ' + p.description : '') }), h('td', { text: p.endpoint || '' }),
      h('td', { text: p.mode || '' }),
      h('td', { text: (p.servers || []).map((s) => s.pattern + ((s.tools && (s.tools.include.length || s.tools.exclude.length)) ? ' (tools: ' + JSON.stringify(s.tools) + ')' : '')).join('\n') + '\n→ ' + (p.matchedServers || []).join(', ') }),
      h('td', { text: `${p.tools} tools, ${p.resources} resources, ${p.prompts} prompts` })));
    if (!prow.length) prow.push(h('tr', null, h('td', { colspan: 5, class: 'muted', text: prof.ok ? 'No profile configured (see docs/CONFIG.md#profiles).' : apiError(prof) })));
    $('profiles').replaceChildren(...prow);
    const rows = [];
    const all = ws.ok && ws.data && ws.data.workspaces && typeof ws.data.workspaces === 'object' ? ws.data.workspaces : {};
    for (const [port, w] of Object.entries(all)) {
      rows.push(h('tr', { 'data-port': port },
        h('td', { text: port }), h('td', { text: w.cwd || '' }),
        h('td', { text: Array.isArray(w.config_files) ? w.config_files.join('\n') : '' }),
        h('td', { text: w.pid ?? '' }), h('td', { text: w.state || '' }), h('td', { text: w.activeConnections ?? '' })));
    }
    if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 6, class: 'muted', text: ws.ok ? 'No workspace registered.' : apiError(ws) })));
    $('workspaces').replaceChildren(...rows);
    const box = $('config');
    if (!cfg.ok) { box.replaceChildren(errorBlock(cfg)); return; }
    const c = cfg.data || {};
    $('config-files').textContent = Array.isArray(c.files) ? 'Files, merged in order: ' + c.files.join(', ') : '';
    const servers = c.servers && typeof c.servers === 'object' ? c.servers : {};
    box.replaceChildren(...Object.entries(servers).map(([name, entry]) => h('div', { class: 'cfg-server', 'data-server': name },
      h('h3', null, name, ' ', h('span', { class: 'tag', 'data-role': 'source', text: entry.config_source || '?' })),
      h('pre', { text: pretty(entry) }))));
  }

  // ---------------------------------------------------------------- tabs and start-up
  function showTab(tab) {
    state.tab = tab;
    for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.getAttribute('data-tab') === tab);
    for (const s of document.querySelectorAll('main > section')) s.classList.toggle('hidden', s.id !== 'tab-' + tab);
    if (tab === 'config') loadConfig();
    location.hash = tab;
  }

  async function start() {
    for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showTab(b.getAttribute('data-tab')));
    $('tool-search').addEventListener('input', renderToolList);
    for (const id of ['log-level', 'log-server']) $(id).addEventListener('change', renderLog);
    $('log-text').addEventListener('input', renderLog);
    $('log-clear').addEventListener('click', () => { state.log = []; renderLog(); });
    $('forget-token').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
    $('token-dialog').addEventListener('cancel', (ev) => ev.preventDefault());
    if (token()) $('forget-token').classList.remove('hidden');
    const tab = location.hash.slice(1);
    if (document.getElementById('tab-' + tab)) showTab(tab);
    setInterval(tickUptime, 1000);
    const health = await api('GET', '/api/health');
    if (health.ok && health.data) setHubState(health.data.state);
    await loadServers();
    followEvents();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
