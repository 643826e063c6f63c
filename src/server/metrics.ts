// What GET /metrics reports, in Prometheus' text format: requests by route and status, latency histograms by
// route, and the inference queue (waiting, running, restarted processes).

/** Upper bounds (seconds) of the latency histogram's buckets. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Latency {
  counts: number[]; // per bucket, cumulative at output
  sum: number;
  n: number;
}

export class Metrics {
  readonly #requests = new Map<string, number>(); // "route status" -> count
  readonly #latency = new Map<string, Latency>();
  readonly #started = Date.now();

  /** Records one answered request. */
  observe(route: string, status: number, seconds: number): void {
    const key = `${route} ${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    let l = this.#latency.get(route);
    if (!l) this.#latency.set(route, (l = { counts: BUCKETS.map(() => 0), sum: 0, n: 0 }));
    const i = BUCKETS.findIndex((b) => seconds <= b);
    if (i >= 0) l.counts[i]!++;
    l.sum += seconds;
    l.n++;
  }

  /** The text of GET /metrics; `gauges` are the current values of the queue and the processes. */
  render(gauges: Record<string, { help: string; value: number }>): string {
    const lines = [
      '# HELP reptok_requests_total Requests answered, by route and HTTP status.',
      '# TYPE reptok_requests_total counter',
    ];
    for (const [key, n] of [...this.#requests].sort()) {
      const [route, status] = key.split(' ');
      lines.push(`reptok_requests_total{route="${route}",status="${status}"} ${n}`);
    }
    lines.push(
      '# HELP reptok_request_seconds Time from a request to its answer, by route.',
      '# TYPE reptok_request_seconds histogram',
    );
    for (const [route, l] of [...this.#latency].sort()) {
      let cumulative = 0;
      BUCKETS.forEach((b, i) => {
        cumulative += l.counts[i]!;
        lines.push(`reptok_request_seconds_bucket{route="${route}",le="${b}"} ${cumulative}`);
      });
      lines.push(`reptok_request_seconds_bucket{route="${route}",le="+Inf"} ${l.n}`);
      lines.push(`reptok_request_seconds_sum{route="${route}"} ${l.sum.toFixed(6)}`);
      lines.push(`reptok_request_seconds_count{route="${route}"} ${l.n}`);
    }
    const all = {
      uptime_seconds: { help: 'Seconds since the server started.', value: (Date.now() - this.#started) / 1000 },
      ...gauges,
    };
    for (const [name, g] of Object.entries(all))
      lines.push(`# HELP reptok_${name} ${g.help}`, `# TYPE reptok_${name} gauge`, `reptok_${name} ${g.value}`);
    return `${lines.join('\n')}\n`;
  }
}
