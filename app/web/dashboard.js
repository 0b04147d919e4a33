'use strict';
(function () {
  const params = new URLSearchParams(window.location.search);
  const refreshS = Math.min(60, Math.max(1, Number(params.get('refresh')) || 3));
  const $ = (id) => document.getElementById(id);
  let lastHistory = [];
  let failures = 0;

  // ---- formatting -------------------------------------------------------
  const int = (n) => (n == null ? '—' : Math.round(n).toLocaleString('en-US'));
  const ms = (n) => (n == null ? '—' : n >= 1000 ? (n / 1000).toFixed(2) + ' s' : n.toFixed(n < 10 ? 1 : 0) + ' ms');
  const pct = (n) => (n == null ? '—' : (n * 100).toFixed(n < 0.01 ? 2 : 1) + ' %');
  function bytes(n) {
    if (n == null) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return n.toFixed(i ? 1 : 0) + ' ' + units[i];
  }
  function duration(s) {
    s = Math.floor(s || 0);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + (s % 60) + 's';
    return s + 's';
  }
  function level(value) {
    const s = String(value == null ? '' : value).toLowerCase();
    if (['ok', 'healthy', 'available', 'up', 'closed', 'true'].includes(s)) return 'ok';
    if (['degraded', 'half_open', 'half-open', 'starting', 'connecting'].includes(s)) return 'warn';
    if (['disabled', 'unknown', ''].includes(s)) return 'off';
    return 'bad';
  }

  // ---- DOM helpers (textContent only: server strings are never parsed as HTML) ----
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = String(text);
    return node;
  }
  function setText(id, text) { $(id).textContent = text; }
  function component(name, state, stateText, detail) {
    const box = el('div', 'component');
    box.dataset.state = level(state);
    const row = el('div', 'row');
    row.append(el('span', 'dot'), el('span', 'name', name), el('span', 'state', stateText));
    box.append(row);
    if (detail) box.append(el('div', 'detail', detail));
    return box;
  }

  // ---- sections -----------------------------------------------------------
  function renderHeader(data) {
    const overall = $('overall');
    overall.dataset.state = level(data.status === 'error' ? 'down' : data.status);
    overall.dataset.status = data.status;
    setText('overall-text', { ok: 'All systems operational', degraded: 'Degraded', error: 'Database unreachable' }[data.status] || data.status);
    setText('version', 'v' + data.version);
    setText('environment', data.environment);
    setText('uptime', duration(data.uptime_s));
    const workers = data.cluster ? ' of ' + data.cluster.workers : '';
    setText('worker', data.worker.pid + workers);
    const when = new Date(data.generated_at);
    $('last-updated').dateTime = data.generated_at;
    setText('last-updated', when.toLocaleTimeString('en-GB'));
  }

  function renderTiles(data) {
    const req = data.requests, win = req.window;
    const total = data.cluster ? data.cluster.requests_total : req.total;
    setText('req-total', int(total));
    setText('req-sub', data.cluster ? 'all ' + data.cluster.workers + ' workers' : 'since start');
    setText('req-rate', win.rps.toFixed(win.rps < 10 ? 2 : 1));
    setText('req-latency', ms(win.p95_ms));
    setText('req-p99', 'p50 ' + ms(win.p50_ms) + ' · p99 ' + ms(win.p99_ms));
    const errors = $('req-errors');
    errors.textContent = pct(win.error_rate);
    errors.className = 'value' + (win.error_rate >= 0.05 ? ' bad' : win.error_rate > 0 ? ' warn' : '');
    setText('active-generations', int(data.active_generations));
    setText('active-streams', int(data.active_streams) + ' open streams');
    setText('tokens', int(data.tokens_streamed));
    setText('cpu', data.process.cpu_percent.toFixed(1) + ' %');
    setText('memory', bytes(data.process.rss_bytes) + ' RSS');
    const pool = data.database.pool || {};
    setText('pool', pool.size == null ? 'n/a' : int(pool.checked_out) + ' / ' + int(pool.size));
  }

  function renderDatabase(db) {
    const box = $('database');
    box.dataset.state = level(db.status);
    setText('db-backend', db.backend || 'database');
    setText('db-status', db.status === 'ok' ? 'ok' : 'unreachable');
    setText('db-detail', db.status === 'ok' ? 'SELECT 1 in ' + ms(db.latency_ms) : 'error: ' + (db.error || 'unknown'));
  }

  function renderMcp(servers) {
    const list = $('mcp-list');
    setText('mcp-count', servers.length ? '(' + servers.length + ')' : '');
    if (!servers.length) { list.replaceChildren(el('p', 'empty', 'No MCP servers configured')); return; }
    list.replaceChildren(...servers.map((s) => {
      const endpoints = s.endpoints || s.replicas || [];
      const healthy = endpoints.filter((e) => e.healthy).length;
      const parts = [s.transport, endpoints.length ? healthy + '/' + endpoints.length + ' replicas healthy' : null,
        s.tools_count != null ? s.tools_count + ' tools' : null].filter(Boolean);
      const box = component(s.name, s.status, s.status || 'unknown', parts.join(' · '));
      box.classList.add('mcp-server');
      box.dataset.name = s.name;
      if (endpoints.length) {
        const ul = el('ul', 'replicas');
        for (const e of endpoints) {
          const li = el('li');
          const dot = el('span', 'dot');
          dot.dataset.state = e.healthy ? 'ok' : 'bad';
          const info = [e.latency_ms != null ? ms(e.latency_ms) : null, e.in_flight ? e.in_flight + ' in flight' : null]
            .filter(Boolean).join(' · ');
          const target = el('span', 'target', e.target || e.name || '?');
          target.title = target.textContent;
          li.append(dot, target, el('span', 'info', info));
          if (e.last_error && !e.healthy) li.append(el('span', 'error', 'last error: ' + e.last_error));
          ul.append(li);
        }
        box.append(ul);
      }
      return box;
    }));
  }

  function renderModels(models) {
    const list = $('model-list');
    setText('model-count', models.length ? '(' + models.length + ')' : '');
    if (!models.length) { list.replaceChildren(el('p', 'empty', 'No models configured')); return; }
    list.replaceChildren(...models.map((m) => {
      const state = m.available === false ? 'down' : m.available === true ? 'ok' : m.status;
      const detail = [m.provider, m.id !== m.name ? m.id : null, m.context_window ? int(m.context_window) + ' ctx' : null,
        m.supports_tools ? 'tools' : null].filter(Boolean).join(' · ');
      const box = component(m.name || m.id, state, m.available === false ? 'unavailable' : 'available', detail);
      box.classList.add('model');
      box.dataset.id = m.id;
      if (m.default) box.querySelector('.name').after(el('span', 'badge', 'default'));
      return box;
    }));
  }

  function renderUsage(usage) {
    const items = (usage && usage.today_by_model) || [];
    $('usage').replaceChildren(...items.map((u) => {
      const tr = el('tr');
      tr.append(el('td', null, u.key || '(unknown)'), el('td', 'num', int(u.messages)),
        el('td', 'num', int(u.input_tokens)), el('td', 'num', int(u.output_tokens)),
        el('td', 'num', Number(u.cost_usd || 0).toFixed(4)));
      return tr;
    }));
  }

  function renderRoutes(routes) {
    const body = $('routes');
    const rows = routes.slice(0, 15).map((r) => {
      const tr = el('tr');
      const cells = [el('td', null, r.method), el('td', 'route', r.route), el('td', 'num', int(r.count)),
        el('td', 'num', int(r.client_errors)), el('td', 'num' + (r.server_errors ? ' bad' : ''), int(r.server_errors)),
        el('td', 'num', ms(r.p50_ms)), el('td', 'num', ms(r.p95_ms)), el('td', 'num', ms(r.p99_ms))];
      tr.append(...cells);
      return tr;
    });
    body.replaceChildren(...rows);
  }

  // ---- chart: inline SVG, bars = requests/s, line = average latency ----------
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }
  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 4, 8, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  function renderChart(history) {
    lastHistory = history;
    const chart = $('chart');
    const box = $('chart-box');
    const W = Math.max(300, box.clientWidth), H = Math.max(120, box.clientHeight);
    const pad = { l: 44, r: 56, t: 10, b: 22 };
    const iw = W - pad.l - pad.r, ih = H - pad.t - pad.b;
    chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    const nodes = [];
    const n = history.length || 1;
    const maxRate = niceMax(Math.max(0, ...history.map((p) => p.rps)));
    const maxLat = niceMax(Math.max(0, ...history.map((p) => p.avg_ms)));
    for (let i = 0; i <= 4; i += 1) {
      const y = pad.t + ih - (ih * i) / 4;
      nodes.push(svg('line', { x1: pad.l, x2: W - pad.r, y1: y, y2: y, class: 'grid' }));
      const left = svg('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end' });
      left.textContent = +((maxRate * i) / 4).toFixed(2);
      const right = svg('text', { x: W - pad.r + 6, y: y + 4 });
      const lat = (maxLat * i) / 4;
      right.textContent = lat >= 1000 ? +(lat / 1000).toFixed(2) + ' s' : +lat.toFixed(lat < 10 ? 1 : 0) + (i === 4 ? ' ms' : '');
      nodes.push(left, right);
    }
    const slot = iw / n;
    const points = [];
    history.forEach((p, i) => {
      const x = pad.l + i * slot;
      if (p.rps > 0) {
        const h = Math.max(1, (p.rps / maxRate) * ih);
        nodes.push(svg('rect', { x: x + 1, y: pad.t + ih - h, width: Math.max(1, slot - 2), height: h, class: p.errors ? 'bar err' : 'bar' }));
      }
      if (p.requests > 0) points.push((x + slot / 2).toFixed(1) + ',' + (pad.t + ih - (p.avg_ms / maxLat) * ih).toFixed(1));
      if (i % 12 === 0 || i === n - 1) {
        const label = svg('text', { x: x + slot / 2, y: H - 6, 'text-anchor': 'middle' });
        label.textContent = new Date(p.t * 1000).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
        nodes.push(label);
      }
    });
    if (points.length > 1) nodes.push(svg('polyline', { points: points.join(' '), class: 'line' }));
    else if (points.length === 1) {
      const [cx, cy] = points[0].split(',');
      nodes.push(svg('circle', { cx, cy, r: 3, class: 'line' }));
    }
    chart.replaceChildren(...nodes);
  }

  // ---- refresh loop ----------------------------------------------------------
  async function refresh() {
    try {
      const response = await fetch('/api/status', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      const data = await response.json();
      failures = 0;
      $('banner').hidden = true;
      renderHeader(data);
      renderTiles(data);
      renderDatabase(data.database);
      renderMcp(data.mcp || []);
      renderModels(data.models || []);
      renderUsage(data.usage);
      renderRoutes(data.requests.routes || []);
      renderChart(data.requests.history || []);
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    } catch (err) {
      failures += 1;
      setText('banner-text', err.message + ' (attempt ' + failures + ')');
      $('banner').hidden = false;
      $('overall').dataset.state = 'bad';
      setText('overall-text', 'Unreachable');
    } finally {
      window.setTimeout(refresh, refreshS * 1000);
    }
  }
  setText('refresh-s', String(refreshS));
  window.addEventListener('resize', () => renderChart(lastHistory));
  refresh();
})();
