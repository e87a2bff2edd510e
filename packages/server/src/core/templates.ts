/** What core needs to know about templates; templates/catalog.ts implements it. */
export interface TemplateInfo {
  name: string;
  description: string;
  digest: string;
  state: 'ready' | 'building' | 'missing' | 'error';
  defaultUser: string;
  sizeBytes: number | null;
  builtAt: string | null;
  error?: string;
}

export interface ResolvedTemplate {
  name: string;
  digest: string;
  /** The template's own layer. */
  rootfs: string;
  /** Every layer a sandbox mounts, top first (the template's own, then its parents'). */
  layers: string[];
  defaultUser: string;
  /** A command started in every new (or started) sandbox, and the port to wait for. */
  start?: { cmd: string; readyPort?: number };
}

export interface TemplateCatalog {
  list(): Promise<TemplateInfo[]>;
  /** The template's built layer, building it first if needed; null for an unknown name. */
  resolve(name: string): Promise<ResolvedTemplate | null>;
  names(): string[];
}
