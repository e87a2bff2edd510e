import { Duplex, PassThrough, Writable } from 'node:stream';
import { type KubeConfig, PortForward } from '@kubernetes/client-node';
import WebSocket from 'ws';

/**
 * One TCP connection to a port of a pod through the API server's port-forward (a WebSocket to
 * `…/pods/<name>/portforward?ports=<port>`; the kubelet dials the port on the pod's own
 * loopback). Used when the server cannot route to pod IPs (agent-access.ts).
 *
 * Why port-forward rather than exec of an agent sub-command piping stdio to 127.0.0.1: it needs
 * nothing new in the agent or the image, it is a plain byte stream (exec adds a status channel
 * and a process per connection), and RBAC grants it alone (`pods/portforward`) without granting
 * command execution in every sandbox (`pods/exec`).
 *
 * client-node's PortForward does the channel framing (the port-number prefix, data and error
 * channels) and sends what `input` reads. Its WebSocket comes from `KubeWebSocket` below rather
 * than its default handler, which is not exported, has no open timeout, does not report the
 * socket's end, and ends process.stdout on a close-stream frame.
 */
const PROTOCOLS = ['v4.channel.k8s.io', 'channel.k8s.io'];

/** client-node's WebSocketInterface (not exported by its index): opens the API server's WebSocket. */
class KubeWebSocket {
  socket: WebSocket | null = null;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly timeoutMs: number,
  ) {}

  async connect(
    path: string,
    textHandler: ((text: string) => boolean) | null,
    binaryHandler: ((stream: number, buff: Buffer) => boolean) | null,
  ): Promise<WebSocket> {
    const server = this.kubeConfig.getCurrentCluster()?.server;
    if (!server) throw new Error('the kubeconfig names no cluster');
    const options: WebSocket.ClientOptions = { handshakeTimeout: this.timeoutMs, maxPayload: 16 * 1024 * 1024 };
    await this.kubeConfig.applyToHTTPSOptions(options);
    const ws = new WebSocket(`${server.replace(/^http/, 'ws').replace(/\/$/, '')}${path}`, PROTOCOLS, options);
    this.socket = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const keep = isBinary
        ? data.length > 0 && (binaryHandler?.(data[0]!, data.subarray(1)) ?? true)
        : (textHandler?.(data.toString('utf8')) ?? true);
      if (!keep) ws.close();
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      // Always listened to: an error after the open ends the stream (its 'close' follows).
      ws.on('error', reject);
    });
  }
}

export class PortForwardStream extends Duplex {
  private readonly input = new PassThrough();
  private errorText = '';
  private ws: WebSocket | null = null;
  private received = false;
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(private readonly what: string) {
    super({ allowHalfOpen: false });
  }

  /** Opens the WebSocket (bounded by `timeoutMs`); rejects with an error naming the pod. */
  async open(kubeConfig: KubeConfig, namespace: string, pod: string, port: number, timeoutMs: number): Promise<this> {
    const output = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.received = true;
        this.touch();
        this.push(chunk);
        cb();
      },
    });
    const err = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (this.errorText.length < 4096) this.errorText += chunk.toString('utf8');
        cb();
      },
    });
    const handler = new KubeWebSocket(kubeConfig, timeoutMs);
    try {
      await new PortForward(kubeConfig, true, handler).portForward(namespace, pod, [port], output, err, this.input, 0);
    } catch (e) {
      handler.socket?.terminate();
      const cause = e as NodeJS.ErrnoException;
      throw Object.assign(new Error(`${this.what}: ${cause.message ?? String(e)}`), { code: cause.code ?? 'EPORTFORWARD', cause: e });
    }
    const ws = handler.socket!;
    this.ws = ws;
    ws.on('error', (e) => this.destroy(Object.assign(new Error(`${this.what}: ${e.message}`), { code: 'EPORTFORWARD' })));
    ws.once('close', () => this.ended());
    return this;
  }

  /**
   * The WebSocket ended: the agent closed the connection, or the kubelet could not make one (its
   * error channel says why; "connection refused" is reported as ECONNREFUSED, as a direct
   * connection's would be, so that the owner checks whether the sandbox is gone).
   */
  private ended(): void {
    this.ws = null;
    this.clearIdle();
    if (this.errorText && !this.received) {
      const refused = /connection refused/i.test(this.errorText);
      this.destroy(
        Object.assign(new Error(`${this.what}: ${this.errorText.trim().slice(0, 500)}`), {
          code: refused ? 'ECONNREFUSED' : 'EPORTFORWARD',
        }),
      );
      return;
    }
    this.push(null);
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.touch();
    // PortForward sends each chunk as one frame as it is read from `input`.
    this.input.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    // PortForward closes the WebSocket when its input ends (a v4 channel has no half-close).
    this.input.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.clearIdle();
    this.ws?.close();
    this.ws = null;
    cb(err);
  }

  // What node:http asks of a socket.
  setTimeout(ms: number, listener?: () => void): this {
    if (listener) this.once('timeout', listener);
    this.idleMs = ms;
    this.touch();
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  private touch(): void {
    this.clearIdle();
    if (this.idleMs > 0 && !this.destroyed) this.idleTimer = setTimeout(() => this.emit('timeout'), this.idleMs);
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

/** A connection to `port` of `pod` through the API server (see PortForwardStream). */
export function openPortForward(kubeConfig: KubeConfig, namespace: string, pod: string, port: number, timeoutMs = 10_000): Promise<Duplex> {
  return new PortForwardStream(`port-forward to pod ${namespace}/${pod}:${port}`).open(kubeConfig, namespace, pod, port, timeoutMs);
}
