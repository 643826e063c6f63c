// A progress bar for the inference commands: one line on stderr, redrawn in place, only on a terminal (pipes, logs
// and --json output stay clean).
import type { ProgressFn } from '../pipeline/index.ts';

export function progressBar(enabled: boolean, out: NodeJS.WriteStream = process.stderr): ProgressFn & { done(): void } {
  const on = enabled && Boolean(out.isTTY) && !process.env.CI;
  let shown = '';
  const bar = (label: string, fraction: number): void => {
    if (!on) return;
    const width = 24;
    const filled = Math.round(width * Math.min(1, Math.max(0, fraction)));
    const line = `${label.padEnd(18)} [${'='.repeat(filled).padEnd(width)}] ${Math.round(100 * fraction)}%`;
    if (line === shown) return;
    out.write(`\r${line}`);
    shown = line;
  };
  return Object.assign(bar, {
    done: () => {
      if (on && shown) out.write('\n');
      shown = '';
    },
  });
}
