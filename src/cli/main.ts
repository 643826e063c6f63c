// The `reptok` command: dispatches to src/cli/commands/*, prints help, and turns errors into messages and exit codes
// (2 for usage errors, 1 for failures; REPTOK_DEBUG=1 shows stack traces).
import { UsageError, formatHelp, parseArgs, type CommandSpec, type Parsed } from './args.ts';

interface Command {
  spec: CommandSpec;
  run(p: Parsed): Promise<void>;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  demo: () => import('./commands/demo.ts'),
  train: () => import('./commands/train.ts'),
  pull: () => import('./commands/pull.ts'),
  info: () => import('./commands/info.ts'),
};

function overview(): string {
  return [
    'Usage: reptok <command> [options]',
    '',
    "RepTok: images as one continuous token (a self-supervised ViT's [cls]), decoded by flow matching.",
    '',
    'Commands:',
    '  demo       the whole pipeline on Fashion-MNIST in a few minutes, with a picture of the results',
    '  train      train a stage: ssl | tokenizer | generator | t2i',
    '  pull       download model files from the Hugging Face Hub (when online)',
    '  info       print the runtime (libtorch, threads, BLAS, CUDA)',
    '',
    "Run `reptok <command> --help` for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview());
    return name ? 0 : 2;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    console.error(`reptok: unknown command '${name}'\n\n${overview()}`);
    return 2;
  }
  const cmd = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(formatHelp(cmd.spec));
    return 0;
  }
  try {
    await cmd.run(parseArgs(cmd.spec, rest));
    return typeof process.exitCode === 'number' ? process.exitCode : 0; // a command may set its own (130 on Ctrl-C)
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`reptok ${name}: ${e.message}\nRun \`reptok ${name} --help\` for usage.`);
      return 2;
    }
    console.error(`reptok ${name}: ${process.env.REPTOK_DEBUG ? (e as Error).stack : (e as Error).message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
