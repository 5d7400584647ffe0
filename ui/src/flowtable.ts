// The flow table: rows streamed by the server (filtered there by the filter box's flags),
// narrowed here to the selected edge and the time window, newest first.

import { clock, duration } from './format';
import type { FlowRow, MapEdge, MapSnapshot } from './types';

/** Rows kept in the page; older ones go. */
const MAX_ROWS = 5000;
/** Rows drawn at once. */
const MAX_SHOWN = 500;

/** Which map nodes an edge stands for ("other" stands for every node folded into it). */
export interface EdgeFilter {
  edge: MapEdge;
  clients: Set<string>;
  servers: Set<string>;
}

export function edgeFilter(e: MapEdge, s: MapSnapshot): EdgeFilter {
  const members = (id: string) => new Set(s.nodes.find((n) => n.id === id)?.members ?? [id]);
  return { edge: e, clients: members(e.client), servers: members(e.server) };
}

export class FlowTable {
  rows: FlowRow[] = [];
  edge: EdgeFilter | null = null;
  windowNs = 300e9;
  private selected: FlowRow | null = null;
  private scheduled = false;

  constructor(
    private body: HTMLTableSectionElement,
    private detail: HTMLElement,
    private detailBody: HTMLElement,
  ) {}

  clear(): void {
    this.rows = [];
    this.render();
  }

  add(rows: FlowRow[]): void {
    this.rows.push(...rows);
    if (this.rows.length > MAX_ROWS) this.rows.splice(0, this.rows.length - MAX_ROWS);
    this.schedule();
  }

  /** The rows the table shows now, newest first (the export writes these). */
  shown(): FlowRow[] {
    const since = Date.now() * 1e6 - this.windowNs;
    const out: FlowRow[] = [];
    for (let i = this.rows.length - 1; i >= 0 && out.length < MAX_SHOWN; i--) {
      const r = this.rows[i];
      if (r.time_ns < since) continue;
      if (this.edge && !(this.edge.clients.has(r.client) && this.edge.servers.has(r.server))) continue;
      out.push(r);
    }
    return out;
  }

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  render(): void {
    const frag = document.createDocumentFragment();
    for (const r of this.shown()) {
      const tr = document.createElement('tr');
      tr.dataset.edge = r.edge;
      if (r.verdict === 'DROPPED') tr.className = 'dropped';
      if (r === this.selected) tr.classList.add('selected');
      for (const [cls, text] of [
        ['time', clock(r.time_ns)],
        ['source', r.source],
        ['destination', r.destination],
        ['type', r.type],
        ['verdict', r.verdict],
        ['summary', r.summary],
      ]) {
        const td = document.createElement('td');
        td.className = cls;
        td.textContent = text;
        tr.appendChild(td);
      }
      tr.addEventListener('click', () => this.show(r));
      frag.appendChild(tr);
    }
    this.body.replaceChildren(frag);
  }

  /** The detail pane: the fields people look for first, then the whole flow. */
  show(r: FlowRow | null): void {
    this.selected = r;
    this.detail.hidden = r === null;
    this.render();
    if (!r) return;
    const f = r.flow as any;
    const http = f.l7?.http;
    const fields: [string, string][] = [
      ['time', new Date(r.time_ns / 1e6).toISOString()],
      ['source', r.source],
      ['destination', r.destination],
      ['type', r.type],
      ['verdict', r.verdict],
      ['summary', r.summary],
    ];
    if (f.l7?.latency_ns) fields.push(['latency', duration(Number(f.l7.latency_ns))]);
    if (f.extensions?.tcp_srtt_ns) fields.push(['tcp rtt', duration(Number(f.extensions.tcp_srtt_ns))]);
    const grpc = f.extensions?.grpc;
    if (grpc?.service) fields.push(['grpc', `${grpc.service}/${grpc.method ?? ''}`]);
    if (f.trace_context?.parent?.trace_id) fields.push(['trace id', f.trace_context.parent.trace_id]);
    const ext = f.extensions ?? {};
    if (ext.span_id) fields.push(['span id', ext.span_id]);
    for (const [k, p] of [['process', ext.process], ['peer process', ext.peer_process]] as const) {
      if (p) fields.push([k, `${p.comm ?? ''} (pid ${p.pid ?? '?'})`]);
    }
    for (const h of http?.headers ?? []) fields.push([`header ${h.key}`, h.value]);
    const dl = document.createElement('dl');
    for (const [k, v] of fields) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dl.append(dt, dd);
    }
    const pre = document.createElement('pre');
    pre.textContent = JSON.stringify(r.flow, null, 2);
    const h = document.createElement('h2');
    h.textContent = 'Flow';
    this.detailBody.replaceChildren(h, dl, pre);
  }
}
