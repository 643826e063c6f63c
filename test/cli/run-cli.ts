// Runs `reptok <args>` in this process through main() (one libtorch load for a whole test file): the exit code, what
// it printed on stdout (console.log lines) and on stderr (console.error lines and direct writes, e.g. notes).
import { main } from '../../src/cli/main.ts';

export async function reptok(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error, write] = [console.log, console.error, process.stderr.write];
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(`${a.join(' ')}\n`);
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), out: out.join('\n'), err: err.join('') };
  } finally {
    [console.log, console.error, process.stderr.write] = [log, error, write];
  }
}
