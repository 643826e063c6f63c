// reptok pull <repo-id>: download model files from the Hugging Face Hub into a local cache (when online).
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type { CommandSpec, Parsed } from '../args.ts';

export const spec: CommandSpec = {
  name: 'pull',
  summary: 'Download a model repository (safetensors weights, configs, tokenizer files) from the Hugging Face Hub.',
  details:
    'Files go to <cache>/<repo-id>/<revision>/ and are reused on the next pull. Nothing else in reptok ever ' +
    'downloads: every command takes local paths, so on an offline machine copy the files over and pass their paths.',
  positionals: [{ name: 'repo-id', help: 'e.g. facebook/dinov2-with-registers-base or stabilityai/sd-vae-ft-mse' }],
  options: {
    revision: { type: 'string', default: 'main', help: 'branch, tag or commit', arg: 'REV' },
    cache: { type: 'string', help: 'cache folder (default: $REPTOK_CACHE or ~/.cache/reptok/hub)', arg: 'DIR' },
    include: {
      type: 'list',
      default: ['*.safetensors', '*.json', '*.txt'],
      help: 'file patterns to fetch (repeatable)',
      arg: 'GLOB',
    },
    endpoint: { type: 'string', help: 'Hub address (default: $HF_ENDPOINT or https://huggingface.co)', arg: 'URL' },
  },
  examples: [
    'reptok pull facebook/dinov2-with-registers-base',
    'reptok pull stabilityai/sd-vae-ft-mse --include "*.safetensors" --include config.json',
  ],
};

const globToRegExp = (g: string): RegExp =>
  new RegExp(
    `^${g
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '.')}$`,
  );

export class OfflineError extends Error {
  constructor(endpoint: string, cause: string) {
    super(
      `cannot reach ${endpoint} (${cause}): this machine looks offline or the Hub is blocked.\n` +
        'Download the files on a connected machine (e.g. `huggingface-cli download <repo-id>`) and pass the local ' +
        '.safetensors / .pth paths to reptok instead.',
    );
    this.name = 'OfflineError';
  }
}

async function get(url: string, endpoint: string): Promise<Response> {
  const headers: Record<string, string> = process.env.HF_TOKEN
    ? { authorization: `Bearer ${process.env.HF_TOKEN}` }
    : {};
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'follow' });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new OfflineError(endpoint, cause?.code ?? cause?.message ?? (e as Error).message);
  }
  if (res.status === 401 || res.status === 403)
    throw new Error(`${url}: access denied (${res.status}); gated or private repositories need HF_TOKEN`);
  if (res.status === 404) throw new Error(`${url}: not found (404); check the repository id and revision`);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res;
}

/** Downloads the matching files of a Hub repository; returns the local folder. */
export async function pull(
  repo: string,
  o: { revision?: string; cache?: string; include?: string[]; endpoint?: string; log?: (s: string) => void } = {},
): Promise<string> {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new Error(`'${repo}' is not a Hub repository id (expected owner/name)`);
  const endpoint = (o.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/$/, '');
  const revision = o.revision ?? 'main';
  const dir = join(o.cache ?? process.env.REPTOK_CACHE ?? join(homedir(), '.cache', 'reptok', 'hub'), repo, revision);
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const patterns = (o.include ?? ['*.safetensors', '*.json', '*.txt']).map(globToRegExp);
  const tree = (await (
    await get(`${endpoint}/api/models/${repo}/tree/${encodeURIComponent(revision)}?recursive=1`, endpoint)
  ).json()) as { type: string; path: string; size: number }[];
  const files = tree.filter(
    (f) => f.type === 'file' && patterns.some((p) => p.test(f.path.split('/').pop()!) || p.test(f.path)),
  );
  if (files.length === 0) throw new Error(`${repo}@${revision} has no files matching ${o.include?.join(', ')}`);
  for (const f of files) {
    const target = join(dir, f.path);
    if (existsSync(target) && statSync(target).size === f.size) {
      log(`  ${f.path} (cached)`);
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    const tmp = `${target}.part-${process.pid}`;
    const res = await get(`${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${f.path}`, endpoint);
    log(`  ${f.path} (${(f.size / 2 ** 20).toFixed(1)} MiB)`);
    try {
      await pipeline(Readable.fromWeb(res.body as never), createWriteStream(tmp));
      if (statSync(tmp).size !== f.size)
        throw new Error(`${f.path}: download incomplete (${statSync(tmp).size} of ${f.size} bytes)`);
      renameSync(tmp, target);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }
  return dir;
}

export async function run({ positionals, options }: Parsed): Promise<void> {
  const dir = await pull(positionals[0]!, options);
  console.log(dir);
}
