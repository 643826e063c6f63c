// reptok serve: the web demo. A page on a local HTTP server where a person reconstructs, interpolates, samples and
// generates with the models, each request timed; inference runs in separate processes behind a bounded queue.
import { startServer } from '../../server/server.ts';
import { MODEL_OPTIONS, modelSets } from '../model-options.ts';
import { UsageError, type CommandSpec, type Parsed } from '../args.ts';

const { json: _json, ...MODELS } = MODEL_OPTIONS;

export const spec: CommandSpec = {
  name: 'serve',
  summary: 'Serve the web demo: reconstruct, interpolate, sample and generate with the models in a browser.',
  details:
    '--model is a model folder (tokenizer.safetensors, and generator.safetensors and/or t2i.safetensors) or a\n' +
    'folder of them like weights/ (default), each offered by its folder name. The page shows only what the\n' +
    "models can do. A token's nearest neighbours are searched among the model folder's samples/ images, else the\n" +
    "first test images of the tokenizer's data set when it is on this machine (--references 0: none).\n" +
    'Binds to 127.0.0.1 (this machine only) unless --host says otherwise. Inference runs in --concurrency\n' +
    'processes; up to --queue requests wait, more are answered 503 with Retry-After. Uploads must be PNG, JPEG\n' +
    'or WebP (checked by their bytes) within --max-upload and --max-pixels. GET /healthz and GET /metrics\n' +
    '(Prometheus text) report on the server.',
  options: {
    host: {
      type: 'string',
      default: '127.0.0.1',
      help: 'address to listen on (other than 127.0.0.1: a warning)',
      arg: 'ADDR',
    },
    port: { type: 'number', default: 8080, help: 'port (0 picks a free one)', arg: 'N' },
    concurrency: { type: 'number', default: 1, help: 'inference processes (requests computed at once)', arg: 'N' },
    queue: { type: 'number', default: 8, help: 'requests that may wait; more are refused with 503', arg: 'N' },
    timeout: { type: 'number', default: 60, help: 'seconds one request may compute', arg: 'S' },
    'request-timeout': { type: 'number', default: 30, help: 'seconds a client may take to send a request', arg: 'S' },
    'max-upload': { type: 'number', default: 10, help: 'largest upload in MiB', arg: 'MIB' },
    'max-pixels': {
      type: 'number',
      default: 25,
      help: 'largest image an upload may declare, in megapixels',
      arg: 'MP',
    },
    steps: { type: 'number', default: 50, help: 'ODE steps of every decode and generation', arg: 'N' },
    references: { type: 'number', default: 500, help: 'reference images per model for neighbours (0: none)', arg: 'N' },
    neighbours: { type: 'number', default: 8, help: 'neighbours shown beside a reconstruction', arg: 'N' },
    'max-frames': { type: 'number', default: 16, help: 'most frames of an interpolation', arg: 'N' },
    'max-images': { type: 'number', default: 8, help: 'most images of one sampling request', arg: 'N' },
    ...MODELS,
  },
  examples: [
    'reptok serve                                  # the models in weights/, on http://127.0.0.1:8080/',
    'reptok serve --model runs/fmnist --port 3000 --steps 25',
    'reptok serve --host 0.0.0.0 --concurrency 2   # reachable from other machines: read the warning',
  ],
};

const positiveInt = (o: Parsed['options'], name: string, min = 1): number => {
  const v = o[name];
  if (!(Number.isInteger(v) && v >= min)) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${v}`);
  return v;
};
const positive = (o: Parsed['options'], name: string): number => {
  const v = o[name];
  if (!(v > 0)) throw new UsageError(`--${name} must be a number > 0, got ${v}`);
  return v;
};

export async function run({ options: o }: Parsed): Promise<number> {
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const concurrency = positiveInt(o, 'concurrency');
  if (!(Number.isInteger(o.threads) && o.threads >= 0))
    throw new UsageError(`--threads must be a non-negative integer, got ${o.threads}`);
  const port = positiveInt(o, 'port', 0);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const sets = modelSets(o, log);
  log(`loading ${sets.map((s) => s.name).join(', ')} in ${concurrency} inference process(es) ...`);
  const server = await startServer({
    sets,
    host: o.host,
    port,
    concurrency,
    maxQueue: positiveInt(o, 'queue', 0),
    timeoutMs: positive(o, 'timeout') * 1000,
    requestTimeoutMs: positive(o, 'request-timeout') * 1000,
    maxBytes: Math.round(positive(o, 'max-upload') * 2 ** 20),
    maxPixels: Math.round(positive(o, 'max-pixels') * 1e6),
    steps: positiveInt(o, 'steps'),
    references: positiveInt(o, 'references', 0),
    neighbours: positiveInt(o, 'neighbours', 0),
    maxFrames: positiveInt(o, 'max-frames', 2),
    maxImages: positiveInt(o, 'max-images'),
    threads: o.threads,
    log,
  });
  for (const m of server.models) {
    const can = [
      'reconstruct',
      'interpolate',
      ...(m.classes.length ? ['sample'] : []),
      ...(m.prompts ? ['generate'] : []),
    ];
    const refs = m.references.count ? `${m.references.count} reference images` : 'no reference images';
    log(`  ${m.name}: ${m.imageSize.join('×')}×${m.channels}, ${can.join(', ')}; ${refs}`);
  }
  if (o.host !== '127.0.0.1' && o.host !== 'localhost' && o.host !== '::1')
    log(
      `WARNING: listening on ${o.host}: anyone who can reach this machine on port ${new URL(server.url).port} ` +
        'can use the demo and its CPU. The server has no authentication; put it behind a proxy that adds some ' +
        'before exposing it.',
    );
  console.log(`reptok serve: the web demo is at ${server.url} (Ctrl-C stops it)`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  log('stopping ...');
  await server.close();
  return 0;
}
