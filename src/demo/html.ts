// The demo page: one self-contained index.html (inline style, no script) that shows what build.ts made.
import type { SetReport } from './build.ts';

const time = (seconds: number): string => `${seconds.toFixed(1)} s`;
const escape = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 0 auto; padding: 0 1rem 3rem; color: #222; }
h1 small { font-weight: normal; color: #666; font-size: 0.55em; }
section { border-top: 1px solid #ddd; margin-top: 1.5rem; }
.pictures { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; }
figure { margin: 0; text-align: center; }
img { image-rendering: pixelated; max-width: 100%; }
.note, .time { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; }
td, th { padding: 0.2rem 0.8rem; text-align: left; border-bottom: 1px solid #eee; }`;

export function renderDemoPage(reports: SetReport[], o: { totalSeconds: number; serveCommand: string }): string {
  const parts = reports.flatMap((r) => r.parts.map((p) => ({ set: r.name, ...p })));
  const body = reports.map(
    (r) => `<section id="${escape(r.name)}">
<h2>${escape(r.name)}</h2>
<p>${escape(r.description)}</p>
${r.parts
  .map(
    (p) => `<h3>${escape(p.title)}</h3>
${p.note ? `<p class="note">${escape(p.note)}</p>` : ''}
<div class="pictures">
${p.pictures
  .map(
    (pic) =>
      `<figure><img src="${escape(pic.file)}" alt="${escape(pic.caption)}" style="zoom: ${r.zoom}">` +
      `<figcaption>${escape(pic.caption)}</figcaption></figure>`,
  )
  .join('\n')}
</div>
<p class="time">${p.seconds.toFixed(1)} s</p>`,
  )
  .join('\n')}
</section>`,
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>RepTok demo</title>
<style>${STYLE}
</style>
</head>
<body>
<h1>RepTok <small>one continuous token per image</small></h1>
<p>Every picture below was made by these models in ${o.totalSeconds.toFixed(1)} s on this machine.
Try them yourself in the web demo: <code>${escape(o.serveCommand)}</code></p>
<table>
<tr><th>model</th><th>part</th><th>time</th></tr>
${parts.map((p) => `<tr><td>${escape(p.set)}</td><td>${escape(p.title)}</td><td>${time(p.seconds)}</td></tr>`).join('')}
</table>
${body.join('\n')}
</body>
</html>
`;
}
