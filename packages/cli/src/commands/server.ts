import { readFile } from 'node:fs/promises';
/**
 * `hutch server`: runs the server in the foreground until SIGINT/SIGTERM, then closes it
 * gracefully (a second signal exits at once). The server prints its own banner. The server
 * package is loaded only here, so other commands do not pay for it.
 */
export async function server(opts: {
  host: string;
  port: number;
  dataDir: string;
  logLevel: string;
  auditRetentionDays?: number;
  sandboxLogBytes?: number;
  metricsTokenFile?: string;
  githubTokenFile?: string;
  gitlabTokenFile?: string;
}): Promise<number> {
  const { runServer } = await import('@hutch/server');
  const { metricsTokenFile, githubTokenFile, gitlabTokenFile, ...rest } = opts;
  let metricsToken: string | undefined;
  if (metricsTokenFile) {
    metricsToken = (await readFile(metricsTokenFile, 'utf8')).trim();
    if (metricsToken.length < 16) throw new Error(`--metrics-token-file: ${metricsTokenFile} holds no token of at least 16 characters`);
  }
  const tokenFrom = async (file: string | undefined, flag: string): Promise<string | undefined> => {
    if (!file) return undefined;
    const token = (await readFile(file, 'utf8')).trim();
    if (!token) throw new Error(`${flag}: ${file} is empty`);
    return token;
  };
  const githubToken = await tokenFrom(githubTokenFile, '--github-token-file');
  const gitlabToken = await tokenFrom(gitlabTokenFile, '--gitlab-token-file');
  const running = await runServer({
    ...rest,
    ...(metricsToken ? { metricsToken } : {}),
    ...(githubToken ? { githubToken } : {}),
    ...(gitlabToken ? { gitlabToken } : {}),
  });
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) process.exit(130);
      stopping = true;
      running.close().then(resolve, (err: unknown) => {
        process.stderr.write(`hutch: error while stopping the server: ${err instanceof Error ? err.message : String(err)}\n`);
        resolve();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}
