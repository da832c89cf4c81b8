// zipgate dashboard: jobs, fault rules and the request journal, live.
//
// Served at /_zipgate/ui under `Content-Security-Policy: default-src 'self'`:
// no inline scripts, handlers or style attributes, and every value the server
// sends (paths, bodies, headers, names, messages) goes into the page as text
// (textContent, never innerHTML).
//
// Data flow: one Server-Sent Events stream (GET /_zipgate/events, read with
// fetch so it can carry the token header), opened first; after its `hello`
// every list is fetched whole and events are applied as upserts on top. A
// snapshot and the events that arrive while it is in flight are merged by a
// sequence number (see `seq`), so their order does not matter.
'use strict';

(function () {
  const TOKEN_KEY = 'zipgate-token';
  const TOKEN_HEADER = 'x-zipgate-control-token';
  const MAX_REQUESTS = 500; // journal entries the page holds
  const PAGE = 500; // journal entries asked for per page
  const RETRY_MS = 1000; // between attempts to reopen the event stream
  const JOB_POLL_MS = 2000; // job states also change by time alone
  const CLOCK_POLL_MS = 10000;
  const SILENT_MS = 45000; // three missed keep-alives
  const TERMINAL = new Set(['done', 'failed', 'cancelled', 'expired']);
  const STATE_RANK = { queued: 0, running: 1, ready: 2, downloading: 3, done: 4, failed: 4, cancelled: 4, expired: 4 };

  const $ = (id) => document.getElementById(id);

  const st = {
    token: readToken(),
    tokenWanted: false,
    connected: false,
    instance: null, // the server instance of the last `hello`
    lastId: null, // the last event id seen (a string), for Last-Event-ID
    ready: false,
    seq: 0, // counts applied events; a snapshot keeps what changed after it was asked for
    jobs: new Map(), // id -> {view, seq}
    jobsGone: new Map(), // id -> seq of its `removed` event
    requests: new Map(), // id -> {view, seq, row, detail}
    expanded: new Set(), // request ids shown with their details
    faults: { list: [], seq: 0 },
    clock: null, // {ms, at, raw, frozen}
    streamAbort: null,
    wake: null,
  };

  // --- helpers -------------------------------------------------------------

  function readToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || null;
    } catch (_) {
      return null;
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function cell(row, className, text, title) {
    const td = el('td', className, text);
    if (title) td.title = String(title);
    row.appendChild(td);
    return td;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function formatBytes(n) {
    if (n === null || n === undefined) return '…';
    if (n < 1024) return `${n} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
  }

  function isoSeconds(ms) {
    return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
  }

  // "in 59 s", "2 min ago", against the server clock.
  function relative(ms) {
    if (!st.clock) return '';
    const d = Math.round((ms - clockNow()) / 1000);
    const a = Math.abs(d);
    let text;
    if (a < 120) text = `${a} s`;
    else if (a < 7200) text = `${Math.round(a / 60)} min`;
    else if (a < 172800) text = `${Math.round(a / 3600)} h`;
    else text = `${Math.round(a / 86400)} d`;
    return d >= 0 ? `in ${text}` : `${text} ago`;
  }

  function safeClass(s) {
    return String(s).replace(/[^A-Za-z0-9_-]/g, '_');
  }

  function sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (st.wake === done) st.wake = null;
        resolve();
      }
      st.wake = done;
    });
  }

  // Runs `fn` once at a time; a call while it runs asks for one more run
  // after it (and shares its promise), so the last call always sees fresh data.
  function coalesced(fn) {
    let running = null;
    let again = false;
    return function run() {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        try {
          do {
            again = false;
            await fn();
          } while (again);
        } finally {
          running = null;
        }
      })();
      return running;
    };
  }

  function notice(text) {
    const n = $('notice');
    n.textContent = text || '';
    n.hidden = !text;
  }

  // --- the control plane -----------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const headers = { accept: 'application/json' };
    if (st.token) headers[TOKEN_HEADER] = st.token;
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    const text = await r.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (r.status === 401) askToken(st.token ? 'The server refused this token.' : '');
    if (!r.ok) {
      const why = data && typeof data.message === 'string' ? data.message : text || r.statusText;
      throw new ApiError(r.status, `${method} ${path}: ${r.status} ${why}`, data);
    }
    return data;
  }

  // The server's own words for a refused request.
  function apiMessage(e) {
    if (e instanceof ApiError && e.body && typeof e.body.message === 'string') {
      return e.body.error ? `${e.body.message} (${e.status} ${e.body.error})` : e.body.message;
    }
    return e && e.message ? e.message : String(e);
  }

  // --- token -----------------------------------------------------------------

  function askToken(message) {
    const form = $('token-form');
    const first = form.hidden;
    st.tokenWanted = true;
    form.hidden = false;
    $('token-error').textContent = message || '';
    setConn(false);
    if (first) $('token-input').focus();
  }

  function saveToken() {
    const token = $('token-input').value.trim();
    if (!token) {
      $('token-error').textContent = 'Enter the token.';
      return;
    }
    st.token = token;
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch (_) {
      // kept for this page only
    }
    st.tokenWanted = false;
    $('token-input').value = '';
    $('token-error').textContent = '';
    $('token-form').hidden = true;
    reconnectNow();
  }

  // --- the event stream --------------------------------------------------------

  function setConn(live) {
    st.connected = live;
    const c = $('conn');
    c.textContent = live ? 'live' : 'reconnecting…';
    c.classList.toggle('conn-live', live);
    c.classList.toggle('conn-down', !live);
  }

  function reconnectNow() {
    if (st.streamAbort) st.streamAbort.abort();
    if (st.wake) st.wake();
  }

  async function streamLoop() {
    for (;;) {
      if (!st.tokenWanted) {
        const ctrl = new AbortController();
        st.streamAbort = ctrl;
        try {
          await readStream(ctrl.signal);
        } catch (e) {
          if (!ctrl.signal.aborted) console.warn('zipgate: event stream:', e && e.message ? e.message : e);
        }
        if (st.streamAbort === ctrl) st.streamAbort = null;
        setConn(false);
      }
      await sleep(RETRY_MS);
    }
  }

  async function readStream(signal) {
    const headers = { accept: 'text/event-stream' };
    if (st.token) headers[TOKEN_HEADER] = st.token;
    if (st.lastId !== null) headers['last-event-id'] = st.lastId;
    const r = await fetch('/_zipgate/events', { headers, signal, cache: 'no-store', credentials: 'same-origin' });
    if (r.status === 401) {
      if (r.body) r.body.cancel().catch(() => {});
      askToken(st.token ? 'The server refused this token.' : '');
      return;
    }
    if (!r.ok || !r.body) {
      if (r.body) r.body.cancel().catch(() => {});
      throw new Error(`GET /_zipgate/events answered ${r.status}`);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    const parser = sseParser(dispatch);
    // The server sends a keep-alive every 15 s: a stream silent for much
    // longer is a dead connection that never said so.
    let heard = performance.now();
    const watchdog = setInterval(() => {
      if (performance.now() - heard > SILENT_MS) reader.cancel().catch(() => {});
    }, 5000);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        heard = performance.now();
        parser.push(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearInterval(watchdog);
      reader.cancel().catch(() => {});
    }
  }

  // text/event-stream framing: `field: value` lines, a blank line ends an
  // event, `:` starts a comment; lines end in \n, \r\n or \r.
  function sseParser(onEvent) {
    let buf = '';
    let type = '';
    let data = [];
    let id = null;
    function line(l) {
      if (l === '') {
        if (data.length) onEvent({ type: type || 'message', data: data.join('\n'), id });
        type = '';
        data = [];
        id = null;
        return;
      }
      if (l[0] === ':') return;
      const colon = l.indexOf(':');
      const field = colon < 0 ? l : l.slice(0, colon);
      let value = colon < 0 ? '' : l.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && value.indexOf('\0') < 0) id = value;
    }
    const eol = /\r\n|\r|\n/g;
    return {
      push(chunk) {
        buf += chunk;
        let pos = 0;
        for (;;) {
          eol.lastIndex = pos;
          const hit = eol.exec(buf);
          if (!hit) break;
          // A \r at the very end may be the first half of \r\n.
          if (hit[0] === '\r' && hit.index === buf.length - 1) break;
          line(buf.slice(pos, hit.index));
          pos = hit.index + hit[0].length;
        }
        buf = buf.slice(pos);
      },
    };
  }

  function dispatch(ev) {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch (_) {
      console.warn('zipgate: event', ev.type, 'carries no JSON');
      return;
    }
    if (ev.id !== null) st.lastId = ev.id;
    st.seq += 1;
    const seq = st.seq;
    switch (ev.type) {
      case 'hello':
        onHello(data || {});
        break;
      case 'job':
        if (data && data.id !== undefined) {
          applyJob(data, seq);
          renderJobs();
        }
        break;
      case 'request':
        if (data && data.id !== undefined) {
          upsertRequest(data, seq);
          trimRequests();
          updateRequestCount();
        }
        break;
      case 'fault':
        if (data && Array.isArray(data.faults)) {
          st.faults = { list: data.faults, seq };
          renderFaults();
        }
        break;
      case 'clock':
        if (data && data.now) setClock(data.now, false);
        break;
      case 'reset':
      case 'resync':
        refetchAll();
        break;
      default:
        break; // an event this page does not know yet
    }
  }

  function onHello(hello) {
    if (hello.instance !== st.instance) {
      // First contact, or the server restarted: its event ids start over.
      if (st.instance !== null) st.expanded.clear();
      st.instance = hello.instance;
      st.lastId = hello.last_id === undefined || hello.last_id === null ? null : String(hello.last_id);
    } else if (st.lastId === null && hello.last_id !== undefined && hello.last_id !== null) {
      st.lastId = String(hello.last_id);
    }
    setConn(true);
    refetchAll();
  }

  // --- snapshots -----------------------------------------------------------------

  const refetchAll = coalesced(async () => {
    try {
      await Promise.all([fetchJobs(), fetchRequests(), fetchFaults(), fetchClock(), fetchHealth()]);
      notice('');
      if (!st.ready) {
        st.ready = true;
        document.body.dataset.ready = '1';
        // A second reading soon tells a frozen clock (--clock frozen) from a running one.
        setTimeout(() => fetchClock().catch(() => {}), 2000);
      }
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) notice(apiMessage(e));
    }
  });

  const fetchJobs = coalesced(async () => {
    const since = st.seq;
    const data = await api('GET', '/_zipgate/jobs');
    const next = new Map();
    for (const view of (data && data.jobs) || []) next.set(view.id, { view, seq: 0 });
    // What events said after the snapshot was asked for stays, unless the
    // snapshot is further along.
    for (const [id, cur] of st.jobs) {
      if (cur.seq > since) {
        const snap = next.get(id);
        if (!snap || !jobBehind(cur.view, snap.view)) next.set(id, cur);
      }
    }
    for (const [id, seq] of st.jobsGone) {
      if (seq > since) next.delete(id);
      else st.jobsGone.delete(id);
    }
    st.jobs = next;
    renderJobs();
  });

  // a is behind b: fewer downloads, fewer bytes, an earlier state, less progress.
  function jobBehind(a, b) {
    const key = (j) => [j.downloads || 0, j.bytes_sent || 0, STATE_RANK[j.state] ?? 0, (j.progress && j.progress.done) || 0];
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) {
      if (ka[i] !== kb[i]) return ka[i] < kb[i];
    }
    return false;
  }

  function applyJob(data, seq) {
    if (data.removed) {
      st.jobs.delete(data.id);
      st.jobsGone.set(data.id, seq);
    } else {
      st.jobs.set(data.id, { view: data, seq });
      st.jobsGone.delete(data.id);
    }
  }

  const fetchRequests = coalesced(async () => {
    const since = st.seq;
    const views = [];
    let after = null;
    for (let page = 0; page < 1000; page++) {
      const query = `limit=${PAGE}` + (after === null ? '' : `&after=${encodeURIComponent(after)}`);
      const data = await api('GET', `/_zipgate/requests?${query}`);
      const list = (data && data.requests) || [];
      for (const v of list) views.push(v);
      if (views.length > MAX_REQUESTS) views.splice(0, views.length - MAX_REQUESTS);
      if (data.next_after === null || data.next_after === undefined || !list.length) break;
      after = data.next_after;
    }
    const keep = new Map();
    for (const v of views) keep.set(v.id, v);
    for (const [id, cur] of st.requests) {
      if (cur.seq > since) {
        const snap = keep.get(id);
        if (!snap || !requestBehind(cur.view, snap)) keep.set(id, cur.view);
      }
    }
    for (const id of Array.from(st.requests.keys())) {
      if (!keep.has(id)) removeRequest(id);
    }
    for (const [id, view] of keep) {
      const cur = st.requests.get(id);
      if (!cur || cur.view !== view) upsertRequest(view, cur && cur.view === view ? cur.seq : 0);
    }
    reorderRequests();
    trimRequests();
    updateRequestCount();
  });

  // a is behind b: b has a status or bytes_sent that a still lacks.
  function requestBehind(a, b) {
    return (a.status === null && b.status !== null) || (a.bytes_sent === null && b.bytes_sent !== null);
  }

  const fetchFaults = coalesced(async () => {
    const since = st.seq;
    const data = await api('GET', '/_zipgate/faults');
    if (st.faults.seq <= since) {
      st.faults = { list: (data && data.faults) || [], seq: 0 };
      renderFaults();
    }
  });

  const fetchClock = coalesced(async () => {
    const data = await api('GET', '/_zipgate/clock');
    if (data && data.now) setClock(data.now, true);
  });

  async function fetchHealth() {
    // Health needs no token; it names the version and the dialects served.
    const r = await fetch('/_zipgate/health', { cache: 'no-store', credentials: 'same-origin' });
    if (!r.ok) throw new ApiError(r.status, `GET /_zipgate/health: ${r.status}`, null);
    const h = await r.json();
    $('version').textContent = h.version ? `v${h.version}` : '';
    if (Array.isArray(h.dialects)) setDialects(h.dialects.map(String));
  }

  // The dialect choices are the ones this server mounts (a rule naming
  // another is refused), kept after the first "any"/"all" option.
  function setDialects(names) {
    for (const id of ['fault-dialect', 'filter-dialect']) {
      const select = $(id);
      const chosen = select.value;
      while (select.options.length > 1) select.remove(1);
      for (const name of names) {
        const option = el('option', null, name);
        option.value = name;
        select.appendChild(option);
      }
      select.value = names.includes(chosen) ? chosen : '';
    }
  }

  // --- clock -------------------------------------------------------------------

  // The server clock ticks on here between answers; with `--clock frozen` it
  // does not move, which two equal answers some time apart reveal.
  function setClock(raw, polled) {
    const ms = Date.parse(raw);
    if (Number.isNaN(ms)) return;
    const now = performance.now();
    let frozen = st.clock ? st.clock.frozen : false;
    if (polled && st.clock) {
      if (raw === st.clock.raw) frozen = frozen || now - st.clock.at > 1500;
      else frozen = false;
    }
    st.clock = { ms, at: now, raw, frozen };
    showClock();
  }

  function clockNow() {
    if (!st.clock) return Date.now();
    return st.clock.frozen ? st.clock.ms : st.clock.ms + (performance.now() - st.clock.at);
  }

  function showClock() {
    const c = $('clock-now');
    if (!st.clock) {
      c.textContent = '–';
      return;
    }
    c.textContent = isoSeconds(clockNow());
    c.dateTime = st.clock.raw;
    c.title = `server clock, last read ${st.clock.raw}${st.clock.frozen ? ' (frozen)' : ''}`;
    c.classList.toggle('frozen', st.clock.frozen);
  }

  function tick() {
    showClock();
    for (const td of $('jobs-body').querySelectorAll('td.job-expires')) showExpiry(td);
  }

  // --- jobs --------------------------------------------------------------------

  function renderJobs() {
    const body = $('jobs-body');
    const views = Array.from(st.jobs.values(), (j) => j.view);
    views.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : a.id < b.id ? -1 : 1));
    const rows = views.map(jobRow);
    clear(body);
    for (const row of rows) body.appendChild(row);
    $('jobs-empty').hidden = views.length > 0;
    $('jobs-count').textContent = views.length ? String(views.length) : '';
  }

  function jobRow(j) {
    const row = el('tr', `job state-${safeClass(j.state)}`);
    row.dataset.jobId = j.id;
    row.dataset.state = j.state;
    row.dataset.dialect = j.dialect;
    cell(row, 'job-dialect', j.dialect);
    cell(row, 'job-id mono trunc', j.id, j.id);
    cell(row, 'job-owner', j.owner === null ? '—' : j.owner, j.owner === null ? 'anonymous' : null);
    cell(row, 'job-name trunc', j.name, j.name);
    const state = cell(row, 'job-state');
    const badge = el('span', `badge state-${safeClass(j.state)}`, j.state);
    state.appendChild(badge);
    if (j.error) {
      state.appendChild(el('span', 'job-error', j.error));
      state.title = j.error;
    }
    const progress = cell(row, 'job-progress');
    const of = (j.progress && j.progress.of) || 0;
    const done = (j.progress && j.progress.done) || 0;
    if (of > 0) {
      const bar = el('progress');
      bar.max = of;
      bar.value = Math.min(done, of);
      progress.appendChild(bar);
    }
    progress.appendChild(el('span', 'muted', `${done}/${of}`));
    const files = `${j.files} file${j.files === 1 ? '' : 's'}, ${j.entries} entr${j.entries === 1 ? 'y' : 'ies'}`;
    progress.title = j.archive_bytes === null ? files : `${files}, archive ${j.archive_bytes} bytes`;
    const sent = cell(row, 'job-bytes num', formatBytes(j.bytes_sent), `${j.bytes_sent} bytes in ${j.downloads} download${j.downloads === 1 ? '' : 's'}`);
    sent.dataset.bytes = String(j.bytes_sent);
    sent.dataset.downloads = String(j.downloads);
    if (j.downloads > 1) sent.appendChild(el('span', 'muted', ` ×${j.downloads}`));
    const expires = cell(row, 'job-expires');
    if (j.expires) {
      expires.dataset.expires = j.expires;
      showExpiry(expires);
    } else {
      expires.textContent = '—';
    }
    return row;
  }

  function showExpiry(td) {
    const raw = td.dataset.expires;
    if (!raw) return;
    const ms = Date.parse(raw);
    td.textContent = `${raw.slice(11, 19)} `;
    td.appendChild(el('span', 'muted', relative(ms)));
    td.title = raw;
  }

  // --- faults --------------------------------------------------------------------

  function describeMatch(m) {
    const parts = [];
    if (!m) return 'any request';
    if (m.dialect) parts.push(m.dialect);
    if (m.method) parts.push(m.method.toUpperCase());
    if (m.path) parts.push(m.path);
    if (m.user) parts.push(`user ${m.user}`);
    return parts.length ? parts.join(' ') : 'any request';
  }

  function describeAction(f) {
    const parts = [];
    if (f.respond) {
      let s = `respond ${f.respond.status}`;
      if (f.respond.message !== undefined) s += ` “${f.respond.message}”`;
      if (f.respond.headers) {
        s += ` + ${Object.entries(f.respond.headers).map(([k, v]) => `${k}: ${v}`).join(', ')}`;
      }
      parts.push(s);
    }
    if (f.delay_ms !== undefined) parts.push(`delay ${f.delay_ms} ms`);
    if (f.throttle_bytes_per_sec !== undefined) parts.push(`throttle ${formatBytes(f.throttle_bytes_per_sec)}/s`);
    if (f.cut) parts.push(`cut after ${f.cut.after_bytes} B (${f.cut.how || 'reset'})`);
    if (f.job) {
      if (f.job.fail !== undefined) parts.push(`job fails “${f.job.fail}”`);
      else if (f.job.stuck !== undefined) parts.push(`job stuck ${f.job.stuck}`);
      else if (f.job.unreadable) parts.push(`unreadable ${f.job.unreadable.join(', ')}`);
      else if (f.job.deleted) parts.push(`deleted ${f.job.deleted.join(', ')}`);
      else parts.push(`job ${JSON.stringify(f.job)}`);
    }
    return parts.join('; ') || '—';
  }

  function describeLimits(f) {
    const parts = [];
    if (f.times !== undefined) parts.push(`times ${f.times}`);
    if (f.after !== undefined) parts.push(`after ${f.after}`);
    if (f.probability !== undefined) parts.push(`p ${f.probability}`);
    if (f.seed !== undefined) parts.push(`seed ${f.seed}`);
    return parts.join(', ') || 'every match';
  }

  function renderFaults() {
    const body = $('faults-body');
    clear(body);
    const list = st.faults.list;
    for (const f of list) {
      const row = el('tr', 'fault');
      row.dataset.faultId = f.id;
      cell(row, 'fault-id mono', f.id);
      cell(row, 'fault-match mono', describeMatch(f.match));
      cell(row, 'fault-action', describeAction(f));
      cell(row, 'fault-limits muted', describeLimits(f));
      cell(row, 'fault-matched num', f.matched);
      const fired = cell(row, 'fault-fired num', f.fired);
      fired.dataset.fired = String(f.fired);
      if (f.fired > 0) fired.classList.add('hot');
      cell(row, 'fault-remaining num', f.remaining === undefined ? '—' : f.remaining);
      const actions = cell(row, 'fault-actions');
      const del = el('button', 'fault-delete', 'Delete');
      del.type = 'button';
      del.dataset.faultId = f.id;
      del.title = `DELETE /_zipgate/faults/${f.id}`;
      actions.appendChild(del);
      body.appendChild(row);
    }
    $('faults-empty').hidden = list.length > 0;
    $('faults-count').textContent = list.length ? String(list.length) : '';
  }

  async function addFault() {
    const err = $('fault-error');
    const button = $('fault-add');
    const statusText = $('fault-status').value.trim();
    if (!/^\d+$/.test(statusText)) {
      err.textContent = 'respond status: a number such as 503';
      return;
    }
    const rule = {};
    const match = {};
    const dialect = $('fault-dialect').value;
    const method = $('fault-method').value.trim();
    const path = $('fault-path').value.trim();
    if (dialect) match.dialect = dialect;
    if (method) match.method = method.toUpperCase();
    if (path) match.path = path;
    if (Object.keys(match).length) rule.match = match;
    rule.respond = { status: Number(statusText) };
    const message = $('fault-message').value;
    if (message.trim()) rule.respond.message = message;
    const times = $('fault-times').value.trim();
    if (times) {
      if (!/^\d+$/.test(times)) {
        err.textContent = 'times: a whole number, or empty for every match';
        return;
      }
      rule.times = Number(times);
    }
    button.disabled = true;
    try {
      await api('POST', '/_zipgate/faults', rule);
      err.textContent = '';
      await fetchFaults();
    } catch (e) {
      err.textContent = apiMessage(e);
    } finally {
      button.disabled = false;
    }
  }

  async function deleteFault(button) {
    const id = button.dataset.faultId;
    button.disabled = true;
    try {
      await api('DELETE', `/_zipgate/faults/${encodeURIComponent(id)}`);
      $('fault-error').textContent = '';
    } catch (e) {
      $('fault-error').textContent = apiMessage(e);
      button.disabled = false;
    }
    try {
      await fetchFaults();
    } catch (e) {
      notice(apiMessage(e));
    }
  }

  // --- requests --------------------------------------------------------------------

  function upsertRequest(view, seq) {
    let cur = st.requests.get(view.id);
    if (!cur) {
      const row = el('tr', 'req');
      row.tabIndex = 0;
      cur = { view, seq, row, detail: null };
      st.requests.set(view.id, cur);
      insertRow(cur);
    }
    cur.view = view;
    cur.seq = seq;
    fillRequestRow(cur.row, view);
    if (st.expanded.has(view.id)) showDetail(cur);
    filterRow(cur);
  }

  // Newest first: before the first row with a smaller id.
  function insertRow(cur) {
    const body = $('requests-body');
    const id = cur.view.id;
    let before = null;
    for (const row of body.children) {
      if (row.classList.contains('req') && Number(row.dataset.requestId) < id) {
        before = row;
        break;
      }
    }
    body.insertBefore(cur.row, before);
  }

  function reorderRequests() {
    const body = $('requests-body');
    const ids = Array.from(st.requests.keys()).sort((a, b) => b - a);
    for (const id of ids) {
      const cur = st.requests.get(id);
      body.appendChild(cur.row);
      if (cur.detail) body.appendChild(cur.detail);
    }
  }

  function removeRequest(id) {
    const cur = st.requests.get(id);
    if (!cur) return;
    cur.row.remove();
    if (cur.detail) cur.detail.remove();
    st.requests.delete(id);
    st.expanded.delete(id);
  }

  function trimRequests() {
    if (st.requests.size <= MAX_REQUESTS) return;
    const ids = Array.from(st.requests.keys()).sort((a, b) => a - b);
    for (const id of ids.slice(0, ids.length - MAX_REQUESTS)) removeRequest(id);
  }

  function statusClass(status) {
    if (status === null || status === undefined) return 'pending';
    return `s${Math.floor(status / 100)}xx`;
  }

  function fillRequestRow(row, v) {
    clear(row);
    row.dataset.requestId = String(v.id);
    row.dataset.dialect = v.dialect || '';
    row.dataset.method = v.method;
    row.dataset.status = v.status === null || v.status === undefined ? '' : String(v.status);
    row.classList.toggle('expanded', st.expanded.has(v.id));
    row.classList.toggle('faulted', v.faults && v.faults.length > 0);
    cell(row, 'req-id num muted', v.id);
    cell(row, 'req-time mono', v.time ? v.time.slice(11, 23) : '', v.time);
    cell(row, 'req-dialect', v.dialect || '—');
    cell(row, 'req-method mono', v.method);
    const target = v.query === null || v.query === undefined ? v.path : `${v.path}?${v.query}`;
    cell(row, 'req-path mono trunc', target, target);
    cell(row, `req-status num ${statusClass(v.status)}`, v.status === null || v.status === undefined ? '…' : v.status);
    cell(row, 'req-bytes num', formatBytes(v.bytes_sent), v.bytes_sent === null ? 'not yet known' : `${v.bytes_sent} bytes`);
    cell(row, 'req-faults mono', (v.faults || []).join(', '));
  }

  function showDetail(cur) {
    const v = cur.view;
    if (!cur.detail) {
      cur.detail = el('tr', 'req-detail');
      cur.row.after(cur.detail);
    }
    const tr = cur.detail;
    tr.dataset.requestId = String(v.id);
    clear(tr);
    const td = el('td');
    td.colSpan = 8;
    const box = el('div', 'detail');

    const grid = el('dl', 'kv');
    const pair = (k, value, cls) => {
      grid.appendChild(el('dt', null, k));
      grid.appendChild(el('dd', cls || 'mono', value));
    };
    pair('request', `${v.method} ${v.path}`);
    const path = decoded(v.path, false);
    if (path !== v.path) pair('path, decoded', path);
    pair('query', v.query === null || v.query === undefined ? '(none)' : v.query);
    if (v.query) {
      const query = decoded(v.query, true);
      if (query !== v.query) pair('query, decoded', query);
    }
    pair('time', v.time);
    pair('status', v.status === null || v.status === undefined ? '(not answered yet)' : String(v.status));
    pair('bytes sent', v.bytes_sent === null || v.bytes_sent === undefined ? '(not yet known)' : `${v.bytes_sent}`);
    if (v.faults && v.faults.length) pair('faults', v.faults.join(', '));
    box.appendChild(grid);

    box.appendChild(el('h3', null, `headers (${(v.headers || []).length})`));
    const lines = (v.headers || []).map((h) => `${h[0]}: ${h[1]}`).join('\n');
    box.appendChild(el('pre', 'headers', lines || '(none)'));

    let about = `body (${v.body_size} byte${v.body_size === 1 ? '' : 's'}`;
    if (v.body_truncated) about += `, the first ${v.body === null ? 0 : v.body.length} characters shown`;
    about += ')';
    box.appendChild(el('h3', null, about));
    let body;
    if (v.body === null || v.body === undefined) body = '(not read)';
    else if (v.body === '') body = '(empty)';
    else body = v.body;
    box.appendChild(el('pre', v.body ? 'body' : 'body muted', body));

    td.appendChild(box);
    tr.appendChild(td);
    tr.hidden = cur.row.hidden;
  }

  // Percent-decoded for reading (shown as text like the rest); as sent when
  // it does not decode.
  function decoded(text, form) {
    try {
      return decodeURIComponent(form ? text.replace(/\+/g, ' ') : text);
    } catch (_) {
      return text;
    }
  }

  function toggleRequest(row) {
    const id = Number(row.dataset.requestId);
    const cur = st.requests.get(id);
    if (!cur) return;
    if (st.expanded.has(id)) {
      st.expanded.delete(id);
      if (cur.detail) {
        cur.detail.remove();
        cur.detail = null;
      }
      row.classList.remove('expanded');
    } else {
      st.expanded.add(id);
      row.classList.add('expanded');
      showDetail(cur);
    }
  }

  function currentFilter() {
    const statuses = $('filter-status')
      .value.split(/[\s,]+/)
      .map((s) => s.trim().toLowerCase().replace(/x+$/, ''))
      .filter((s) => s !== '');
    return {
      dialect: $('filter-dialect').value,
      method: $('filter-method').value.toUpperCase(),
      statuses,
    };
  }

  function visible(v, f) {
    if (f.dialect === '-' ? v.dialect : f.dialect && (v.dialect || '') !== f.dialect) return false;
    if (f.method && String(v.method).toUpperCase() !== f.method) return false;
    if (f.statuses.length) {
      const s = v.status === null || v.status === undefined ? '' : String(v.status);
      if (!f.statuses.some((p) => (p === '-' ? s === '' : s !== '' && s.startsWith(p)))) return false;
    }
    return true;
  }

  function filterRow(cur, f) {
    const show = visible(cur.view, f || currentFilter());
    cur.row.hidden = !show;
    if (cur.detail) cur.detail.hidden = !show;
  }

  function applyFilters() {
    const f = currentFilter();
    for (const cur of st.requests.values()) filterRow(cur, f);
    updateRequestCount();
  }

  function updateRequestCount() {
    let shown = 0;
    for (const cur of st.requests.values()) if (!cur.row.hidden) shown += 1;
    const total = st.requests.size;
    $('requests-count').textContent = total ? (shown === total ? String(total) : `${shown} of ${total}`) : '';
    $('requests-empty').hidden = shown > 0;
    $('requests-empty').textContent = total ? 'No request matches the filters.' : 'No requests.';
  }

  // --- buttons ----------------------------------------------------------------------

  async function advanceClock() {
    const err = $('clock-error');
    const text = $('clock-seconds').value.trim();
    const seconds = Number(text);
    if (text === '' || !Number.isFinite(seconds) || seconds < 0) {
      err.textContent = 'seconds: a number ≥ 0';
      return;
    }
    const button = $('clock-advance');
    button.disabled = true;
    try {
      const data = await api('POST', '/_zipgate/clock/advance', { seconds });
      err.textContent = '';
      st.seq += 1;
      if (data && data.now) setClock(data.now, false);
      else await fetchClock();
    } catch (e) {
      err.textContent = apiMessage(e);
    } finally {
      button.disabled = false;
    }
  }

  async function reset() {
    const button = $('reset');
    button.disabled = true;
    try {
      await api('POST', '/_zipgate/reset', {});
      st.expanded.clear();
      await refetchAll();
    } catch (e) {
      notice(apiMessage(e));
    } finally {
      button.disabled = false;
    }
  }

  function onEnter(id, fn) {
    $(id).addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        fn();
      }
    });
  }

  function start() {
    $('token-save').addEventListener('click', saveToken);
    onEnter('token-input', saveToken);
    $('reset').addEventListener('click', reset);
    $('clock-advance').addEventListener('click', advanceClock);
    onEnter('clock-seconds', advanceClock);
    $('fault-add').addEventListener('click', addFault);
    for (const id of ['fault-method', 'fault-path', 'fault-status', 'fault-message', 'fault-times']) onEnter(id, addFault);
    $('faults-body').addEventListener('click', (e) => {
      const button = e.target.closest('button.fault-delete');
      if (button) deleteFault(button);
    });
    const requests = $('requests-body');
    requests.addEventListener('click', (e) => {
      const row = e.target.closest('tr.req');
      if (row && !window.getSelection().toString()) toggleRequest(row);
    });
    requests.addEventListener('keydown', (e) => {
      const row = e.target.closest('tr.req');
      if (row && (e.key === 'Enter' || e.key === ' ')) {
        e.preventDefault();
        toggleRequest(row);
      }
    });
    for (const id of ['filter-dialect', 'filter-method', 'filter-status']) {
      $(id).addEventListener('input', applyFilters);
      $(id).addEventListener('change', applyFilters);
    }

    setConn(false);
    renderJobs();
    renderFaults();
    updateRequestCount();
    setInterval(tick, 1000);
    setInterval(() => {
      if (!st.connected) return;
      for (const j of st.jobs.values()) {
        if (!TERMINAL.has(j.view.state)) {
          fetchJobs().catch((e) => notice(apiMessage(e)));
          return;
        }
      }
    }, JOB_POLL_MS);
    setInterval(() => {
      if (st.connected) fetchClock().catch(() => {});
    }, CLOCK_POLL_MS);
    streamLoop();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
