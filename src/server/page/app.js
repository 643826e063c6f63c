// The web demo's page: asks the server what the models can do, shows only that, and calls the JSON API.
// Plain JavaScript, no build step. Every request shows how long it took (in the browser, and on the server:
// waiting in the queue, then computing).
const $ = (id) => document.getElementById(id);
let info = null; // GET /api/models
let model = null; // the chosen model set

function status(message, error = false) {
  $('status').textContent = message;
  $('status').className = error ? 'error' : '';
}

/** Calls the API; resolves with the JSON answer and the time it took, or shows the server's message. */
async function call(path, body, contentType) {
  const t0 = performance.now();
  const r = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: contentType ? { 'Content-Type': contentType } : {},
    body,
  });
  const ms = performance.now() - t0;
  const answer = await r.json().catch(() => ({ error: `the server answered ${r.status} without details` }));
  if (!r.ok) {
    const retry = r.headers.get('Retry-After');
    throw new Error(answer.error + (retry ? ` (retry in ${retry} s)` : ''));
  }
  return { ...answer, ms };
}

const post = (path, json) => call(path, JSON.stringify({ model: model.name, ...json }), 'application/json');
async function upload(path, file) {
  // the server refuses it too; saying so here spares sending it
  const limit = info.limits.maxBytes;
  if (file.size > limit) throw new Error(`${file.name} is ${mib(file.size)}; the limit is ${mib(limit)}`);
  return call(`${path}?model=${encodeURIComponent(model.name)}`, file, file.type || 'application/octet-stream');
}
const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function timing(id, r) {
  const server = r.cached ? 'cached on the server' : `server: ${r.waitMs} ms in the queue, ${r.runMs} ms computing`;
  $(id).textContent = `took ${Math.round(r.ms)} ms (${server})`;
}

function figure(src, caption, alt) {
  const f = document.createElement('figure');
  const img = document.createElement('img');
  img.src = src;
  img.alt = alt ?? caption ?? '';
  f.append(img);
  if (caption) {
    const c = document.createElement('figcaption');
    c.textContent = caption;
    f.append(c);
  }
  return f;
}

/** Runs one action of the page: a busy message, then its result or the error. */
async function act(what, fn) {
  status(`${what} …`);
  try {
    await fn();
    status('');
  } catch (e) {
    status(`${what} failed: ${e.message}`, true);
  }
}

// ---- the model set --------------------------------------------------------------------------------------------------

function choose(name) {
  model = info.models.find((m) => m.name === name);
  const [h, w] = model.imageSize;
  $('model-info').textContent =
    `${model.name}: ${w}×${h} ${model.channels === 1 ? 'gray' : 'colour'} images, ` +
    `tokens of ${model.tokenDim} numbers; ` +
    `${info.steps} ODE steps per decode.`;
  $('sample').hidden = model.classes.length === 0;
  $('generate').hidden = !model.prompts;
  $('sample-class').replaceChildren(...model.classes.map((c) => new Option(c, c)));
  for (const id of ['sample-n', 'generate-n']) $(id).max = info.limits.maxImages;
  $('interpolate-frames').max = info.limits.maxFrames;
  $('generate-words').textContent = model.vocabulary.length
    ? `Words it knows: ${model.vocabulary.slice(0, 60).join(', ')}${model.vocabulary.length > 60 ? ', …' : ''}`
    : '';
  $('neighbours-note').textContent = model.references.count
    ? `Searched among ${model.references.count} reference images (${model.references.from}), by cosine similarity.`
    : `No reference images for this model, so no neighbours: ${model.references.why}.`;
  for (const id of ['reconstruct-result', 'interpolate-result']) $(id).hidden = true;
  for (const id of ['neighbours', 'sample-images', 'generate-images']) $(id).replaceChildren();
}

// ---- reconstruct ----------------------------------------------------------------------------------------------------

async function reconstruct(file) {
  await act('Reconstructing', async () => {
    const r = await upload('/api/reconstruct', file);
    $('reconstruct-original').src = r.original;
    $('reconstruct-output').src = r.reconstruction;
    $('reconstruct-psnr').textContent = `PSNR ${r.psnr.toFixed(1)} dB`;
    $('reconstruct-result').hidden = false;
    $('neighbours').replaceChildren(
      ...r.neighbours.map((n) => figure(n.image, `${n.label ?? ''} ${n.similarity.toFixed(2)}`.trim())),
    );
    timing('reconstruct-time', r);
  });
}

$('reconstruct-file').addEventListener('change', (e) => e.target.files[0] && reconstruct(e.target.files[0]));
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files[0]) reconstruct(e.dataTransfer.files[0]);
});

// ---- interpolate ----------------------------------------------------------------------------------------------------

let frames = [];
const ids = { a: null, b: null };

function showFrame() {
  const i = Number($('interpolate-slider').value);
  $('interpolate-frame').src = frames[i];
  $('interpolate-position').textContent = `frame ${i + 1} of ${frames.length}`;
}

async function interpolate() {
  if (!ids.a || !ids.b) return;
  await act('Interpolating', async () => {
    const r = await post('/api/interpolate', { a: ids.a, b: ids.b, frames: Number($('interpolate-frames').value) });
    frames = r.frames;
    $('interpolate-slider').max = frames.length - 1;
    $('interpolate-slider').value = 0;
    $('interpolate-result').hidden = false;
    showFrame();
    timing('interpolate-time', r);
  });
}

for (const k of ['a', 'b'])
  $(`interpolate-${k}`).addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    await act('Encoding', async () => {
      ids[k] = (await upload('/api/encode', file)).id;
    });
    await interpolate();
  });
$('interpolate-frames').addEventListener('change', interpolate);
$('interpolate-slider').addEventListener('input', showFrame);

// ---- sample and generate --------------------------------------------------------------------------------------------

$('sample-go').addEventListener('click', () =>
  act('Sampling', async () => {
    const r = await post('/api/sample', {
      class: $('sample-class').value,
      guidance: Number($('sample-guidance').value),
      n: Number($('sample-n').value),
      seed: Number($('sample-seed').value),
    });
    $('sample-images').replaceChildren(...r.images.map((src) => figure(src, null, $('sample-class').value)));
    timing('sample-time', r);
  }),
);

$('generate-go').addEventListener('click', () =>
  act('Generating', async () => {
    const r = await post('/api/generate', {
      prompt: $('generate-prompt').value,
      guidance: Number($('generate-guidance').value),
      n: Number($('generate-n').value),
      seed: Number($('generate-seed').value),
    });
    $('generate-images').replaceChildren(...r.images.map((src) => figure(src, null, $('generate-prompt').value)));
    timing('generate-time', r);
  }),
);

// ---- start ----------------------------------------------------------------------------------------------------------

act('Loading', async () => {
  info = await call('/api/models');
  $('model').replaceChildren(...info.models.map((m) => new Option(m.name, m.name)));
  $('model-picker').hidden = info.models.length < 2;
  $('model').addEventListener('change', (e) => choose(e.target.value));
  choose(info.models[0].name);
  document.body.dataset.ready = 'true';
});
