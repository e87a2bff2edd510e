import { createHash } from 'node:crypto';
import { readdir, readFile, lstat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { invalidArgument } from '../core/errors.js';
import { catalogEntryFor, contractForTemplate, IMAGE_CATALOG, parseImageRef, type ImageContract } from './image-catalog.js';
import { interpolateString } from './interpolate.js';
import type { CommandSpec, HealthcheckSpec } from './model.js';
import { parseDuration, projectPath } from './normalize.js';
import { insideProject } from './workspace.js';

/**
 * The Dockerfile subset a Compose `build:` may use: one `FROM` (a catalog image, an image mapped
 * by x-hutch, or a template name), then `ARG`, `ENV`, `WORKDIR`, `USER`, `RUN`, `COPY`, `EXPOSE`,
 * `ENTRYPOINT`, `CMD`, `HEALTHCHECK` (and `LABEL`, `VOLUME`, which change nothing here). Parsed
 * with dockerfile-ast (continuation lines, JSON forms, quoting); variables (`$VAR`, `${VAR:-x}`)
 * are substituted where Docker does (not in RUN, CMD, ENTRYPOINT: the shell does that).
 *
 * The result is the steps to run in a build sandbox, the runtime contract of the image it makes,
 * and a content hash of everything that decides the result (the base template, the steps, the
 * build args, and the bytes and modes of every file COPY reads): the built snapshot is reused
 * while the hash is the same.
 */
export type BuildStep =
  | { kind: 'run'; line: number; argv: string[]; env: Record<string, string>; user: string | null; cwd: string | null }
  | { kind: 'copy'; line: number; sources: string[]; dest: string }
  | { kind: 'mkdir'; line: number; path: string };

export interface DockerfileImage {
  /** The template the build starts from. */
  fromTemplate: string;
  steps: BuildStep[];
  /** The built image's runtime contract (user null: the base template's default user). */
  contract: Omit<ImageContract, 'template' | 'repository' | 'version' | 'user'> & { user: string | null };
  /** Inputs of the build except the base template's digest (the builder adds it). */
  hash: string;
  warnings: string[];
}

const SUPPORTED = new Set([
  'FROM',
  'ARG',
  'ENV',
  'WORKDIR',
  'USER',
  'RUN',
  'COPY',
  'EXPOSE',
  'ENTRYPOINT',
  'CMD',
  'HEALTHCHECK',
  'LABEL',
  'VOLUME',
]);
const MAX_COPY_FILES = 20_000;

interface JsonCapable {
  getJSONStrings?: () => Array<{ getJSONValue(): string }>;
}

/** A command instruction's argv: JSON form as written, shell form under `/bin/sh -c`. */
function commandOf(ins: Instruction, content: string): CommandSpec {
  const json = (ins as unknown as JsonCapable).getJSONStrings?.() ?? [];
  if (content.trim().startsWith('[') && json.length > 0) return { argv: json.map((j) => j.getJSONValue()) };
  return { shell: content.trim() };
}

function argvOf(spec: CommandSpec): string[] {
  return 'argv' in spec ? spec.argv : ['/bin/sh', '-c', spec.shell];
}

/** Files below a project path with their mode and content hash (what COPY reads), sorted. */
export async function fingerprint(root: string, rel: string, out: string[]): Promise<void> {
  const path = rel === '' ? root : join(root, rel);
  const st = await lstat(path);
  if (out.length > MAX_COPY_FILES) throw invalidArgument(`COPY: more than ${MAX_COPY_FILES} files`);
  if (st.isSymbolicLink()) out.push(`${rel} link`);
  else if (st.isDirectory()) {
    out.push(`${rel}/ ${st.mode & 0o7777}`);
    for (const name of (await readdir(path)).sort()) await fingerprint(root, rel === '' ? name : `${rel}/${name}`, out);
  } else if (st.isFile())
    out.push(
      `${rel} ${st.mode & 0o7777} ${createHash('sha256')
        .update(await readFile(path))
        .digest('hex')}`,
    );
}

export interface DockerfileInput {
  /** The project root on the host. */
  root: string;
  /** Build context and Dockerfile, relative to the project root (normalize.ts checked them). */
  context: string;
  dockerfile: string;
  args: Record<string, string>;
  /** x-hutch's image → template mapping. */
  templates: Record<string, string>;
  /** For messages: `services.<name>.build`. */
  field: string;
}

export async function loadDockerfile(input: DockerfileInput): Promise<DockerfileImage> {
  const { field } = input;
  await insideProject(input.root, input.context, `${field}.context`);
  const dockerfileRel = projectPath(posix.join(input.context, input.dockerfile), `${field}.dockerfile`);
  const dockerfilePath = await insideProject(input.root, dockerfileRel, `${field}.dockerfile`);
  const text = await readFile(dockerfilePath, 'utf8');
  const where = (ins: Instruction): string => `${dockerfileRel}:${ins.getRange().start.line + 1}`;
  const instructions = DockerfileParser.parse(text).getInstructions();
  const warnings: string[] = [];

  const first = instructions[0];
  if (!first || first.getKeyword() !== 'FROM') throw invalidArgument(`${dockerfileRel}: must start with FROM`);
  if (instructions.filter((i) => i.getKeyword() === 'FROM').length > 1)
    throw invalidArgument(`${where(instructions.filter((i) => i.getKeyword() === 'FROM')[1]!)}: multi-stage builds are not supported yet`);

  const args = new Map<string, string>();
  const env = new Map<string, string>();
  const vars = (): Map<string, string> => new Map([...args, ...env]);
  const sub = (value: string, ins: Instruction): string =>
    interpolateString(value, { variables: vars(), path: where(ins), onMissing: () => undefined });

  // FROM: a catalog image, an image x-hutch maps, or a template by name.
  const fromArgs = first.getArguments().map((a) => a.getValue());
  const fromImage = fromArgs[0] ?? '';
  if (fromArgs.length !== 1 && !(fromArgs.length === 3 && fromArgs[1]!.toUpperCase() === 'AS'))
    throw invalidArgument(`${where(first)}: FROM takes an image (and an optional AS name)`);
  let fromTemplate: string;
  let base: ImageContract | null;
  const mapped = input.templates[fromImage];
  const ref = parseImageRef(fromImage);
  if (mapped) {
    fromTemplate = mapped;
    base = contractForTemplate(mapped, fromImage);
  } else if (
    ref.registry === null &&
    ref.tag === null &&
    ref.digest === null &&
    !fromImage.includes('/') &&
    !IMAGE_CATALOG.some((c) => c.repository === ref.repository)
  ) {
    // A bare name the catalog does not know is a template or snapshot (`FROM base`).
    fromTemplate = fromImage;
    base = contractForTemplate(fromImage, null);
  } else {
    base = catalogEntryFor(fromImage, `${where(first)} FROM`);
    fromTemplate = base.template;
  }

  for (const [k, v] of Object.entries(base?.env ?? {})) env.set(k, v);
  let user: string | null = base?.user ?? null;
  let cwd: string | null = base?.workingDir ?? null;
  let entrypoint: string[] | null = base?.entrypoint ?? null;
  let command: string[] = base?.command ?? [];
  let healthcheck: HealthcheckSpec | null = base?.healthcheck ?? null;
  const ports = new Set<number>(base?.ports ?? []);
  const steps: BuildStep[] = [];
  const copied: string[] = [];

  for (const ins of instructions.slice(1)) {
    const keyword = ins.getKeyword();
    const content = ins.getArgumentsContent() ?? '';
    if (!SUPPORTED.has(keyword))
      throw invalidArgument(`${where(ins)}: ${keyword} is not supported (${[...SUPPORTED].join(', ')}; ADD: use COPY)`);
    const line = ins.getRange().start.line + 1;
    const props = (): Array<[string, string]> =>
      ((ins as unknown as { getProperties?: () => Array<{ getName(): string; getValue(): string | null }> }).getProperties?.() ?? []).map(
        (p) => [p.getName(), p.getValue() ?? ''],
      );
    switch (keyword) {
      case 'ARG':
        for (const [name, dflt] of props()) args.set(name, input.args[name] ?? sub(dflt, ins));
        break;
      case 'ENV':
        for (const [name, value] of props()) env.set(name, sub(value, ins));
        break;
      case 'WORKDIR': {
        const dir = sub(content.trim(), ins);
        cwd = dir.startsWith('/') ? posix.normalize(dir) : posix.join(cwd ?? '/', dir);
        steps.push({ kind: 'mkdir', line, path: cwd });
        break;
      }
      case 'USER':
        user = sub(content.trim(), ins);
        break;
      case 'RUN': {
        const buildEnv = Object.fromEntries(vars());
        steps.push({ kind: 'run', line, argv: argvOf(commandOf(ins, content)), env: buildEnv, user, cwd });
        break;
      }
      case 'COPY': {
        const flags = (ins as unknown as { getFlags?: () => Array<{ getName(): string }> }).getFlags?.() ?? [];
        for (const flag of flags) {
          if (flag.getName() === 'chown' || flag.getName() === 'chmod')
            warnings.push(`${where(ins)}: COPY --${flag.getName()} is ignored (files are copied as root, with their modes)`);
          else throw invalidArgument(`${where(ins)}: COPY --${flag.getName()} is not supported`);
        }
        const json = (ins as unknown as JsonCapable).getJSONStrings?.() ?? [];
        const words = (
          content.trim().startsWith('[') && json.length > 0
            ? json.map((j) => j.getJSONValue())
            : ins.getArguments().map((a) => a.getValue())
        ).map((w) => sub(w, ins));
        if (words.length < 2) throw invalidArgument(`${where(ins)}: COPY needs a source and a destination`);
        const destWord = words[words.length - 1]!;
        const dest = (destWord.startsWith('/') ? posix.normalize(destWord) : posix.join(cwd ?? '/', destWord)).replace(/\/+$/, '') || '/';
        const sources = words.slice(0, -1).map((s) => {
          if (/[*?[]/.test(s)) throw invalidArgument(`${where(ins)}: COPY wildcards are not supported yet ("${s}")`);
          return projectPath(posix.join(input.context, s), where(ins));
        });
        for (const s of sources) {
          await insideProject(input.root, s, where(ins));
          await fingerprint(input.root, s, copied);
        }
        const toDirectory = sources.length > 1 || destWord.endsWith('/') || destWord === '.';
        steps.push({ kind: 'copy', line, sources, dest: toDirectory && dest !== '/' ? `${dest}/` : dest });
        break;
      }
      case 'EXPOSE':
        for (const word of ins.getArguments().map((a) => sub(a.getValue(), ins))) {
          const port = Number(word.split('/')[0]);
          if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidArgument(`${where(ins)}: "${word}" is not a port`);
          ports.add(port);
        }
        break;
      case 'ENTRYPOINT':
        entrypoint = argvOf(commandOf(ins, content));
        // As in Docker: a new entrypoint drops the base image's default command.
        command = [];
        break;
      case 'CMD':
        command = argvOf(commandOf(ins, content));
        break;
      case 'HEALTHCHECK': {
        const rest = content.trim();
        if (/^NONE$/i.test(rest)) {
          healthcheck = null;
          break;
        }
        const flags = new Map(
          ((ins as unknown as { getFlags?: () => Array<{ getName(): string; getValue(): string | null }> }).getFlags?.() ?? []).map((f) => [
            f.getName(),
            f.getValue() ?? '',
          ]),
        );
        const cmd = /^(?:--\S+\s+)*CMD\s+([\s\S]+)$/i.exec(rest)?.[1];
        if (!cmd) throw invalidArgument(`${where(ins)}: HEALTHCHECK needs CMD … or NONE`);
        const test = cmd.trim().startsWith('[') ? (JSON.parse(cmd) as string[]) : ['/bin/sh', '-c', cmd.trim()];
        const duration = (name: string, dflt: number): number =>
          flags.has(name) ? parseDuration(flags.get(name), `${where(ins)} --${name}`) : dflt;
        healthcheck = {
          test,
          intervalMs: duration('interval', 30_000),
          timeoutMs: duration('timeout', 30_000),
          retries: flags.has('retries') ? Number(flags.get('retries')) : 3,
          startPeriodMs: duration('start-period', 0),
          startIntervalMs: duration('start-interval', 5000),
        };
        break;
      }
      default:
        // LABEL, VOLUME: nothing to do on Hutch.
        break;
    }
  }

  const contract = {
    entrypoint,
    command,
    env: Object.fromEntries(env),
    user,
    workingDir: cwd,
    ports: [...ports].sort((a, b) => a - b),
    volumes: base?.volumes ?? [],
    healthcheck,
  };
  const hash = createHash('sha256')
    .update(JSON.stringify({ revision: 1, fromTemplate, steps, args: [...args], copied }))
    .digest('hex');
  return { fromTemplate, steps, contract, hash, warnings };
}
