/** A real Prometheus server (Debian's `prometheus`) scraping targets the test names. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const PROMETHEUS = '/usr/bin/prometheus';

export interface PrometheusServer {
  url: string;
  /** Instant query; the result vector as label sets with numeric values. */
  query(expr: string): Promise<Array<{ labels: Record<string, string>; value: number }>>;
  stop(): Promise<void>;
}

export async function startPrometheus(options: {
  dir: string;
  port: number;
  /** host:port of each target, scraped every `intervalSec` at /metrics. */
  targets: Record<string, string>;
  intervalSec?: number;
}): Promise<PrometheusServer> {
  const interval = `${options.intervalSec ?? 1}s`;
  const jobs = Object.entries(options.targets)
    .map(
      ([job, target]) =>
        `  - job_name: ${job}\n    scrape_interval: ${interval}\n    scrape_timeout: ${interval}\n` +
        `    static_configs:\n      - targets: ['${target}']\n`,
    )
    .join('');
  const configFile = path.join(options.dir, 'prometheus.yml');
  fs.writeFileSync(configFile, `global:\n  scrape_interval: ${interval}\nscrape_configs:\n${jobs}`);
  const url = `http://127.0.0.1:${options.port}`;
  const child: ChildProcess = spawn(
    PROMETHEUS,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(options.dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${options.port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const until = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
    const ok = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > until) throw new Error(`prometheus not ready: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    async query(expr) {
      const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await r.json()) as {
        status: string;
        error?: string;
        data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
      return body.data.result.map((e) => ({ labels: e.metric, value: Number(e.value[1]) }));
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
