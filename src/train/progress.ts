// Progress for long runs: a live bar on a terminal, plain periodic lines otherwise (logs, CI), and a JSONL
// metrics file. Both show step, loss, throughput, data time and time left.
import { appendFileSync } from 'node:fs';

const fmtTime = (s: number): string => {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
};

export class Progress {
  readonly #tty: boolean;
  readonly #start = performance.now();
  #dataMs = 0;
  #n = 0;

  constructor(
    readonly total: number,
    private readonly startStep: number,
    private readonly logEvery: number,
    private readonly metricsFile: string | null,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.#tty = Boolean(out.isTTY) && !process.env.CI;
  }

  /** Records a finished step (0-based) with its metrics; prints when due. */
  step(step: number, metrics: Record<string, number>, dataMs: number): void {
    this.#dataMs += dataMs;
    this.#n++;
    const now = performance.now();
    const done = step + 1;
    const itPerS = (done - this.startStep) / ((now - this.#start) / 1000);
    const eta = (this.total - done) / itPerS;
    const record = {
      step: done,
      ...metrics,
      it_per_s: itPerS,
      data_ms: this.#dataMs / this.#n,
      time_s: (now - this.#start) / 1000,
    };
    if (this.metricsFile) appendFileSync(this.metricsFile, `${JSON.stringify(record)}\n`);
    const shown = Object.entries(metrics)
      .slice(0, 4)
      .map(([k, v]) => `${k} ${Math.abs(v) >= 100 || Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(4)}`)
      .join('  ');
    if (this.#tty) {
      const width = 24;
      const filled = Math.round((width * done) / this.total);
      this.out.write(
        `\r${'='.repeat(filled)}${' '.repeat(width - filled)}| step ${done}/${this.total}  ${shown}  ` +
          `${itPerS.toFixed(2)} it/s  data ${(this.#dataMs / this.#n).toFixed(1)} ms  eta ${fmtTime(eta)}   `,
      );
      if (done === this.total) this.out.write('\n');
    } else if (done % this.logEvery === 0 || done === this.total || done === this.startStep + 1) {
      this.out.write(
        `step ${done}/${this.total}  ${shown}  ${itPerS.toFixed(2)} it/s  ` +
          `data ${(this.#dataMs / this.#n).toFixed(1)} ms  eta ${fmtTime(eta)}\n`,
      );
      this.#dataMs = 0;
      this.#n = 0;
    }
  }

  /** A message between progress lines. */
  note(msg: string): void {
    this.out.write(`${this.#tty ? '\n' : ''}${msg}\n`);
  }

  get elapsedS(): number {
    return (performance.now() - this.#start) / 1000;
  }
}
