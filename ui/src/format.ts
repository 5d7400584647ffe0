// Numbers as people read them on the map and in the table.

/** Go-style durations like Hubble prints them: 52µs, 1.3ms, 2.1s. */
export function duration(ns: number | null | undefined): string {
  if (ns == null) return '–';
  if (ns < 1_000_000) return `${Math.round(ns / 1000)}µs`;
  if (ns < 1_000_000_000) return `${(ns / 1e6).toFixed(1)}ms`;
  return `${(ns / 1e9).toFixed(1)}s`;
}

export function rate(perSecond: number): string {
  if (perSecond === 0) return '0/s';
  if (perSecond < 0.1) return `${(perSecond * 60).toFixed(1)}/min`;
  return `${perSecond.toFixed(perSecond < 10 ? 2 : 0)}/s`;
}

export function percent(x: number): string {
  return `${(x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 0)}%`;
}

/** `2xx 12, 5xx 1` in a stable order. */
export function statuses(s: Record<string, number>): string {
  return Object.keys(s)
    .sort()
    .map((k) => `${k} ${s[k]}`)
    .join(', ');
}

export function clock(ns: number): string {
  const d = new Date(ns / 1e6);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
