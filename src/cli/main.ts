// The `reptok` command: dispatches to src/cli/commands/*, prints help, and turns errors into messages and exit codes
// (2 for usage errors, 1 for failures; REPTOK_DEBUG=1 shows stack traces). bin/reptok.mjs calls main().
import { UsageError, formatHelp, parseArgs, type CommandSpec, type Parsed } from './args.ts';

interface Command {
  spec: CommandSpec;
  /** Resolves to the exit status when it is not 0 (130 for a training stopped by Ctrl-C). */
  run(p: Parsed): Promise<number | void>;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  demo: () => import('./commands/demo.ts'),
  train: () => import('./commands/train.ts'),
  pull: () => import('./commands/pull.ts'),
  info: () => import('./commands/info.ts'),
  encode: () => import('./commands/encode.ts'),
  decode: () => import('./commands/decode.ts'),
  reconstruct: () => import('./commands/reconstruct.ts'),
  interpolate: () => import('./commands/interpolate.ts'),
  sample: () => import('./commands/sample.ts'),
  generate: () => import('./commands/generate.ts'),
  eval: () => import('./commands/eval.ts'),
  serve: () => import('./commands/serve.ts'),
};

function overview(): string {
  return [
    'Usage: reptok <command> [options]',
    '',
    "RepTok: images as one continuous token (a self-supervised ViT's [cls]), decoded by flow matching.",
    '',
    'Commands:',
    '  demo         a page of what the shipped models do (--train: train short ones first, a few minutes)',
    '  train        train a stage: ssl | tokenizer | generator | t2i | classifier',
    '  encode       images -> one token each (a tokens file)',
    '  decode       a tokens file -> images',
    '  reconstruct  images -> token -> images, beside the originals',
    '  interpolate  the path between two images, as a strip or an animation',
    '  sample       class-conditional samples as a grid',
    '  generate     images from text prompts as a grid',
    '  eval         measure a tokenizer and generator (PSNR, SSIM, FD, precision/recall, ...) with a report page',
    '  serve        the web demo: a page where you try the models in a browser',
    '  pull         download model files from the Hugging Face Hub (when online)',
    '  info         print the runtime (libtorch, threads, BLAS, CUDA), or what a model file holds',
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
  const load = COMMANDS[name];
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
    return (await cmd.run(parseArgs(cmd.spec, rest))) ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`reptok ${name}: ${e.message}\nRun \`reptok ${name} --help\` for usage.`);
      return 2;
    }
    console.error(`reptok ${name}: ${process.env.REPTOK_DEBUG ? (e as Error).stack : (e as Error).message}`);
    return 1;
  }
}
