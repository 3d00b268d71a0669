// `npm run web`: bundles the playground page and serves it on 127.0.0.1 with what it reads — the
// bundled model and data (data/), trained generators and the report (runs/) — and nothing else.
// Run: node --import tsx web/serve.ts [--port N]
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DIST, buildPage } from './build.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};
/** URL prefix → folder served under it. */
const FOLDERS: [string, string][] = [
  ['/data/', join(ROOT, 'data')],
  ['/runs/', join(ROOT, 'runs')],
];

/** Trained generators under runs/ (a run's policy.safetensors, one or two folders deep), newest first. */
function policies(): string[] {
  const runs = join(ROOT, 'runs');
  const found: { url: string; mtime: number }[] = [];
  const visit = (dir: string, url: string, depth: number) => {
    for (const e of existsSync(dir) ? readdirSync(dir, { withFileTypes: true }) : []) {
      if (!e.isDirectory()) continue;
      const file = join(dir, e.name, 'policy.safetensors');
      if (existsSync(file)) found.push({ url: `${url}${e.name}/policy.safetensors`, mtime: statSync(file).mtimeMs });
      if (depth > 1) visit(join(dir, e.name), `${url}${e.name}/`, depth - 1);
    }
  };
  visit(runs, 'runs/', 2);
  return found.sort((a, b) => b.mtime - a.mtime).map((f) => f.url);
}

function index(): string {
  const reportDir = join(ROOT, 'runs', 'demo', 'report');
  const report = existsSync(reportDir) ? readdirSync(reportDir).filter((f) => f.endsWith('.svg')).sort().map((f) => `runs/demo/report/${f}`) : [];
  return JSON.stringify({ model: 'data/base.safetensors', policies: policies(), report, heldOut: 'data/knowledge/held-out.json' });
}

/** The file a URL path names, or null when it is outside what the page may read. */
function fileFor(path: string): string | null {
  if (path === '/' || path === '/index.html') return join(ROOT, 'web', 'index.html');
  if (path === '/app.js' || path === '/app.js.map') return join(DIST, path.slice(1));
  for (const [prefix, dir] of FOLDERS) {
    if (!path.startsWith(prefix)) continue;
    const file = normalize(join(dir, decodeURIComponent(path.slice(prefix.length))));
    return file.startsWith(dir + sep) ? file : null;
  }
  return null;
}

export async function startServer(port = 0): Promise<{ url: string; server: Server }> {
  await buildPage();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/index.json') {
      res.writeHead(200, { 'content-type': TYPES['.json']!, 'cache-control': 'no-store' }).end(index());
      return;
    }
    const file = fileFor(path);
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': TYPES['.txt']! }).end(`not found: ${path}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size, 'cache-control': 'no-store' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  const addr = server.address();
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : port}/`, server };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const at = process.argv.indexOf('--port');
  const port = at > 0 ? Number(process.argv[at + 1]) : 5173;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`web: --port must be a port number, got ${process.argv[at + 1]}`);
    process.exit(2);
  }
  const { url } = await startServer(port);
  console.log(`seal-webgpu playground: ${url}  (Chromium on Linux: start it with --enable-unsafe-webgpu; Ctrl-C stops)`);
}
