// The service map: cytoscape draws the snapshot the server aggregated; dagre lays it out
// left to right (clients before servers). The layout runs again only when the set of nodes
// or edges changes, so numbers streaming in never move anything.

import cytoscape from 'cytoscape';
import dagre from 'cytoscape-dagre';

import { duration, percent, rate, statuses } from './format';
import type { MapEdge, MapNode, MapSnapshot } from './types';

cytoscape.use(dagre);

const KIND_COLOURS: Record<string, string> = {
  process: '#2563eb',
  pod: '#059669',
  dns: '#7c3aed',
  address: '#6b7280',
  other: '#9ca3af',
};

/** The edge's label: protocol, request rate and errors, latency; drops and resets flagged. */
export function edgeLabel(e: MapEdge): string {
  const lines = [e.protocols[0] ?? ''];
  if (e.requests > 0) {
    lines[0] += ` · ${e.requests} req · ${rate(e.requests_per_second)}`;
    lines.push(`${statuses(e.statuses)}${e.errors ? ` · ${percent(e.error_rate)} errors` : ''}`);
    if (e.p50_latency_ns != null) {
      lines.push(`p50 ${duration(e.p50_latency_ns)} · p99 ${duration(e.p99_latency_ns)}`);
    }
  } else {
    lines[0] += ` · ${e.flows} flows`;
  }
  const trouble = [];
  if (e.drops) trouble.push(`${e.drops} dropped`);
  if (e.resets) trouble.push(`${e.resets} reset`);
  if (trouble.length) lines.push(`⚠ ${trouble.join(', ')}`);
  return lines.join('\n');
}

function nodeLabel(n: MapNode): string {
  return n.detail ? `${n.label}\n${n.detail}` : n.label;
}

export class ServiceMap {
  readonly cy: cytoscape.Core;
  private shape = '';
  private selectedEdge: string | null = null;
  private snapshot: MapSnapshot | null = null;

  constructor(container: HTMLElement, private onEdge: (e: MapEdge | null, s: MapSnapshot) => void) {
    this.cy = cytoscape({
      container,
      wheelSensitivity: 0.3,
      minZoom: 0.2,
      maxZoom: 3,
      style: [
        {
          selector: 'node',
          style: {
            shape: 'round-rectangle',
            'background-color': (n: cytoscape.NodeSingular) => KIND_COLOURS[n.data('kind')] ?? '#6b7280',
            label: 'data(label)',
            color: '#fff',
            'font-size': 12,
            'text-valign': 'center',
            'text-halign': 'center',
            'text-wrap': 'wrap',
            width: 'label',
            height: 'label',
            padding: '10px',
          },
        },
        { selector: 'node[kind = "other"]', style: { 'border-style': 'dashed', 'border-width': 2, 'border-color': '#4b5563' } },
        {
          selector: 'edge',
          style: {
            width: (e: cytoscape.EdgeSingular) => 1.5 + Math.min(6, Math.log10(1 + e.data('flows'))),
            'line-color': '#94a3b8',
            'target-arrow-color': '#94a3b8',
            'target-arrow-shape': 'triangle',
            'curve-style': 'bezier',
            label: 'data(label)',
            'font-size': 10,
            'text-wrap': 'wrap',
            'text-background-color': '#ffffff',
            'text-background-opacity': 0.9,
            'text-background-padding': '2px',
            color: '#1c2330',
          },
        },
        { selector: 'edge[errors > 0]', style: { 'line-color': '#dc2626', 'target-arrow-color': '#dc2626' } },
        { selector: 'edge[trouble > 0]', style: { 'line-style': 'dashed', 'line-color': '#d97706', 'target-arrow-color': '#d97706' } },
        { selector: 'edge:selected', style: { 'line-color': '#2563eb', 'target-arrow-color': '#2563eb', width: 6 } },
      ],
    });
    this.cy.on('tap', 'edge', (ev) => this.select(ev.target.id()));
    this.cy.on('tap', (ev) => {
      if (ev.target === this.cy) this.select(null);
    });
  }

  /** Selects an edge by id (null: none) and tells the page. */
  select(id: string | null): void {
    this.selectedEdge = id;
    this.cy.edges().unselect();
    if (id) this.cy.getElementById(id).select();
    if (this.snapshot) this.onEdge(this.edge(id), this.snapshot);
  }

  edge(id: string | null): MapEdge | null {
    return this.snapshot?.edges.find((e) => e.id === id) ?? null;
  }

  /** Draws a new snapshot: adds and removes what changed, updates the rest in place. */
  update(s: MapSnapshot): void {
    this.snapshot = s;
    const cy = this.cy;
    const ids = new Set<string>();
    cy.batch(() => {
      for (const n of s.nodes) {
        ids.add(n.id);
        const data = { id: n.id, label: nodeLabel(n), kind: n.kind, flows: n.flows, name: n.label };
        const el = cy.getElementById(n.id);
        if (el.empty()) cy.add({ group: 'nodes', data });
        else el.data(data);
      }
      for (const e of s.edges) {
        ids.add(e.id);
        const data = {
          id: e.id,
          source: e.client,
          target: e.server,
          label: edgeLabel(e),
          flows: e.flows,
          requests: e.requests,
          errors: e.errors,
          trouble: e.drops + e.resets,
        };
        const el = cy.getElementById(e.id);
        if (el.empty()) cy.add({ group: 'edges', data });
        else el.data(data);
      }
      cy.elements().forEach((el) => {
        if (!ids.has(el.id())) cy.remove(el);
      });
    });
    const shape = [...ids].sort().join('|');
    if (shape !== this.shape) {
      // Later layouts glide from the old positions, so the eye can follow what moved.
      const animate = this.shape !== '';
      this.shape = shape;
      cy.layout({
        name: 'dagre',
        rankDir: 'LR',
        nodeSep: 40,
        rankSep: 220,
        edgeSep: 20,
        fit: true,
        padding: 40,
        animate,
        animationDuration: 300,
      } as cytoscape.LayoutOptions).run();
    }
    if (this.selectedEdge && cy.getElementById(this.selectedEdge).nonempty()) {
      cy.getElementById(this.selectedEdge).select();
    }
    this.onEdge(this.edge(this.selectedEdge), s);
  }
}
