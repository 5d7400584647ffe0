// The shapes `flowscope ui` serves (observer/src/ui/map.rs and rows.rs).

export type NodeKind = 'process' | 'pod' | 'dns' | 'address' | 'other';

export interface MapNode {
  id: string;
  label: string;
  detail: string;
  kind: NodeKind;
  flows: number;
  /** For "other": the ids folded into it. */
  members?: string[];
}

export interface MapEdge {
  id: string;
  client: string;
  server: string;
  protocols: string[];
  flows: number;
  requests: number;
  requests_per_second: number;
  errors: number;
  error_rate: number;
  statuses: Record<string, number>;
  p50_latency_ns: number | null;
  p99_latency_ns: number | null;
  drops: number;
  resets: number;
}

export interface MapSnapshot {
  now_ns: number;
  window_ns: number;
  top: number;
  nodes: MapNode[];
  edges: MapEdge[];
  overflowed: number;
  agent: { server: string; error: string | null; retention_ns: number };
}

export interface FlowRow {
  time_ns: number;
  client: string;
  server: string;
  edge: string;
  source: string;
  destination: string;
  type: string;
  verdict: string;
  summary: string;
  /** The flow as protobuf JSON (what `flowscope observe -o json` prints). */
  flow: Record<string, unknown>;
}
