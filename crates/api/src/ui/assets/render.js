// Rendering helpers of the mcp-hub console: DOM building (text only, never HTML), the form
// built from a tool's JSON Schema, and the views of tool results, prompt messages and resource
// contents. Imported by app.js.

export function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

export function pretty(v) {
  if (typeof v === 'string') return v;
  try { return JSON.stringify(v, null, 2); } catch (_) { return String(v); }
}

const typeOf = (ps) => (Array.isArray(ps.type) ? ps.type.find((t) => t !== 'null') : ps.type);

// A form for a JSON Schema object: one field per property; objects and arrays as JSON text.
export function schemaForm(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const fields = [];
  const el = h('div', { class: 'fields' });
  for (const [key, ps0] of Object.entries(props)) {
    const ps = ps0 && typeof ps0 === 'object' ? ps0 : {};
    const type = typeOf(ps);
    const enumVals = Array.isArray(ps.enum) ? ps.enum : null;
    let input;
    let read;
    if (enumVals) {
      input = h('select', { name: key }, required.has(key) ? null : h('option', { value: '' }, '(unset)'),
        enumVals.map((v, i) => h('option', { value: String(i), selected: ps.default === v }, String(v))));
      read = () => (input.value === '' ? undefined : enumVals[Number(input.value)]);
    } else if (type === 'boolean') {
      input = h('select', { name: key }, h('option', { value: '' }, '(unset)'), h('option', { value: 'true', selected: ps.default === true }, 'true'), h('option', { value: 'false', selected: ps.default === false }, 'false'));
      read = () => (input.value === '' ? undefined : input.value === 'true');
    } else if (type === 'number' || type === 'integer') {
      input = h('input', { type: 'number', name: key, step: type === 'integer' ? '1' : 'any', value: ps.default ?? null });
      read = () => {
        if (input.value === '') return undefined;
        const n = Number(input.value);
        if (Number.isNaN(n)) throw new Error(`${key}: not a number`);
        return n;
      };
    } else if (type === 'string' || (!type && !ps.properties && !ps.items)) {
      input = h('input', { type: 'text', name: key, value: ps.default ?? null, autocomplete: 'off' });
      read = () => (input.value === '' ? undefined : input.value);
    } else {
      input = h('textarea', { name: key, rows: 3, spellcheck: 'false', placeholder: type === 'array' ? '[ ]' : '{ }' });
      if (ps.default !== undefined) input.value = JSON.stringify(ps.default);
      read = () => {
        if (input.value.trim() === '') return undefined;
        try { return JSON.parse(input.value); } catch (e) { throw new Error(`${key}: invalid JSON (${e.message})`); }
      };
    }
    const hint = [type || 'any', ps.description].filter(Boolean).join(' — ');
    el.append(h('label', { 'data-field': key },
      h('span', null, key, required.has(key) ? h('span', { class: 'req', text: ' *' }) : null),
      input, hint ? h('span', { class: 'hint', text: hint }) : null));
    fields.push([key, read]);
  }
  if (!fields.length) el.append(h('p', { class: 'muted', text: 'This takes no arguments.' }));
  return {
    el,
    collect() {
      const out = {};
      for (const [k, read] of fields) {
        const v = read();
        if (v !== undefined) out[k] = v;
      }
      return out;
    },
  };
}

const BASE64 = /^[A-Za-z0-9+/=\s]*$/;

function dataUrl(mime, data) {
  if (typeof mime !== 'string' || typeof data !== 'string' || !BASE64.test(data)) return null;
  if (!/^[a-z]+\/[A-Za-z0-9.+-]+$/.test(mime)) return null;
  return `data:${mime};base64,${data.replace(/\s/g, '')}`;
}

// One content item of a tool result or prompt message: text, image, audio, resource, link.
export function contentItem(c) {
  if (!c || typeof c !== 'object') return h('pre', { text: pretty(c) });
  if (c.type === 'text') return h('pre', { class: 'item', 'data-role': 'text', text: c.text ?? '' });
  if (c.type === 'image' || c.type === 'audio') {
    const url = dataUrl(c.mimeType, c.data);
    if (!url || !c.mimeType.startsWith(c.type + '/')) return h('p', { class: 'error', text: `${c.type} with an unusable MIME type or data` });
    return c.type === 'image'
      ? h('img', { class: 'item', 'data-role': 'image', src: url, alt: 'image result' })
      : h('audio', { class: 'item', controls: true, src: url });
  }
  if (c.type === 'resource' && c.resource) return resourceContent(c.resource);
  if (c.type === 'resource_link') return h('div', { class: 'item' }, h('span', { class: 'tag', text: 'link' }), c.uri || '', c.name ? ` (${c.name})` : '');
  return h('pre', { class: 'item', text: pretty(c) });
}

export function resourceContent(r) {
  const head = h('div', null, h('span', { class: 'tag', text: r.mimeType || 'resource' }), r.uri || '');
  if (typeof r.text === 'string') return h('div', { class: 'item' }, head, h('pre', { 'data-role': 'text', text: r.text }));
  if (typeof r.blob === 'string') {
    const url = typeof r.mimeType === 'string' && r.mimeType.startsWith('image/') ? dataUrl(r.mimeType, r.blob) : null;
    return h('div', { class: 'item' }, head, url ? h('img', { src: url, alt: r.uri || 'image', 'data-role': 'image' })
      : h('pre', { 'data-role': 'blob', text: `binary, ${Math.floor(r.blob.length * 3 / 4)} bytes (base64):\n${r.blob.slice(0, 400)}${r.blob.length > 400 ? '…' : ''}` }));
  }
  return h('pre', { class: 'item', text: pretty(r) });
}

export function toolResult(result) {
  result = result || {};
  const content = Array.isArray(result.content) ? result.content : [];
  const box = h('div', { class: 'result' + (result.isError ? ' is-error' : ''), 'data-role': 'tool-result' },
    h('p', null, result.isError ? h('strong', { class: 'error', text: 'The tool reported an error' }) : h('strong', { text: 'Result' })),
    content.map(contentItem));
  if (result.structuredContent !== undefined) {
    box.append(h('p', { class: 'muted', text: 'structuredContent' }), h('pre', { 'data-role': 'structured', text: pretty(result.structuredContent) }));
  }
  box.append(h('details', null, h('summary', { text: 'Raw JSON' }), h('pre', { text: pretty(result) })));
  return box;
}

