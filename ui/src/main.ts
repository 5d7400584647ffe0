// flowscope ui's page: the map polled from /api/map, the table fed by /api/flows
// (server-sent events), the filter box checked by /api/filter. Everything is served by the
// flowscope binary itself.

import { duration, percent, rate, statuses } from './format';
import { edgeFilter, FlowTable } from './flowtable';
import { ServiceMap } from './servicemap';
import type { FlowRow, MapEdge, MapSnapshot } from './types';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const MAP_EVERY_MS = 2000;
/** Flows from before the page opened that the table starts with. */
const BACKLOG = 200;
/** Rows held while paused; more are dropped (and counted). */
const MAX_PENDING = 5000;

const state = {
  paused: false,
  filter: '',
  pending: [] as FlowRow[],
  droppedWhilePaused: 0,
  snapshot: null as MapSnapshot | null,
  events: null as EventSource | null,
  /** Time of the newest flow streamed (ns since the epoch). */
  lastSeenNs: 0,
  /** After a resume: flows up to this time were shown already. */
  resumeAfterNs: 0,
  retry: 0,
};

const table = new FlowTable($('flows').querySelector('tbody')!, $('detail'), $('detail-body'));
const map = new ServiceMap($('map'), showEdge);

function windowSeconds(): number {
  return Number($<HTMLSelectElement>('window').value);
}

/** The selected edge: its numbers beside the map, and the table narrowed to its flows. */
function showEdge(e: MapEdge | null, s: MapSnapshot): void {
  const info = $('edge-info');
  const chip = $('edge-filter');
  const was = table.edge?.edge.id;
  table.edge = e ? edgeFilter(e, s) : null;
  info.hidden = chip.hidden = !e;
  if (e) {
    const name = (id: string) => s.nodes.find((n) => n.id === id)?.label ?? id;
    chip.textContent = `${name(e.client)} → ${name(e.server)} ×`;
    chip.title = 'Showing only this edge\'s flows; click to show all';
    const rows: [string, string][] = [
      ['protocols', e.protocols.join(', ')],
      ['flows', String(e.flows)],
      ['requests', `${e.requests} (${rate(e.requests_per_second)})`],
      ['statuses', statuses(e.statuses) || '–'],
      ['errors', `${e.errors} (${percent(e.error_rate)})`],
      ['latency', `p50 ${duration(e.p50_latency_ns)}, p99 ${duration(e.p99_latency_ns)}`],
      ['drops', String(e.drops)],
      ['resets', String(e.resets)],
    ];
    info.innerHTML = '';
    const h = document.createElement('h2');
    h.textContent = `${name(e.client)} → ${name(e.server)}`;
    const dl = document.createElement('dl');
    for (const [k, v] of rows) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dd.dataset.field = k;
      dl.append(dt, dd);
    }
    info.append(h, dl);
  }
  if (was !== table.edge?.edge.id) table.render();
}

async function refreshMap(): Promise<void> {
  if (state.paused) return;
  try {
    const r = await fetch(`api/map?window=${windowSeconds()}`);
    const s = (await r.json()) as MapSnapshot;
    state.snapshot = s;
    map.update(s);
    $('map-empty').hidden = s.nodes.length > 0;
    const agent = $('agent');
    agent.textContent = s.agent.error ? `${s.agent.server}: ${s.agent.error}` : `flows from ${s.agent.server}`;
    agent.classList.toggle('down', !!s.agent.error);
  } catch (e) {
    $('agent').textContent = `flowscope ui is not answering: ${e}`;
    $('agent').classList.add('down');
  }
}

function setLive(text: string, cls: '' | 'paused' | 'down'): void {
  const live = $('live');
  live.textContent = text;
  live.className = `live ${cls}`;
}

/** (Re)starts the table's stream: a new filter starts over with the backlog; after a broken
 * stream it picks up after the last flow it had, so no row shows twice. */
function follow(filter: string, resume = false): void {
  state.events?.close();
  clearTimeout(state.retry);
  // Times are ns since the epoch, past a double's exact integers: ask from 1µs before the
  // last flow and skip what is not newer than it.
  const from = resume && state.lastSeenNs ? `since_ns=${state.lastSeenNs - 1000}` : `last=${BACKLOG}`;
  state.resumeAfterNs = resume ? state.lastSeenNs : 0;
  if (!resume) {
    table.clear();
    state.lastSeenNs = 0;
  }
  const es = new EventSource(`api/flows?filter=${encodeURIComponent(filter)}&${from}`);
  state.events = es;
  setLive(state.paused ? 'paused' : 'live', state.paused ? 'paused' : '');
  es.addEventListener('error', () => {
    // The stream broke (flowscope ui restarted, the agent went away): reconnect ourselves,
    // from where we were, rather than let EventSource replay the backlog.
    es.close();
    setLive('reconnecting…', 'down');
    state.retry = window.setTimeout(() => follow(state.filter, true), 2000);
  });
  es.addEventListener('flow', (ev) => {
    const row = JSON.parse((ev as MessageEvent).data) as FlowRow;
    if (row.time_ns <= state.resumeAfterNs) return;
    state.lastSeenNs = Math.max(state.lastSeenNs, row.time_ns);
    if (state.paused) {
      if (state.pending.length < MAX_PENDING) state.pending.push(row);
      else state.droppedWhilePaused++;
    } else {
      table.add([row]);
    }
  });
  es.addEventListener('problem', (ev) => {
    setLive(`stream: ${(ev as MessageEvent).data}`, 'down');
    es.close();
    state.retry = window.setTimeout(() => follow(state.filter, true), 2000);
  });
  es.addEventListener('open', () => setLive(state.paused ? 'paused' : 'live', state.paused ? 'paused' : ''));
}

async function applyFilter(text: string): Promise<void> {
  const err = $('filter-error');
  const r = await fetch(`api/filter?filter=${encodeURIComponent(text)}`);
  if (!r.ok) {
    err.textContent = ((await r.json()) as { error: string }).error;
    return;
  }
  err.textContent = '';
  state.filter = text;
  follow(text);
}

function togglePause(): void {
  state.paused = !state.paused;
  const b = $('pause');
  b.textContent = state.paused ? 'Resume' : 'Pause';
  b.setAttribute('aria-pressed', String(state.paused));
  if (state.paused) {
    setLive('paused', 'paused');
  } else {
    table.add(state.pending);
    state.pending = [];
    setLive(state.droppedWhilePaused ? `live (${state.droppedWhilePaused} flows skipped while paused)` : 'live', '');
    state.droppedWhilePaused = 0;
    void refreshMap();
  }
}

/** Downloads what is on screen: the map snapshot and the table's rows as flows. */
function exportJson(): void {
  const doc = {
    exported_at: new Date().toISOString(),
    agent: state.snapshot?.agent.server,
    window_seconds: windowSeconds(),
    filter: state.filter,
    edge: table.edge?.edge.id ?? null,
    map: state.snapshot,
    flows: table.shown().map((r) => r.flow),
  };
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' }));
  a.download = `flowscope-${doc.exported_at.replace(/[:.]/g, '-')}.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

$('filter-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void applyFilter($<HTMLInputElement>('filter').value);
});
$('edge-filter').addEventListener('click', () => map.select(null));
$('pause').addEventListener('click', togglePause);
$('export').addEventListener('click', exportJson);
$('detail-close').addEventListener('click', () => table.show(null));
$('window').addEventListener('change', () => {
  table.windowNs = windowSeconds() * 1e9;
  table.render();
  void refreshMap();
});

// For people poking at the page from the console and for the end-to-end test.
(window as any).flowscope = { map, table, state };

table.windowNs = windowSeconds() * 1e9;
follow('');
void refreshMap();
setInterval(refreshMap, MAP_EVERY_MS);
