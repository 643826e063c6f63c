// reptok pull against a fake Hub on loopback (tests never touch the network), and the offline error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

import { OfflineError, pull } from '../../src/cli/commands/pull.ts';
import { ROOT } from '../helpers.ts';

const FILES: Record<string, string> = {
  'model.safetensors': 'weights!',
  'config.json': '{"a":1}',
  'README.md': 'skip me',
};

function fakeHub(): Promise<{ server: Server; url: string; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url!);
    if (req.url === '/api/models/acme/tiny/tree/main?recursive=1') {
      res.end(
        JSON.stringify(
          Object.entries(FILES).map(([path, body]) => ({ type: 'file', path, size: Buffer.byteLength(body) })),
        ),
      );
    } else if (req.url?.startsWith('/acme/tiny/resolve/main/')) {
      const body = FILES[req.url.slice('/acme/tiny/resolve/main/'.length)];
      res.statusCode = body === undefined ? 404 : 200;
      res.end(body ?? '');
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address() as { port: number };
      resolve({ server, url: `http://127.0.0.1:${addr.port}`, hits });
    }),
  );
}

test('pull downloads the matching files into the cache and reuses them', async () => {
  const { server, url, hits } = await fakeHub();
  const cache = mkdtempSync(join(tmpdir(), 'reptok-hub-'));
  try {
    const dir = await pull('acme/tiny', { endpoint: url, cache, log: () => {} });
    assert.equal(dir, join(cache, 'acme', 'tiny', 'main'));
    assert.equal(readFileSync(join(dir, 'model.safetensors'), 'utf8'), 'weights!');
    assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), '{"a":1}');
    assert.throws(() => readFileSync(join(dir, 'README.md')), /ENOENT/);
    const downloads = hits.filter((h) => h.includes('/resolve/')).length;
    await pull('acme/tiny', { endpoint: url, cache, log: () => {} });
    assert.equal(hits.filter((h) => h.includes('/resolve/')).length, downloads, 'cached files are not fetched again');
    await assert.rejects(pull('acme/missing', { endpoint: url, cache, log: () => {} }), /not found \(404\)/);
    await assert.rejects(pull('not-a-repo', { endpoint: url, cache }), /not a Hub repository id/);
  } finally {
    server.close();
  }
});

test('offline, pull fails with advice to pass local files (and the CLI exits 1)', async () => {
  const { server, url } = await fakeHub();
  await new Promise((r) => server.close(r)); // nothing listens there any more
  await assert.rejects(pull('acme/tiny', { endpoint: url, cache: tmpdir(), log: () => {} }), (e: Error) => {
    assert.ok(e instanceof OfflineError);
    assert.match(e.message, /cannot reach .*pass the local/s);
    return true;
  });
  let status = 0;
  let stderr = '';
  try {
    execFileSync(process.execPath, [join(ROOT, 'bin', 'reptok.mjs'), 'pull', 'acme/tiny', '--endpoint', url], {
      encoding: 'utf8',
      stdio: 'pipe',
    });
  } catch (e) {
    status = (e as { status: number }).status;
    stderr = (e as { stderr: string }).stderr;
  }
  assert.equal(status, 1);
  assert.match(stderr, /^reptok pull: cannot reach/);
});
